import type { IncomingHttpHeaders } from 'node:http'
import { GateError, TimeoutError, UpstreamError } from '@gate/core'
import type { PeerResponse, RequestHead } from '@gate/p2p'
import type { Dispatcher } from 'undici'
import { MAX_RESPONSE_BYTES } from '../constants.ts'
import { describeError, type Provider } from '../providers/provider.ts'
import { openAiErrorBody } from './errors.ts'
import type { ApiResponse } from './peer-call.ts'
import { findUsage, type Usage } from './usage.ts'

/** What one forwarded request needs: the client's response, the body bytes, where to send them. */
export interface ForwardRequest {
  res: ApiResponse
  /**
   * Gate's own response headers (request ID, node, CORS), written with the upstream's: over an
   * engine's (OpenAI's API sends an `x-request-id` of its own), under a peer's (its `x-gate-node`
   * names who served the request; its request ID is this one, passed on).
   */
  responseHeaders: Record<string, string>
  /** Path below the provider's `/v1`, e.g. `/chat/completions`. */
  path: string
  headers: Record<string, string | string[]>
  body: Buffer
  timeoutMs: number
  /**
   * Set by `forward` and `forwardToPeer` while the upstream exchange runs. The owner of `res` calls
   * it when the client goes away before its response is finished, which aborts the exchange (the
   * engine or the peer sees the abort). One listener per request, the owner's, instead of one per
   * attempt: adding and removing listeners on the response showed in every request's cost.
   */
  cancel?: (() => void) | undefined
}

/** The client went away before its whole response was written. */
export function clientGone(res: ApiResponse): boolean {
  return res.destroyed && !res.writableFinished
}

export type ForwardResult =
  | { ok: true; provider: Provider; status: number; stream: boolean; usage: Usage | null }
  | { ok: false; provider: Provider | null; error: Error; sent: boolean }

const DONE = 'data: [DONE]'

/** Response headers that describe one hop, not the message. */
const HOP_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'date'])

/** A response's headers without the hop-by-hop ones. */
export function endToEndHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const key in headers) {
    const value = headers[key]
    if (value !== undefined && !HOP_HEADERS.has(key)) out[key] = value
  }
  return out
}

/**
 * Sends the request to each candidate in turn until one answers, failing over only while no
 * byte has reached the client; `done` gets the outcome. SSE responses are piped chunk by chunk
 * with backpressure (the upstream is paused while the client's socket is full); other responses
 * are held until complete so an engine dying mid-body becomes a clean 502 instead of a truncated
 * 200. `more`: there are other candidates after these (peers), so the last one's 5xx is a
 * failure, not the answer. Callbacks, not promises: this is every local request's path, and each
 * promise and await showed in its cost.
 */
export function forward(
  request: ForwardRequest,
  candidates: Provider[],
  more: boolean,
  done: (result: ForwardResult) => void,
): void {
  let last: ForwardResult | undefined
  const next = (from: number): void => {
    for (let i = from; i < candidates.length; i++) {
      const provider = candidates[i] as Provider
      if (!provider.breaker.tryAcquire()) continue
      const isLast = !more && i === candidates.length - 1
      attempt(request, provider, isLast, (result) => {
        if (result.ok && result.status < 500) provider.breaker.success()
        else if (clientGone(request.res)) provider.breaker.release()
        else provider.breaker.failure()
        if (result.ok || result.sent || clientGone(request.res)) return done(result)
        last = result
        next(i + 1)
      })
      return
    }
    // Every candidate failed, or its breaker refused (another request took the half-open probe).
    done(last ?? { ok: false, provider: null, error: new UpstreamError('no provider answered'), sent: false })
  }
  next(0)
}

function attempt(
  request: ForwardRequest,
  provider: Provider,
  isLast: boolean,
  done: (result: ForwardResult) => void,
): void {
  provider.dispatch(
    {
      path: provider.basePath + request.path,
      method: 'POST',
      headers: provider.authorized(request.headers),
      body: request.body,
      headersTimeout: request.timeoutMs,
      bodyTimeout: request.timeoutMs,
    },
    new UpstreamHandler(request, provider, isLast, done),
  )
}

class UpstreamHandler implements Dispatcher.DispatchHandler {
  readonly #request: ForwardRequest
  readonly #provider: Provider
  readonly #isLast: boolean
  readonly #done: (result: ForwardResult) => void
  #status = 0
  #headers: Record<string, string | string[]> = {}
  #stream = false
  #sent = false
  #chunks: Buffer[] = []
  #size = 0
  #controller: Dispatcher.DispatchController | undefined
  /** The stream's `[DONE]` went through: a client closing now has had everything. */
  #complete = false
  /**
   * `done` has been called. undici answers a throw from `onResponseEnd` with `onResponseError`:
   * that must not report a second outcome (and fail over after an answer went out).
   */
  #finished = false

  constructor(
    request: ForwardRequest,
    provider: Provider,
    isLast: boolean,
    done: (result: ForwardResult) => void,
  ) {
    this.#request = request
    this.#provider = provider
    this.#isLast = isLast
    this.#done = done
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    if (clientGone(this.#request.res)) {
      controller.abort(new Error('client closed the request'))
      return
    }
    this.#controller = controller
    this.#request.cancel = this.#cancel
  }

  /**
   * A field, made once per handler. A closure made in `onRequestStart` around its `controller`
   * measured as keeping each request's objects alive through young-generation collections
   * (about 5 KB per request moved to the old generation under load); this one does not.
   */
  readonly #cancel = (): void => {
    this.#controller?.abort(new Error('client closed the request'))
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    if (statusCode >= 500 && !this.#isLast) {
      controller.abort(new UpstreamError(`${this.#provider.name} answered ${statusCode}`))
      return
    }
    this.#status = statusCode
    this.#headers = Object.assign(endToEndHeaders(headers), this.#request.responseHeaders)
    const type = headers['content-type']
    this.#stream = typeof type === 'string' && type.startsWith('text/event-stream')
    if (this.#stream) {
      this.#request.res.writeHead(statusCode, this.#headers)
      this.#sent = true
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#stream) {
      this.#keepTail(chunk)
      if (chunk.includes(DONE)) this.#complete = true
      const { res } = this.#request
      if (!res.write(chunk)) {
        controller.pause()
        res.once('drain', () => controller.resume())
      }
      return
    }
    this.#chunks.push(chunk)
    this.#size += chunk.length
    if (this.#size > MAX_RESPONSE_BYTES) {
      controller.abort(
        new UpstreamError(`${this.#provider.name} sent a response over ${MAX_RESPONSE_BYTES} bytes`),
      )
    }
  }

  /** Streams keep only their last two chunks: enough to find the final usage event. */
  #keepTail(chunk: Buffer): void {
    if (this.#chunks.length === 2) this.#chunks.shift()
    this.#chunks.push(chunk)
  }

  onResponseEnd(): void {
    this.#cleanup()
    const { res } = this.#request
    const body = this.#body()
    if (this.#stream) res.end()
    else {
      this.#headers['content-length'] = String(body.length)
      res.writeHead(this.#status, this.#headers).end(body)
    }
    this.#succeed(body)
  }

  #body(): Buffer {
    return this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks)
  }

  #succeed(body: Buffer): void {
    const usage = findUsage(body) ?? null
    this.#finish({ ok: true, provider: this.#provider, status: this.#status, stream: this.#stream, usage })
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.#cleanup()
    if (this.#complete) {
      this.#succeed(this.#body())
      return
    }
    const error = toUpstreamError(this.#provider, err)
    if (this.#sent && !clientGone(this.#request.res)) {
      // Mid-stream failure: end the SSE stream with an error event and no [DONE].
      this.#request.res.end(`data: ${openAiErrorBody(error)}\n\n`)
    }
    this.#finish({ ok: false, provider: this.#provider, error, sent: this.#sent })
  }

  #finish(result: ForwardResult): void {
    if (this.#finished) return
    this.#finished = true
    this.#done(result)
  }

  #cleanup(): void {
    this.#request.cancel = undefined
  }
}

function toUpstreamError(provider: Provider, err: Error): UpstreamError | TimeoutError {
  if (err instanceof UpstreamError) return err
  const code = (err as { code?: string }).code
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new TimeoutError(`${provider.name} did not answer in time`, { cause: err })
  }
  return new UpstreamError(`${provider.name} failed: ${describeError(err)}`, { cause: err })
}

/** What the API needs of the mesh: sending to peers, and which peers serve what. */
export interface PeerExchange {
  /** Whether `nodeId` is a trusted peer, the only kind `exchange` may be given. */
  trusts(nodeId: string): boolean
  exchange(nodeId: string, head: RequestHead, body: Uint8Array, signal: AbortSignal): Promise<PeerResponse>
  /** Trusted peers to try for `model`, best first. */
  candidates(model: string): string[]
  /** Models of connected trusted peers and the nodes that serve each. */
  models(): Map<string, string[]>
  /** Counts a request in flight to a peer until the returned callback reports its outcome. */
  reserve(nodeId: string): (ok: boolean) => void
}

export type PeerForwardResult = { ok: true; usage: Usage | null } | { ok: false; error: Error; sent: boolean }

/**
 * Sends the request to a peer and relays its answer: SSE chunk by chunk with backpressure (a
 * peer dying mid-stream ends the stream with an error event and no `[DONE]`), anything else
 * held until complete so a peer dying mid-body becomes a clean 502. A client that goes away
 * resets the stream, which cancels the request at the peer.
 */
export async function forwardToPeer(
  mesh: PeerExchange,
  nodeId: string,
  request: ForwardRequest,
  isLast = true,
): Promise<PeerForwardResult> {
  const { res } = request
  const gone = new AbortController()
  request.cancel = () => gone.abort(new Error('client closed the request'))
  // The client may have gone while the request waited (for its body, or the first health checks).
  if (clientGone(res)) request.cancel()
  // Like an engine's head and body timeouts: the wait for the head, then each wait between chunks.
  const timer = setTimeout(
    () => gone.abort(new TimeoutError(`node ${nodeId} did not answer in time`)),
    request.timeoutMs,
  )
  let sent = false
  /** `[DONE]` went through: a client closing now has had everything. */
  let complete = false
  const tail: Buffer[] = []
  const usage = () => findUsage(Buffer.concat(tail)) ?? null
  try {
    gone.signal.throwIfAborted()
    const head = { method: 'POST', path: `/v1${request.path}`, headers: request.headers }
    const answer = await mesh.exchange(nodeId, head, request.body, gone.signal)
    timer.refresh()
    if (answer.head.status >= 500 && !isLast) {
      // Nothing sent yet and another peer to try: fail over. The abort resets the stream, which
      // cancels the request at the peer (a body never read cannot be left to do it).
      const error = new UpstreamError(`node ${nodeId} answered ${answer.head.status}`)
      gone.abort(error)
      throw error
    }
    const headers = { ...request.responseHeaders, ...answer.head.headers }
    const type = headers['content-type']
    if (typeof type === 'string' && type.startsWith('text/event-stream')) {
      res.writeHead(answer.head.status, headers)
      sent = true
      for await (const chunk of answer.body) {
        // Chunks already received still come after an abort: stop at once instead.
        gone.signal.throwIfAborted()
        timer.refresh()
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
        timer.refresh()
        size += chunk.length
        if (size > MAX_RESPONSE_BYTES) {
          throw new UpstreamError(`node ${nodeId} sent a response over ${MAX_RESPONSE_BYTES} bytes`)
        }
        tail.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
      }
      const body = Buffer.concat(tail)
      headers['content-length'] = String(body.length)
      res.writeHead(answer.head.status, headers).end(body)
    }
    return { ok: true, usage: usage() }
  } catch (err) {
    if (complete) return { ok: true, usage: usage() }
    const reason: unknown = gone.signal.aborted ? gone.signal.reason : err
    const error =
      reason instanceof GateError
        ? reason
        : new UpstreamError(`node ${nodeId} failed: ${describeError(err)}`, { cause: err })
    if (sent && !clientGone(res)) res.end(`data: ${openAiErrorBody(error)}\n\n`)
    return { ok: false, error, sent }
  } finally {
    clearTimeout(timer)
    request.cancel = undefined
  }
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
