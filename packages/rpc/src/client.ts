import { DEFAULT_CALL_TIMEOUT_MS, DEFAULT_EVENTS_CONNECT_TIMEOUT_MS } from './constants.ts'
import { RPC_ERROR_CODES, RpcError, RpcTimeoutError, RpcTransportError } from './errors.ts'
import type { MethodName, MethodParams, MethodResult } from './methods.ts'
import type { SseEvent } from './sse.ts'
import { parseSse } from './sse.ts'

// What a browser needs besides the client, so that it imports this module alone: nothing here or
// in what it imports pulls in zod, @gate/core or Node's built-ins (methods.ts only as types).
export { RPC_ERROR_CODES, RpcError, RpcTimeoutError, RpcTransportError } from './errors.ts'
export type {
  DetectedEngine,
  MethodName,
  MethodParams,
  MethodResult,
  MethodResults,
  NatStatus,
  NodeStatus,
  Overview,
  PeerConnection,
  PeerInfo,
  PeerRow,
  ProviderStatus,
  RequestRecord,
  TrafficMinute,
  UsageTotals,
} from './methods.ts'

export interface RpcClientInit {
  /** The control port's base URL, e.g. `http://127.0.0.1:8145`. */
  url: string
  /** The contents of `control.token`. */
  token: string
  /** @default globalThis.fetch */
  fetch?: typeof fetch
  /** @default DEFAULT_CALL_TIMEOUT_MS */
  timeoutMs?: number
}

export interface CallOptions {
  signal?: AbortSignal
  /** @default the client's `timeoutMs` */
  timeoutMs?: number
}

export interface EventsOptions {
  /** Aborting it ends the iteration cleanly. */
  signal?: AbortSignal
  /** How long to wait for the stream to open. @default DEFAULT_EVENTS_CONNECT_TIMEOUT_MS */
  connectTimeoutMs?: number
}

export type RpcEvent = SseEvent

export interface RpcClient {
  /**
   * Calls one method. Throws `RpcError` for an error answer (and a refused token),
   * `RpcTransportError` when the daemon cannot be reached, `RpcTimeoutError` when it does not
   * answer in time, and the signal's reason when aborted.
   */
  call<M extends MethodName>(
    method: M,
    params?: MethodParams<M>,
    options?: CallOptions,
  ): Promise<MethodResult<M>>
  /**
   * The daemon's live events. Ends when the signal aborts or the daemon closes the stream;
   * throws `RpcTransportError` when the connection breaks.
   */
  events(options?: EventsOptions): AsyncIterable<RpcEvent>
}

/** A client for a daemon's control port, over HTTP. */
export function createRpcClient(init: RpcClientInit): RpcClient {
  const base = init.url.replace(/\/+$/, '')
  const fetchImpl = init.fetch ?? globalThis.fetch
  const authorization = `Bearer ${init.token.trim()}`
  const defaultTimeoutMs = init.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS
  let nextId = 1

  /** The error to throw for a failed fetch or body read. */
  const failed = (err: unknown, signal: AbortSignal): unknown =>
    signal.aborted
      ? signal.reason
      : new RpcTransportError(base, `cannot reach the daemon at ${base}: ${describeFailure(err)}`, {
          cause: err,
        })

  /** Turns a non-success answer into the error to throw. */
  const answerError = (status: number, path: string, text: string): Error => {
    const body = parseJson(text)
    const error = isRecord(body) ? body.error : undefined
    if (isRecord(error) && typeof error.code === 'number' && typeof error.message === 'string') {
      return new RpcError(error.code, error.message, { data: error.data })
    }
    if (status === 401 || status === 403) {
      const code = status === 401 ? RPC_ERROR_CODES.unauthorized : RPC_ERROR_CODES.forbidden
      return new RpcError(code, typeof error === 'string' ? error : `HTTP ${status} from the daemon`)
    }
    return new RpcTransportError(
      base,
      `unexpected answer from ${base}${path}: HTTP ${status} ${preview(text)}`,
    )
  }

  async function call<M extends MethodName>(
    method: M,
    params?: MethodParams<M>,
    options: CallOptions = {},
  ): Promise<MethodResult<M>> {
    const timeoutMs = options.timeoutMs ?? defaultTimeoutMs
    const deadline = linkedController(options.signal)
    const timer = setTimeout(() => {
      const seconds = timeoutMs / 1000
      deadline.controller.abort(
        new RpcTimeoutError(base, `the daemon at ${base} did not answer ${method} within ${seconds} s`),
      )
    }, timeoutMs)
    const { signal } = deadline.controller
    try {
      const request = { jsonrpc: '2.0', id: nextId++, method, params: params ?? {} }
      let response: Response
      let text: string
      try {
        response = await fetchImpl(`${base}/rpc`, {
          method: 'POST',
          headers: { authorization, 'content-type': 'application/json', accept: 'application/json' },
          body: JSON.stringify(request),
          signal,
        })
        text = await response.text()
      } catch (err) {
        throw failed(err, signal)
      }
      const body = parseJson(text)
      if (response.status === 200 && isRecord(body) && 'result' in body && !('error' in body)) {
        return body.result as MethodResult<M>
      }
      throw answerError(response.status, '/rpc', text)
    } finally {
      clearTimeout(timer)
      deadline.dispose()
    }
  }

  async function* events(options: EventsOptions = {}): AsyncGenerator<RpcEvent, void, undefined> {
    const outer = options.signal
    if (outer?.aborted) return
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_EVENTS_CONNECT_TIMEOUT_MS
    const deadline = linkedController(outer)
    const { signal } = deadline.controller
    const timer = setTimeout(() => {
      deadline.controller.abort(
        new RpcTimeoutError(
          base,
          `the daemon at ${base} did not open the event stream within ${timeoutMs / 1000} s`,
        ),
      )
    }, timeoutMs)
    try {
      let response: Response
      try {
        response = await fetchImpl(`${base}/events`, {
          headers: { authorization, accept: 'text/event-stream' },
          signal,
        })
      } catch (err) {
        if (outer?.aborted) return
        throw failed(err, signal)
      } finally {
        clearTimeout(timer)
      }
      if (response.status !== 200 || response.body === null) {
        const text = await response.text().catch(() => '')
        throw answerError(response.status, '/events', text)
      }
      try {
        yield* parseSse(response.body)
      } catch (err) {
        if (outer?.aborted) return
        throw new RpcTransportError(base, `the event stream from ${base} broke: ${describeFailure(err)}`, {
          cause: err,
        })
      }
    } finally {
      clearTimeout(timer)
      deadline.dispose()
    }
  }

  return { call, events }
}

/** An AbortController that follows `outer`, so a timeout can abort without touching the caller's signal. */
function linkedController(outer: AbortSignal | undefined): { controller: AbortController; dispose(): void } {
  const controller = new AbortController()
  if (outer === undefined) return { controller, dispose: () => {} }
  const onAbort = () => controller.abort(outer.reason)
  if (outer.aborted) onAbort()
  else outer.addEventListener('abort', onAbort, { once: true })
  return { controller, dispose: () => outer.removeEventListener('abort', onAbort) }
}

const NETWORK_FAILURES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host not found',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  UND_ERR_SOCKET: 'connection closed',
}

/** fetch reports every network failure as `TypeError: fetch failed`; the reason is down the cause chain. */
function describeFailure(err: unknown): string {
  let innermost: unknown = err
  for (let current: unknown = err, depth = 0; isRecord(current) && depth < 8; depth++) {
    if (typeof current.code === 'string') return NETWORK_FAILURES[current.code] ?? current.code
    if (current instanceof AggregateError && current.errors.length > 0) current = current.errors[0]
    else current = current.cause
    if (current !== undefined) innermost = current
  }
  return innermost instanceof Error ? innermost.message : String(innermost)
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function preview(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim()
  return line.length > 120 ? `${line.slice(0, 120)}…` : line
}
