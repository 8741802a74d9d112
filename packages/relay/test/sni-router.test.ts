import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { connect as tlsConnect } from 'node:tls'
import { createRpcClient } from '@gate/rpc'
import { fetch as undiciFetch } from 'undici'
import { startTestDaemon, type TestDaemon } from '../../daemon/test/utils/daemon.ts'
import { waitFor } from '../../daemon/test/utils/wait.ts'
import { clientHello, exchange } from './utils/hello.ts'
import { DOMAIN, relayDispatcher, startTestRelay, type TestRelay } from './utils/relay.ts'

async function active(gate: TestDaemon, count = 1): Promise<void> {
  const rpc = createRpcClient({ url: gate.controlUrl, token: gate.token })
  await waitFor(
    async () =>
      (await rpc.call('node_status')).public?.relays.filter((r) => r.state === 'active').length === count,
    { timeoutMs: 20_000, label: 'the node is active' },
  )
}

/** GET /health on the node through `relay`, trusting the node's certificate. */
async function health(gate: TestDaemon, relay: TestRelay): Promise<number> {
  const dispatcher = relayDispatcher(await readFile(join(gate.home, 'certs', 'node.crt'), 'utf8'))
  try {
    const res = await undiciFetch(`https://${gate.daemon.nodeId}.${DOMAIN}:${relay.tls.port}/health`, {
      dispatcher,
    })
    await res.body?.cancel()
    return res.status
  } finally {
    await dispatcher.close()
  }
}

async function metric(relay: TestRelay, name: string): Promise<string> {
  const text = await (await fetch(`http://127.0.0.1:${relay.relay.runtime.metrics.port}/metrics`)).text()
  return text
    .split('\n')
    .filter((l) => l.startsWith(name))
    .join('\n')
}

describe('SNI routing', () => {
  it('routes a hello that comes a byte at a time, closes what it cannot route without a handshake, and keeps serving', async () => {
    await using relay = await startTestRelay({ limits: { hello_timeout: 3 } })
    await using gate = await startTestDaemon({ relay: { addresses: [relay.address] } })
    await active(gate)
    const name = `${gate.daemon.nodeId.toUpperCase()}.${DOMAIN}`
    // Byte by byte: the node answers with its ServerHello (a TLS handshake record).
    const hello = await clientHello(name)
    const { reply } = await exchange(
      relay.tls.port,
      [...hello].map((b) => Buffer.from([b])),
      1,
      true,
    )
    assert.equal(reply[0], 22, 'a handshake record came back from the node')
    // [what, bytes, within]: closed at once, or when hello_timeout (3 s) runs out for a hello cut short.
    const cases: Array<[string, Buffer[], number]> = [
      ['unknown node', [await clientHello(`${'a'.repeat(52)}.${DOMAIN}`)], 1000],
      ['no server name', [await clientHello()], 1000],
      ['another zone', [await clientHello('example.com')], 1000],
      ['plain HTTP', [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')], 1000],
      ['garbage', [Buffer.from([22, 3, 1, 0xff, 0xff, 0, 0, 0])], 1000],
      ['truncated', [hello.subarray(0, 100)], 4000],
      [
        'oversized',
        [
          Buffer.from([22, 3, 1, 0x40, 0x00]),
          Buffer.alloc(0x4000, 1),
          Buffer.from([22, 3, 1, 0x10, 0]),
          Buffer.alloc(0x1000),
        ],
        1000,
      ],
    ]
    for (const [what, chunks, within] of cases) {
      const { reply: answer, closedAfterMs } = await exchange(relay.tls.port, chunks)
      assert.equal(answer.length, 0, `${what}: no handshake`)
      assert.ok(closedAfterMs < within, `${what}: closed after ${closedAfterMs} ms`)
    }
    // Slow: a hello that has not arrived whole within hello_timeout (3 s) is closed.
    const slow = await exchange(
      relay.tls.port,
      [hello.subarray(0, 10), hello.subarray(10, 20), hello.subarray(20)],
      2000,
    )
    assert.equal(slow.reply.length, 0)
    assert.ok(
      slow.closedAfterMs > 2500 && slow.closedAfterMs < 4500,
      `slow closed after ${slow.closedAfterMs} ms`,
    )
    assert.equal(await health(gate, relay), 200, 'the relay still serves')
    assert.match(await metric(relay, 'gate_relay_client_hello_failures_total'), /reason="timeout"} [1-9]/)
    assert.match(await metric(relay, 'gate_relay_connections_total'), /outcome="sni_miss"} [1-9]/)
  })

  it('refuses a node that registers in the name of another, and unregisters a node that goes away', async () => {
    await using relay = await startTestRelay()
    await using gate = await startTestDaemon({ relay: { addresses: [relay.address] } })
    await active(gate)
    // A node's own relay requests are signed by its key and must come on its own connection.
    const { generateIdentity } = await import('@gate/core')
    const { createP2PNode, RELAY_PROTOCOL, relayRequest } = await import('@gate/p2p')
    const { multiaddr } = await import('@multiformats/multiaddr')
    const impostor = await createP2PNode({ identity: generateIdentity(), host: '127.0.0.1', port: 0 })
    try {
      const stream = await impostor.dialProtocol(multiaddr(relay.address), RELAY_PROTOCOL)
      // It signs with its own key a request that names the other node.
      const victim = { ...generateIdentity(), nodeId: gate.daemon.nodeId }
      const answer = await relayRequest(stream, victim as never, { type: 'domain_request' })
      assert.equal(answer.type, 'error')
      assert.match(answer.type === 'error' ? answer.message : '', /cannot speak for/)
    } finally {
      await impostor.stop()
    }
    assert.equal(await health(gate, relay), 200)
    // The node stops: the relay drops its name at once.
    const { nodeId } = gate.daemon
    await gate.daemon.stop()
    await waitFor(async () => /state="registered"} 0/.test(await metric(relay, 'gate_relay_registrations')), {
      timeoutMs: 5000,
      label: 'the registration dropped',
    })
    const hello = await clientHello(`${nodeId}.${DOMAIN}`)
    assert.equal((await exchange(relay.tls.port, [hello])).reply.length, 0)
  })

  it('registers again after a relay restart, and with each of two relays', async () => {
    const { mkdtemp } = await import('node:fs/promises')
    const { tmpdir } = await import('node:os')
    const home = await mkdtemp(join(tmpdir(), 'gate-relay-restart-'))
    let relay = await startTestRelay({}, home)
    await using other = await startTestRelay()
    const port = Number(/\/tcp\/(\d+)\//.exec(relay.address)?.[1])
    try {
      await using gate = await startTestDaemon({ relay: { addresses: [relay.address, other.address] } })
      await active(gate, 2)
      assert.equal(await health(gate, relay), 200)
      assert.equal(await health(gate, other), 200)
      await relay.relay.stop()
      // Same identity, same P2P port: the node finds it again and registers anew.
      const restarted = await startTestRelayOnPort(home, port)
      relay = restarted
      await active(gate, 2)
      assert.equal(await health(gate, restarted), 200)
    } finally {
      await relay.relay.stop()
      const { rm } = await import('node:fs/promises')
      await rm(home, { recursive: true, force: true })
    }
  })

  it('lets a long stream run past the idle timeout while bytes flow, and closes an idle connection', async () => {
    await using relay = await startTestRelay({ limits: { idle_timeout: 1 } })
    await using gate = await startTestDaemon({ relay: { addresses: [relay.address] } })
    await active(gate)
    const ca = await readFile(join(gate.home, 'certs', 'node.crt'), 'utf8')
    const socket = tlsConnect({
      host: '127.0.0.1',
      port: relay.tls.port,
      servername: `${gate.daemon.nodeId}.${DOMAIN}`,
      ca,
    })
    await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject))
    // Requests every 400 ms for 3 s: three idle timeouts' worth, never idle for one.
    const started = Date.now()
    let answers = 0
    socket.on('data', (d: Buffer) => {
      answers += (d.toString().match(/HTTP\/1\.1 200/g) ?? []).length
    })
    while (Date.now() - started < 3000) {
      socket.write(`GET /health HTTP/1.1\r\nHost: ${gate.daemon.nodeId}.${DOMAIN}\r\n\r\n`)
      await new Promise((resolve) => setTimeout(resolve, 400))
    }
    assert.ok(!socket.destroyed && answers >= 6, `${answers} answers on one connection`)
    const closed = Date.now()
    await new Promise((resolve) => socket.once('close', resolve))
    assert.ok(Date.now() - closed < 3000, 'idle, it is closed')
  })
})

/** A relay started again in `home` on the P2P port it had. */
async function startTestRelayOnPort(home: string, port: number): Promise<TestRelay> {
  const { readFile: read, writeFile } = await import('node:fs/promises')
  const config = JSON.parse(await read(join(home, 'relay.json'), 'utf8'))
  config.network.p2p_port = port
  await writeFile(join(home, 'relay.json'), JSON.stringify(config))
  const { createRelay } = await import('../src/index.ts')
  const relay = createRelay({ home, keyring: null, passphrase: 'relay-test' })
  await relay.start()
  return {
    relay,
    home,
    address: relay.runtime.p2p.find((a) => a.includes('/tcp/')) as string,
    tls: relay.runtime.tls,
    [Symbol.asyncDispose]: () => relay.stop(),
  }
}

describe('a node that dies mid-connection', () => {
  it('ends the relayed connection at once, and the relay serves on', async () => {
    const { gateHome } = await import('../../../apps/cli/test/utils/gate.ts')
    const { startFakeEngine } = await import('../../daemon/test/utils/fake-engine.ts')
    await using engine = await startFakeEngine({ models: ['llama3.2:1b'], chunks: 200, chunkDelayMs: 50 })
    await using relay = await startTestRelay()
    await using other = await startTestDaemon({ relay: { addresses: [relay.address] } })
    await active(other)
    await using home = await gateHome({
      providers: [{ name: 'engine', kind: 'openai', url: engine.url }],
      security: { api_keys: ['sk-relay'] },
      relay: { addresses: [relay.address] },
    })
    const doomed = home.spawn(['daemon'])
    try {
      const runtime = async () =>
        JSON.parse(await readFile(join(home.home, 'daemon.json'), 'utf8').catch(() => 'null'))
      await waitFor(async () => (await runtime()) !== null, { timeoutMs: 30_000 })
      const { node_id: nodeId } = await runtime()
      const ca = async () => readFile(join(home.home, 'certs', 'node.crt'), 'utf8').catch(() => null)
      await waitFor(async () => (await ca()) !== null, { timeoutMs: 20_000 })
      const dispatcher = relayDispatcher((await ca()) as string)
      let res: Response | undefined
      await waitFor(
        async () => {
          res = (await undiciFetch(`https://${nodeId}.${DOMAIN}:${relay.tls.port}/v1/chat/completions`, {
            method: 'POST',
            headers: { authorization: 'Bearer sk-relay', 'content-type': 'application/json' },
            body: JSON.stringify({
              model: 'llama3.2:1b',
              messages: [{ role: 'user', content: 'x' }],
              stream: true,
            }),
            dispatcher,
          }).catch(() => undefined)) as Response | undefined
          return res?.status === 200
        },
        { timeoutMs: 20_000, label: 'a stream through the relay' },
      )
      assert.ok(res?.body)
      const reader = (res.body as ReadableStream<Uint8Array>).getReader()
      await reader.read()
      doomed.kill('SIGKILL')
      const started = Date.now()
      // The stream ends, cut, within a bounded time: not a connection left hanging.
      await assert.rejects(
        (async () => {
          for (let r = await reader.read(); !r.done; r = await reader.read());
          throw new Error('ended cleanly')
        })(),
      )
      assert.ok(Date.now() - started < 15_000, `cut after ${Date.now() - started} ms`)
      await dispatcher.close()
      assert.equal(await health(other, relay), 200, 'the relay serves its other nodes')
    } finally {
      doomed.kill('SIGKILL')
    }
  })
})
