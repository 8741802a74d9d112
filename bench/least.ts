/**
 * The least a proxy can cost here, for the benchmarks to set Gate beside in the same run:
 *
 * - the least proxy (`bench/gateway.ts`): node:http in front of undici's pool, the request body
 *   posted to the engine and its answer's body sent back whole;
 * - the least forwarder (`bench/p2p.ts`), in Gate's A → B layout: node A and node B each their own
 *   process and a libp2p node made the way the daemon makes its own (`createP2PNode`). A sends the
 *   HTTP request's body to B on a new stream; B posts it to the engine and sends back the
 *   answer's body; A answers with it.
 *
 * Nothing else: no routing, trust, limits, headers, framing or records, and any failure is a 502.
 * Each part is this file run as a process (`node bench/least.ts proxy <engine URL>`, `b <engine
 * URL> <quic|tcp>`, `a <B's multiaddr>`), which prints one JSON line once it is ready.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { multiaddr } from '@multiformats/multiaddr'
import { Pool } from 'undici'
import { generateIdentity } from '../packages/core/src/index.ts'
import { type Connection, createP2PNode, type Stream } from '../packages/p2p/src/index.ts'
import { BODY, stopChild } from './lib.ts'

const PROTOCOL = '/gate-bench/forward/1.0.0'
const STREAMS = { maxInboundStreams: 1024, maxOutboundStreams: 1024 }

interface Least {
  /** Where it takes the chat requests. */
  url: string
  [Symbol.asyncDispose](): Promise<void>
}

/** The least proxy in front of the engine at `engineUrl`. */
export function startLeastProxy(engineUrl: string): Promise<Least> {
  return launch([['proxy', engineUrl]])
}

/** The least forwarder's two nodes, B in front of the engine at `engineUrl`, connected on `transport`. */
export function startLeastForwarder(engineUrl: string, transport: 'quic' | 'tcp'): Promise<Least> {
  return launch([['b', engineUrl, transport], (ready) => ['a', ready.address as string]])
}

type Role = string[] | ((previous: Record<string, unknown>) => string[])

/** Starts the processes in turn (each may take what the one before printed); the last one serves. */
async function launch(roles: Role[]): Promise<Least> {
  const children: ChildProcess[] = []
  const stop = async () => {
    for (const child of [...children].reverse()) await stopChild(child)
  }
  try {
    let ready: Record<string, unknown> = {}
    for (const role of roles) ready = await start(typeof role === 'function' ? role(ready) : role, children)
    const url = ready.url as string
    // One request through, so that a proxy passing on nothing is not measured as fast.
    const answer = await fetch(`${url}/v1/chat/completions`, { method: 'POST', body: BODY })
    const text = await answer.text()
    if (!answer.ok || !text.includes('"choices"'))
      throw new Error(
        `the least ${roles.length > 1 ? 'forwarder' : 'proxy'} answered ${answer.status}: ${text}`,
      )
    return { url, [Symbol.asyncDispose]: stop }
  } catch (err) {
    await stop()
    throw err
  }
}

/** Runs this file with `args`; resolves with the JSON line it prints once ready (within 30 s). */
async function start(args: string[], children: ChildProcess[]): Promise<Record<string, unknown>> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  children.push(child)
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`bench/least.ts ${args[0]} exited (${code}) before it was ready`)
  })
  const ready = once(child.stdout, 'data', { signal: AbortSignal.timeout(30_000) }).then(([line]) =>
    JSON.parse(String(line)),
  )
  return Promise.race([ready, exited])
}

type Done = (err: Error | null, answer?: Buffer) => void

/** An HTTP server on a loopback port answering each request with what `answer` makes of its body. */
function serveHttp(answer: (body: Buffer, done: Done) => void): void {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () =>
      answer(Buffer.concat(chunks), (err, body) => {
        if (err || !body) res.writeHead(502).end(String(err))
        else
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length }).end(body)
      }),
    )
  })
  server.listen(0, '127.0.0.1', () => {
    console.log(JSON.stringify({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }))
  })
}

/** Posts `body` to the engine's chat endpoint; `done` gets the answer's body, whole. */
function post(engine: Pool, body: Buffer, done: Done): void {
  const answer: Buffer[] = []
  engine.dispatch(
    { path: '/v1/chat/completions', method: 'POST', headers: { 'content-type': 'application/json' }, body },
    {
      onRequestStart: () => {},
      onResponseStart: () => {},
      onResponseData: (_controller, chunk) => answer.push(chunk),
      onResponseEnd: () => done(null, Buffer.concat(answer)),
      onResponseError: (_controller, err) => done(err),
    },
  )
}

/** Node B: each stream's bytes are a request body for the engine; the answer's body goes back on it. */
async function serveB(engineUrl: string, transport: string): Promise<void> {
  const node = await createP2PNode({ identity: generateIdentity(), host: '127.0.0.1', port: 0 })
  const engine = new Pool(engineUrl, { connections: 128 })
  await node.handle(
    PROTOCOL,
    async (stream) => {
      const body = Buffer.concat(await readUntilEnd(stream, 'remoteCloseWrite'))
      post(engine, body, (err, answer) => {
        if (err || !answer) return stream.abort(err ?? new Error('no answer'))
        stream.send(answer)
        stream.close().catch(() => {})
      })
    },
    STREAMS,
  )
  const address = node.getMultiaddrs().find((ma) => ma.toString().includes(`/${transport}`))
  console.log(JSON.stringify({ address: address?.toString() }))
}

/** Node A: each HTTP request's body goes to B on a new stream. */
async function serveA(address: string): Promise<void> {
  const node = await createP2PNode({ identity: generateIdentity(), host: '127.0.0.1', port: 0 })
  const connection = await node.dial(multiaddr(address))
  serveHttp((body, done) => {
    exchange(connection, body).then((answer) => done(null, answer), done)
  })
}

async function exchange(connection: Connection, body: Buffer): Promise<Buffer> {
  const stream = await connection.newStream(PROTOCOL, STREAMS)
  const answered = readUntilEnd(stream, 'close')
  stream.send(body)
  await stream.close()
  return Buffer.concat(await answered)
}

/** The stream's bytes until `event`: the remote end closing its side, or the stream closing. */
function readUntilEnd(stream: Stream, event: 'remoteCloseWrite' | 'close'): Promise<Uint8Array[]> {
  return new Promise((resolve, reject) => {
    const parts: Uint8Array[] = []
    stream.addEventListener('message', (e) => {
      parts.push(e.data.subarray())
    })
    stream.addEventListener(event, () => resolve(parts), { once: true })
    stream.addEventListener('close', (e) => e.error && reject(e.error), { once: true })
  })
}

if (import.meta.main) {
  process.on('SIGTERM', () => process.exit(0))
  const [role, ...args] = process.argv.slice(2)
  if (role === 'proxy') {
    const engine = new Pool(args[0] as string, { connections: 128 })
    serveHttp((body, done) => post(engine, body, done))
  } else if (role === 'b') await serveB(args[0] as string, args[1] as string)
  else if (role === 'a') await serveA(args[0] as string)
  else
    throw new Error(
      'usage: node bench/least.ts proxy <engine URL> | b <engine URL> <quic|tcp> | a <multiaddr>',
    )
}
