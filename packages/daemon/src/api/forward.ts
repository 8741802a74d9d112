import type { IncomingHttpHeaders, ServerResponse } from 'node:http'
import { TimeoutError, UpstreamError } from '@gate/core'
import type { Dispatcher } from 'undici'
import { MAX_RESPONSE_BYTES, USAGE_TAIL_BYTES } from '../constants.ts'
import { describeError, type Provider } from '../providers/provider.ts'
import { openAiErrorBody } from './errors.ts'
import { findUsage, type Usage } from './usage.ts'

/** What one forwarded request needs: the client's response, the body bytes, where to send them. */
export interface ForwardRequest {
  res: ServerResponse
  /** Path below the provider's `/v1`, e.g. `/chat/completions`. */
  path: string
  headers: Record<string, string | string[]>
  body: Buffer
  timeoutMs: number
}

/** The client went away before its whole response was written. */
export function clientGone(res: ServerResponse): boolean {
  return res.destroyed && !res.writableFinished
}

export type ForwardResult =
  | { ok: true; provider: Provider; status: number; stream: boolean; usage: Usage | null }
  | { ok: false; provider: Provider | null; error: Error; sent: boolean }

const DONE = 'data: [DONE]'

/** Response headers that describe one hop, not the message. */
const HOP_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'date'])

function responseHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const key in headers) {
    const value = headers[key]
    if (value !== undefined && !HOP_HEADERS.has(key)) out[key] = value
  }
  return out
}

/**
 * Sends the request to each candidate in turn until one answers, failing over only while no
 * byte has reached the client. SSE responses are piped chunk by chunk with backpressure (the
 * upstream is paused while the client's socket is full); other responses are held until complete
 * so an engine dying mid-body becomes a clean 502 instead of a truncated 200.
 */
export async function forward(request: ForwardRequest, candidates: Provider[]): Promise<ForwardResult> {
  let last: ForwardResult | undefined
  for (let i = 0; i < candidates.length; i++) {
    const provider = candidates[i] as Provider
    if (!provider.breaker.tryAcquire()) continue
    const result = await attempt(request, provider, i === candidates.length - 1)
    if (result.ok && result.status < 500) provider.breaker.success()
    else if (clientGone(request.res)) provider.breaker.release()
    else provider.breaker.failure()
    if (result.ok || result.sent || clientGone(request.res)) return result
    last = result
  }
  // Every candidate's breaker refused (another request took the half-open probe).
  return last ?? { ok: false, provider: null, error: new UpstreamError('no provider answered'), sent: false }
}

function attempt(request: ForwardRequest, provider: Provider, isLast: boolean): Promise<ForwardResult> {
  return new Promise((resolve) => {
    const headers = { ...request.headers }
    provider.authorize(headers)
    provider.dispatch(
      {
        path: provider.basePath + request.path,
        method: 'POST',
        headers,
        body: request.body,
        headersTimeout: request.timeoutMs,
        bodyTimeout: request.timeoutMs,
      },
      new UpstreamHandler(request, provider, isLast, resolve),
    )
  })
}

class UpstreamHandler implements Dispatcher.DispatchHandler {
  readonly #request: ForwardRequest
  readonly #provider: Provider
  readonly #isLast: boolean
  readonly #resolve: (result: ForwardResult) => void
  #status = 0
  #headers: Record<string, string | string[]> = {}
  #stream = false
  #sent = false
  #chunks: Buffer[] = []
  #size = 0
  #onClose: (() => void) | undefined
  /** The stream's `[DONE]` went through: a client closing now has had everything. */
  #complete = false

  constructor(
    request: ForwardRequest,
    provider: Provider,
    isLast: boolean,
    resolve: (result: ForwardResult) => void,
  ) {
    this.#request = request
    this.#provider = provider
    this.#isLast = isLast
    this.#resolve = resolve
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    const { res } = this.#request
    if (clientGone(res)) {
      controller.abort(new Error('client closed the request'))
      return
    }
    // A client that goes away aborts the upstream request (the engine sees the abort).
    this.#onClose = () => {
      if (!res.writableFinished) controller.abort(new Error('client closed the request'))
    }
    res.once('close', this.#onClose)
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
    this.#headers = responseHeaders(headers)
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
    const usage = findUsage(body.subarray(-USAGE_TAIL_BYTES).toString()) ?? null
    this.#resolve({ ok: true, provider: this.#provider, status: this.#status, stream: this.#stream, usage })
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
    this.#resolve({ ok: false, provider: this.#provider, error, sent: this.#sent })
  }

  #cleanup(): void {
    if (this.#onClose) this.#request.res.off('close', this.#onClose)
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
