/**
 * The response relay, one for every upstream: an upstream's answer goes to the client with Gate's
 * own headers. SSE is passed through chunk by chunk with backpressure and its usage found in its
 * last events; anything else is held whole (up to a cap), so that an upstream dying mid-body
 * becomes a clean error instead of a truncated 200.
 */
import { describeError, GateError, UpstreamError } from '@gate/core'
import { MAX_RESPONSE_BYTES } from '../constants.ts'
import { openAiErrorBody } from './errors.ts'
import type { ApiResponse, HeaderMap, Relayed, UpstreamAnswer } from './types.ts'
import { findUsage } from './usage.ts'

const DONE = Buffer.from('data: [DONE]')

/** Response headers that describe one hop, not the message. */
const HOP_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'date'])

/** A response's headers without the hop-by-hop ones. */
export function endToEndHeaders(headers: Record<string, string | string[] | number | undefined>): HeaderMap {
  const out: HeaderMap = {}
  for (const key in headers) {
    const value = headers[key]
    if (value !== undefined && !HOP_HEADERS.has(key))
      out[key] = typeof value === 'number' ? String(value) : value
  }
  return out
}

/** The client went away before its whole response was written. */
export function clientGone(res: ApiResponse): boolean {
  return res.destroyed && !res.writableFinished
}

/** The relay failed; `sent`: part of the answer had reached the client (an SSE stream was cut). */
export class RelayError extends Error {
  override name = 'RelayError'
  readonly sent: boolean
  readonly error: GateError
  constructor(error: GateError, sent: boolean) {
    super(error.message, { cause: error })
    this.error = error
    this.sent = sent
  }
}

export interface RelayOptions {
  /** Gate's own headers (request ID, serving node, CORS): over the upstream's. */
  headers: Record<string, string>
  /** Who answered, for messages. */
  label: string
  /** Called for every chunk that arrives: the upstream is making progress. */
  progress: () => void
  /** Aborts the relay: the client went away or the upstream timed out. */
  signal: AbortSignal
}

/**
 * Writes `answer` to `res`. Resolves once the whole answer reached the client (a stream whose
 * `[DONE]` went through counts as whole even if the client then leaves); else throws a RelayError.
 * A stream cut short ends with an SSE error event and no `[DONE]`.
 */
export async function relay(
  answer: UpstreamAnswer,
  res: ApiResponse,
  options: RelayOptions,
): Promise<Relayed> {
  const headers = { ...endToEndHeaders(answer.headers), ...options.headers }
  const type = headers['content-type']
  const stream = typeof type === 'string' && type.startsWith('text/event-stream')
  /** The last chunks: enough to find the final usage event. */
  const tail: Buffer[] = []
  let complete = false
  try {
    if (stream) {
      res.writeHead(answer.status, headers)
      for await (const chunk of answer.body) {
        options.signal.throwIfAborted()
        options.progress()
        const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
        if (tail.length === 2) tail.shift()
        tail.push(bytes)
        if (bytes.includes(DONE)) complete = true
        if (!res.write(bytes)) await drainedOrClosed(res)
      }
      res.end()
    } else {
      let size = 0
      for await (const chunk of answer.body) {
        options.signal.throwIfAborted()
        options.progress()
        size += chunk.byteLength
        if (size > MAX_RESPONSE_BYTES)
          throw new UpstreamError(`${options.label} sent a response over ${MAX_RESPONSE_BYTES} bytes`)
        tail.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
      }
      const body = Buffer.concat(tail)
      headers['content-length'] = String(body.length)
      res.writeHead(answer.status, headers).end(body)
    }
    return { status: answer.status, stream, usage: findUsage(Buffer.concat(tail)) ?? null }
  } catch (err) {
    if (complete) return { status: answer.status, stream, usage: findUsage(Buffer.concat(tail)) ?? null }
    const error = upstreamFailure(options.label, err, options.signal)
    if (stream && !clientGone(res)) res.end(`data: ${openAiErrorBody(error)}\n\n`)
    throw new RelayError(error, stream)
  }
}

/**
 * What went wrong with an upstream (`label`), as the client is told: the abort's reason when
 * `signal` was aborted with a GateError (a timeout), else a 502 that names the cause.
 */
export function upstreamFailure(label: string, err: unknown, signal: AbortSignal): GateError {
  const reason: unknown = signal.aborted ? signal.reason : err
  if (reason instanceof GateError) return reason
  return new UpstreamError(`${label} failed: ${describeError(reason)}`, { cause: reason })
}

/** Resolves when the response can take more, or has closed. */
function drainedOrClosed(res: ApiResponse): Promise<void> {
  if (res.destroyed) return Promise.resolve()
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.once('drain', done)
    res.once('close', done)
  })
}
