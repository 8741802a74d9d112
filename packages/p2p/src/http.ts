import type { Connection, Stream, StreamHandler } from '@libp2p/interface'
import { MAX_STREAMS_PER_CONNECTION, REFUSED_REQUEST_BYTES, REQUEST_READ_TIMEOUT_MS } from './constants.ts'
import { deadline, type Frame, FrameStream, ProtocolError } from './frames.ts'

/** One HTTP exchange per stream: request head, body, end; response head, body, end. */
export const HTTP_PROTOCOL = '/gate/http/1.0.0'

export type HeaderMap = Record<string, string | string[]>

export interface RequestHead {
  method: string
  /** Path and query, e.g. `/v1/chat/completions`. */
  path: string
  headers: HeaderMap
}

export interface ResponseHead {
  status: number
  headers: HeaderMap
}

/** The answer to an exchange: its head, and its body as it arrives. */
export interface PeerResponse {
  head: ResponseHead
  /**
   * Data frames as they arrive. Throws PeerStreamError when the peer reports an error or the
   * stream breaks before the end; stopping early (break) resets the stream, which cancels the
   * request at the peer. A body never started cannot be stopped that way: abort the request's
   * signal instead.
   */
  body: AsyncGenerator<Uint8Array, void, undefined>
}

/** The exchange failed after it started: the peer sent an error frame or the stream broke. */
export class PeerStreamError extends Error {
  override name = 'PeerStreamError'
}

/**
 * Sends one request and waits for the response head: on a fresh `/gate/http` stream, or on a new
 * stream of a connection (`runOnLimitedConnection`: a relayed one too). Aborting `signal` resets
 * the stream at any point, which the peer sees as the client going away.
 */
export async function sendRequest(
  target: Stream | Connection,
  request: { head: RequestHead; body: Uint8Array },
  signal?: AbortSignal,
  options: { runOnLimitedConnection?: boolean } = {},
): Promise<PeerResponse> {
  const stream =
    'newStream' in target
      ? await target.newStream(HTTP_PROTOCOL, {
          maxOutboundStreams: MAX_STREAMS_PER_CONNECTION,
          ...options,
          ...(signal ? { signal } : {}),
        })
      : target
  const frames = new FrameStream(stream)
  const onAbort = () => stream.abort(signal?.reason ?? new Error('request aborted'))
  if (signal?.aborted) onAbort()
  signal?.addEventListener('abort', onAbort, { once: true })
  const done = () => signal?.removeEventListener('abort', onAbort)
  try {
    // The answer is read while the request is still being sent: a peer may answer early (a
    // refusal) and stop reading, and its answer counts, not the write it then cuts short.
    const writing = frames.writeAll(wholeMessage(request.head, request.body))
    writing.catch(() => {})
    const first = await frames.read(signal)
    if (first.type === 'error') throw new PeerStreamError(errorMessage(first))
    if (first.type !== 'head') throw new ProtocolError(`expected a response head, got a ${first.type} frame`)
    const head = parseResponseHead(first.value)
    return { head, body: readResponseBody(frames, signal, done) }
  } catch (err) {
    done()
    fail(stream, err)
    throw asPeerError(err)
  }
}

async function* readResponseBody(
  frames: FrameStream,
  signal: AbortSignal | undefined,
  done: () => void,
): AsyncGenerator<Uint8Array, void, undefined> {
  let finished = false
  try {
    for (;;) {
      const frame = await frames.read(signal)
      if (frame.type === 'data') yield frame.bytes
      else if (frame.type === 'end') break
      else if (frame.type === 'error') throw new PeerStreamError(errorMessage(frame))
      else throw new ProtocolError('unexpected head frame in a response body')
    }
    finished = true
    // Not awaited: the exchange is complete, the caller need not wait for the FIN to go out.
    void frames.stream.close().catch(() => {})
  } catch (err) {
    throw asPeerError(err)
  } finally {
    done()
    // Broken, or the consumer stopped early: reset so the peer stops work for us.
    if (!finished) fail(frames.stream, new Error('response not read to the end'))
  }
}

/** What a `/gate/http` handler gets: the request, who sent it, and a signal for its going away. */
export interface IncomingRequest {
  head: RequestHead
  body: Uint8Array
  connection: Connection
  /** Aborts when the requester resets the stream or goes away before the response is done. */
  signal: AbortSignal
}

/** Writes the response of one exchange; every call waits while the stream is full. */
export interface ResponseWriter {
  head(head: ResponseHead): Promise<void>
  data(bytes: Uint8Array): Promise<void>
  end(): Promise<void>
  /** Head, whole body and end in one write: the cheapest answer when the body is complete. */
  whole(head: ResponseHead, body: Uint8Array): Promise<void>
  /** Ends the exchange with an error (before or after the head). */
  error(message: string): Promise<void>
}

export interface HttpServerOptions {
  /**
   * Largest request body taken; a larger one resets the stream, or, with `tooLarge`, is read to
   * its end, dropped, and answered. Read for each stream.
   */
  maxBodyBytes: number
  /** The answer to a request whose body is over `limit` bytes. */
  tooLarge?: (limit: number) => { head: ResponseHead; body: Uint8Array }
  /** How long the whole request may take to arrive. @default REQUEST_READ_TIMEOUT_MS */
  requestTimeoutMs?: number
  /** Told about streams reset for breaking the protocol. */
  onProtocolError?: (err: Error, connection: Connection) => void
  /**
   * An answer for a requester refused outright (an untrusted peer): sent as soon as the stream
   * opens, before anything of the request is held; what follows is read and dropped.
   */
  refuse?: (connection: Connection) => { head: ResponseHead; body: Uint8Array } | undefined
}

/** A `/gate/http` stream handler that reads each request whole and hands it to `serve`. */
export function httpStreamHandler(
  serve: (request: IncomingRequest, response: ResponseWriter) => Promise<void>,
  options: HttpServerOptions,
): StreamHandler {
  return async (stream, connection) => {
    const frames = new FrameStream(stream)
    const gone = new AbortController()
    let request: { head: RequestHead; body: Uint8Array }
    const readTimeoutMs = options.requestTimeoutMs ?? REQUEST_READ_TIMEOUT_MS
    const late = deadline(
      readTimeoutMs,
      () => new ProtocolError(`the request did not arrive within ${readTimeoutMs} ms`),
    )
    try {
      const refusal = options.refuse?.(connection)
      if (refusal) {
        // Answered before anything of the request is held; what it sends meanwhile is read and
        // dropped, up to REFUSED_REQUEST_BYTES (then the stream is reset), so that it reads the answer.
        await frames.writeAll(wholeMessage(refusal.head, refusal.body))
        await readHead(frames, late.signal)
        await readRequestBody(frames, REFUSED_REQUEST_BYTES, late.signal, { keep: false, drain: false })
        await stream.close().catch(() => {})
        return
      }
      const head = await readHead(frames, late.signal)
      const limit = options.maxBodyBytes
      const drain = options.tooLarge !== undefined
      const body = await readRequestBody(frames, limit, late.signal, { keep: true, drain })
      if (body === null) {
        // Read to its end (only with `tooLarge`) and answered.
        const answer = options.tooLarge?.(limit)
        if (answer) await frames.writeAll(wholeMessage(answer.head, answer.body))
        await stream.close().catch(() => {})
        return
      }
      request = { head, body }
    } catch (err) {
      options.onProtocolError?.(err as Error, connection)
      fail(stream, err)
      return
    } finally {
      late.clear()
    }
    let responded = false
    // The requester keeps its side open until the response ends: anything else that arrives
    // (end of stream, reset, a stray frame) means it went away.
    void frames.next().then(
      (frame) => {
        if (responded) return
        if (frame === null) gone.abort(new Error('the requester closed the stream'))
        else fail(stream, new ProtocolError('frame after the request end'))
      },
      (err: unknown) => {
        if (!responded) gone.abort(err)
      },
    )
    stream.addEventListener('close', () => {
      if (!responded) gone.abort(new Error('stream closed'))
    })
    const response: ResponseWriter = {
      head: (head) => frames.write({ type: 'head', value: { ...head } }),
      data: (bytes) => frames.write({ type: 'data', bytes }),
      end: async () => {
        responded = true
        await frames.write({ type: 'end' })
        await stream.close().catch(() => {})
      },
      whole: async (head, body) => {
        responded = true
        await frames.writeAll(wholeMessage(head, body))
        await stream.close().catch(() => {})
      },
      error: async (message) => {
        responded = true
        await frames.write({ type: 'error', value: { message } })
        await stream.close().catch(() => {})
      },
    }
    try {
      await serve({ ...request, connection, signal: gone.signal }, response)
    } catch (err) {
      fail(stream, err)
    }
  }
}

/** A whole request or response as frames (head, body, end), for one write. */
function wholeMessage(head: RequestHead | ResponseHead, body: Uint8Array): Frame[] {
  return [{ type: 'head', value: { ...head } }, { type: 'data', bytes: body }, { type: 'end' }]
}

async function readHead(frames: FrameStream, signal: AbortSignal): Promise<RequestHead> {
  const first = await frames.read(signal)
  if (first.type !== 'head') throw new ProtocolError(`expected a request head, got a ${first.type} frame`)
  return parseRequestHead(first.value)
}

/**
 * The request body up to its end frame; `keep: false` reads it all but keeps none of it. Over
 * `maxBodyBytes` it is a protocol error, or with `drain`, null once the rest is read and dropped.
 */
async function readRequestBody(
  frames: FrameStream,
  maxBodyBytes: number,
  signal: AbortSignal,
  { keep, drain }: { keep: boolean; drain: boolean },
): Promise<Uint8Array | null> {
  const parts: Uint8Array[] = []
  let size = 0
  for (;;) {
    const frame: Frame = await frames.read(signal)
    if (frame.type === 'end') break
    if (frame.type !== 'data') throw new ProtocolError(`unexpected ${frame.type} frame in a request body`)
    size += frame.bytes.length
    if (size > maxBodyBytes && !drain) throw new ProtocolError(`request body over ${maxBodyBytes} bytes`)
    if (keep && size <= maxBodyBytes) parts.push(frame.bytes)
  }
  if (size > maxBodyBytes) return null
  return parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts)
}

function parseRequestHead(value: Record<string, unknown>): RequestHead {
  const { method, path, headers } = value
  if (
    typeof method !== 'string' ||
    typeof path !== 'string' ||
    !path.startsWith('/') ||
    !isHeaders(headers)
  ) {
    throw new ProtocolError('request head needs method, path and headers')
  }
  return { method, path, headers }
}

function parseResponseHead(value: Record<string, unknown>): ResponseHead {
  const { status, headers } = value
  if (
    typeof status !== 'number' ||
    !Number.isInteger(status) ||
    status < 100 ||
    status > 599 ||
    !isHeaders(headers)
  ) {
    throw new ProtocolError('response head needs status and headers')
  }
  return { status, headers }
}

function isHeaders(value: unknown): value is HeaderMap {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  return Object.values(value).every(
    (v) => typeof v === 'string' || (Array.isArray(v) && v.every((item) => typeof item === 'string')),
  )
}

function errorMessage(frame: { value: Record<string, unknown> }): string {
  return typeof frame.value.message === 'string' ? frame.value.message : 'the peer failed the request'
}

function asPeerError(err: unknown): unknown {
  if (err instanceof ProtocolError) return new PeerStreamError(err.message, { cause: err })
  return err
}

/** Resets a stream that is still open. */
function fail(stream: Stream, err: unknown): void {
  if (stream.status === 'open' || stream.status === 'closing') {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
  }
}
