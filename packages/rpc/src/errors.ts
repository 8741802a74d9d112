/**
 * Every JSON-RPC error code the control port answers with. The -32700..-32600 block is the
 * JSON-RPC 2.0 spec's; Gate's own codes sit in the server-error range and end in the matching
 * HTTP status (-32004 ~ 404), as tRPC does.
 */
export const RPC_ERROR_CODES = {
  parse_error: -32700,
  invalid_request: -32600,
  method_not_found: -32601,
  invalid_params: -32602,
  internal_error: -32603,

  unauthorized: -32001,
  forbidden: -32003,
  not_found: -32004,
  unavailable: -32005,
  timeout: -32006,
  upstream_error: -32007,
  request_timeout: -32008,
  payload_too_large: -32013,
  rate_limited: -32029,
} as const

export type RpcErrorName = keyof typeof RPC_ERROR_CODES

/** The `error` member of a JSON-RPC response. */
export interface RpcErrorObject {
  code: number
  message: string
  data?: unknown
}

/** A JSON-RPC error: thrown by handlers that want an exact code, and by the client for every error answer. */
export class RpcError extends Error {
  override name = 'RpcError'
  readonly code: number
  readonly data?: unknown

  constructor(code: number, message: string, options?: { data?: unknown; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    if (options?.data !== undefined) this.data = options.data
  }

  toJSON(): RpcErrorObject {
    return this.data === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, data: this.data }
  }
}

/** The client could not reach the daemon, or what answered was not a Gate control port. */
export class RpcTransportError extends Error {
  override name = 'RpcTransportError'
  /** The control port's base URL. */
  readonly url: string

  constructor(url: string, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.url = url
  }
}

/** The daemon accepted the connection but did not answer in time. */
export class RpcTimeoutError extends RpcTransportError {
  override name = 'RpcTimeoutError'
}
