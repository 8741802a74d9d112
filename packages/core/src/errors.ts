/**
 * Gate's errors: one class per condition, each with a stable `name` and a `code` that the HTTP
 * API maps to an OpenAI error body and the control port maps to a JSON-RPC error.
 */
export type ErrorCode =
  | 'invalid_request'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'request_timeout'
  | 'payload_too_large'
  | 'rate_limited'
  | 'upstream_error'
  | 'unavailable'
  | 'timeout'
  | 'internal'

export class GateError extends Error {
  override name = 'GateError'
  readonly code: ErrorCode = 'internal'
  /** The request field at fault, when there is one (OpenAI's `param`). */
  readonly param: string | null
  constructor(message: string, options?: { param?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.param = options?.param ?? null
  }
}

export class InvalidRequestError extends GateError {
  override name = 'InvalidRequestError'
  override readonly code = 'invalid_request'
}

export class UnauthorizedError extends GateError {
  override name = 'UnauthorizedError'
  override readonly code = 'unauthorized'
}

export class ForbiddenError extends GateError {
  override name = 'ForbiddenError'
  override readonly code = 'forbidden'
}

export class NotFoundError extends GateError {
  override name = 'NotFoundError'
  override readonly code = 'not_found'
}

/** The client did not send its whole request in time. */
export class RequestTimeoutError extends GateError {
  override name = 'RequestTimeoutError'
  override readonly code = 'request_timeout'
}

export class PayloadTooLargeError extends GateError {
  override name = 'PayloadTooLargeError'
  override readonly code = 'payload_too_large'
}

export class RateLimitedError extends GateError {
  override name = 'RateLimitedError'
  override readonly code = 'rate_limited'
  readonly retryAfterSeconds: number
  constructor(message: string, retryAfterSeconds: number) {
    super(message)
    this.retryAfterSeconds = retryAfterSeconds
  }
}

export class UpstreamError extends GateError {
  override name = 'UpstreamError'
  override readonly code = 'upstream_error'
}

export class UnavailableError extends GateError {
  override name = 'UnavailableError'
  override readonly code = 'unavailable'
}

export class TimeoutError extends GateError {
  override name = 'TimeoutError'
  override readonly code = 'timeout'
}

/** A config file or config value that does not validate; `issues` name each field at fault. */
export class ConfigError extends GateError {
  override name = 'ConfigError'
  override readonly code = 'invalid_request'
  readonly issues: string[]
  constructor(issues: string[], options?: { cause?: unknown }) {
    super(issues.join('; '), options)
    this.issues = issues
  }
}

/** The identity key file exists but cannot be opened (wrong passphrase, lost keyring entry, corrupt). */
export class IdentityError extends GateError {
  override name = 'IdentityError'
}

export class InvalidNodeIdError extends GateError {
  override name = 'InvalidNodeIdError'
  override readonly code = 'invalid_request'
}

/** No OS keyring answered (headless machine, no Secret Service, locked or refused). */
export class KeyringUnavailableError extends GateError {
  override name = 'KeyringUnavailableError'
  override readonly code = 'unavailable'
}

/** A one-line description of any error for logs and messages: its message, and its code when it has one. */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause
    const code = (err as { code?: unknown }).code ?? (cause as { code?: unknown } | undefined)?.code
    return typeof code === 'string' ? `${err.message} (${code})` : err.message
  }
  return String(err)
}

/** Whether `err` (or a cause of it) is this process running out of descriptors: its own failure, not its peer's. */
export function isOutOfDescriptors(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code
    if (code === 'EMFILE' || code === 'ENFILE') return true
  }
  return false
}
