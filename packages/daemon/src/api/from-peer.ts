/**
 * A trusted peer's `/gate/http` request at the pipeline's front door: its request and response,
 * carried in frames, as the ApiRequest and ApiResponse the pipeline reads and writes. The pipeline
 * answers a peer in-process, exactly as it answers a local client, with no second HTTP hop.
 */
import { EventEmitter } from 'node:events'
import type { IncomingHttpHeaders } from 'node:http'
import type { IncomingRequest, ResponseHead, ResponseWriter } from '@gate/p2p'
import { endToEndHeaders } from './respond.ts'
import type { ApiRequest, ApiResponse, FrontDoor, HeaderMap } from './types.ts'

/**
 * Runs a peer's request (`node`: who sent it) through the pipeline. Resolves once it is answered;
 * rejects when the answer was abandoned (the requester went away, or the stream broke).
 */
export async function servePeer(
  door: FrontDoor,
  request: IncomingRequest,
  writer: ResponseWriter,
  node: string,
): Promise<void> {
  const res = new PeerResponse(writer, request.signal)
  await door.handle(peerRequest(request), res, { kind: 'peer', node })
  await res.done
}

/** A peer's request, its body already read whole by `/gate/http`. */
function peerRequest(request: IncomingRequest): ApiRequest {
  const headers: IncomingHttpHeaders = {}
  for (const [key, value] of Object.entries(request.head.headers)) headers[key.toLowerCase()] = value
  return { headers, method: request.head.method, url: request.head.path, body: request.body }
}

/** Bytes queued on the stream past which `write` asks the caller to wait for `drain`. */
const HIGH_WATER_BYTES = 64 * 1024

/**
 * The response to a peer's request, written as `/gate/http` frames. A complete response (head then
 * `end(body)`) goes in one write. `close` comes once: when the response is sent, or when the
 * requester goes away (`destroyed`, and the pipeline cancels its upstream).
 */
export class PeerResponse extends EventEmitter implements ApiResponse {
  statusCode = 200
  headersSent = false
  destroyed = false
  writableFinished = false
  /** Settles when the response is sent (resolves) or abandoned (rejects). */
  readonly done: Promise<void>
  readonly #writer: ResponseWriter
  readonly #headers: HeaderMap = {}
  /** Written by writeHead, sent with the first data or the end. */
  #head: ResponseHead | undefined
  #headSent = false
  #queue: Promise<void> = Promise.resolve()
  #queued = 0
  #ended = false
  #settle!: (err?: Error) => void

  constructor(writer: ResponseWriter, signal: AbortSignal) {
    super()
    this.#writer = writer
    this.done = new Promise<void>((resolve, reject) => {
      this.#settle = (err) => (err ? reject(err) : resolve())
    })
    // Abandoning is the caller's to handle; nobody need wait on `done` for it not to be unhandled.
    this.done.catch(() => {})
    if (signal.aborted) this.destroy()
    else signal.addEventListener('abort', () => this.destroy(), { once: true })
  }

  setHeader(name: string, value: string | number): this {
    this.#headers[name.toLowerCase()] = String(value)
    return this
  }

  writeHead(status: number, headers: Record<string, string | string[] | number> = {}): this {
    for (const [name, value] of Object.entries(headers))
      this.#headers[name.toLowerCase()] = Array.isArray(value) ? value : String(value)
    this.statusCode = status
    this.headersSent = true
    this.#head = { status, headers: endToEndHeaders(this.#headers) }
    return this
  }

  write(chunk: Uint8Array): boolean {
    if (this.destroyed || this.#ended) return false
    const head = this.#takeHead()
    this.#queued += chunk.length
    this.#enqueue(async () => {
      if (head) await this.#writer.head(head)
      await this.#writer.data(chunk)
      const before = this.#queued
      this.#queued -= chunk.length
      if (before >= HIGH_WATER_BYTES && this.#queued < HIGH_WATER_BYTES) this.emit('drain')
    })
    return this.#queued < HIGH_WATER_BYTES
  }

  end(chunk?: Uint8Array | string): this {
    if (this.destroyed || this.#ended) return this
    this.#ended = true
    const body = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    const head = this.#takeHead()
    this.#enqueue(async () => {
      if (head) await this.#writer.whole(head, body ?? new Uint8Array())
      else {
        if (body && body.length > 0) await this.#writer.data(body)
        await this.#writer.end()
      }
      this.writableFinished = true
      this.#close()
    })
    return this
  }

  destroy(): this {
    if (this.destroyed || this.writableFinished) return this
    this.destroyed = true
    this.#close(new Error('the response was abandoned'))
    return this
  }

  /** The head to send now if it has not gone yet (the status and headers set so far if none was written). */
  #takeHead(): ResponseHead | undefined {
    if (this.#headSent) return undefined
    this.#headSent = true
    this.headersSent = true
    return this.#head ?? { status: this.statusCode, headers: endToEndHeaders(this.#headers) }
  }

  #enqueue(step: () => Promise<void>): void {
    this.#queue = this.#queue.then(async () => {
      if (this.destroyed) return
      try {
        await step()
      } catch {
        this.destroy()
      }
    })
  }

  #close(err?: Error): void {
    this.#settle(err)
    this.emit('close')
  }
}
