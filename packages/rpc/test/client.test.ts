import assert from 'node:assert/strict'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { NotFoundError } from '@gate/core'
import { createRpcClient } from '../src/client.ts'
import { RpcError, RpcTimeoutError, RpcTransportError } from '../src/errors.ts'
import { createRpcHandler, parseRpcBody } from '../src/server.ts'
import type { TestServer } from './utils/http-server.ts'
import { readBody, startServer, unusedPort } from './utils/http-server.ts'

const TOKEN = 'test-token-0123456789'

// SSE bytes cut at awkward places: inside a field name, between \r and \n, inside a
// multi-byte character, between two events' blank lines, with keepalive comments between.
const SSE_CHUNKS: Array<string | Buffer> = [
  'ev',
  'ent: hello\nda',
  'ta: {}\n',
  '\n: keepalive\n\nevent: log\r',
  '\ndata: {"msg":"caf',
  Buffer.from('é 🚀', 'utf8').subarray(0, 3),
  Buffer.from('é 🚀', 'utf8').subarray(3),
  '"}\r\n\r',
  '\nevent: request_start\ndata: {"id":',
  '"r1"}\n\n',
]

interface Harness {
  server: TestServer
  headers: IncomingMessage['headers'][]
  /** Resolves when the last SSE connection the server saw closes. */
  eventsClosed: Promise<void>
  /** Resolves when a hanging `node_restart` call's signal aborts on the server. */
  restartAborted: Promise<void>
}

/** The daemon's control port in miniature: token check, `/rpc` through createRpcHandler, `/events`. */
async function startControlPort(
  t: { after(fn: () => Promise<void>): void },
  events: (res: ServerResponse) => Promise<void> = writeChunks,
): Promise<Harness> {
  const headers: IncomingMessage['headers'][] = []
  const eventsClosed = Promise.withResolvers<void>()
  const restartAborted = Promise.withResolvers<void>()
  const harness = {
    headers,
    eventsClosed: eventsClosed.promise,
    restartAborted: restartAborted.promise,
  } as Harness
  const rpc = createRpcHandler({
    node_status: async () => ({
      node_id: 'gate1node',
      peer_id: '12D3KooW',
      version: '0.1.0',
      uptime_s: 1,
      pid: process.pid,
      http: { host: '127.0.0.1', port: 31145 },
      control: { host: '127.0.0.1', port: 8145 },
      providers: { total: 0, healthy: 0 },
      active_requests: 0,
      restart_required: [],
      public: null,
      nat: { enabled: true, reachability: 'private', observed_address: null, relays: [] },
    }),
    get_logs: async (params) => ({ lines: [{ lines: params.lines, level: params.level ?? null }] }),
    get_config: async () => {
      throw new NotFoundError('no such config')
    },
    // Never answers on its own: the client's timeout or abort has to end it.
    node_restart: (_params, ctx) =>
      new Promise((_resolve, reject) =>
        ctx.signal.addEventListener('abort', () => {
          restartAborted.resolve()
          reject(ctx.signal.reason)
        }),
      ),
  })

  harness.server = await startServer(async (req, res) => {
    headers.push(req.headers)
    if (req.url?.startsWith('/forbidden/')) {
      res.writeHead(403, { 'content-type': 'application/json' }).end('{"error":"Origin is not allowed"}')
      return
    }
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      const body = {
        jsonrpc: '2.0',
        id: null,
        error: { code: -32001, message: 'missing or wrong control token' },
      }
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify(body))
      return
    }
    if (req.method === 'POST' && req.url === '/rpc') {
      const abort = new AbortController()
      res.on('close', () => abort.abort())
      const parsed = parseRpcBody(await readBody(req))
      const response = parsed.ok ? await rpc(parsed.value, { signal: abort.signal }) : parsed.response
      if (res.destroyed) return
      if (response === null) res.writeHead(204).end()
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(response))
      return
    }
    if (req.method === 'GET' && req.url === '/events') {
      res.on('close', () => eventsClosed.resolve())
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
      res.flushHeaders()
      req.socket.setNoDelay(true)
      await events(res)
      return
    }
    res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>Not Found</h1>')
  })
  t.after(() => harness.server.close())
  return harness
}

/** Writes SSE_CHUNKS with pauses so they arrive as separate reads, then keeps the stream open. */
async function writeChunks(res: ServerResponse): Promise<void> {
  for (const chunk of SSE_CHUNKS) {
    if (res.destroyed) return
    res.write(chunk)
    await sleep(5)
  }
}

const EXPECTED_EVENTS = [
  { event: 'hello', data: {} },
  { event: 'log', data: { msg: 'café 🚀' } },
  { event: 'request_start', data: { id: 'r1' } },
]

describe('call', () => {
  it('calls a method with the token and returns its result', async (t) => {
    const { server, headers } = await startControlPort(t)
    const client = createRpcClient({ url: `${server.url}/`, token: `${TOKEN}\n` })
    const status = await client.call('node_status')
    assert.equal(status.node_id, 'gate1node')
    assert.equal(headers[0]?.authorization, `Bearer ${TOKEN}`)
    assert.equal(headers[0]?.['content-type'], 'application/json')
  })

  it('sends params, and the server applies defaults', async (t) => {
    const { server } = await startControlPort(t)
    const client = createRpcClient({ url: server.url, token: TOKEN })
    assert.deepEqual(await client.call('get_logs', { level: 'warn' }), {
      lines: [{ lines: 200, level: 'warn' }],
    })
    assert.deepEqual(await client.call('get_logs', { lines: 3 }), { lines: [{ lines: 3, level: null }] })
  })

  it('throws RpcError for an error answer, keeping code, message and data', async (t) => {
    const { server } = await startControlPort(t)
    const client = createRpcClient({ url: server.url, token: TOKEN })
    await assert.rejects(client.call('get_config'), (err: unknown) => {
      assert.ok(err instanceof RpcError)
      assert.equal(err.name, 'RpcError')
      assert.equal(err.code, -32004)
      assert.equal(err.message, 'no such config')
      return true
    })
    await assert.rejects(client.call('get_logs', { lines: 0 }), (err: unknown) => {
      assert.ok(err instanceof RpcError)
      assert.equal(err.code, -32602)
      assert.equal(err.message, 'params.lines: expected integer 1–10000, got 0')
      assert.deepEqual(err.data, { issues: ['params.lines: expected integer 1–10000, got 0'] })
      return true
    })
    await assert.rejects(client.call('list_providers'), { name: 'RpcError', code: -32601 })
  })

  it('throws RpcError with the server message for a wrong token', async (t) => {
    const { server } = await startControlPort(t)
    const client = createRpcClient({ url: server.url, token: 'wrong' })
    await assert.rejects(client.call('node_status'), (err: unknown) => {
      assert.ok(err instanceof RpcError)
      assert.equal(err.code, -32001)
      assert.equal(err.message, 'missing or wrong control token')
      return true
    })
  })

  it('throws RpcError for a 403 with a plain error body', async (t) => {
    const { server } = await startControlPort(t)
    const client = createRpcClient({ url: `${server.url}/forbidden`, token: TOKEN })
    await assert.rejects(client.call('node_status'), {
      name: 'RpcError',
      code: -32003,
      message: 'Origin is not allowed',
    })
  })

  it('throws RpcTransportError when something else answers', async (t) => {
    const { server } = await startControlPort(t)
    const client = createRpcClient({ url: `${server.url}/elsewhere`, token: TOKEN })
    await assert.rejects(client.call('node_status'), (err: unknown) => {
      assert.ok(err instanceof RpcTransportError)
      assert.match(err.message, /unexpected answer from .*\/elsewhere\/rpc: HTTP 404 <h1>Not Found<\/h1>/)
      return true
    })
  })

  it('throws RpcTransportError "connection refused" when no daemon listens', async () => {
    const url = `http://127.0.0.1:${await unusedPort()}`
    const client = createRpcClient({ url, token: TOKEN })
    await assert.rejects(client.call('node_status'), (err: unknown) => {
      assert.ok(err instanceof RpcTransportError)
      assert.equal(err.name, 'RpcTransportError')
      assert.equal(err.url, url)
      assert.equal(err.message, `cannot reach the daemon at ${url}: connection refused`)
      return true
    })
  })

  it('throws RpcTimeoutError when the daemon does not answer in time, and the server sees the abort', async (t) => {
    const { server, restartAborted } = await startControlPort(t)
    const client = createRpcClient({ url: server.url, token: TOKEN, timeoutMs: 5000 })
    const started = Date.now()
    await assert.rejects(client.call('node_restart', {}, { timeoutMs: 100 }), (err: unknown) => {
      assert.ok(err instanceof RpcTimeoutError)
      assert.ok(err instanceof RpcTransportError)
      assert.match(err.message, /did not answer node_restart within 0.1 s/)
      return true
    })
    assert.ok(Date.now() - started < 2000)
    await restartAborted
  })

  it("rejects with the caller's abort reason", async (t) => {
    const { server } = await startControlPort(t)
    const client = createRpcClient({ url: server.url, token: TOKEN })
    const controller = new AbortController()
    const reason = new Error('user pressed ctrl-c')
    setTimeout(() => controller.abort(reason), 50)
    await assert.rejects(
      client.call('node_restart', {}, { signal: controller.signal }),
      (err) => err === reason,
    )
    await assert.rejects(
      client.call('node_status', {}, { signal: AbortSignal.abort(reason) }),
      (err) => err === reason,
    )
  })

  it('uses an injected fetch', async () => {
    const seen: string[] = []
    const client = createRpcClient({
      url: 'http://daemon.invalid',
      token: TOKEN,
      fetch: async (input, init) => {
        seen.push(`${String(input)} ${String(init?.body)}`)
        return Response.json({ jsonrpc: '2.0', id: 1, result: { ok: true } })
      },
    })
    assert.deepEqual(await client.call('node_shutdown'), { ok: true })
    assert.deepEqual(seen, [
      'http://daemon.invalid/rpc {"jsonrpc":"2.0","id":1,"method":"node_shutdown","params":{}}',
    ])
  })
})

describe('events', () => {
  it('parses events split at awkward chunk boundaries and ends cleanly on abort', async (t) => {
    const harness = await startControlPort(t)
    const client = createRpcClient({ url: harness.server.url, token: TOKEN })
    const controller = new AbortController()
    const received: unknown[] = []
    for await (const event of client.events({ signal: controller.signal })) {
      received.push(event)
      if (received.length === EXPECTED_EVENTS.length) setTimeout(() => controller.abort(), 20)
    }
    assert.deepEqual(received, EXPECTED_EVENTS)
    assert.equal(harness.headers[0]?.authorization, `Bearer ${TOKEN}`)
    assert.equal(harness.headers[0]?.accept, 'text/event-stream')
    await harness.eventsClosed
  })

  it('closes the connection when the consumer breaks out', async (t) => {
    const harness = await startControlPort(t)
    const client = createRpcClient({ url: harness.server.url, token: TOKEN })
    for await (const event of client.events()) {
      assert.equal(event.event, 'hello')
      break
    }
    await harness.eventsClosed
  })

  it('ends at once for an already aborted signal', async (t) => {
    const harness = await startControlPort(t)
    const client = createRpcClient({ url: harness.server.url, token: TOKEN })
    for await (const _ of client.events({ signal: AbortSignal.abort() })) assert.fail('no events expected')
    assert.equal(harness.headers.length, 0)
  })

  it('ends when the daemon closes the stream', async (t) => {
    const harness = await startControlPort(t, async (res) => {
      res.end('event: bye\ndata: {}\n\n')
    })
    const client = createRpcClient({ url: harness.server.url, token: TOKEN })
    const received: unknown[] = []
    for await (const event of client.events()) received.push(event)
    assert.deepEqual(received, [{ event: 'bye', data: {} }])
  })

  it('throws RpcTransportError when the connection drops mid-stream', async (t) => {
    const harness = await startControlPort(t, async (res) => {
      res.write('event: hello\ndata: {}\n\ndata: {"half')
      await sleep(20)
      res.destroy()
    })
    const client = createRpcClient({ url: harness.server.url, token: TOKEN })
    const received: unknown[] = []
    await assert.rejects(
      (async () => {
        for await (const event of client.events()) received.push(event)
      })(),
      (err: unknown) => {
        assert.ok(err instanceof RpcTransportError)
        assert.match(err.message, /^the event stream from http:\/\/127\.0\.0\.1:\d+ broke: /)
        return true
      },
    )
    assert.deepEqual(received, [{ event: 'hello', data: {} }])
  })

  it('throws RpcError for a wrong token', async (t) => {
    const { server } = await startControlPort(t)
    const client = createRpcClient({ url: server.url, token: 'nope' })
    await assert.rejects(
      (async () => {
        for await (const _ of client.events()) assert.fail('no events expected')
      })(),
      { name: 'RpcError', code: -32001, message: 'missing or wrong control token' },
    )
  })

  it('throws RpcTransportError when no daemon listens', async () => {
    const url = `http://127.0.0.1:${await unusedPort()}`
    const client = createRpcClient({ url, token: TOKEN })
    await assert.rejects(
      (async () => {
        for await (const _ of client.events()) assert.fail('no events expected')
      })(),
      { name: 'RpcTransportError', message: `cannot reach the daemon at ${url}: connection refused` },
    )
  })
})
