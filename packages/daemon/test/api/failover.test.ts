import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, it } from 'node:test'
import { ProviderConfigSchema, TimeoutError, UpstreamError } from '@gate/core'
import { type FailoverResult, failover } from '../../src/api/failover.ts'
import type { AttemptOutcome, HeaderMap, Upstream } from '../../src/api/types.ts'
import { engineUpstream } from '../../src/api/upstream/engine.ts'
import { type PeerExchange, peerUpstream } from '../../src/api/upstream/peer.ts'
import { Provider } from '../../src/providers/provider.ts'
import { startFakeEngine } from '../utils/fake-engine.ts'
import { waitFor } from '../utils/wait.ts'

const SELF = 'a'.repeat(52)
const PEER = 'b'.repeat(52)
const CHUNK = Buffer.alloc(64 * 1024, 'x')
const CHAT = JSON.stringify({ model: 'llama3.2:1b', messages: [{ role: 'user', content: 'hi' }] })

type PeerAnswer = Awaited<ReturnType<PeerExchange['exchange']>>

/** A peer that answers through `answer`, which gets the signal the request was sent with. */
function fakePeer(answer: (signal: AbortSignal) => Promise<PeerAnswer>) {
  const signals: AbortSignal[] = []
  const outcomes: AttemptOutcome[] = []
  const upstream = (routed = true) =>
    peerUpstream(
      {
        mesh: {
          exchange: (_node, _head, _body, signal) => {
            signals.push(signal)
            return answer(signal)
          },
        },
        peers: { reserve: () => (outcome) => void outcomes.push(outcome) },
      },
      PEER,
      routed,
    )
  return { upstream, signals, outcomes }
}

/** Settles when `signal` aborts, with its reason: a peer that never sends what comes next. */
function stalled(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)))
}

function sse(...chunks: Array<Buffer | ((signal: AbortSignal) => Promise<Buffer>)>) {
  return async (signal: AbortSignal): Promise<PeerAnswer> => ({
    head: { status: 200, headers: { 'content-type': 'text/event-stream' } as HeaderMap },
    body: (async function* () {
      for (const chunk of chunks) yield typeof chunk === 'function' ? await chunk(signal) : chunk
    })(),
  })
}

/** A provider of a fake engine, as the registry makes them. */
function provider(name: string, url: string): Provider {
  return new Provider(ProviderConfigSchema.parse({ name, kind: 'openai', url: `${url}/v1` }))
}

/**
 * A local HTTP server that runs every request through `failover` over `upstreams()`, as the
 * pipeline does: a client that goes away aborts the signal, and an error before anything was sent
 * is answered with its status. `results` gets each outcome.
 */
async function startFailover(upstreams: () => Upstream[], timeoutMs = 10_000) {
  const results: Array<Promise<FailoverResult>> = []
  const server = createServer((req, res) => {
    const cancel = new AbortController()
    res.once('close', () => {
      if (!res.writableFinished) cancel.abort(new Error('the client closed the request'))
    })
    const result = failover(upstreams(), {
      request: {
        path: '/chat/completions',
        headers: { 'content-type': 'application/json' },
        body: Buffer.from(CHAT),
      },
      res,
      headers: { 'x-request-id': 'test' },
      timeoutMs,
      signal: cancel.signal,
    })
    results.push(result)
    void result.then((r) => {
      if (!r.ok && !r.sent && !res.destroyed)
        res.writeHead(r.error instanceof TimeoutError ? 504 : 502).end(r.error.message)
    })
    req.resume()
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

async function post(port: number): Promise<{ response: IncomingMessage; text: string }> {
  const client = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/v1/chat/completions' }).end(
    '{}',
  )
  const [response] = (await once(client, 'response')) as [IncomingMessage]
  let text = ''
  for await (const chunk of response) text += chunk
  return { response, text }
}

describe('failover', () => {
  it('goes from an engine that answers 500 to a peer, and names who answered', async () => {
    await using engine = await startFakeEngine()
    engine.fail = 'status500'
    const broken = provider('broken', engine.url)
    const { upstream, outcomes } = fakePeer(
      sse(Buffer.from('data: {"ok":1}\n\n'), Buffer.from('data: [DONE]\n\n')),
    )
    await using server = await startFailover(() => [engineUpstream(broken, SELF), upstream()])
    const { response, text } = await post(server.port)
    assert.equal(response.statusCode, 200)
    assert.equal(response.headers['x-gate-node'], PEER)
    assert.equal(response.headers['x-request-id'], 'test')
    assert.match(text, /data: \[DONE\]/)
    const result = await server.results[0]
    assert.ok(result?.ok && result.upstream.node === PEER && result.stream)
    assert.deepEqual(outcomes, ['ok'])
    assert.equal(broken.breaker.state, 'closed', 'one failure does not open the breaker')
    await broken.stop()
  })

  it("passes the last upstream's 5xx on as the answer", async () => {
    await using engine = await startFakeEngine()
    engine.fail = 'status503'
    const only = provider('only', engine.url)
    await using server = await startFailover(() => [engineUpstream(only, SELF)])
    const { response, text } = await post(server.port)
    assert.equal(response.statusCode, 503)
    assert.match(text, /error/)
    await only.stop()
  })

  it('cancels the request at a peer that answered 5xx, then fails over to an engine', async () => {
    await using engine = await startFakeEngine()
    const working = provider('working', engine.url)
    const { upstream, signals, outcomes } = fakePeer(async (signal) => ({
      head: { status: 503, headers: {} },
      body: (async function* () {
        yield await stalled(signal)
      })(),
    }))
    await using server = await startFailover(() => [upstream(), engineUpstream(working, SELF)])
    const { response } = await post(server.port)
    assert.equal(response.statusCode, 200)
    assert.equal(response.headers['x-gate-node'], SELF)
    assert.equal(signals[0]?.aborted, true, 'the stream to the failed peer is reset')
    assert.ok(signals[0]?.reason instanceof UpstreamError)
    assert.deepEqual(outcomes, ['failed'])
    await working.stop()
  })

  it('gives up on an upstream that sends no head, or stalls mid-body, within the timeout: engine and peer', async () => {
    await using engine = await startFakeEngine()
    engine.fail = 'hang'
    const hung = provider('hung', engine.url)
    const cases: Array<[string, () => Upstream, 'head' | 'body']> = [
      ['engine', () => engineUpstream(hung, SELF), 'head'],
      ['peer', fakePeer((signal) => stalled(signal)).upstream, 'head'],
      ['peer', fakePeer(sse(Buffer.from('data: {}\n\n'), stalled)).upstream, 'body'],
    ]
    for (const [name, upstream, stallAt] of cases) {
      await using server = await startFailover(() => [upstream()], 300)
      const { response, text } = await post(server.port)
      const result = await server.results[0]
      assert.ok(!result?.ok && result?.error instanceof TimeoutError, `${name} at ${stallAt}`)
      if (stallAt === 'head') assert.equal(response.statusCode, 504)
      else assert.match(text, /^data: \{\}\n\ndata: \{"error":.*did not answer in time/s)
    }
    await hung.stop()
  })

  it('settles when a slow client goes away while a streamed answer waits for it to drain', async () => {
    const { upstream, signals, outcomes } = fakePeer(sse(...Array.from({ length: 64 }, () => CHUNK), stalled))
    await using server = await startFailover(() => [upstream()])
    const client = httpRequest({ host: '127.0.0.1', port: server.port, method: 'POST', path: '/' }).end('{}')
    const [response] = (await once(client, 'response')) as [IncomingMessage]
    response.pause()
    await new Promise((resolve) => setTimeout(resolve, 200)) // the server's socket backs up
    client.destroy()
    const result = await Promise.race([
      server.results[0],
      new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 5000).unref()),
    ])
    assert.notEqual(result, 'hung', 'failover settled')
    assert.ok(result !== 'hung' && !result?.ok && result?.sent)
    assert.equal(signals[0]?.aborted, true)
    await waitFor(() => outcomes.length === 1)
    assert.deepEqual(outcomes, ['cancelled'], "a client leaving is not the peer's failure")
  })

  it('tries nothing once the client has gone', async () => {
    const { upstream, signals } = fakePeer(sse(Buffer.from('data: [DONE]\n\n')))
    const cancel = new AbortController()
    cancel.abort(new Error('gone'))
    const result = await failover([upstream()], {
      request: { path: '/chat/completions', headers: {}, body: Buffer.from(CHAT) },
      res: null as never,
      headers: {},
      timeoutMs: 1000,
      signal: cancel.signal,
    })
    assert.equal(signals.length, 0, 'no exchange with the peer was started')
    assert.ok(!result.ok && !result.sent)
  })
})
