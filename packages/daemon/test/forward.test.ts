import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, request as httpRequest, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { PassThrough } from 'node:stream'
import { describe, it } from 'node:test'
import { TimeoutError, UpstreamError } from '@gate/core'
import type { PeerResponse, RequestHead } from '@gate/p2p'
import {
  type ForwardRequest,
  forwardToPeer,
  type PeerExchange,
  type PeerForwardResult,
} from '../src/api/forward.ts'
import { waitFor } from './utils/wait.ts'

const CHUNK = Buffer.alloc(64 * 1024, 'x')

/** A peer that answers through `answer`, which gets the signal the request was sent with. */
function fakePeer(answer: (signal: AbortSignal) => Promise<PeerResponse>) {
  const signals: AbortSignal[] = []
  const mesh: PeerExchange = {
    trusts: () => true,
    exchange: (_nodeId: string, _head: RequestHead, _body: Uint8Array, signal: AbortSignal) => {
      signals.push(signal)
      return answer(signal)
    },
    candidates: () => [],
    models: () => new Map(),
    reserve: () => () => {},
  }
  return { mesh, signals }
}

/** Settles when `signal` aborts, with its reason: a peer that never sends what comes next. */
function stalled(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)))
}

/** A local HTTP server whose every request is forwarded to `mesh`; `results` gets each outcome. */
async function startForwarder(mesh: PeerExchange, options: { isLast?: boolean; timeoutMs?: number } = {}) {
  const results: Array<Promise<PeerForwardResult>> = []
  const server = createServer((_req, res: ServerResponse) => {
    const request: ForwardRequest = {
      res,
      responseHeaders: {},
      path: '/chat/completions',
      headers: {},
      body: Buffer.from('{}'),
      timeoutMs: options.timeoutMs ?? 10_000,
    }
    // As the API does: a client that goes away cancels the exchange.
    res.once('close', () => {
      if (!res.writableFinished) request.cancel?.()
    })
    const result = forwardToPeer(mesh, 'peer', request, options.isLast ?? true)
    results.push(result)
    // As the API does: an error before anything was sent is answered with its status.
    void result.then((r) => {
      if (!r.ok && !r.sent && !res.destroyed) res.writeHead(r.error instanceof TimeoutError ? 504 : 502).end()
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    port,
    results,
    [Symbol.asyncDispose]: async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

function post(port: number) {
  return httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/v1/chat/completions' }).end('{}')
}

describe('forwardToPeer', () => {
  it('sends nothing to the peer when the client has already gone', async () => {
    const { mesh, signals } = fakePeer(() => Promise.reject(new Error('the peer was asked')))
    const res = new PassThrough() as unknown as ServerResponse
    res.destroy()
    const result = await forwardToPeer(mesh, 'peer', {
      res,
      responseHeaders: {},
      path: '/chat/completions',
      headers: {},
      body: Buffer.from('{}'),
      timeoutMs: 10_000,
    })
    assert.equal(signals.length, 0, 'no exchange with the peer was started')
    assert.ok(!result.ok && !result.sent)
    assert.match(result.error.message, /client closed the request/)
  })

  it('cancels the request at a peer that answered 5xx before failing over', async () => {
    const { mesh, signals } = fakePeer(async (signal) => ({
      head: { status: 503, headers: {} },
      body: (async function* () {
        yield await stalled(signal)
      })(),
    }))
    await using forwarder = await startForwarder(mesh, { isLast: false })
    post(forwarder.port).on('error', () => {})
    await waitFor(() => forwarder.results.length === 1)
    const result = await forwarder.results[0]
    assert.ok(!result?.ok && result?.error instanceof UpstreamError && !result.sent)
    assert.equal(signals[0]?.aborted, true, 'the stream to the failed peer is reset')
  })

  it('gives up on a peer that sends no head, or stalls mid-body, within the request timeout', async () => {
    for (const stallAt of ['head', 'body'] as const) {
      const { mesh } = fakePeer(async (signal) => {
        if (stallAt === 'head') return stalled(signal)
        return {
          head: { status: 200, headers: { 'content-type': 'text/event-stream' } },
          body: (async function* () {
            yield Buffer.from('data: {}\n\n')
            yield await stalled(signal)
          })(),
        }
      })
      await using forwarder = await startForwarder(mesh, { timeoutMs: 300 })
      const client = post(forwarder.port)
      const [response] = (await once(client, 'response')) as [import('node:http').IncomingMessage]
      let text = ''
      for await (const chunk of response) text += chunk
      const result = await forwarder.results[0]
      assert.ok(!result?.ok && result?.error instanceof TimeoutError, stallAt)
      if (stallAt === 'head') assert.equal(response.statusCode, 504)
      else assert.match(text, /^data: \{\}\n\ndata: \{"error":.*did not answer in time/s)
    }
  })

  it('settles when a slow client goes away while a streamed answer waits for it to drain', async () => {
    const { mesh, signals } = fakePeer(async (signal) => ({
      head: { status: 200, headers: { 'content-type': 'text/event-stream' } },
      body: (async function* () {
        // Chunks already received come out even after an abort, as FrameStream hands them out.
        for (let i = 0; i < 64; i++) yield CHUNK
        yield await stalled(signal)
      })(),
    }))
    await using forwarder = await startForwarder(mesh)
    const client = post(forwarder.port)
    const [response] = (await once(client, 'response')) as [import('node:http').IncomingMessage]
    response.pause()
    await new Promise((resolve) => setTimeout(resolve, 200)) // the server's socket backs up
    client.destroy()
    const result = await Promise.race([
      forwarder.results[0],
      new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 5000).unref()),
    ])
    assert.notEqual(result, 'hung', 'forwardToPeer settled')
    assert.ok(result !== 'hung' && !result?.ok && result?.sent)
    assert.equal(signals[0]?.aborted, true)
  })
})
