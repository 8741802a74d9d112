/**
 * `pnpm bench` (part 4): what `gate relay` costs a node's public HTTPS. The same node API over
 * TLS, four ways, in one run:
 *
 * - direct: TLS with the node's own certificate in front of the daemon's HTTP port, terminated in
 *   this process. The node has no TLS port of its own (it terminates relayed TLS inside
 *   `/gate/tls` streams, then serves the same pipeline): this stands in for one;
 * - nginx: `stream { ssl_preread }` in front of that, routing TLS by name without terminating it;
 * - relay TCP, relay QUIC: `gate relay` in its own process, the node registered with it over TCP
 *   or over QUIC, reached at `https://<node-id>.gate.test:<relay TLS port>`.
 *
 * On each, in BENCH_ROUNDS interleaved rounds (default 3): a 50 MB download (MB/s, median; timed
 * from the answer's head, since the daemon holds a non-streaming answer whole before it sends
 * it), new-connection latency (a full TLS handshake and `GET /v1/models`, 200 sequential
 * connections a round) and an SSE stream's chunk latency (a chunk every 5 ms for BENCH_DURATION
 * seconds, default 5, each stamped by the engine when sent: the engine runs in this process, so
 * one clock), its first chunk apart. Beside the times, the CPU the daemon and the relay spent per
 * download and per connection (from /proc: on this shared machine, steadier than the times; on
 * the direct and nginx paths TLS is this process's work, not the daemon's).
 *
 * Then BENCH_RELAY_NODES (default 10,000) idle nodes register with a fresh relay from child
 * processes (`bench/idle-nodes.ts`), for at most REGISTRATION_LIMIT_MS, and are held
 * SETTLE_MS: how long registering took, how many the relay still holds, its resident memory
 * per node and its CPU while they idle.
 *
 * Needs nginx's stream module (`apt-get install -y nginx libnginx-mod-stream`). Everything binds
 * to 127.0.0.1 (the idle nodes dial from 127.1.x.x) on random ports, and is stopped at the end.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { request } from 'node:https'
import { type AddressInfo, connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { createServer as createTlsServer } from 'node:tls'
import { fileURLToPath } from 'node:url'
import type { RelayRuntime } from '../packages/relay/src/index.ts'
import type { PublicStatus } from '../packages/rpc/src/index.ts'
import {
  cpuSeconds,
  DURATION_S,
  freePort,
  GATE_BIN,
  type GateProcess,
  interleavedRuns,
  MODEL,
  median,
  percentile,
  printTable,
  requireTools,
  rssMb,
  run,
  startGate,
  startNginx,
  stopChild,
  waitUntil,
} from './lib.ts'

const DOMAIN = 'gate.test'
/** Relayed requests need an API key; every path sends it, so all carry the same request. */
const API_KEY = 'sk-bench-relay'
/** "50 MB": MB/s here are 10^6 bytes a second. */
const DOWNLOAD_BYTES = 50_000_000
const DOWNLOADS_PER_ROUND = 3
const CONNECTIONS_PER_ROUND = 200
const SSE_INTERVAL_MS = 5
const IDLE_NODES = Number(process.env.BENCH_RELAY_NODES ?? 10_000)
if (!Number.isInteger(IDLE_NODES) || IDLE_NODES < 1) {
  throw new Error(`BENCH_RELAY_NODES must be a whole number ≥ 1, got "${process.env.BENCH_RELAY_NODES}"`)
}
/** Idle nodes per child process (each a libp2p peer: ~0.4 MB of the child's memory). */
const NODES_PER_PROCESS = 1000
/** Files a relay opens besides a socket per node: listeners, logs, libuv's own. */
const FD_MARGIN = 256
/** How long a relay sits before its memory is read: after start, and with the idle nodes (two rounds of libp2p's 10 s pings). */
const SETTLE_MS = 25_000
/** How long the idle nodes may take to register; past it the relay is measured with those that did. */
const REGISTRATION_LIMIT_MS = 300_000
const IDLE_NODES_SCRIPT = fileURLToPath(new URL('./idle-nodes.ts', import.meta.url))

type Path = 'direct' | 'nginx' | 'relay TCP' | 'relay QUIC'
const PATHS: Path[] = ['direct', 'nginx', 'relay TCP', 'relay QUIC']

/** Where a client connects to reach the node one way. */
interface Target {
  port: number
  /** SNI, and the name the node's certificate is for. */
  servername: string
  /** The daemon takes loopback names on its own port, and only its public name through a relay. */
  host: string
  /** The node's self-signed certificate. */
  ca: string
  /** The processes on the way whose CPU is counted: the node's daemon, and the relay if any. */
  pids: { node: number; relay: number | null }
}

/** CPU ms spent on one download or connection, on average over a round; the relay's where there is one. */
interface Cpu {
  node: number
  relay: number | null
}

/** One path's samples over all rounds. */
interface Samples {
  /** MB/s of each download. */
  downloads: number[]
  /** ms of each new connection and its request. */
  connections: number[]
  /** ms from the engine's send to this client's receipt, of each SSE chunk. */
  chunks: number[]
  /** The same for each stream's first chunk. */
  firstChunks: number[]
  /** A round's CPU per download, and per new connection. */
  downloadCpu: Cpu[]
  connectionCpu: Cpu[]
}

/** What a child process of idle nodes reports (bench/idle-nodes.ts). */
interface NodesReport {
  /** Nodes it has registered so far. */
  registered: number
  /** Requests to the relay that failed (RelayLink tries again, backing off). */
  retries: number
  /** Connections to the relay that dropped (the node registers again). */
  drops: number
  /** All of its nodes are registered. */
  done: boolean
}

interface IdleResult {
  /** Nodes registered within REGISTRATION_LIMIT_MS, and the failed requests on the way. */
  registered: number
  retries: number
  seconds: number
  /** The most active at the relay at once while they registered, and after the hold. */
  peak: number
  active: number
  /** Connections to the relay that dropped during the hold. */
  drops: number
  before: Rss
  after: Rss
  /** Share of one core the relay used before the nodes came, and while they idled. */
  cpuAlone: number
  cpu: number
}

type Rss = Awaited<ReturnType<typeof rssMb>>

async function main(): Promise<void> {
  await requireTools(['nginx'])
  const hard = (await run('sh', ['-c', 'ulimit -Hn'])).stdout.trim()
  if (hard !== 'unlimited' && Number(hard) < IDLE_NODES + FD_MARGIN) {
    throw new Error(
      `a relay holding ${IDLE_NODES} nodes needs ${IDLE_NODES + FD_MARGIN} open files, the hard limit is ${hard}: raise it or set BENCH_RELAY_NODES`,
    )
  }
  const dir = await mkdtemp(join(tmpdir(), 'gate-bench-relay-'))
  try {
    const samples = await measurePaths(dir)
    const idle = await holdIdleNodes(dir)
    report(samples, idle)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** The four paths to one node's API, measured in interleaved rounds; everything stopped after. */
async function measurePaths(dir: string): Promise<Record<Path, Samples>> {
  await using stack = new AsyncDisposableStack()
  const engine = await startEngine()
  stack.defer(engine.stop)
  const relay = await startRelay(dir, 'relay')
  stack.defer(relay.stop)
  const addressOn = (transport: string) => {
    const address = relay.runtime.p2p.find((a) => a.includes(transport))
    if (!address) throw new Error(`the relay has no ${transport} address`)
    return address
  }
  const startNode = async (name: string, address: string) => {
    const gate = await startGate(
      dir,
      name,
      {
        providers: [{ name: 'engine', kind: 'openai', url: engine.url }],
        security: { api_keys: [API_KEY] },
        relay: { addresses: [address] },
      },
      MODEL,
    )
    stack.defer(gate.stop)
    await untilActive(gate)
    const ca = await readFile(join(dir, name, 'certs', 'node.crt'), 'utf8')
    return { gate, name: `${gate.nodeId}.${DOMAIN}`, ca }
  }
  const overTcp = await startNode('node-tcp', addressOn('/tcp/'))
  const overQuic = await startNode('node-quic', addressOn('/quic-v1/'))
  const terminator = await startTerminator(join(dir, 'node-tcp'), Number(new URL(overTcp.gate.url).port))
  stack.defer(terminator.stop)
  const nginxPort = await freePort()
  const local = { servername: overTcp.name, host: '127.0.0.1', ca: overTcp.ca }
  const pids = { node: overTcp.gate.pid, relay: null }
  const relayed = (node: typeof overTcp): Target => ({
    port: relay.runtime.tls.port,
    servername: node.name,
    host: node.name,
    ca: node.ca,
    pids: { node: node.gate.pid, relay: relay.runtime.pid },
  })
  const targets: Record<Path, Target> = {
    direct: { ...local, port: terminator.port, pids },
    nginx: { ...local, port: nginxPort, pids },
    'relay TCP': relayed(overTcp),
    'relay QUIC': relayed(overQuic),
  }
  const nginx = await startNginx(
    dir,
    {
      stream: `  server { listen 127.0.0.1:${nginxPort}; ssl_preread on; proxy_pass 127.0.0.1:${terminator.port}; }`,
    },
    () =>
      newConnection(targets.nginx).then(
        () => true,
        () => false,
      ),
  )
  stack.defer(nginx.stop)

  for (const path of PATHS) {
    process.stderr.write(`warm-up → ${path}…\n`)
    await download(targets[path])
    for (let i = 0; i < 20; i++) await newConnection(targets[path])
  }
  const runs = await interleavedRuns(
    'relay paths',
    PATHS.map((path) => () => measure(targets[path])),
  )
  return Object.fromEntries(
    PATHS.map((path, i) => {
      const rounds = runs[i] ?? []
      return [
        path,
        {
          downloads: rounds.flatMap((r) => r.downloads),
          connections: rounds.flatMap((r) => r.connections),
          chunks: rounds.flatMap((r) => r.chunks),
          firstChunks: rounds.flatMap((r) => r.firstChunks),
          downloadCpu: rounds.flatMap((r) => r.downloadCpu),
          connectionCpu: rounds.flatMap((r) => r.connectionCpu),
        },
      ]
    }),
  ) as Record<Path, Samples>
}

/** One round on one path. */
async function measure(target: Target): Promise<Samples> {
  const [downloads, downloadCpu] = await repeat(target, DOWNLOADS_PER_ROUND, download)
  const [connections, connectionCpu] = await repeat(target, CONNECTIONS_PER_ROUND, newConnection)
  const chunks = await sseChunks(target)
  return {
    downloads,
    connections,
    chunks,
    firstChunks: chunks.slice(0, 1),
    downloadCpu: [downloadCpu],
    connectionCpu: [connectionCpu],
  }
}

/** `times` sequential runs of `one` on `target`, and the CPU the node and relay spent on each. */
async function repeat(
  target: Target,
  times: number,
  one: (target: Target) => Promise<number>,
): Promise<[number[], Cpu]> {
  const { node, relay } = target.pids
  const cpu = async () => [await cpuSeconds(node), relay === null ? 0 : await cpuSeconds(relay)] as const
  const before = await cpu()
  const values: number[] = []
  for (let i = 0; i < times; i++) values.push(await one(target))
  const after = await cpu()
  const each = (i: 0 | 1) => ((after[i] - before[i]) * 1000) / times
  return [values, { node: each(0), relay: relay === null ? null : each(1) }]
}

const chat = (content: string, stream = false) =>
  JSON.stringify({ model: MODEL, messages: [{ role: 'user', content }], stream })

/** One request on a new TLS connection (no agent: a full handshake each time); the answer unread. */
function send(target: Target, method: string, path: string, body?: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { host: target.host, authorization: `Bearer ${API_KEY}` }
    if (body !== undefined) headers['content-type'] = 'application/json'
    request(
      {
        host: '127.0.0.1',
        port: target.port,
        servername: target.servername,
        ca: target.ca,
        method,
        path,
        headers,
        agent: false,
      },
      resolve,
    )
      .on('error', reject)
      .end(body)
  })
}

/** Fails with the answer's start unless it is a 200. */
async function expectOk(res: IncomingMessage, what: string): Promise<void> {
  if (res.statusCode === 200) return
  let text = ''
  for await (const chunk of res) text += chunk
  throw new Error(`${what} answered ${res.statusCode}: ${text.slice(0, 200)}`)
}

/** MB/s of the 50 MB answer, from its head to its last byte; the bytes are dropped. */
async function download(target: Target): Promise<number> {
  const res = await send(target, 'POST', '/v1/chat/completions', chat('download'))
  const start = performance.now()
  await expectOk(res, 'the download')
  let bytes = 0
  for await (const chunk of res) bytes += (chunk as Buffer).length
  if (bytes !== DOWNLOAD_BYTES) throw new Error(`the download was ${bytes} bytes`)
  return DOWNLOAD_BYTES / 1e6 / ((performance.now() - start) / 1000)
}

/** ms from a new connection's start to the end of its one small answer. */
async function newConnection(target: Target): Promise<number> {
  const start = performance.now()
  const res = await send(target, 'GET', '/v1/models')
  await expectOk(res, '/v1/models')
  for await (const _ of res);
  return performance.now() - start
}

/** Each chunk's latency, in ms, over one stream. */
async function sseChunks(target: Target): Promise<number[]> {
  const res = await send(target, 'POST', '/v1/chat/completions', chat('tick', true))
  await expectOk(res, 'the stream')
  res.setEncoding('utf8')
  const latencies: number[] = []
  let pending = ''
  let done = false
  for await (const text of res) {
    const now = performance.now()
    const events = `${pending}${text}`.split('\n\n')
    pending = events.pop() ?? ''
    for (const event of events) {
      if (event === 'data: [DONE]') done = true
      if (!event.startsWith('data: {')) continue
      const chunk = JSON.parse(event.slice('data: '.length)) as {
        choices: Array<{ delta: { content: string } }>
      }
      latencies.push(now - Number(chunk.choices[0]?.delta.content))
    }
  }
  if (!done) throw new Error('the stream ended without [DONE]')
  return latencies
}

/** Waits until the node's relay routes its name to it. */
async function untilActive(gate: GateProcess): Promise<void> {
  await waitUntil(async () => {
    const { public: status } = (await gate.rpc('node_status')) as { public: PublicStatus | null }
    return status?.relays[0]?.state === 'active'
  }, "the node's registration with its relay")
}

/**
 * The stand-in engine, speaking OpenAI: `/v1/models`; for the message "download", a chat answer
 * DOWNLOAD_BYTES long; for `stream: true`, a chunk every SSE_INTERVAL_MS for DURATION_S carrying
 * the time it was sent (`performance.now()`); a small answer otherwise.
 */
async function startEngine(): Promise<{ url: string; stop(): Promise<void> }> {
  const completion = (content: string) =>
    `{"id":"bench","object":"chat.completion","created":0,"model":"${MODEL}","choices":[{"index":0,"message":{"role":"assistant","content":"${content}"},"finish_reason":"stop"}]}`
  const [head, tail] = completion('\0').split('\0') as [string, string]
  const big = Buffer.alloc(DOWNLOAD_BYTES, 'x')
  big.write(head, 0)
  big.write(tail, DOWNLOAD_BYTES - tail.length)
  const server = createHttpServer(async (req, res) => {
    if (req.url === '/v1/models') {
      return void res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ object: 'list', data: [{ id: MODEL, object: 'model' }] }))
    }
    let body = ''
    for await (const chunk of req) body += chunk
    const { stream, messages } = JSON.parse(body) as {
      stream?: boolean
      messages: Array<{ content: string }>
    }
    if (stream) return tick(res)
    const answer = messages[0]?.content === 'download' ? big : completion('hello')
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': answer.length }).end(answer)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  }
}

function tick(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  const end = performance.now() + DURATION_S * 1000
  const timer = setInterval(() => {
    const now = performance.now()
    if (now >= end) {
      clearInterval(timer)
      return void res.end('data: [DONE]\n\n')
    }
    const chunk = {
      object: 'chat.completion.chunk',
      model: MODEL,
      choices: [{ index: 0, delta: { content: `${now}` } }],
    }
    res.write(`data: ${JSON.stringify(chunk)}\n\n`)
  }, SSE_INTERVAL_MS)
  res.on('close', () => clearInterval(timer))
}

/**
 * "The node's TLS port": the node's certificate and key (ALPN http/1.1, as the node answers relayed
 * TLS) in front of its HTTP port, byte for byte.
 */
async function startTerminator(
  home: string,
  httpPort: number,
): Promise<{ port: number; stop(): Promise<void> }> {
  const [cert, key] = await Promise.all(['node.crt', 'node.key'].map((f) => readFile(join(home, 'certs', f))))
  // No Nagle, as the daemon's own HTTP server and nginx: a small write (an SSE chunk) goes out at once.
  const server = createTlsServer({ cert, key, ALPNProtocols: ['http/1.1'], noDelay: true }, (tls) => {
    pipeline(tls, connect({ port: httpPort, host: '127.0.0.1', noDelay: true }), tls, () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  }
}

/**
 * `gate relay` in `<dir>/<name>`, as its own process (its memory is its own), on loopback and
 * random ports, its limits far above what this benchmark does: the relay is measured, not them.
 */
async function startRelay(
  dir: string,
  name: string,
): Promise<{ runtime: RelayRuntime; stop(): Promise<void> }> {
  const home = join(dir, name)
  await mkdir(home, { recursive: true })
  const config = {
    network: { p2p_port: 0, p2p_host: '127.0.0.1' },
    relay_server: {
      domain: DOMAIN,
      public_ip: '127.0.0.1',
      tls_host: '127.0.0.1',
      tls_port: 0,
      dns: { host: '127.0.0.1', port: 0 },
      metrics: { host: '127.0.0.1', port: 0 },
      limits: { max_bytes_per_second_per_node: 1e12, accepts_per_second_per_ip: 1e6 },
    },
  }
  await writeFile(join(home, 'relay.json'), JSON.stringify(config))
  const child = spawn(...withFdLimit(GATE_BIN, ['relay']), {
    env: { ...process.env, GATE_HOME: home, GATE_PASSPHRASE: 'bench' },
    stdio: 'ignore',
  })
  const runtimeOf = async (): Promise<RelayRuntime | null> =>
    JSON.parse(await readFile(join(home, 'relay-runtime.json'), 'utf8').catch(() => 'null'))
  await waitUntil(async () => (await runtimeOf()) !== null, `gate relay ${name}`)
  const runtime = (await runtimeOf()) as RelayRuntime
  return { runtime, stop: () => stopChild(child, runtime.pid) }
}

/** A command run by a shell that first raises its open-file limit to the hard one: a socket per node. */
function withFdLimit(command: string, args: string[]): [string, string[]] {
  return ['sh', ['-c', 'ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"', command, ...args]]
}

/** A value from a relay's /metrics, by its full name (labels included). */
async function relayMetric(runtime: RelayRuntime, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${runtime.metrics.port}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  return Number(line?.slice(name.length + 1))
}

/**
 * IDLE_NODES nodes register with a fresh relay, NODES_PER_PROCESS to a child process, and stay
 * connected for SETTLE_MS: the relay's memory before and after, and its CPU while they idle.
 */
async function holdIdleNodes(dir: string): Promise<IdleResult> {
  await using stack = new AsyncDisposableStack()
  const relay = await startRelay(dir, 'relay-idle')
  stack.defer(relay.stop)
  const { runtime } = relay
  /** Share of a core the relay uses over SETTLE_MS from now. */
  const cpuOver = async () => {
    const [cpu, start] = [await cpuSeconds(runtime.pid), performance.now()]
    await sleep(SETTLE_MS)
    return ((await cpuSeconds(runtime.pid)) - cpu) / ((performance.now() - start) / 1000)
  }
  const cpuAlone = await cpuOver()
  const before = await rssMb(runtime.pid)
  const address = runtime.p2p.find((a) => a.includes('/tcp/')) as string
  process.stderr.write(`${IDLE_NODES} idle nodes registering…\n`)
  const started = performance.now()
  const reports = new Map<ChildProcess, NodesReport>()
  let failure: Error | undefined
  for (let first = 0; first < IDLE_NODES; first += NODES_PER_PROCESS) {
    const count = Math.min(NODES_PER_PROCESS, IDLE_NODES - first)
    const child: ChildProcess = spawn(
      ...withFdLimit(process.execPath, [IDLE_NODES_SCRIPT, address, String(count), String(first)]),
      { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
    )
    stack.defer(() => stopChild(child))
    child.on('message', (report: NodesReport) => reports.set(child, report))
    child.once('exit', (code) => {
      if (!reports.get(child)?.done) failure ??= new Error(`idle nodes ${first}…: exited (${code})`)
    })
  }
  const processes = Math.ceil(IDLE_NODES / NODES_PER_PROCESS)
  const total = (key: 'registered' | 'retries' | 'drops') =>
    [...reports.values()].reduce((sum, report) => sum + report[key], 0)
  const activeAtRelay = () => relayMetric(runtime, 'gate_relay_registrations{state="active"}')
  let complete = false
  let peak = 0
  for (let second = 1; !complete && performance.now() - started < REGISTRATION_LIMIT_MS; second++) {
    await sleep(1000)
    if (failure) throw failure
    complete = reports.size === processes && [...reports.values()].every((r) => r.done)
    if (second % 10 !== 0) continue
    const active = await activeAtRelay()
    peak = Math.max(peak, active)
    process.stderr.write(`  ${total('registered')} registered, ${active} active at the relay…\n`)
  }
  const seconds = (performance.now() - started) / 1000
  const registered = total('registered')
  process.stderr.write(`holding them ${SETTLE_MS / 1000} s…\n`)
  const [retries, drops] = [total('retries'), total('drops')]
  const cpu = await cpuOver()
  return {
    registered,
    retries,
    seconds,
    drops: total('drops') - drops,
    peak,
    active: await activeAtRelay(),
    before,
    after: await rssMb(runtime.pid),
    cpuAlone,
    cpu,
  }
}

function report(samples: Record<Path, Samples>, idle: IdleResult): void {
  const mbps = (p: Path) => median(samples[p].downloads)
  const connection = (p: Path, q: number) => percentile(samples[p].connections, q)
  const chunk = (p: Path, q: number) => percentile(samples[p].chunks, q)
  const row = (label: string, value: (p: Path) => string) => [label, ...PATHS.map(value)]
  const f = (n: number, digits = 3) => n.toFixed(digits)
  const added = (n: number) => `${n < 0 ? '' : '+'}${f(n)}`
  /** The median over rounds. */
  const cpu = (p: Path, of: 'downloadCpu' | 'connectionCpu', who: keyof Cpu, digits: number) => {
    const values = samples[p][of].map((c) => c[who])
    return values.some((v) => v === null) ? '' : f(median(values as number[]), digits)
  }
  printTable([
    ['', ...PATHS],
    row('50 MB download MB/s', (p) => f(mbps(p), 0)),
    row('  × nginx', (p) => `${f(mbps(p) / mbps('nginx'), 2)}×`),
    row('  node CPU ms', (p) => cpu(p, 'downloadCpu', 'node', 0)),
    row('  relay CPU ms', (p) => cpu(p, 'downloadCpu', 'relay', 0)),
    row('new connection p50 ms', (p) => f(connection(p, 0.5))),
    row('new connection p99 ms', (p) => f(connection(p, 0.99))),
    row('  p50 added to direct', (p) =>
      p === 'direct' ? '' : added(connection(p, 0.5) - connection('direct', 0.5)),
    ),
    row('  node CPU ms', (p) => cpu(p, 'connectionCpu', 'node', 2)),
    row('  relay CPU ms', (p) => cpu(p, 'connectionCpu', 'relay', 2)),
    row('SSE chunk p50 ms', (p) => f(chunk(p, 0.5))),
    row('SSE chunk p99 ms', (p) => f(chunk(p, 0.99))),
    row('SSE first chunk ms', (p) => f(median(samples[p].firstChunks))),
  ])
  const counts = samples.direct
  console.log(
    `\n${counts.downloads.length} downloads, ${counts.connections.length} new connections and ${counts.chunks.length} SSE chunks a path.` +
      `\nnginx ssl_preread here: ${f(mbps('nginx') / mbps('direct'), 2)}× of direct throughput, ${added(connection('nginx', 0.5) - connection('direct', 0.5))} ms per new connection (the issue's anchors: 0.93×, +0.45 ms).`,
  )
  const held = Math.max(1, idle.active)
  const perNodeKb = ((idle.after.total - idle.before.total) * 1024) / held
  const perNodeAnonKb = ((idle.after.anon - idle.before.anon) * 1024) / held
  const limited =
    idle.registered < IDLE_NODES ? ` (stopped at the ${REGISTRATION_LIMIT_MS / 1000} s limit)` : ''
  console.log(
    `\n${idle.registered}/${IDLE_NODES} idle nodes registered over TCP in ${f(idle.seconds, 1)} s${limited}: ${f(idle.registered / idle.seconds, 0)}/s, ${idle.retries} failed requests retried, at most ${Math.max(idle.peak, idle.active)} active at the relay at once.` +
      `\nAfter ${SETTLE_MS / 1000} s idle: ${idle.active} active, ${idle.drops} connections dropped; ` +
      `relay RSS ${f(idle.before.total, 0)} → ${f(idle.after.total, 0)} MB, ${f(perNodeKb, 1)} KB a node (${f(perNodeAnonKb, 1)} KB anonymous); ` +
      `relay CPU ${f(idle.cpu * 100, 0)}% of a core, ${f(idle.cpuAlone * 100, 0)}% before they came: ≈ ${f(held / (idle.cpu - idle.cpuAlone), 0)} idle nodes a core (libp2p's connection monitor pings each connection both ways every 10 s).`,
  )

  const goals: Array<[string, boolean]> = [
    [
      `relay TCP throughput ≥ 0.5× nginx ssl_preread (${f(mbps('relay TCP') / mbps('nginx'), 2)}×)`,
      mbps('relay TCP') >= 0.5 * mbps('nginx'),
    ],
    ...(['relay TCP', 'relay QUIC'] as const).map((p): [string, boolean] => {
      const more = connection(p, 0.5) - connection('direct', 0.5)
      return [`${p}: ≤ 2 ms added per new connection, p50 (${added(more)} ms)`, more <= 2]
    }),
    [
      `${IDLE_NODES} idle registered nodes held by one relay (${idle.active} active, ${idle.drops} dropped, ${f(perNodeKb, 1)} KB each)`,
      idle.active === IDLE_NODES && idle.drops === 0,
    ],
  ]
  console.log('\ngoals:')
  for (const [label, met] of goals) console.log(`  ${met ? '✓' : '✗'} ${label}`)
}

await main()
