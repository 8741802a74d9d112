import assert from 'node:assert/strict'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { generateIdentity } from '@gate/core'
import { CONTROL_PROTOCOL, controlRequest, createP2PNode, HTTP_PROTOCOL } from '@gate/p2p'
import { createRpcClient } from '@gate/rpc'
import { multiaddr } from '@multiformats/multiaddr'
import { CONTROL_REQUEST_TIMEOUT_MS } from '../src/control/server.ts'
import { CONTROL_MAX_CONNECTIONS } from '../src/descriptors.ts'
import { providerFor, startTestDaemon, type TestDaemon } from './utils/daemon.ts'
import { replyText, startFakeEngine } from './utils/fake-engine.ts'
import { waitFor } from './utils/wait.ts'

const chat = (content: string) => ({ model: 'llama3.2:1b', messages: [{ role: 'user' as const, content }] })

async function logLines(gate: TestDaemon): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(join(gate.home, 'logs', 'daemon.log'), 'utf8')
  return text
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line))
}

/** A libp2p node that no Gate daemon trusts, connected to `gate` over TCP. */
async function stranger(gate: TestDaemon) {
  const node = await createP2PNode({ identity: generateIdentity(), host: '127.0.0.1', port: 0 })
  const tcp = gate.daemon.runtime.p2p.find((a) => a.includes('/tcp/')) as string
  const connection = await node.dial(multiaddr(tcp), { signal: AbortSignal.timeout(10_000) })
  return { node, connection, [Symbol.asyncDispose]: async () => node.stop() }
}

describe('hostile and careless input', () => {
  it('refuses a giant model name with a 400 and records none of it', async () => {
    await using engine = await startFakeEngine()
    await using gate = await startTestDaemon({ providers: [providerFor('a', engine)] })
    const giant = 'm'.repeat(4 * 1024 * 1024)
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${gate.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: giant, messages: [] }),
      })
      assert.equal(res.status, 400)
      const { error } = await res.json()
      assert.equal(error.param, 'model')
      assert.match(error.message, /at most 256 characters/)
    }
    const byPath = await fetch(`${gate.url}/v1/models/${'m'.repeat(10_000)}`)
    assert.equal(byPath.status, 400)
    await byPath.body?.cancel()
    const history = await createRpcClient({ url: gate.controlUrl, token: gate.token }).call(
      'request_history',
      {
        limit: 1000,
      },
    )
    assert.equal(history.requests.length, 4)
    assert.ok(history.requests.every((r) => r.model === null && r.status === 400))
    await gate.daemon.stop()
    const file = await readFile(join(gate.home, 'logs', 'requests.jsonl'), 'utf8')
    assert.ok(file.length < 10_000, `requests.jsonl holds ${file.length} bytes`)
  })

  it('refuses a stream flag that is not true or false, rather than record it wrong', async () => {
    await using engine = await startFakeEngine()
    await using gate = await startTestDaemon({ providers: [providerFor('a', engine)] })
    const res = await fetch(`${gate.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...chat('x'), stream: 'yes' }),
    })
    assert.equal(res.status, 400)
    assert.equal((await res.json()).error.param, 'stream')
    assert.equal(engine.posts, 0)
  })

  it('serves requests pipelined on one connection one at a time, in order', async () => {
    await using engine = await startFakeEngine({ chunks: 5, chunkDelayMs: 60 })
    await using gate = await startTestDaemon({ providers: [providerFor('a', engine)] })
    const { port } = new URL(gate.url)
    const socket = connect(Number(port), '127.0.0.1')
    await once(socket, 'connect')
    const request = (content: string, stream: boolean) => {
      const body = JSON.stringify({ ...chat(content), stream })
      return `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
    }
    let answer = ''
    socket.on('data', (d) => {
      answer += d
    })
    // Three requests in one write: a slow stream, then two answers that would be quick.
    socket.write(request('first', true) + request('second', false) + request('third', false))
    await waitFor(() => answer.includes('data: '), { label: 'the first stream began' })
    assert.equal(engine.posts, 1, 'the second waits for the first')
    await waitFor(() => (answer.match(/HTTP\/1\.1 200/g) ?? []).length === 3, { label: 'three answers' })
    const first = answer.indexOf('text/event-stream')
    const second = answer.indexOf(replyText('second'))
    const third = answer.indexOf(replyText('third'))
    assert.ok(first >= 0 && first < second && second < third, answer)
    socket.destroy()
  })

  it('logs what an untrusted peer breaks at most once a while, with how many more there were', async () => {
    await using gate = await startTestDaemon()
    await using peer = await stranger(gate)
    const before = (await logLines(gate)).length
    for (let i = 0; i < 200; i++) {
      const stream = await peer.connection.newStream(CONTROL_PROTOCOL, {
        signal: AbortSignal.timeout(10_000),
      })
      stream.send(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff)) // a frame length that is garbage
    }
    await waitFor(async () => (await logLines(gate)).some((l) => l.msg === 'peer broke the protocol'))
    const lines = (await logLines(gate)).slice(before).filter((l) => l.msg === 'peer broke the protocol')
    assert.ok(lines.length <= 2, `${lines.length} lines for 200 broken streams`)
    // The node still serves: a good control request from the same peer is answered.
    const stream = await peer.connection.newStream(CONTROL_PROTOCOL)
    assert.equal((await controlRequest(stream, { type: 'ping' })).type, 'pong')
  })

  it('tells an untrusted peer nothing of its models or load, and refuses its requests', async () => {
    await using engine = await startFakeEngine()
    await using gate = await startTestDaemon({ providers: [providerFor('a', engine)] })
    await waitFor(async () => (await gate.client.models.list()).data.length === 1)
    await using peer = await stranger(gate)
    for (const type of ['capability_request', 'handshake'] as const) {
      const stream = await peer.connection.newStream(CONTROL_PROTOCOL)
      const capabilities = {
        node_id: 'x',
        supported_models: [],
        max_context_length: null,
        supports_streaming: true,
        load_factor: 0,
      }
      const answer = await controlRequest(stream, type === 'handshake' ? { type, capabilities } : { type })
      assert.ok('capabilities' in answer, type)
      assert.deepEqual(answer.capabilities.supported_models, [], type)
      assert.equal(answer.capabilities.node_id, gate.daemon.nodeId)
    }
    const { sendRequest } = await import('@gate/p2p')
    const stream = await peer.connection.newStream(HTTP_PROTOCOL)
    const response = await sendRequest(stream, {
      head: { method: 'POST', path: '/v1/chat/completions', headers: {} },
      body: Buffer.from(JSON.stringify(chat('x'))),
    })
    assert.equal(response.head.status, 403)
    assert.equal(engine.posts, 0)
  })

  it('logs what a control client got wrong at debug, without a stack, and its own failures as errors', async () => {
    await using gate = await startTestDaemon({ node: { log_level: 'debug' } })
    const client = createRpcClient({ url: gate.controlUrl, token: gate.token })
    await assert.rejects(client.call('peer_info', { node_id: 'not a node' }))
    await assert.rejects(
      client.call('add_provider', { name: 'x', kind: 'openai', url: 'ftp://nope' } as never),
    )
    await waitFor(async () => (await logLines(gate)).some((l) => l.msg === 'rpc method refused'))
    const lines = await logLines(gate)
    const refused = lines.filter((l) => l.msg === 'rpc method refused')
    assert.ok(
      refused.every((l) => l.level === 20 && !('err' in l)),
      JSON.stringify(refused),
    )
    assert.ok(!lines.some((l) => (l.level as number) >= 50), 'no error-level line for a caller mistake')
  })

  it('answers control clients that stall mid-request with a 408 and frees their connections for others', async () => {
    await using gate = await startTestDaemon()
    const client = createRpcClient({ url: gate.controlUrl, token: gate.token })
    const { port } = new URL(gate.controlUrl)
    const stalled = await Promise.all(
      Array.from({ length: CONTROL_MAX_CONNECTIONS }, async () => {
        const socket = connect({ host: '127.0.0.1', port: Number(port) })
        await once(socket, 'connect')
        socket.write(
          `POST /rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${gate.token}\r\n` +
            'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"jsonrpc"',
        )
        let answer = ''
        socket.setEncoding('utf8').on('data', (chunk: string) => {
          answer += chunk
        })
        const closed = once(socket, 'close').then(() => answer)
        return { socket, closed }
      }),
    )
    const started = performance.now()
    // Every control connection is held: another client is turned away.
    await assert.rejects(client.call('node_status', {}))
    const answers = await Promise.all(stalled.map((s) => s.closed))
    const waited = performance.now() - started
    assert.ok(
      answers.every((a) => a.startsWith('HTTP/1.1 408')),
      answers.find((a) => !a.startsWith('HTTP/1.1 408')),
    )
    assert.ok(waited < CONTROL_REQUEST_TIMEOUT_MS + 3000, `stalled connections held ${waited} ms`)
    const { version } = await client.call('node_status', {})
    assert.ok(version.length > 0)
  })
})
