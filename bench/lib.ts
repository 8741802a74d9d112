/**
 * What the benchmarks share: starting a stand-in engine and Gate daemons as a user would, wrk
 * runs, streaming timings, and a table printer. Everything binds to 127.0.0.1 on random ports.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { access, mkdir, readFile, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { Pool } from 'undici'

export const run = promisify(execFile)

/** Seconds per wrk run. @default 5, or BENCH_DURATION */
export const DURATION_S = Number(process.env.BENCH_DURATION ?? 5)
export const STREAM_CHUNKS = 50
const STREAM_RUNS = 300
export const MODEL = 'bench-model'
export const BODY = JSON.stringify({
  model: MODEL,
  messages: [{ role: 'user', content: 'Say hello to the benchmark.' }],
})
const STREAM_BODY = JSON.stringify({ ...JSON.parse(BODY), stream: true })
/** The `gate` command as a user runs it: pnpm's shim, with the node flags from bin.js's first line. */
export const GATE_BIN = fileURLToPath(new URL('../node_modules/.bin/gate', import.meta.url))

export interface LoadResult {
  rps: number
  p50: number
  p99: number
  errors: number
}

export interface StreamResult {
  ttfb: number
  total: number
}

export async function requireTools(tools: string[]): Promise<void> {
  for (const tool of tools) {
    await run('sh', ['-c', `command -v ${tool}`]).catch(() => {
      throw new Error(`${tool} is not installed: apt-get install -y ${tools.join(' ')}`)
    })
  }
}

/** wrk's Lua script for the benchmark's chat request. */
export async function writeWrkScript(dir: string): Promise<string> {
  const script = join(dir, 'post.lua')
  await writeFile(
    script,
    `wrk.method = "POST"\nwrk.body = '${BODY}'\nwrk.headers["Content-Type"] = "application/json"\n`,
  )
  return script
}

export interface GateProcess {
  url: string
  controlUrl: string
  /** The daemon's own pid: pnpm's node shim runs node as its child, so it is not the child's. */
  pid: number
  nodeId: string
  p2p: string[]
  /** Calls a control-port method. */
  rpc(method: string, params?: Record<string, unknown>): Promise<unknown>
  stop(): Promise<void>
}

/** Starts `gate daemon` in `<dir>/<name>` with `config` on random ports; ready when it serves `model` (if given). */
export async function startGate(
  dir: string,
  name: string,
  config: Record<string, unknown>,
  model?: string,
): Promise<GateProcess> {
  const home = join(dir, name)
  await mkdir(home, { recursive: true })
  const network = { http_port: 0, control_port: 0, p2p_port: 0, p2p_host: '127.0.0.1' }
  // Above wrk's 64 connections, so no request is refused at the cap; other security settings
  // (API keys) as given.
  const security = { max_concurrent_requests: 256, rate_limit: { per_peer_rps: 1e6, burst: 1e6 } }
  const full = { ...config, network, security: { ...security, ...(config.security as object) } }
  await writeFile(join(home, 'config.json'), JSON.stringify(full))
  const child = spawn(GATE_BIN, ['daemon'], {
    env: { ...process.env, GATE_HOME: home, GATE_PASSPHRASE: 'bench' },
    stdio: 'ignore',
  })
  interface Runtime {
    pid: number
    node_id: string
    p2p: string[]
    http: { port: number }
    control: { port: number }
  }
  const runtimeOf = async (): Promise<Runtime | null> =>
    JSON.parse(await readFile(join(home, 'daemon.json'), 'utf8').catch(() => 'null'))
  await waitUntil(async () => {
    const runtime = await runtimeOf()
    if (!runtime) return false
    if (!model) return true
    const models = await fetch(`http://127.0.0.1:${runtime.http.port}/v1/models`).catch(() => null)
    return models?.ok === true && (await models.text()).includes(model)
  }, `gate daemon ${name}`)
  const info = (await runtimeOf()) as Runtime
  const token = (await readFile(join(home, 'control.token'), 'utf8')).trim()
  const controlUrl = `http://127.0.0.1:${info.control.port}`
  return {
    url: `http://127.0.0.1:${info.http.port}`,
    controlUrl,
    pid: info.pid,
    nodeId: info.node_id,
    p2p: info.p2p,
    rpc: async (method, params = {}) => {
      const res = await fetch(`${controlUrl}/rpc`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
      })
      const body = (await res.json()) as { result?: unknown; error?: { message: string } }
      if (body.error) throw new Error(`${method}: ${body.error.message}`)
      return body.result
    },
    stop: () => stopChild(child, info.pid),
  }
}

/** SIGTERM to `pid` (default: the child's), SIGKILL if the child has not exited 15 s later. */
export async function stopChild(child: ChildProcess, pid = child.pid): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  process.kill(pid as number, 'SIGTERM')
  const killed = await Promise.race([exited.then(() => true), sleep(15_000).then(() => false)])
  if (!killed) {
    process.kill(pid as number, 'SIGKILL')
    child.kill('SIGKILL')
  }
}

/**
 * nginx in the foreground with one worker, its pid file, error log and temp files in `dir`, serving
 * the inside of its `http { }` or `stream { }` block; resolves once `ready()`. The stream module is
 * loaded first where nginx has it as a dynamic module (Debian's libnginx-mod-stream).
 */
export async function startNginx(
  dir: string,
  blocks: { http?: string; stream?: string },
  ready: () => Promise<boolean>,
): Promise<{ stop(): Promise<void> }> {
  const modules = blocks.stream === undefined ? '' : await streamModule()
  const http =
    blocks.http === undefined
      ? ''
      : `http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${blocks.http}
}
`
  const stream = blocks.stream === undefined ? '' : `stream {\n${blocks.stream}\n}\n`
  const conf = join(dir, 'nginx.conf')
  await writeFile(
    conf,
    `${modules}worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 1024; }
${http}${stream}`,
  )
  const child = spawn('nginx', ['-p', dir, '-c', conf, '-e', `${dir}/nginx-error.log`], { stdio: 'ignore' })
  await waitUntil(ready, 'nginx')
  return { stop: () => stopChild(child) }
}

/** The `load_module` line nginx needs for `stream { }`: none when it is built in. */
async function streamModule(): Promise<string> {
  const { stderr } = await run('nginx', ['-V'])
  if (/--with-stream(\s|$)/.test(stderr)) return ''
  const module = join(
    /--modules-path=(\S+)/.exec(stderr)?.[1] ?? '/usr/lib/nginx/modules',
    'ngx_stream_module.so',
  )
  if (
    !/--with-stream=dynamic/.test(stderr) ||
    !(await access(module).then(
      () => true,
      () => false,
    ))
  ) {
    throw new Error("nginx's stream module is not installed: apt-get install -y libnginx-mod-stream")
  }
  return `load_module ${module};\n`
}

export async function waitUntil(ready: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 30_000
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(`${what} did not become ready within 30 s`)
    await sleep(100)
  }
}

export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** wrk against `url`; `netns`: run it inside that network namespace (`ip netns exec`). */
export async function wrk(
  url: string,
  script: string,
  connections: number,
  headers: Record<string, string> = {},
  netns?: string,
): Promise<LoadResult> {
  const threads = Math.min(2, connections)
  const extra = Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`])
  const args = [
    `-t${threads}`,
    `-c${connections}`,
    `-d${DURATION_S}s`,
    '--latency',
    ...extra,
    '-s',
    script,
    url,
  ]
  const wrkIn = (wrkArgs: string[]) =>
    netns ? run('ip', ['netns', 'exec', netns, 'wrk', ...wrkArgs]) : run('wrk', wrkArgs)
  await wrkIn([...args.slice(0, 2), '-d1s', ...args.slice(3)]) // warm-up
  const { stdout } = await wrkIn(args)
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1])
  const p50 = wrkLatency(stdout, '50%')
  const p99 = wrkLatency(stdout, '99%')
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0)
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout)
  const errors = non2xx + (socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0)
  if (!Number.isFinite(rps)) throw new Error(`cannot read wrk's output:\n${stdout}`)
  return { rps, p50, p99, errors }
}

/** A latency percentile from wrk's distribution, in ms. */
function wrkLatency(out: string, percentile: string): number {
  const match = new RegExp(`${percentile}\\s+([\\d.]+)(us|ms|s)`).exec(out)
  if (!match) throw new Error(`no ${percentile} latency in wrk's output:\n${out}`)
  const scale = { us: 0.001, ms: 1, s: 1000 }[match[2] as 'us' | 'ms' | 's']
  return Number(match[1]) * scale
}

/** p50 time to first byte and to the end of a 50-chunk stream, over sequential requests. */
export async function streamTimes(base: string, headers: Record<string, string> = {}): Promise<StreamResult> {
  const pool = new Pool(base, { connections: 1 })
  const ttfb: number[] = []
  const total: number[] = []
  try {
    for (let i = 0; i < STREAM_RUNS + 30; i++) {
      const start = performance.now()
      const res = await pool.request({
        method: 'POST',
        path: '/v1/chat/completions',
        headers: { 'content-type': 'application/json', ...headers },
        body: STREAM_BODY,
      })
      let first = 0
      let text = ''
      for await (const chunk of res.body) {
        if (first === 0) first = performance.now()
        text += chunk
      }
      const end = performance.now()
      if (res.statusCode !== 200 || !text.includes('data: [DONE]')) {
        throw new Error(`${base}: stream answered ${res.statusCode}: ${text.slice(0, 200)}`)
      }
      if (i < 30) continue // warm-up
      ttfb.push(first - start)
      total.push(end - start)
    }
  } finally {
    await pool.close()
  }
  return { ttfb: median(ttfb), total: median(total) }
}

/** Load runs per target and concurrency in the benchmarks; their tables show the medians. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS % 2 === 0) {
  throw new Error(`BENCH_ROUNDS must be an odd whole number (1, 3, 5…), got "${process.env.BENCH_ROUNDS}"`)
}

/**
 * Runs each of `measures` ROUNDS times, in rounds that each start with the next one: a slow spell
 * of this shared machine then lands on all of them, not on whichever ran during it. Returns each
 * one's runs, in the order given; `label` names the rounds in the progress output.
 */
export async function interleavedRuns<T>(label: string, measures: Array<() => Promise<T>>): Promise<T[][]> {
  const runs = measures.map((): T[] => [])
  for (let round = 0; round < ROUNDS; round++) {
    process.stderr.write(`${label} (round ${round + 1}/${ROUNDS})…\n`)
    for (let i = 0; i < measures.length; i++) {
      const k = (round + i) % measures.length
      runs[k]?.push(await (measures[k] as () => Promise<T>)())
    }
  }
  return runs
}

/** interleavedRuns of load runs: each one's medians. */
export async function interleaved(
  label: string,
  measures: Array<() => Promise<LoadResult>>,
): Promise<LoadResult[]> {
  return (await interleavedRuns(label, measures)).map(medianLoad)
}

/** The median of each figure over several runs; errors added up. */
function medianLoad(runs: LoadResult[]): LoadResult {
  return {
    rps: median(runs.map((r) => r.rps)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    errors: runs.reduce((sum, r) => sum + r.errors, 0),
  }
}

export function median(values: number[]): number {
  return percentile(values, 0.5)
}

/** The value below which a share `p` (0–1) of `values` lies. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length * p)] as number
}

/** A process's resident memory in MB: in all, anonymous (its own), and file-backed (mapped binaries, shared). */
export async function rssMb(pid: number): Promise<{ total: number; anon: number; file: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const mb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1]) / 1024
  return { total: mb('VmRSS'), anon: mb('RssAnon'), file: mb('RssFile') }
}

export function f(n: number, digits = 3): string {
  return n.toFixed(digits)
}

/** A difference with its sign: +0.120, -0.050. */
export function signed(n: number): string {
  return `${n < 0 ? '' : '+'}${f(n)}`
}

export function ratio(a: number, b: number): string {
  return `${(a / b).toFixed(2)}×`
}

/** CPU seconds a process has used, all its threads, user and system (`/proc`'s ticks are 1/100 s on Linux). */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name (which may hold spaces): state is the 3rd field, utime the 14th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** Prints rows as a table: the first column left-aligned, the rest right-aligned. */
export function printTable(rows: string[][]): void {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? []
  for (const row of rows) {
    console.log(
      row
        .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
        .join('  '),
    )
  }
}
