/**
 * `pnpm soak [--minutes N]` (default 60): mixed load for N minutes against two daemons, each in its
 * own process as a user runs it (`gate daemon`, its own GATE_HOME): A with stand-in engine EA, B
 * with EB, each trusting the other. The load (`load.ts`) sends local requests to A, requests A
 * forwards to B (named by X-Target-Node, or routed by model), requests either can serve, requests
 * to B directly, streams, and clients that go away. Meanwhile, on a schedule that repeats every
 * PERIOD (shorter for short runs, so that a 2-minute run sees each at least once): EA fails in one
 * of four ways and recovers, B is restarted, an untrusted peer floods A with streams
 * (apps/cli/test/utils/flood.ts), and A's config is changed (`update_config`, then config.json).
 *
 * Every minute it prints requests sent, answered (by status), aborted on purpose, lost, cut and
 * stuck, and the resident memory of both daemons; at the end, the totals and the verdict against
 * the goals: nothing lost, cut or stuck, no 500, both daemons with no request left in flight, and
 * A's memory flat in the run's second half (within 10%; judged in runs of MEMORY_MIN_MINUTES or
 * more). Exit code 1 if any goal is missed.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { tryConnect } from '../apps/cli/src/context.ts'
import { exited, type GateHome, gateHome } from '../apps/cli/test/utils/gate.ts'
import { freePort, printTable, rssMb } from '../bench/lib.ts'
import { gatePaths } from '../packages/core/src/index.ts'
import type { RuntimeInfo } from '../packages/daemon/src/index.ts'
import { type FailMode, type FakeEngine, startFakeEngine } from '../packages/daemon/test/utils/fake-engine.ts'
import { waitFor } from '../packages/daemon/test/utils/wait.ts'
import type { RpcClient } from '../packages/rpc/src/index.ts'
import { addTally, emptyTally, Load, MODELS, type Tally } from './load.ts'

const FLOOD = fileURLToPath(new URL('../apps/cli/test/utils/flood.ts', import.meta.url))
/** @default 60 */
const DEFAULT_MINUTES = 60
/** The schedule's period in a long run: each event comes back this often. @default 10 min */
const PERIOD_S = 600
/** The provider fails this often, for FAIL_S each time. */
const FAIL_EVERY_S = 60
const FAIL_S = 15
const FAIL_MODES: FailMode[] = ['hang', 'close-mid-stream', 'status503', 'close-before-headers']
/** A request with no whole answer by then is stuck: well past the daemons' request_timeout. */
const REQUEST_TIMEOUT_MS = 30_000
const WORKERS = 6
const MAX_PAUSE_MS = 40
/** Untrusted connections the flood opens to A. */
const FLOOD_CONNECTIONS = 8
/** A's resident memory in the run's second half stays within this share of its lowest. */
const FLAT_SHARE = 0.1
/**
 * Shortest run whose memory is judged: in less, the first half is no warm-up (the first floods
 * and restarts still raise the high-water mark) and the second has too few samples to be flat.
 */
const MEMORY_MIN_MINUTES = 10

const { values } = parseArgs({ options: { minutes: { type: 'string' } } })
const minutes = Number(values.minutes ?? DEFAULT_MINUTES)
if (!Number.isFinite(minutes) || minutes <= 0) {
  console.error(`pnpm soak: --minutes takes a positive number, got "${values.minutes}"`)
  process.exit(2)
}
const durationS = minutes * 60
const period = Math.min(PERIOD_S, durationS / 2)

/** A daemon started with `gate daemon` in its home, and what it wrote to daemon.json. */
interface Node {
  home: GateHome
  child: ChildProcess
  rpc: RpcClient
  runtime: RuntimeInfo
  /** The end of its stderr, shown if it dies. */
  stderr: string
}

async function startNode(home: GateHome, name: string): Promise<Node> {
  const child = home.spawn(['daemon'])
  const node = { home, child, stderr: '' } as Node
  child.stderr?.on('data', (d) => {
    node.stderr = (node.stderr + d).slice(-4000)
  })
  await waitFor(
    async () => {
      const connection = await tryConnect(gatePaths(home.home))
      if (connection) Object.assign(node, connection)
      return connection !== null
    },
    { timeoutMs: 60_000, intervalMs: 100, label: `daemon ${name} to start` },
  )
  return node
}

async function stopNode(node: Node): Promise<void> {
  if (node.child.exitCode !== null || node.child.signalCode !== null) return
  node.child.kill('SIGTERM')
  await exited(node.child, 30_000)
}

/** A base URL's `/v1/models` lists `model`. */
async function serves(url: string, model: string): Promise<boolean> {
  const res = await fetch(`${url}/v1/models`).catch(() => null)
  return res?.ok === true && (await res.text()).includes(`"${model}"`)
}

const urlOf = (node: Node) => `http://127.0.0.1:${node.runtime.http.port}`
const tcpOf = (node: Node) => node.runtime.p2p.find((a) => a.includes('/tcp/')) as string

function config(engine: FakeEngine, network: Record<string, number> = {}): Record<string, unknown> {
  return {
    node: { log_level: 'warn', shutdown_grace: 5 },
    network,
    providers: [{ name: 'engine', kind: 'openai', url: `${engine.url}/v1`, health_check_interval: 2 }],
    security: { request_timeout: 5, rate_limit: { per_peer_rps: 1000, burst: 2000 } },
  }
}

const engines = {
  a: await startFakeEngine({ models: MODELS.a, chunks: 8, chunkDelayMs: 15, record: false }),
  b: await startFakeEngine({ models: MODELS.b, chunks: 8, chunkDelayMs: 15, record: false }),
}
// B keeps its ports across restarts, so that A and the load find it again where it was.
const [httpB, controlB, p2pB] = [await freePort(), await freePort(), await freePort()]
const homes = {
  a: await gateHome(config(engines.a)),
  b: await gateHome(config(engines.b, { http_port: httpB, control_port: controlB, p2p_port: p2pB })),
}
const [a, initialB] = await Promise.all([startNode(homes.a, 'A'), startNode(homes.b, 'B')])
let b = initialB
await a.rpc.call('add_peer', { node_id: b.runtime.node_id, address: tcpOf(b) })
await b.rpc.call('add_peer', { node_id: a.runtime.node_id, address: tcpOf(a) })
await waitFor(async () => (await serves(urlOf(a), 'soak-a')) && (await serves(urlOf(a), 'soak-b')), {
  timeoutMs: 30_000,
  intervalMs: 200,
  label: "A to serve its engine's models and B's",
})

const load = new Load({
  a: urlOf(a),
  b: urlOf(b),
  nodeB: b.runtime.node_id,
  workers: WORKERS,
  timeoutMs: REQUEST_TIMEOUT_MS,
  maxPauseMs: MAX_PAUSE_MS,
})
/** What happened besides the load, per minute, for the report. */
const happenings: string[] = []
/** Events that went wrong (a restart that did not come back, a reload that did not apply). */
const problems: string[] = []
let restarting = false

/** EA fails in the next mode, and recovers FAIL_S later. */
async function failProvider(round: number): Promise<void> {
  const mode = FAIL_MODES[round % FAIL_MODES.length] as FailMode
  engines.a.fail = mode
  happenings.push(`EA ${mode}`)
  await sleep(FAIL_S * 1000)
  engines.a.fail = null
  happenings.push('EA back')
}

async function restartB(): Promise<void> {
  restarting = true
  const started = performance.now()
  await load.pauseB()
  await stopNode(b)
  b = await startNode(homes.b, 'B')
  await waitFor(() => serves(urlOf(b), 'soak-b'), {
    timeoutMs: 30_000,
    intervalMs: 200,
    label: 'B to serve again',
  })
  load.resumeB()
  restarting = false
  happenings.push(`B restarted (${((performance.now() - started) / 1000).toFixed(1)} s)`)
}

async function flood(): Promise<void> {
  const child = spawn(process.execPath, [FLOOD, tcpOf(a), String(FLOOD_CONNECTIONS)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let output = ''
  child.stdout.on('data', (d) => {
    output += d
  })
  try {
    await waitFor(() => output.includes('done'), { timeoutMs: 120_000, intervalMs: 200, label: 'the flood' })
    happenings.push(`flood (${/connections (\d+)/.exec(output)?.[1]} untrusted connections)`)
  } finally {
    child.kill('SIGKILL')
  }
}

/** Changes A's config through `update_config` (even rounds) or its file (odd), and sees it applied. */
async function reload(round: number): Promise<void> {
  const value = 32 + (round % 2)
  if (round % 2 === 0) {
    await a.rpc.call('update_config', { config: { security: { max_concurrent_requests: value } } })
  } else {
    const path = join(homes.a.home, 'config.json')
    const file = JSON.parse(await readFile(path, 'utf8'))
    file.security = { ...file.security, max_concurrent_requests: value }
    await writeFile(`${path}.tmp`, JSON.stringify(file, null, 2))
    await rename(`${path}.tmp`, path)
  }
  await waitFor(
    async () => {
      const { config } = await a.rpc.call('get_config')
      return (
        (config as { security: { max_concurrent_requests: number } }).security.max_concurrent_requests ===
        value
      )
    },
    { timeoutMs: 10_000, intervalMs: 100, label: 'the config change to apply' },
  )
  happenings.push(`config reloaded (${round % 2 === 0 ? 'update_config' : 'config.json'})`)
}

/** Runs `event` at each of `times` (seconds into the run), one at a time, recording a failure. */
async function schedule(
  times: number[],
  event: (round: number) => Promise<void>,
  name: string,
): Promise<void> {
  for (const [round, at] of times.entries()) {
    const wait = started + at * 1000 - performance.now()
    if (wait > 0) await sleep(wait)
    if (stopping) return
    await event(round).catch((err: unknown) => {
      problems.push(`${name} failed: ${err instanceof Error ? err.message : String(err)}`)
    })
  }
}

/** Seconds into the run at which an event with this period and offset comes, leaving the last 15 s quiet. */
function times(every: number, offset: number): number[] {
  const out: number[] = []
  for (let t = offset; t < durationS - 15; t += every) out.push(t)
  return out
}

interface Sample {
  minute: number
  tally: Tally
  rssA: number
  rssB: number | null
  heapA: number
  events: string
}

async function heapMb(node: Node): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${node.runtime.control.port}/metrics`)).text()
  return Number(/^nodejs_heap_size_used_bytes (\S+)/m.exec(text)?.[1]) / 2 ** 20
}

async function sample(minute: number): Promise<Sample> {
  const s: Sample = {
    minute,
    tally: load.take(),
    rssA: (await rssMb(a.runtime.pid)).total,
    rssB: restarting ? null : ((await rssMb(b.runtime.pid).catch(() => null))?.total ?? null),
    heapA: await heapMb(a),
    events: happenings.splice(0).join(', '),
  }
  const t = s.tally
  process.stderr.write(
    `minute ${minute}: ${t.sent} sent, ${answeredText(t.answered)}, ${t.aborted} aborted, ${t.lost} lost, ` +
      `${t.cut} cut, ${t.stuck} stuck; RSS A ${s.rssA.toFixed(0)} MB, B ${s.rssB?.toFixed(0) ?? '-'} MB` +
      `${s.events ? `; ${s.events}` : ''}\n`,
  )
  return s
}

function answeredText(answered: Map<string, number>): string {
  return (
    [...answered]
      .sort()
      .map(([status, n]) => `${n}×${status}`)
      .join(' ') || 'none answered'
  )
}

let stopping = false
const started = performance.now()
load.start()
const events = Promise.all([
  schedule(times(FAIL_EVERY_S, FAIL_EVERY_S / 3), failProvider, 'provider failure'),
  schedule(times(period, period / 2), restartB, 'restart of B'),
  schedule(times(period, period / 4), flood, 'flood'),
  schedule(times(period / 2, (period * 3) / 8), reload, 'config reload'),
])
const samples: Sample[] = []
for (let minute = 1; minute <= Math.ceil(minutes); minute++) {
  const wait = started + Math.min(minute * 60, durationS) * 1000 - performance.now()
  if (wait > 0) await sleep(wait)
  samples.push(await sample(minute))
}
stopping = true
await load.stop()
await events
const rest = load.take()
const last = samples.at(-1)
if (last) addTally(last.tally, rest)

// Every request is over on the client side: none may be left in flight in either daemon.
const inFlight = { a: -1, b: -1 }
await waitFor(
  async () => {
    inFlight.a = (await a.rpc.call('node_status')).active_requests
    inFlight.b = (await b.rpc.call('node_status')).active_requests
    return inFlight.a === 0 && inFlight.b === 0
  },
  { timeoutMs: 10_000, intervalMs: 100 },
).catch(() => {})
const running = (node: Node) => node.child.exitCode === null && node.child.signalCode === null
const alive = running(a) && running(b)

await Promise.all([stopNode(a), stopNode(b)])
await Promise.all([
  homes.a[Symbol.asyncDispose](),
  homes.b[Symbol.asyncDispose](),
  engines.a.stop(),
  engines.b.stop(),
])

const total = emptyTally()
for (const s of samples) addTally(total, s.tally)
printTable([
  [
    'minute',
    'sent',
    'answered',
    'aborted',
    'lost',
    'cut',
    'stuck',
    'RSS A MB',
    'RSS B MB',
    'heap A MB',
    'events',
  ],
  ...samples.map((s) => [
    String(s.minute),
    String(s.tally.sent),
    answeredText(s.tally.answered),
    String(s.tally.aborted),
    String(s.tally.lost),
    String(s.tally.cut),
    String(s.tally.stuck),
    s.rssA.toFixed(0),
    s.rssB?.toFixed(0) ?? '-',
    s.heapA.toFixed(0),
    s.events,
  ]),
])
const second = samples.filter((s) => s.minute >= minutes / 2).map((s) => s.rssA)
const spread = (Math.max(...second) - Math.min(...second)) / Math.min(...second)
const status500 = total.answered.get('500') ?? 0
const verdict: Array<[string, boolean]> = [
  [
    `requests: ${total.sent} sent, ${answeredText(total.answered)}, ${total.aborted} aborted on purpose`,
    true,
  ],
  [`lost: ${total.lost}`, total.lost === 0],
  [`cut: ${total.cut}`, total.cut === 0],
  [`stuck: ${total.stuck}`, total.stuck === 0],
  [`answered 500: ${status500}`, status500 === 0],
  [`in flight at the end: A ${inFlight.a}, B ${inFlight.b}`, inFlight.a === 0 && inFlight.b === 0],
  [`both daemons up to the end (B restarted only by the soak)`, alive],
  [
    `A's RSS in the second half: ${Math.min(...second).toFixed(0)}–${Math.max(...second).toFixed(0)} MB ` +
      `(${(spread * 100).toFixed(1)}%, at most ${FLAT_SHARE * 100}%` +
      `${minutes < MEMORY_MIN_MINUTES ? `; not judged in a run under ${MEMORY_MIN_MINUTES} minutes` : ''})`,
    spread <= FLAT_SHARE || minutes < MEMORY_MIN_MINUTES,
  ],
  ...problems.map((p): [string, boolean] => [p, false]),
]
console.log(`\nsoak, ${minutes} min:`)
for (const [line, ok] of verdict) console.log(`${ok ? 'ok  ' : 'FAIL'} ${line}`)
if (total.examples.length > 0)
  console.log(`\nfirst lost, cut or stuck requests:\n${total.examples.join('\n')}`)
if (!alive) console.log(`\nstderr of the daemons:\nA: ${a.stderr}\nB: ${b.stderr}`)
process.exitCode = verdict.every(([, ok]) => ok) ? 0 : 1
