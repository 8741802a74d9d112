/**
 * `pnpm bench` (part 2): what one P2P hop costs. The same chat request goes to node B directly
 * and through node A (`X-Target-Node: B`), over QUIC and over TCP, in one run: requests/s and
 * p50/p99 at concurrency 1 and 64 (wrk), and a 50-chunk stream's time to first byte. Beside them,
 * measured in the same rounds: the least forwarder (`least.ts`: the same A → B layout with
 * nothing but the request and answer bodies on a new stream), and the anchor, a bare libp2p
 * request/response (a new stream, ~600 B each way) on the same transport: what libp2p itself costs
 * per exchange. Each of the four runs BENCH_ROUNDS times (default 3), in turn, and the table shows
 * the medians. Then single-stream throughput (256 MB one way) over a plain loopback TCP socket, a
 * bare libp2p stream and a `/gate/http` response body; and 1000 `/gate/http` exchanges open at
 * once over one connection.
 *
 * Needs `wrk`. Everything binds to 127.0.0.1 on random ports and is stopped at the end.
 */
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { type AddressInfo, connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { generateIdentity } from '../packages/core/src/index.ts'
import { startFakeEngine } from '../packages/daemon/test/utils/fake-engine.ts'
import {
  createP2PNode,
  drained,
  HTTP_PROTOCOL,
  httpStreamHandler,
  MAX_STREAMS_PER_CONNECTION,
  type Stream,
  sendRequest,
} from '../packages/p2p/src/index.ts'
import { startLeastForwarder } from './least.ts'
import {
  DURATION_S,
  f,
  interleaved,
  type LoadResult,
  MODEL,
  median,
  percentile,
  printTable,
  ratio,
  requireTools,
  signed,
  startGate,
  streamTimes,
  writeWrkScript,
  wrk,
} from './lib.ts'

type Transport = 'quic' | 'tcp'
const TRANSPORTS: Transport[] = ['quic', 'tcp']
const ECHO = '/gate-bench/echo/1.0.0'
const EXCHANGE_BYTES = 600
/** Exchanges open at once over one connection in the concurrency check. */
const OPEN_STREAMS = 1000
/** How long the server holds each of those answers. */
const HOLD_MS = 500
const SINK = '/gate-bench/sink/1.0.0'
/** Bytes sent one way in the single-stream throughput runs. */
const BULK_BYTES = 256 * 1024 * 1024
const BULK_CHUNK = new Uint8Array(64 * 1024)

async function main(): Promise<void> {
  await requireTools(['wrk'])
  const dir = await mkdtemp(join(tmpdir(), 'gate-bench-p2p-'))
  const engine = await startFakeEngine({ models: [MODEL], chunks: 50, record: false })
  const rows: string[][] = [
    [
      '',
      'B direct',
      'A → B',
      'ratio',
      'least A → B',
      'A→B / least',
      'bare libp2p',
      'A→B / bare',
      'least / bare',
    ],
  ]
  try {
    const script = await writeWrkScript(dir)
    for (const transport of TRANSPORTS) {
      const b = await startGate(
        dir,
        `b-${transport}`,
        { providers: [{ name: 'engine', kind: 'openai', url: engine.url }] },
        MODEL,
      )
      const a = await startGate(dir, `a-${transport}`, {})
      try {
        const on = (g: typeof a) =>
          g.p2p.find((x) => x.includes(transport === 'quic' ? '/quic-v1/' : '/tcp/'))
        await a.rpc('add_peer', { node_id: b.nodeId, address: on(b) })
        await b.rpc('add_peer', { node_id: a.nodeId, address: on(a) })
        const via = { 'x-target-node': b.nodeId }
        await using bare = await bareExchange(transport)
        await using forwarder = await startLeastForwarder(engine.url, transport)
        for (const c of [1, 64]) {
          const [direct, hop, least, anchor] = (await interleaved(`${transport} c=${c}`, [
            () => wrk(`${b.url}/v1/chat/completions`, script, c),
            () => wrk(`${a.url}/v1/chat/completions`, script, c, via),
            () => wrk(`${forwarder.url}/v1/chat/completions`, script, c),
            () => bare.measure(c),
          ])) as [LoadResult, LoadResult, LoadResult, LoadResult]
          if (hop.errors > 0 || direct.errors > 0 || least.errors > 0)
            console.log(
              `errors at ${transport} c=${c}: direct ${direct.errors}, via A ${hop.errors}, least ${least.errors}`,
            )
          rows.push([
            `${transport} c=${c} req/s`,
            f(direct.rps, 0),
            f(hop.rps, 0),
            ratio(hop.rps, direct.rps),
            f(least.rps, 0),
            ratio(hop.rps, least.rps),
            f(anchor.rps, 0),
            ratio(hop.rps, anchor.rps),
            ratio(least.rps, anchor.rps),
          ])
          rows.push([
            `${transport} c=${c} p50 ms`,
            f(direct.p50),
            f(hop.p50),
            signed(hop.p50 - direct.p50),
            f(least.p50),
            signed(hop.p50 - least.p50),
            f(anchor.p50),
            '',
            '',
          ])
          rows.push([
            `${transport} c=${c} p99 ms`,
            f(direct.p99),
            f(hop.p99),
            '',
            f(least.p99),
            '',
            f(anchor.p99),
            '',
            '',
          ])
        }
        process.stderr.write(`${transport} stream…\n`)
        const directStream = await streamTimes(b.url)
        const hopStream = await streamTimes(a.url, via)
        rows.push([
          `${transport} stream TTFB p50 ms`,
          f(directStream.ttfb),
          f(hopStream.ttfb),
          signed(hopStream.ttfb - directStream.ttfb),
          '',
          '',
        ])
        rows.push([
          `${transport} stream 50 chunks p50 ms`,
          f(directStream.total),
          f(hopStream.total),
          signed(hopStream.total - directStream.total),
          '',
          '',
        ])
      } finally {
        await a.stop()
        await b.stop()
      }
    }
    printTable(rows)
    console.log('')
    const bulk: string[][] = [
      ['one stream, MB/s', 'plain TCP', 'libp2p stream', '/gate/http body', 'Gate / plain TCP'],
    ]
    const tcp = await plainTcpBulk()
    for (const transport of TRANSPORTS) {
      process.stderr.write(`${transport} bulk…\n`)
      const raw = await libp2pBulk(transport)
      const gate = await gateBulk(transport)
      bulk.push([transport, f(tcp, 0), f(raw, 0), f(gate, 0), ratio(gate, tcp)])
    }
    printTable(bulk)
    console.log('')
    for (const transport of TRANSPORTS) {
      const { ok, peak, perExchangeKb } = await manyStreams(transport)
      console.log(
        `${transport}: ${ok}/${OPEN_STREAMS} /gate/http exchanges started at once over one connection completed; at most ${peak} open together at the server; ~${perExchangeKb.toFixed(1)} KB of JS memory per exchange in flight (both ends, one process)`,
      )
    }
  } finally {
    await engine.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

/** Two libp2p nodes, the client connected to the server on `transport`; stopped on dispose. */
async function nodePair(transport: Transport) {
  const [server, client] = await Promise.all(
    [0, 1].map(() => createP2PNode({ identity: generateIdentity(), host: '127.0.0.1', port: 0 })),
  )
  if (!server || !client) throw new Error('unreachable')
  const address = server
    .getMultiaddrs()
    .find((ma) => ma.toString().includes(transport === 'quic' ? '/quic-v1/' : '/tcp/'))
  if (!address) throw new Error(`no ${transport} address`)
  const connection = await client.dial(address, { force: true })
  return {
    server,
    connection,
    [Symbol.asyncDispose]: async () => {
      await Promise.all([server.stop(), client.stop()])
    },
  }
}

/**
 * Two nodes answering a bare libp2p exchange, a new stream each (~600 B request, ~600 B answer);
 * `measure(c)` runs it at concurrency `c` for DURATION_S after a one-second warm-up.
 */
async function bareExchange(
  transport: Transport,
): Promise<{ measure(c: number): Promise<LoadResult>; [Symbol.asyncDispose](): Promise<void> }> {
  const pair = await nodePair(transport)
  const answer = new Uint8Array(EXCHANGE_BYTES)
  await pair.server.handle(
    ECHO,
    (stream) => {
      stream.addEventListener('remoteCloseWrite', () => {
        stream.send(answer)
        void stream.close().catch(() => {})
      })
    },
    { maxInboundStreams: 1024 },
  )
  const request = new Uint8Array(EXCHANGE_BYTES)
  const one = async (): Promise<number> => {
    const start = performance.now()
    const stream = await pair.connection.newStream(ECHO, { maxOutboundStreams: 1024 })
    const received = readAll(stream)
    stream.send(request)
    await stream.close()
    if ((await received) !== EXCHANGE_BYTES) throw new Error('short answer')
    return performance.now() - start
  }
  const measure = async (c: number): Promise<LoadResult> => {
    for (const until = performance.now() + 1000; performance.now() < until; ) await one() // warm-up
    const latencies: number[] = []
    const end = performance.now() + DURATION_S * 1000
    await Promise.all(
      Array.from({ length: c }, async () => {
        while (performance.now() < end) latencies.push(await one())
      }),
    )
    return {
      rps: latencies.length / DURATION_S,
      p50: median(latencies),
      p99: percentile(latencies, 0.99),
      errors: 0,
    }
  }
  return { measure, [Symbol.asyncDispose]: () => pair[Symbol.asyncDispose]() }
}

/**
 * OPEN_STREAMS `/gate/http` exchanges started at once over one connection; the server holds each
 * answer for HOLD_MS, so many are open together. Reports how many completed, the most open at the
 * server at one time (the transport may queue streams: QUIC caps concurrent streams per
 * connection), and the memory per exchange in flight: JS heap and external memory after a full
 * GC, before the exchanges and while all of them are in flight (native buffers of the QUIC
 * transport are not counted; the resident set was too noisy to use here).
 */
async function manyStreams(
  transport: Transport,
): Promise<{ ok: number; peak: number; perExchangeKb: number }> {
  await using pair = await nodePair(transport)
  const limits = {
    maxInboundStreams: MAX_STREAMS_PER_CONNECTION,
    maxOutboundStreams: MAX_STREAMS_PER_CONNECTION,
  }
  let open = 0
  let peak = 0
  const before = await memory()
  await pair.server.handle(
    HTTP_PROTOCOL,
    httpStreamHandler(
      async (_request, response) => {
        peak = Math.max(peak, ++open)
        await sleep(HOLD_MS)
        open--
        await response.head({ status: 200, headers: {} })
        await response.data(new Uint8Array(EXCHANGE_BYTES))
        await response.end()
      },
      { maxBodyBytes: 4096 },
    ),
    limits,
  )
  let ok = 0
  const errors = new Map<string, number>()
  // Every stream the transport lets open is open well before the first answer goes out.
  const held = sleep(HOLD_MS * 0.6).then(memory)
  await Promise.all(
    Array.from({ length: OPEN_STREAMS }, async () => {
      const signal = AbortSignal.timeout(60_000)
      const head = { method: 'POST', path: '/v1/chat/completions', headers: {} }
      const body = new Uint8Array(EXCHANGE_BYTES)
      const response = await sendRequest(pair.connection, { head, body }, signal)
      let bytes = 0
      for await (const chunk of response.body) bytes += chunk.length
      if (response.head.status === 200 && bytes === EXCHANGE_BYTES) ok++
    }).map((p) =>
      p.catch((err: unknown) => {
        errors.set(String(err), (errors.get(String(err)) ?? 0) + 1)
      }),
    ),
  )
  for (const [message, n] of errors) console.log(`${transport}: ${n} exchanges failed: ${message}`)
  return { ok, peak, perExchangeKb: ((await held) - before) / 1024 / OPEN_STREAMS }
}

/**
 * JS heap plus external memory in bytes after full GCs (`--expose-gc`): a second one after a
 * pause, since buffers of earlier runs are freed by finalizers the first one queues.
 */
async function memory(): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('run bench/p2p.ts with node --expose-gc')
  gc()
  await sleep(100)
  gc()
  const { heapUsed, external } = process.memoryUsage()
  return heapUsed + external
}

/** MB/s of BULK_BYTES sent one way over a plain loopback TCP socket, until the receiver has them all. */
async function plainTcpBulk(): Promise<number> {
  const server = createServer((socket) => {
    socket.on('data', () => {})
    socket.on('end', () => socket.end('k'))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    const socket = connect((server.address() as AddressInfo).port, '127.0.0.1')
    await once(socket, 'connect')
    const start = performance.now()
    const acked = once(socket, 'data')
    for (let sent = 0; sent < BULK_BYTES; sent += BULK_CHUNK.length)
      if (!socket.write(BULK_CHUNK)) await once(socket, 'drain')
    socket.end()
    await acked
    return megabytesPerSecond(start)
  } finally {
    server.close()
  }
}

/** The same over one libp2p stream on `transport`, honouring its backpressure. */
async function libp2pBulk(transport: Transport): Promise<number> {
  await using pair = await nodePair(transport)
  await pair.server.handle(SINK, (stream) => {
    stream.addEventListener('message', () => {}) // read (and drop): unread data would reset the stream
    stream.addEventListener('remoteCloseWrite', () => {
      stream.send(Uint8Array.of(1))
      void stream.close().catch(() => {})
    })
  })
  const stream = await pair.connection.newStream(SINK)
  const start = performance.now()
  const acked = readAll(stream)
  for (let sent = 0; sent < BULK_BYTES; sent += BULK_CHUNK.length) {
    if (stream.writableNeedsDrain) await drained(stream)
    stream.send(BULK_CHUNK)
  }
  await stream.close()
  if ((await acked) !== 1) throw new Error('no acknowledgement')
  return megabytesPerSecond(start)
}

/** The same as a `/gate/http` response body: Gate's frames and flow control over libp2p. */
async function gateBulk(transport: Transport): Promise<number> {
  await using pair = await nodePair(transport)
  await pair.server.handle(
    HTTP_PROTOCOL,
    httpStreamHandler(
      async (_request, response) => {
        await response.head({ status: 200, headers: {} })
        for (let sent = 0; sent < BULK_BYTES; sent += BULK_CHUNK.length) await response.data(BULK_CHUNK)
        await response.end()
      },
      { maxBodyBytes: 4096 },
    ),
  )
  const start = performance.now()
  const stream = await pair.connection.newStream(HTTP_PROTOCOL)
  const head = { method: 'GET', path: '/bulk', headers: {} }
  const response = await sendRequest(stream, { head, body: new Uint8Array() }, AbortSignal.timeout(120_000))
  let bytes = 0
  for await (const chunk of response.body) bytes += chunk.length
  if (bytes !== BULK_BYTES) throw new Error(`short body: ${bytes} bytes`)
  return megabytesPerSecond(start)
}

function megabytesPerSecond(start: number): number {
  return BULK_BYTES / 1e6 / ((performance.now() - start) / 1000)
}

/** Bytes received until the stream closes. */
function readAll(stream: Stream): Promise<number> {
  return new Promise((resolve, reject) => {
    let n = 0
    stream.addEventListener('message', (event) => {
      n += event.data.byteLength
    })
    stream.addEventListener('close', (event) => (event.error ? reject(event.error) : resolve(n)))
  })
}

await main()
