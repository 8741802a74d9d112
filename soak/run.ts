/**
 * `pnpm soak [--minutes N]` (default 60): mixed load for N minutes against two daemons, each in its
 * own process as a user runs it (`gate daemon`, its own GATE_HOME): A with stand-in engine EA, B
 * with EB, each trusting the other. The load (`load.ts`) sends local requests to A, requests A
 * forwards to B (named by X-Target-Node, or routed by model), requests either can serve, requests
 * to B directly, streams, and clients that go away. Meanwhile, on a schedule that repeats every
 * PERIOD_S (half the run in a short one, so that a 2-minute run sees each event twice): EA fails
 * in one of four ways and recovers (every minute), B is restarted, an untrusted peer floods A with
 * streams (apps/cli/test/utils/flood.ts), and A's config is changed (`update_config`, then
 * config.json).
 *
 * Every minute it prints requests sent, answered (by status), aborted on purpose, lost, cut and
 * stuck, and the resident memory of both daemons; at the end, the totals and the verdict against
 * the goals: nothing lost, cut or stuck, no 500, no request left in flight in either daemon, both
 * up, and A's memory flat in the run's second half (within 10%; judged in runs of
 * MEMORY_MIN_MINUTES or more; B restarts, so only its figures are shown). Exit code 1 if any goal
 * is missed.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { readFile, rename, writeFile } from 'node:fs/promises'
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
/** The schedule's period in a long run: B restarts, a flood and two reloads in each. @default 10 min */
const PERIOD_S = 600
/** EA fails this often, for FAIL_S each time, in the next of FAIL_MODES. */
const FAIL_EVERY_S = 60
const FAIL_S = 15
const FAIL_MODES: FailMode[] = ['hang', 'close-mid-stream', 'status503', 'close-before-headers']
/** No event starts in the run's last seconds, so that it ends with everything settled. */
const QUIET_END_S = 15
/** A request with no whole answer by then is stuck: well past the daemons' request_timeout (5 s). */
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

/** A daemon started with `gate daemon` in its home, and what it wrote to daemon.json. */
interface DaemonProcess {
  child: ChildProcess
  rpc: RpcClient
  runtime: RuntimeInfo
  /** The end of its stderr, shown if it dies. */
  stderr: string
}

interface Sample {
  minute: number
  tally: Tally
  rssA: number
  /** Null while B restarts. */
  rssB: number | null
  heapA: number
  events: string
}

async function startDaemon(home: GateHome, name: string): Promise<DaemonProcess> {
  const child = home.spawn(['daemon'])
  const node = { child, stderr: '' } as DaemonProcess
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

function running(node: DaemonProcess): boolean {
  return node.child.exitCode === null && node.child.signalCode === null
}

async function stopDaemon(node: DaemonProcess): Promise<void> {
  if (!running(node)) return
  node.child.kill('SIGTERM')
  await exited(node.child, 30_000)
}

/** A base URL's `/v1/models` lists `model`. */
async function serves(url: string, model: string): Promise<boolean> {
  const res = await fetch(`${url}/v1/models`).catch(() => null)
  return res?.ok === true && (await res.text()).includes(`"${model}"`)
}

const urlOf = (node: DaemonProcess) => `http://127.0.0.1:${node.runtime.http.port}`
const tcpOf = (node: DaemonProcess) => node.runtime.p2p.find((a) => a.includes('/tcp/')) as string

async function heapMb(node: DaemonProcess): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${node.runtime.control.port}/metrics`)).text()
  return Number(/^nodejs_heap_size_used_bytes (\S+)/m.exec(text)?.[1]) / 2 ** 20
}

function configFor(engine: FakeEngine, network: Record<string, number> = {}): Record<string, unknown> {
  return {
    node: { log_level: 'warn', shutdown_grace: 5 },
    network,
    providers: [{ name: 'engine', kind: 'openai', url: `${engine.url}/v1`, health_check_interval: 2 }],
    security: { request_timeout: 5, rate_limit: { per_peer_rps: 1000, burst: 2000 } },
  }
}

function answeredText(answered: Map<string, number>): string {
  const parts = [...answered].sort().map(([status, n]) => `${n}×${status}`)
  return parts.join(' ') || 'none answered'
}

/** The two daemons, their engines, the load, and what happens to them on the schedule. */
class Soak {
  readonly #durationS: number
  readonly #period: number
  readonly #engines: { a: FakeEngine; b: FakeEngine }
  readonly #homeA: GateHome
  readonly #homeB: GateHome
  readonly a: DaemonProcess
  /** Replaced at each restart. */
  b: DaemonProcess
  readonly #load: Load
  /** What happened besides the load since the last sample. */
  readonly #happenings: string[] = []
  /** Events that went wrong (a restart that did not come back, a reload that did not apply). */
  readonly problems: string[] = []
  #restarting = false
  #stopping = false
  #started = 0

  private constructor(init: {
    minutes: number
    engines: { a: FakeEngine; b: FakeEngine }
    homeA: GateHome
    homeB: GateHome
    a: DaemonProcess
    b: DaemonProcess
  }) {
    this.#durationS = init.minutes * 60
    this.#period = Math.min(PERIOD_S, this.#durationS / 2)
    this.#engines = init.engines
    this.#homeA = init.homeA
    this.#homeB = init.homeB
    this.a = init.a
    this.b = init.b
    this.#load = new Load({
      a: urlOf(init.a),
      b: urlOf(init.b),
      nodeB: init.b.runtime.node_id,
      workers: WORKERS,
      timeoutMs: REQUEST_TIMEOUT_MS,
      maxPauseMs: MAX_PAUSE_MS,
    })
  }

  /** Starts everything; `cleanup` stops it all, whatever happens after. */
  static async start(minutes: number, cleanup: AsyncDisposableStack): Promise<Soak> {
    const engines = {
      a: await startFakeEngine({ models: MODELS.a, chunks: 8, chunkDelayMs: 15, record: false }),
      b: await startFakeEngine({ models: MODELS.b, chunks: 8, chunkDelayMs: 15, record: false }),
    }
    cleanup.defer(() => Promise.all([engines.a.stop(), engines.b.stop()]).then(() => {}))
    // B keeps its ports across restarts, so that A and the load find it again where it was.
    const [http, control, p2p] = [await freePort(), await freePort(), await freePort()]
    const homeA = cleanup.use(await gateHome(configFor(engines.a)))
    const homeB = cleanup.use(
      await gateHome(configFor(engines.b, { http_port: http, control_port: control, p2p_port: p2p })),
    )
    const a = await startDaemon(homeA, 'A')
    cleanup.defer(() => stopDaemon(a))
    let soak: Soak | undefined
    const b = await startDaemon(homeB, 'B')
    cleanup.defer(() => stopDaemon(soak?.b ?? b))
    await a.rpc.call('add_peer', { node_id: b.runtime.node_id, address: tcpOf(b) })
    await b.rpc.call('add_peer', { node_id: a.runtime.node_id, address: tcpOf(a) })
    await waitFor(async () => (await serves(urlOf(a), 'soak-a')) && (await serves(urlOf(a), 'soak-b')), {
      timeoutMs: 30_000,
      intervalMs: 200,
      label: "A to serve its engine's models and B's",
    })
    soak = new Soak({ minutes, engines, homeA, homeB, a, b })
    return soak
  }

  /** Runs the load and the schedule for the whole run; returns a sample a minute. */
  async run(): Promise<Sample[]> {
    const period = this.#period
    this.#started = performance.now()
    this.#load.start()
    const events = Promise.all([
      this.#schedule(this.#times(FAIL_EVERY_S, FAIL_EVERY_S / 3), (r) => this.#failProvider(r), 'EA failure'),
      this.#schedule(this.#times(period, period / 2), () => this.#restartB(), 'restart of B'),
      this.#schedule(this.#times(period, period / 4), () => this.#flood(), 'flood'),
      this.#schedule(this.#times(period / 2, (period * 3) / 8), (r) => this.#reload(r), 'config reload'),
    ])
    const samples: Sample[] = []
    for (let minute = 1; minute * 60 < this.#durationS + 60; minute++) {
      const wait = this.#started + Math.min(minute * 60, this.#durationS) * 1000 - performance.now()
      if (wait > 0) await sleep(wait)
      samples.push(await this.#sample(minute))
    }
    this.#stopping = true
    await this.#load.stop()
    await events
    const last = samples.at(-1)
    if (last) addTally(last.tally, this.#load.take())
    return samples
  }

  /** Requests still in flight in each daemon, once they had up to 10 s to settle. */
  async inFlight(): Promise<{ a: number; b: number }> {
    const count = { a: -1, b: -1 }
    await waitFor(
      async () => {
        count.a = (await this.a.rpc.call('node_status')).active_requests
        count.b = (await this.b.rpc.call('node_status')).active_requests
        return count.a === 0 && count.b === 0
      },
      { timeoutMs: 10_000, intervalMs: 100 },
    ).catch(() => {})
    return count
  }

  /** Runs `event` at each of `times` (seconds into the run), one at a time; a failure is a problem. */
  async #schedule(times: number[], event: (round: number) => Promise<void>, name: string): Promise<void> {
    for (const [round, at] of times.entries()) {
      const wait = this.#started + at * 1000 - performance.now()
      if (wait > 0) await sleep(wait)
      if (this.#stopping) return
      await event(round).catch((err: unknown) => {
        this.problems.push(`${name} failed: ${err instanceof Error ? err.message : String(err)}`)
      })
    }
  }

  /** Seconds into the run at which an event with this period and offset comes. */
  #times(every: number, offset: number): number[] {
    const out: number[] = []
    for (let t = offset; t < this.#durationS - QUIET_END_S; t += every) out.push(t)
    return out
  }

  async #failProvider(round: number): Promise<void> {
    const mode = FAIL_MODES[round % FAIL_MODES.length] as FailMode
    this.#engines.a.fail = mode
    this.#happenings.push(`EA ${mode}`)
    await sleep(FAIL_S * 1000)
    this.#engines.a.fail = null
    this.#happenings.push('EA back')
  }

  async #restartB(): Promise<void> {
    this.#restarting = true
    const started = performance.now()
    await this.#load.pauseB()
    await stopDaemon(this.b)
    this.b = await startDaemon(this.#homeB, 'B')
    await waitFor(() => serves(urlOf(this.b), 'soak-b'), {
      timeoutMs: 30_000,
      intervalMs: 200,
      label: 'B to serve again',
    })
    this.#load.resumeB()
    this.#restarting = false
    this.#happenings.push(`B restarted (${((performance.now() - started) / 1000).toFixed(1)} s)`)
  }

  async #flood(): Promise<void> {
    const child = spawn(process.execPath, [FLOOD, tcpOf(this.a), String(FLOOD_CONNECTIONS)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let output = ''
    child.stdout.on('data', (d) => {
      output += d
    })
    try {
      await waitFor(() => output.includes('done'), {
        timeoutMs: 120_000,
        intervalMs: 200,
        label: 'the flood',
      })
      this.#happenings.push(`flood (${/connections (\d+)/.exec(output)?.[1]} untrusted connections)`)
    } finally {
      child.kill('SIGKILL')
    }
  }

  /** Changes A's config through `update_config` (even rounds) or its file (odd), and sees it applied. */
  async #reload(round: number): Promise<void> {
    const value = 32 + (round % 2)
    if (round % 2 === 0) {
      await this.a.rpc.call('update_config', { config: { security: { max_concurrent_requests: value } } })
    } else {
      const path = gatePaths(this.#homeA.home).config
      const file = JSON.parse(await readFile(path, 'utf8'))
      file.security = { ...file.security, max_concurrent_requests: value }
      await writeFile(`${path}.tmp`, JSON.stringify(file, null, 2))
      await rename(`${path}.tmp`, path)
    }
    await waitFor(
      async () => {
        const { config } = await this.a.rpc.call('get_config')
        const { security } = config as { security: { max_concurrent_requests: number } }
        return security.max_concurrent_requests === value
      },
      { timeoutMs: 10_000, intervalMs: 100, label: 'the config change to apply' },
    )
    this.#happenings.push(`config reloaded (${round % 2 === 0 ? 'update_config' : 'config.json'})`)
  }

  async #sample(minute: number): Promise<Sample> {
    const rssB = this.#restarting ? null : await rssMb(this.b.runtime.pid).catch(() => null)
    const s: Sample = {
      minute,
      tally: this.#load.take(),
      rssA: (await rssMb(this.a.runtime.pid)).total,
      rssB: rssB?.total ?? null,
      heapA: await heapMb(this.a),
      events: this.#happenings.splice(0).join(', '),
    }
    const t = s.tally
    process.stderr.write(
      `minute ${minute}: ${t.sent} sent, ${answeredText(t.answered)}, ${t.aborted} aborted, ${t.lost} lost, ` +
        `${t.cut} cut, ${t.stuck} stuck; RSS A ${s.rssA.toFixed(0)} MB, B ${s.rssB?.toFixed(0) ?? '-'} MB` +
        `${s.events ? `; ${s.events}` : ''}\n`,
    )
    return s
  }
}

const { values } = parseArgs({ options: { minutes: { type: 'string' } } })
const minutes = Number(values.minutes ?? DEFAULT_MINUTES)
if (!Number.isFinite(minutes) || minutes <= 0) {
  console.error(`pnpm soak: --minutes takes a positive number, got "${values.minutes}"`)
  process.exit(2)
}

await using cleanup = new AsyncDisposableStack()
const soak = await Soak.start(minutes, cleanup)
const samples = await soak.run()
const inFlight = await soak.inFlight()
const alive = running(soak.a) && running(soak.b)

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
const [low, high] = [Math.min(...second), Math.max(...second)]
const judged = minutes >= MEMORY_MIN_MINUTES
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
  ['both daemons up to the end (B restarted only by the soak)', alive],
  [
    `A's RSS in the second half: ${low.toFixed(0)}–${high.toFixed(0)} MB ` +
      `(${(((high - low) / low) * 100).toFixed(1)}%, at most ${FLAT_SHARE * 100}%` +
      `${judged ? '' : `; not judged in a run under ${MEMORY_MIN_MINUTES} minutes`})`,
    !judged || high - low <= low * FLAT_SHARE,
  ],
  ...soak.problems.map((p): [string, boolean] => [p, false]),
]
console.log(`\nsoak, ${minutes} min:`)
for (const [line, ok] of verdict) console.log(`${ok ? 'ok  ' : 'FAIL'} ${line}`)
if (total.examples.length > 0)
  console.log(`\nfirst lost, cut or stuck requests:\n${total.examples.join('\n')}`)
if (!alive) console.log(`\nstderr of the daemons:\nA: ${soak.a.stderr}\nB: ${soak.b.stderr}`)
process.exitCode = verdict.every(([, ok]) => ok) ? 0 : 1
