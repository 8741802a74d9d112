import { ConfigError, describeInput, type ErrorCode, GateError, RateLimitedError } from '@gate/core'
import type { z } from 'zod'
import { RPC_ERROR_CODES, RpcError, type RpcErrorName } from './errors.ts'
import type { HandlerParams, MethodName, MethodResult } from './methods.ts'
import { METHODS } from './methods.ts'
import type { JsonRpcFailure, JsonRpcId, JsonRpcResponse } from './protocol.ts'

export interface RpcHandlerContext {
  /** Aborted when the caller goes away or the server stops. */
  signal: AbortSignal
}

/** One handler per method; a missing one answers "method not found". */
export type RpcHandlers = {
  [M in MethodName]: (params: HandlerParams<M>, ctx: RpcHandlerContext) => Promise<MethodResult<M>>
}

export interface RpcHandlerOptions {
  /**
   * Called with whatever a handler threw, before it is turned into a JSON-RPC error, so the
   * server can log the cause the caller never sees. Not called for envelope or params errors.
   */
  onError?(err: unknown, method: string): void
}

/** Dispatches one parsed JSON-RPC body (a request or a batch); `null` when nothing is to be sent back. */
export type RpcHandler = (
  body: unknown,
  init?: { signal?: AbortSignal },
) => Promise<JsonRpcResponse | JsonRpcResponse[] | null>

export type ParsedRpcBody = { ok: true; value: unknown } | { ok: false; response: JsonRpcFailure }

/** Parses a request body's text; invalid JSON gives the -32700 response to send back. */
export function parseRpcBody(text: string): ParsedRpcBody {
  try {
    return { ok: true, value: JSON.parse(text) }
  } catch (err) {
    const error = new RpcError(RPC_ERROR_CODES.parse_error, `parse error: ${(err as Error).message}`)
    return { ok: false, response: failure(null, error) }
  }
}

/**
 * Validates JSON-RPC 2.0 envelopes and params, runs the handlers (a batch's concurrently) and
 * turns every thrown value into a JSON-RPC error. Knows nothing of HTTP.
 */
export function createRpcHandler(
  handlers: Partial<RpcHandlers>,
  options: RpcHandlerOptions = {},
): RpcHandler {
  const never = new AbortController().signal

  async function handleOne(request: unknown, signal: AbortSignal): Promise<JsonRpcResponse | null> {
    if (!isRecord(request)) return failure(null, invalidRequest('expected a JSON-RPC request object'))
    const { id } = request
    const isNotification = !('id' in request)
    if (!isNotification && !isId(id))
      return failure(null, invalidRequest('"id" must be a string, number or null'))
    const replyId = isNotification ? null : (id as JsonRpcId)
    const reply = (response: JsonRpcResponse): JsonRpcResponse | null => (isNotification ? null : response)

    if (request.jsonrpc !== '2.0') return failure(replyId, invalidRequest('"jsonrpc" must be "2.0"'))
    const { method, params = {} } = request
    if (typeof method !== 'string') return failure(replyId, invalidRequest('"method" must be a string'))
    if (Array.isArray(params)) {
      const error = new RpcError(
        RPC_ERROR_CODES.invalid_params,
        'params: positional params are not supported, pass an object of named params',
      )
      return reply(failure(replyId, error))
    }
    if (!isRecord(params)) return failure(replyId, invalidRequest('"params" must be an object'))

    const handler = Object.hasOwn(METHODS, method) ? handlers[method as MethodName] : undefined
    if (typeof handler !== 'function') {
      const error = new RpcError(
        RPC_ERROR_CODES.method_not_found,
        `method not found: ${JSON.stringify(method)}`,
      )
      return reply(failure(replyId, error))
    }

    const schema: z.ZodType = METHODS[method as MethodName]
    const parsed = schema.safeParse(params, { reportInput: true })
    if (!parsed.success) {
      const issues = parsed.error.issues.map(formatIssue)
      const error = new RpcError(RPC_ERROR_CODES.invalid_params, issues.join('; '), { data: { issues } })
      return reply(failure(replyId, error))
    }

    try {
      // The schema and the handler come from the same METHODS key.
      const call = handler as (params: unknown, ctx: RpcHandlerContext) => Promise<unknown>
      const result = await call(parsed.data, { signal })
      return reply({ jsonrpc: '2.0', id: replyId, result: result ?? null })
    } catch (err) {
      try {
        options.onError?.(err, method)
      } catch {
        // A failing logger must not turn into a second error for the caller.
      }
      return reply(failure(replyId, toRpcError(err)))
    }
  }

  return async (body, init) => {
    const signal = init?.signal ?? never
    if (!Array.isArray(body)) return handleOne(body, signal)
    if (body.length === 0) return failure(null, invalidRequest('empty batch'))
    const responses = await Promise.all(body.map((request) => handleOne(request, signal)))
    const sent = responses.filter((response) => response !== null)
    return sent.length > 0 ? sent : null
  }
}

function failure(id: JsonRpcId, error: RpcError): JsonRpcFailure {
  return { jsonrpc: '2.0', id, error: error.toJSON() }
}

function invalidRequest(reason: string): RpcError {
  return new RpcError(RPC_ERROR_CODES.invalid_request, `invalid request: ${reason}`)
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isId(value: unknown): value is JsonRpcId {
  return value === null || typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value))
}

/** `params.lines: expected integer 1–10000, got 0`, in the same shape as core's config errors. */
function formatIssue(issue: z.core.$ZodIssue): string {
  const field = [
    'params',
    ...issue.path.map((key) => (typeof key === 'number' ? `[${key}]` : `.${String(key)}`)),
  ].join('')
  if (issue.code === 'unrecognized_keys') {
    return `${field}: unknown parameter ${issue.keys.map((key) => JSON.stringify(key)).join(', ')}`
  }
  // A check on the whole params object: echoing the object back adds nothing.
  if (issue.path.length === 0) return `${field}: ${issue.message}`
  return `${field}: ${issue.message}, got ${describeInput(issue.path, 'input' in issue ? issue.input : undefined)}`
}

/** Which JSON-RPC code each `GateError.code` becomes. A Gate `invalid_request` is bad params, not a bad envelope. */
const RPC_ERROR_BY_GATE_CODE = {
  invalid_request: 'invalid_params',
  unauthorized: 'unauthorized',
  forbidden: 'forbidden',
  not_found: 'not_found',
  request_timeout: 'request_timeout',
  payload_too_large: 'payload_too_large',
  rate_limited: 'rate_limited',
  upstream_error: 'upstream_error',
  unavailable: 'unavailable',
  timeout: 'timeout',
  internal: 'internal_error',
} as const satisfies Record<ErrorCode, RpcErrorName>

/**
 * Turns anything a handler threw into the error the caller sees. Gate's errors keep their
 * message (they are written for the user); anything else is a bug whose message and stack stay
 * on the server.
 */
export function toRpcError(err: unknown): RpcError {
  if (err instanceof RpcError) return err
  if (err instanceof ConfigError) {
    return new RpcError(RPC_ERROR_CODES.invalid_params, err.message, {
      data: { issues: err.issues },
      cause: err,
    })
  }
  if (err instanceof GateError) {
    const data: Record<string, unknown> = {}
    if (err.param !== null) data.param = err.param
    if (err instanceof RateLimitedError) data.retry_after_s = err.retryAfterSeconds
    return new RpcError(RPC_ERROR_CODES[RPC_ERROR_BY_GATE_CODE[err.code]], err.message, {
      ...(Object.keys(data).length > 0 && { data }),
      cause: err,
    })
  }
  return new RpcError(RPC_ERROR_CODES.internal_error, 'internal error', { cause: err })
}
