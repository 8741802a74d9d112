import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ConfigInput } from '@gate/core'
import { createRpcClient } from '@gate/rpc'
import OpenAI from 'openai'
import { providerFor, startTestDaemon, type TestDaemon } from './utils/daemon.ts'
import { replyText, startFakeEngine } from './utils/fake-engine.ts'
import { waitFor } from './utils/wait.ts'

const MODEL = 'model-at-b'
const chat = (content: string) => ({ model: MODEL, messages: [{ role: 'user' as const, content }] })

/** A control client for the daemon as it runs now (a restart picks new ports). */
function rpc(gate: TestDaemon) {
  return createRpcClient({ url: `http://127.0.0.1:${gate.daemon.runtime.control.port}`, token: gate.token })
}

function addressOf(gate: TestDaemon, transport: 'quic' | 'tcp' = 'quic'): string {
  const address = gate.daemon.runtime.p2p.find((a) =>
    a.includes(transport === 'quic' ? '/quic-v1/' : '/tcp/'),
  )
  assert.ok(address, `no ${transport} address`)
  return address
}

/** `from` trusts `to`, reaching it at its address on `transport`. */
async function trust(from: TestDaemon, to: TestDaemon, transport: 'quic' | 'tcp' = 'quic'): Promise<void> {
  await rpc(from).call('add_peer', { node_id: to.daemon.nodeId, address: addressOf(to, transport) })
}

async function requestLog(gate: TestDaemon): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(join(gate.home, 'logs', 'requests.jsonl'), 'utf8').catch(() => '')
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line))
}

for (const transport of ['quic', 'tcp'] as const) {
  describe(`X-Target-Node over ${transport}`, () => {
    it('sends chat to a trusted peer, whole and streamed, and both nodes account for it', async () => {
      await using engine = await startFakeEngine({ models: [MODEL], chunks: 5, chunkDelayMs: 30 })
      await using b = await startTestDaemon({ providers: [providerFor('engine', engine)] })
      await using a = await startTestDaemon()
      await trust(a, b, transport)
      await trust(b, a, transport)
      const target = { headers: { 'x-target-node': b.daemon.nodeId } }

      const { data, response } = await a.client.chat.completions
        .create(chat('hello over the mesh'), target)
        .withResponse()
      assert.equal(data.choices[0]?.message.content, replyText('hello over the mesh'))
      assert.equal(response.headers.get('x-gate-node'), b.daemon.nodeId)
      const id = response.headers.get('x-request-id')
      assert.ok(id)

      const stream = await a.client.chat.completions.create(
        { ...chat('stream it'), stream: true, stream_options: { include_usage: true } },
        { headers: { 'x-target-node': b.daemon.runtime.peer_id } },
      )
      const arrivals: number[] = []
      let text = ''
      for await (const chunk of stream) {
        arrivals.push(performance.now())
        text += chunk.choices[0]?.delta.content ?? ''
      }
      assert.equal(text, replyText('stream it'))
      assert.ok((arrivals.at(-1) ?? 0) - (arrivals[0] ?? 0) > 60, 'chunks arrived one by one')

      assert.equal(engine.posts, 2)
      await waitFor(async () => (await requestLog(a)).length === 2 && (await requestLog(b)).length === 2)
      const [atA, atB] = [await requestLog(a), await requestLog(b)]
      assert.deepEqual(
        atA.map((r) => [r.node, r.status]),
        [
          [b.daemon.nodeId, 200],
          [b.daemon.nodeId, 200],
        ],
      )
      assert.equal(atB[0]?.id, id, 'one request ID across both nodes')
      assert.deepEqual(
        atB.map((r) => [r.consumer, r.provider, r.node]),
        [
          [`peer:${a.daemon.nodeId}`, 'engine', b.daemon.nodeId],
          [`peer:${a.daemon.nodeId}`, 'engine', b.daemon.nodeId],
        ],
      )
      assert.ok((atA[1]?.usage as { completion_tokens: number } | null)?.completion_tokens, 'usage seen at A')
      // Usage per peer: consumed from B at A, served to A at B.
      const consumed = (await rpc(a).call('get_metrics')).consumed[b.daemon.nodeId]
      const served = (await rpc(b).call('get_metrics')).usage[`peer:${a.daemon.nodeId}`]
      assert.equal(consumed?.requests, 2)
      assert.equal(served?.requests, 2)
      assert.equal(consumed?.completion_tokens, served?.completion_tokens)
      const metrics = await (await fetch(`${a.controlUrl}/metrics`)).text()
      assert.match(metrics, new RegExp(`gate_peer_consumed_requests_total\\{peer="${b.daemon.nodeId}"\\} 2`))
      assert.match(
        metrics,
        new RegExp(
          `gate_peer_consumed_tokens_total\\{peer="${b.daemon.nodeId}",kind="completion"\\} ${consumed?.completion_tokens}\n`,
        ),
      )
      assert.match(metrics, new RegExp(`gate_peer_up\\{peer="${b.daemon.nodeId}"\\} 1`))
      assert.match(metrics, new RegExp(`gate_peer_breaker_open\\{peer="${b.daemon.nodeId}"\\} 0`))
      const atBMetrics = await (await fetch(`${b.controlUrl}/metrics`)).text()
      assert.match(
        atBMetrics,
        new RegExp(`gate_consumer_requests_total\\{consumer="peer:${a.daemon.nodeId}"\\} 2`),
      )
    })
  })
}

describe('X-Target-Node errors', () => {
  it('answers 403 from a peer that does not trust us (its engine is never called) and 404 for an unknown node', async () => {
    await using engine = await startFakeEngine({ models: [MODEL] })
    await using b = await startTestDaemon({ providers: [providerFor('engine', engine)] })
    await using a = await startTestDaemon()
    await trust(a, b)
    await assert.rejects(
      a.client.chat.completions.create(chat('x'), { headers: { 'x-target-node': b.daemon.nodeId } }),
      (err: unknown) =>
        err instanceof OpenAI.PermissionDeniedError &&
        err.message.includes(`does not trust node ${a.daemon.nodeId}`) &&
        err.headers?.get('x-gate-node') === b.daemon.nodeId,
    )
    assert.equal(engine.posts, 0)

    await using c = await startTestDaemon()
    await assert.rejects(
      a.client.chat.completions.create(chat('x'), { headers: { 'x-target-node': c.daemon.nodeId } }),
      (err: unknown) => err instanceof OpenAI.NotFoundError && /unknown node/.test(err.message),
    )
    await assert.rejects(
      a.client.chat.completions.create(chat('x'), { headers: { 'x-target-node': 'not-a-node' } }),
      (err: unknown) => err instanceof OpenAI.BadRequestError,
    )
    // Only the peer a request really went to counts as consumed from.
    const { consumed } = await rpc(a).call('get_metrics')
    assert.deepEqual(Object.keys(consumed), [b.daemon.nodeId])
    // Still serving.
    await trust(b, a)
    const ok = await a.client.chat.completions.create(chat('now'), {
      headers: { 'x-target-node': b.daemon.nodeId },
    })
    assert.equal(ok.choices[0]?.message.content, replyText('now'))
  })

  it('ends a stream whose peer shuts down with its SSE error event, and passes a client abort on to the engine', async () => {
    await using engine = await startFakeEngine({ models: [MODEL], chunks: 100, chunkDelayMs: 30 })
    // No grace period: B cuts what it serves as it stops.
    await using b = await startTestDaemon(
      { providers: [providerFor('engine', engine)] },
      { shutdownGraceMs: 0 },
    )
    await using a = await startTestDaemon()
    await trust(a, b)
    await trust(b, a)
    const headers = { 'content-type': 'application/json', 'x-target-node': b.daemon.nodeId }

    // Client abort at A: the engine at B sees it.
    const stream = await a.client.chat.completions.create({ ...chat('x'), stream: true }, { headers })
    let seen = 0
    for await (const _ of stream) if (++seen === 3) break
    await waitFor(() => engine.aborted === 1, { label: 'the engine at B saw the abort' })

    // B stopping mid-stream, with no grace period: B ends the stream with an error event that
    // says why, A passes it on, and there is no [DONE].
    const res = await fetch(`${a.url}/v1/chat/completions`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ ...chat('y'), stream: true }),
    })
    assert.equal(res.status, 200)
    const reader = res.body?.getReader()
    assert.ok(reader)
    const first = await reader.read()
    assert.ok(!first.done)
    const started = Date.now()
    await b.daemon.stop()
    let text = new TextDecoder().decode(first.value)
    for (let r = await reader.read(); !r.done; r = await reader.read())
      text += new TextDecoder().decode(r.value)
    assert.ok(Date.now() - started < 5000, 'the error came within a bounded time')
    assert.match(
      text,
      /data: \{"error":\{"message":"the node is shutting down","type":"api_error","code":"unavailable"/,
    )
    assert.ok(!text.includes('[DONE]'))
  })

  it('on stop, both nodes let a stream between them finish, and a stopping node takes no new peer requests', async () => {
    await using engine = await startFakeEngine({ models: [MODEL], chunks: 10, chunkDelayMs: 50 })
    await using b = await startTestDaemon(
      { providers: [providerFor('engine', engine)] },
      { shutdownGraceMs: 3000 },
    )
    await using a = await startTestDaemon({}, { shutdownGraceMs: 3000 })
    await using c = await startTestDaemon()
    await trust(a, b)
    await trust(b, a)
    await trust(c, b)
    await trust(b, c)
    const target = { headers: { 'x-target-node': b.daemon.nodeId } }
    const stream = await a.client.chat.completions.create({ ...chat('finish me'), stream: true }, target)
    const chunks = stream[Symbol.asyncIterator]()
    const first = await chunks.next()
    assert.equal(first.done, false)
    let text = first.value.choices[0]?.delta.content ?? ''
    const stopping = Promise.all([a.daemon.stop(), b.daemon.stop()])
    // Long enough for B to stop taking peer requests, well short of the stream's end.
    await sleep(150)
    await assert.rejects(c.client.chat.completions.create(chat('too late'), target), (err: unknown) => {
      assert.ok(err instanceof OpenAI.APIError && err.status === 502, String(err))
      return true
    })
    for (let r = await chunks.next(); !r.done; r = await chunks.next())
      text += r.value.choices[0]?.delta.content ?? ''
    assert.equal(text, replyText('finish me'))
    await stopping
    for (const gate of [a, b]) {
      const records = (await requestLog(gate)).filter((r) => r.route === '/v1/chat/completions')
      // At B, the refused request never reached the pipeline.
      assert.deepEqual(
        records.map((r) => [r.status, r.error]),
        [[200, null]],
      )
    }
  })
})

/** B serving MODEL from its engine under `security`, and A; each trusts the other. */
async function limitedPair(security: ConfigInput['security']) {
  const engine = await startFakeEngine({ models: [MODEL] })
  const b = await startTestDaemon({ providers: [providerFor('engine', engine)], security })
  const a = await startTestDaemon()
  await trust(a, b)
  await trust(b, a)
  /** A chat request at A for B. */
  const send = (content: string, signal?: AbortSignal) =>
    fetch(`${a.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-target-node': b.daemon.nodeId },
      body: JSON.stringify(chat(content)),
      ...(signal ? { signal } : {}),
    })
  return {
    engine,
    a,
    b,
    send,
    async [Symbol.asyncDispose]() {
      await a[Symbol.asyncDispose]()
      await b[Symbol.asyncDispose]()
      await engine.stop()
    },
  }
}

describe('limits on peers', () => {
  it('answers 429 with Retry-After when a peer goes over its rate limit, without calling the engine', async () => {
    await using pair = await limitedPair({ rate_limit: { per_peer_rps: 0.5, burst: 2 } })
    const statuses: Array<[number, string | null]> = []
    for (let i = 0; i < 4; i++) {
      const res = await pair.send(`n${i}`)
      const body = await res.json()
      statuses.push([res.status, res.headers.get('retry-after')])
      if (res.status === 429) assert.equal(body.error.type, 'rate_limit_error')
    }
    assert.deepEqual(statuses, [
      [200, null],
      [200, null],
      [429, '2'],
      [429, '2'],
    ])
    assert.equal(pair.engine.posts, 2)
  })

  it("answers a peer's request over the concurrency cap with 429, as a local one", async () => {
    await using pair = await limitedPair({ max_concurrent_requests: 1 })
    pair.engine.fail = 'hang'
    const controller = new AbortController()
    const hanging = pair.send('hang', controller.signal).catch(() => null)
    await waitFor(() => pair.engine.posts === 1, { label: 'the first request at the engine' })
    const over = await pair.send('over')
    assert.equal(over.status, 429)
    assert.ok(over.headers.get('retry-after'))
    assert.equal((await over.json()).error.type, 'rate_limit_error')
    assert.equal(pair.engine.posts, 1)
    controller.abort()
    await hanging
  })

  it("answers a peer's body over the limit with 413, and applies a raised limit at once", async () => {
    await using pair = await limitedPair({ max_body_bytes: 1000 })
    const { b } = pair
    // Over B's limit: B's 413, as a local client of B's would get it.
    const refused = await pair.send('x'.repeat(5000))
    assert.equal(refused.status, 413)
    assert.equal(refused.headers.get('x-gate-node'), b.daemon.nodeId)
    assert.match((await refused.json()).error.message, /larger than the 1000-byte limit/)
    assert.equal(pair.engine.posts, 0)
    await rpc(b).call('update_config', { config: { security: { max_body_bytes: 100_000 } } })
    const accepted = await pair.send('x'.repeat(5000))
    assert.equal(accepted.status, 200)
    assert.equal((await accepted.json()).choices[0].message.content, replyText('x'.repeat(5000)))
  })

  it("passes a peer's 413 on to the openai SDK, which reads it", async () => {
    await using pair = await limitedPair({ max_body_bytes: 1000 })
    const { a, b } = pair
    const big = pair.a.client.chat.completions.create(chat('x'.repeat(5000)), {
      headers: { 'x-target-node': b.daemon.nodeId },
    })
    await assert.rejects(big, (err: unknown) => {
      assert.ok(err instanceof OpenAI.APIError, String(err))
      assert.equal(err.status, 413)
      assert.equal((err.error as { type?: string }).type, 'invalid_request_error')
      return true
    })
    assert.equal(pair.engine.posts, 0)
    const after = await a.client.chat.completions.create(chat('small'), {
      headers: { 'x-target-node': b.daemon.nodeId },
    })
    assert.equal(after.choices[0]?.message.content, replyText('small'))
  })
})

describe('routing by model across peers', () => {
  it('merges peer models once, spreads a burst over two peers, and fails over from a failing one', async () => {
    await using engineB = await startFakeEngine({ models: [MODEL, 'only-b'] })
    await using engineC = await startFakeEngine({ models: [MODEL] })
    await using b = await startTestDaemon({ providers: [providerFor('engine', engineB)] })
    await using c = await startTestDaemon({ providers: [providerFor('engine', engineC)] })
    await using a = await startTestDaemon()
    const quic = (d: TestDaemon) => d.daemon.runtime.p2p.find((x) => x.includes('/quic-v1/')) as string
    await rpc(a).call('update_config', {
      config: {
        network: { trusted_peers: [b.daemon.nodeId, c.daemon.nodeId], bootstrap: [quic(b), quic(c)] },
      },
    })
    await trust(b, a)
    await trust(c, a)

    const servedBy = async () => {
      const list = await a.client.models.list()
      return Object.fromEntries(
        list.data.map((m) => [m.id, (m as unknown as { served_by: string[] }).served_by]),
      )
    }
    await waitFor(async () => (await servedBy())[MODEL]?.length === 2, {
      timeoutMs: 15_000,
      label: 'both peers known',
    })
    const models = await servedBy()
    assert.deepEqual(Object.keys(models).sort(), [MODEL, 'only-b'].sort())
    assert.deepEqual(models[MODEL]?.sort(), [b.daemon.nodeId, c.daemon.nodeId].sort())
    assert.deepEqual(models['only-b'], [b.daemon.nodeId])

    // A burst spreads over both peers.
    const burst = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        a.client.chat.completions.create(chat(`burst ${i}`)).withResponse(),
      ),
    )
    const servers = burst.map(({ response }) => response.headers.get('x-gate-node'))
    assert.ok(servers.includes(b.daemon.nodeId) && servers.includes(c.daemon.nodeId), servers.join())
    assert.equal(engineB.posts + engineC.posts, 8)

    // B's engine fails: every request still succeeds, through C.
    engineB.fail = 'status500'
    const beforeB = engineB.posts
    const beforeC = engineC.posts
    const results = await Promise.all(
      Array.from({ length: 4 }, (_, i) => a.client.chat.completions.create(chat(`failover ${i}`))),
    )
    assert.deepEqual(
      results.map((r) => r.choices[0]?.message.content),
      [0, 1, 2, 3].map((i) => replyText(`failover ${i}`)),
    )
    assert.equal(engineC.posts - beforeC, 4)
    assert.ok(engineB.posts > beforeB, 'B was tried first at least once and failed over')

    // A's own engine for the model fails before answering: a peer serves the request instead.
    await using engineA = await startFakeEngine({ models: [MODEL] })
    engineA.fail = 'status503'
    await rpc(a).call('update_config', { config: { providers: [providerFor('local', engineA)] } })
    const { data, response } = await a.client.chat.completions.create(chat('local fails')).withResponse()
    assert.equal(data.choices[0]?.message.content, replyText('local fails'))
    assert.equal(response.headers.get('x-gate-node'), c.daemon.nodeId)
    assert.equal(engineA.posts, 1, "A's engine was tried first")
    // Named, this node serves the request itself: the engine's answer, with no peer to fail over to.
    const named = await fetch(`${a.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-target-node': a.daemon.nodeId },
      body: JSON.stringify(chat('only here')),
    })
    assert.equal(named.status, 503)
    assert.equal(named.headers.get('x-gate-node'), a.daemon.nodeId)
  })
})

describe('a peer that stops taking requests', () => {
  it('is failed over from before any byte, and its breaker opens', async () => {
    await using engineB = await startFakeEngine({ models: [MODEL] })
    await using engineC = await startFakeEngine({ models: [MODEL] })
    await using b = await startTestDaemon(
      { providers: [providerFor('engine', engineB)] },
      { shutdownGraceMs: 10_000 },
    )
    await using c = await startTestDaemon({ providers: [providerFor('engine', engineC)] })
    await using a = await startTestDaemon()
    await trust(a, b)
    await trust(a, c)
    await trust(b, a)
    await trust(c, a)
    await waitFor(
      async () =>
        ((await a.client.models.list()).data[0] as unknown as { served_by: string[] }).served_by.length === 2,
      {
        label: 'both peers serve the model',
      },
    )

    // B is stopping: the request it is serving keeps it up, but it takes no new one.
    engineB.fail = 'hang'
    const controller = new AbortController()
    const held = a.client.chat.completions
      .create(chat('held'), { headers: { 'x-target-node': b.daemon.nodeId }, signal: controller.signal })
      .catch(() => 'cancelled')
    await waitFor(() => engineB.posts === 1, { label: 'the held request at B' })
    const nodeB = b.daemon.nodeId
    const stopping = b.daemon.stop()
    await sleep(150)

    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        a.client.chat.completions.create(chat(`moved ${i}`)).withResponse(),
      ),
    )
    assert.deepEqual(
      results.map(({ data }) => data.choices[0]?.message.content),
      Array.from({ length: 8 }, (_, i) => replyText(`moved ${i}`)),
    )
    assert.ok(results.every(({ response }) => response.headers.get('x-gate-node') === c.daemon.nodeId))
    assert.equal(engineC.posts, 8)
    assert.equal(engineB.posts, 1, 'B took nothing new')
    // Tried first for some of them, B failed each time: its breaker is open.
    const metrics = await (await fetch(`${a.controlUrl}/metrics`)).text()
    assert.match(metrics, new RegExp(`gate_peer_breaker_open\\{peer="${nodeB}"\\} 1`))

    controller.abort()
    assert.equal(await held, 'cancelled')
    await stopping
  })
})

describe('peers over the control port', () => {
  it('adds, lists and removes peers; a restart keeps trust and finds the peer again from peers.json', async () => {
    await using engine = await startFakeEngine({ models: [MODEL] })
    await using b = await startTestDaemon({ providers: [providerFor('engine', engine)] })
    await using a = await startTestDaemon()

    await assert.rejects(rpc(a).call('add_peer', { node_id: 'nonsense' }), /not a node ID or PeerId/)
    await assert.rejects(
      rpc(a).call('add_peer', { node_id: b.daemon.nodeId, address: '/ip4/1.2.3.4/tcp/nope' }),
      /not a multiaddr/,
    )
    await assert.rejects(
      rpc(a).call('add_peer', { node_id: b.daemon.nodeId, address: addressOf(a) }),
      /address belongs to/,
    )

    // B tells only nodes it trusts what it serves.
    await rpc(b).call('update_config', { config: { network: { trusted_peers: [a.daemon.nodeId] } } })
    const events: Array<{ type: string; data: unknown }> = []
    const unsubscribe = a.daemon.events.subscribe((event) => events.push(event))
    const { peer } = await rpc(a).call('add_peer', {
      node_id: b.daemon.runtime.peer_id,
      address: addressOf(b, 'tcp'),
    })
    assert.equal(peer.node_id, b.daemon.nodeId)
    assert.equal(peer.status, 'connected')
    assert.equal(peer.trusted, true)
    assert.deepEqual(peer.models, [MODEL])
    assert.ok(typeof peer.rtt_ms === 'number')
    assert.deepEqual(a.daemon.config.network.trusted_peers, [b.daemon.nodeId])
    assert.ok(
      events.some((e) => e.type === 'peer_up' && (e.data as { node_id: string }).node_id === b.daemon.nodeId),
    )
    assert.ok(events.some((e) => e.type === 'peer_capabilities'))

    const { peers } = await rpc(a).call('list_peers')
    assert.deepEqual(
      peers.map((p) => [p.node_id, p.status]),
      [[b.daemon.nodeId, 'connected']],
    )
    const state = await rpc(a).call('network_state')
    assert.equal(state.self.node_id, a.daemon.nodeId)
    assert.ok(state.self.addresses.length >= 2)
    assert.ok(state.nodes.some((n) => n.node_id === b.daemon.nodeId && n.trusted && n.models.includes(MODEL)))
    // peers.json is a cache, written after the peer is added.
    await waitFor(
      async () => {
        const text = await readFile(join(a.home, 'peers.json'), 'utf8').catch(() => '{"peers":{}}')
        const cache = JSON.parse(text) as { peers: Record<string, string[]> }
        return cache.peers[b.daemon.nodeId]?.some((x) => x.includes('/tcp/')) === true
      },
      { timeoutMs: 5_000, label: "peers.json holds B's address" },
    )

    const nodeId = a.daemon.nodeId
    await a.daemon.restart()
    assert.equal(a.daemon.nodeId, nodeId, 'the same identity after a restart')
    await waitFor(
      async () => (await rpc(a).call('peer_info', { node_id: b.daemon.nodeId })).peer.status === 'connected',
      {
        timeoutMs: 15_000,
        label: 'the peer found again after a restart',
      },
    )

    unsubscribe()
    assert.deepEqual(await rpc(a).call('remove_peer', { node_id: b.daemon.nodeId }), { removed: true })
    assert.deepEqual((await rpc(a).call('list_peers')).peers, [])
    assert.deepEqual(a.daemon.config.network.trusted_peers, [])
    assert.deepEqual(await rpc(a).call('remove_peer', { node_id: b.daemon.nodeId }), { removed: false })
  })

  it('adds a peer by node ID alone, found through the DHT, and sends it requests', async () => {
    await using engine = await startFakeEngine({ models: [MODEL] })
    await using hub = await startTestDaemon()
    const bootstrap = [addressOf(hub)]
    await using b = await startTestDaemon({
      providers: [providerFor('engine', engine)],
      network: { bootstrap },
    })
    await using a = await startTestDaemon({ network: { bootstrap } })
    await trust(b, a)
    // Wait until the hub knows B, so that a lookup through the hub can find it.
    await waitFor(
      async () => (await rpc(hub).call('network_state')).nodes.some((n) => n.node_id === b.daemon.nodeId),
      {
        label: 'the hub knows B',
      },
    )
    const { peer } = await rpc(a).call('add_peer', { node_id: b.daemon.nodeId })
    assert.equal(peer.status, 'connected', peer.error ?? '')
    assert.ok(peer.addresses.length > 0)
    const reply = await a.client.chat.completions.create(chat('found'), {
      headers: { 'x-target-node': b.daemon.nodeId },
    })
    assert.equal(reply.choices[0]?.message.content, replyText('found'))
  })
})
