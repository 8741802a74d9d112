/**
 * The least a forwarder over libp2p can cost, for `bench/p2p.ts` to set Gate's A → B beside, in
 * the same layout: node A and node B each their own process, each a libp2p node made the way the
 * daemon makes its own (`createP2PNode`). A takes the HTTP request and sends its body to B over a
 * new stream; B posts it to the engine and sends back the answer's body; A answers 200 with it.
 * Nothing else: no routing, trust, limits, headers, framing, records or error handling beyond a 502.
 *
 * - `node bench/forwarder.ts b <engine URL> <quic|tcp>` prints `{"address": "<B's multiaddr>"}`;
 * - `node bench/forwarder.ts a <B's multiaddr>` prints `{"url": "http://127.0.0.1:<port>"}`.
 *
 * `startForwarder` runs both and stops them on dispose.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { multiaddr } from '@multiformats/multiaddr'
import { Pool } from 'undici'
import { generateIdentity } from '../packages/core/src/index.ts'
import { createP2PNode, type Stream } from '../packages/p2p/src/index.ts'
import { BODY } from './lib.ts'

const PROTOCOL = '/gate-bench/forward/1.0.0'
const STREAMS = { maxInboundStreams: 1024, maxOutboundStreams: 1024 }

/** Both ends of the forwarder, in their own processes; `url` takes the requests. */
export async function startForwarder(
  engineUrl: string,
  transport: 'quic' | 'tcp',
): Promise<{ url: string; [Symbol.asyncDispose](): Promise<void> }> {
  const children: ChildProcess[] = []
  const stop = async () => {
    for (const child of children) {
      if (child.exitCode !== null || child.signalCode !== null) continue
      child.kill('SIGTERM')
      await once(child, 'exit')
    }
  }
  try {
    const b = await start(['b', engineUrl, transport], children)
    const a = await start(['a', b.address as string], children)
    const url = a.url as string
    // One request through, so that a forwarder passing on nothing is not measured as fast.
    const answer = await fetch(`${url}/v1/chat/completions`, { method: 'POST', body: BODY })
    const text = await answer.text()
    if (!answer.ok || !text.includes('"choices"'))
      throw new Error(`the forwarder answered ${answer.status}: ${text}`)
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
    throw new Error(`forwarder ${args[0]} exited (${code}) before it was ready`)
  })
  const ready = once(child.stdout, 'data', { signal: AbortSignal.timeout(30_000) }).then(([line]) =>
    JSON.parse(String(line)),
  )
  return Promise.race([ready, exited])
}

/** Node B: each stream's bytes are a request body for the engine; the answer's body goes back on it, whole. */
async function serveB(engineUrl: string, transport: string): Promise<void> {
  const node = await createP2PNode({ identity: generateIdentity(), host: '127.0.0.1', port: 0 })
  const engine = new Pool(engineUrl, { connections: 128 })
  await node.handle(
    PROTOCOL,
    async (stream) => {
      const body = Buffer.concat(await readUntilEnd(stream, 'remoteCloseWrite'))
      const answer: Buffer[] = []
      engine.dispatch(
        {
          path: '/v1/chat/completions',
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        },
        {
          onRequestStart: () => {},
          onResponseStart: () => {},
          onResponseData: (_controller, chunk) => answer.push(chunk),
          onResponseEnd: () => {
            stream.send(Buffer.concat(answer))
            stream.close().catch(() => {})
          },
          onResponseError: (_controller, err) => stream.abort(err),
        },
      )
    },
    STREAMS,
  )
  const address = node.getMultiaddrs().find((ma) => ma.toString().includes(`/${transport}`))
  console.log(JSON.stringify({ address: address?.toString() }))
}

/** Node A: an HTTP server sending each request's body to B on a new stream. */
async function serveA(address: string): Promise<void> {
  const node = await createP2PNode({ identity: generateIdentity(), host: '127.0.0.1', port: 0 })
  const connection = await node.dial(multiaddr(address))
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', async () => {
      try {
        const stream = await connection.newStream(PROTOCOL, STREAMS)
        const answered = readUntilEnd(stream, 'close')
        stream.send(Buffer.concat(chunks))
        await stream.close()
        const body = Buffer.concat(await answered)
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length }).end(body)
      } catch (err) {
        res.writeHead(502).end(String(err))
      }
    })
  })
  server.listen(0, '127.0.0.1', () => {
    console.log(JSON.stringify({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }))
  })
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
  if (role === 'b') await serveB(args[0] as string, args[1] as string)
  else if (role === 'a') await serveA(args[0] as string)
  else throw new Error('usage: node bench/forwarder.ts b <engine URL> <quic|tcp> | a <multiaddr>')
}
