/** Gate's errors as the OpenAI API answers them: status, and a body in OpenAI's shape. */
import { type ErrorCode, GateError, RateLimitedError, RequestTimeoutError } from '@gate/core'
import type { ApiResponse } from './types.ts'

const STATUS: Record<ErrorCode, number> = {
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  request_timeout: 408,
  payload_too_large: 413,
  rate_limited: 429,
  upstream_error: 502,
  unavailable: 503,
  timeout: 504,
  internal: 500,
}

/** OpenAI's `error.type` for each status Gate answers with. */
const TYPE: Record<ErrorCode, string> = {
  invalid_request: 'invalid_request_error',
  unauthorized: 'authentication_error',
  forbidden: 'permission_error',
  not_found: 'not_found_error',
  request_timeout: 'invalid_request_error',
  payload_too_large: 'invalid_request_error',
  rate_limited: 'rate_limit_error',
  upstream_error: 'api_error',
  unavailable: 'api_error',
  timeout: 'api_error',
  internal: 'api_error',
}

export function statusOf(code: ErrorCode): number {
  return STATUS[code]
}

/** Normalises any thrown value into a GateError, once, at the HTTP boundary. */
export function toGateError(err: unknown): GateError {
  return err instanceof GateError ? err : new GateError('internal error', { cause: err })
}

export function openAiErrorBody(err: GateError): string {
  return JSON.stringify({
    error: { message: err.message, type: TYPE[err.code], code: err.code, param: err.param },
  })
}

/**
 * Answers with the error in OpenAI's shape, unless the response has already begun (then it is cut).
 * `own`: Gate's own headers for every response (request ID, node, CORS).
 */
export function sendError(res: ApiResponse, err: GateError, own: Record<string, string>): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const body = openAiErrorBody(err)
  const headers: Record<string, string | number> = {
    ...own,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  }
  if (err instanceof RateLimitedError) headers['retry-after'] = err.retryAfterSeconds
  // The rest of a stalled body may still come: the connection cannot carry another request.
  if (err instanceof RequestTimeoutError) headers.connection = 'close'
  res.writeHead(statusOf(err.code), headers).end(body)
}
