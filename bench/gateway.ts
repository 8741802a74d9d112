/**
 * `pnpm bench`: what Gate's local API costs over going to the engine directly, measured against
 * nginx (proxy_pass, keepalive upstream) in front of the same stand-in engine, in one run.
 *
 * - non-streaming chat completions: requests/s and p50/p99 latency at concurrency 1 and 64 (wrk);
 * - a 50-chunk stream: time to first byte and total time, p50 over sequential requests;
 * - the daemon's resident memory when idle.
 *
 * Needs `wrk` and `nginx` (`apt-get install -y nginx wrk`). BENCH_DURATION sets seconds per wrk
 * run (default 5). Everything binds to 127.0.0.1 on random ports and is stopped at the end.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { Pool } from 'undici'
import { startFakeEngine } from '../packages/daemon/test/utils/fake-engine.ts'

const DURATION_S = Number(process.env.BENCH_DURATION ?? 5)
const STREAM_CHUNKS = 50
const STREAM_RUNS = 300
/** How long the daemon sits idle after the load before its memory is read again. */
const IDLE_SETTLE_MS = 15_000
const MODEL = 'bench-model'
const BODY = JSON.stringify({
  model: MODEL,
  messages: [{ role: 'user', content: 'Say hello to the benchmark.' }],
})
const STREAM_BODY = JSON.stringify({ ...JSON.parse(BODY), stream: true })
/** The `gate` command as a user runs it: pnpm's shim, with the node flags from bin.ts's first line. */
const GATE_BIN = fileURLToPath(new URL('../node_modules/.bin/gate', import.meta.url))
const run = promisify(execFile)

interface LoadResult {
  rps: number
  p50: number
  p99: number
  errors: number
}

interface StreamResult {
  ttfb: number
  total: number
}

type Target = 'direct' | 'nginx' | 'gate'
const TARGETS: Target[] = ['direct', 'nginx', 'gate']

async function main(): Promise<void> {
  for (const tool of ['wrk', 'nginx']) {
    await run('sh', ['-c', `command -v ${tool}`]).catch(() => {
      throw new Error(`${tool} is not installed: apt-get install -y nginx wrk`)
    })
  }
  const dir = await mkdtemp(join(tmpdir(), 'gate-bench-'))
  const stack: Array<() => Promise<unknown>> = [() => rm(dir, { recursive: true, force: true })]
  try {
    const engine = await startFakeEngine({ models: [MODEL], chunks: STREAM_CHUNKS, record: false })
    stack.push(() => engine.stop())
    const nginx = await startNginx(dir, engine.port)
    stack.push(nginx.stop)
    const gate = await startGate(dir, engine.url)
    stack.push(gate.stop)
    const urls: Record<Target, string> = { direct: engine.url, nginx: nginx.url, gate: gate.url }
    const idleRss = await rssMb(gate.pid)

    const script = join(dir, 'post.lua')
    await writeFile(
      script,
      `wrk.method = "POST"\nwrk.body = '${BODY}'\nwrk.headers["Content-Type"] = "application/json"\n`,
    )
    const load: Record<string, Record<Target, LoadResult>> = {}
    for (const connections of [1, 64]) {
      const row = {} as Record<Target, LoadResult>
      for (const target of TARGETS) {
        process.stderr.write(`wrk c=${connections} → ${target}…\n`)
        row[target] = await wrk(`${urls[target]}/v1/chat/completions`, script, connections)
      }
      load[`c=${connections}`] = row
    }
    const streams = {} as Record<Target, StreamResult>
    for (const target of TARGETS) {
      process.stderr.write(`stream → ${target}…\n`)
      streams[target] = await streamTimes(urls[target])
    }
    await sleep(IDLE_SETTLE_MS) // let V8's memory reducer run, as on a daemon that has gone idle
    const afterRss = await rssMb(gate.pid)
    report(load, streams, idleRss, afterRss)
  } finally {
    for (const stop of stack.reverse()) await stop().catch(() => {})
  }
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function startNginx(dir: string, enginePort: number): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort()
  const conf = join(dir, 'nginx.conf')
  await writeFile(
    conf,
    `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream engine { server 127.0.0.1:${enginePort}; keepalive 128; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://engine;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
`,
  )
  const child = spawn('nginx', ['-p', dir, '-c', conf, '-e', `${dir}/nginx-error.log`], { stdio: 'ignore' })
  const url = `http://127.0.0.1:${port}`
  await waitUntil(async () => (await fetch(`${url}/v1/models`).catch(() => null))?.ok === true, 'nginx')
  return { url, stop: () => stopChild(child) }
}

async function startGate(
  dir: string,
  engineUrl: string,
): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const home = join(dir, 'gate')
  const config = {
    network: { http_port: 0, control_port: 0, p2p_port: 0, p2p_host: '127.0.0.1' },
    providers: [{ name: 'engine', kind: 'openai', url: engineUrl }],
    // Above wrk's 64 connections, so no request is refused at the cap.
    security: { max_concurrent_requests: 256 },
  }
  await run('mkdir', ['-p', home])
  await writeFile(join(home, 'config.json'), JSON.stringify(config))
  const child = spawn(GATE_BIN, ['daemon'], {
    env: { ...process.env, GATE_HOME: home, GATE_PASSPHRASE: 'bench' },
    stdio: 'ignore',
  })
  let url = ''
  // The daemon's own pid: pnpm's node shim runs node as its child, so it is not child.pid.
  let pid = 0
  await waitUntil(async () => {
    const runtime = JSON.parse(await readFile(join(home, 'daemon.json'), 'utf8').catch(() => 'null'))
    if (!runtime) return false
    url = `http://127.0.0.1:${runtime.http.port}`
    pid = runtime.pid
    const models = await fetch(`${url}/v1/models`).catch(() => null)
    return models?.ok === true && (await models.text()).includes(MODEL)
  }, 'gate daemon')
  return { url, pid, stop: () => stopChild(child, pid) }
}

/** SIGTERM to `pid` (default: the child's), SIGKILL if the child has not exited 15 s later. */
async function stopChild(child: ChildProcess, pid = child.pid): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  process.kill(pid as number, 'SIGTERM')
  const killed = await Promise.race([exited.then(() => true), sleep(15_000).then(() => false)])
  if (!killed) {
    process.kill(pid as number, 'SIGKILL')
    child.kill('SIGKILL')
  }
}

async function waitUntil(ready: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 30_000
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(`${what} did not become ready within 30 s`)
    await sleep(100)
  }
}

async function wrk(url: string, script: string, connections: number): Promise<LoadResult> {
  const threads = Math.min(2, connections)
  const args = [`-t${threads}`, `-c${connections}`, `-d${DURATION_S}s`, '--latency', '-s', script, url]
  await run('wrk', [...args.slice(0, 2), '-d1s', ...args.slice(3)]) // warm-up
  const { stdout } = await run('wrk', args)
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
async function streamTimes(base: string): Promise<StreamResult> {
  const pool = new Pool(base, { connections: 1 })
  const ttfb: number[] = []
  const total: number[] = []
  try {
    for (let i = 0; i < STREAM_RUNS + 30; i++) {
      const start = performance.now()
      const res = await pool.request({
        method: 'POST',
        path: '/v1/chat/completions',
        headers: { 'content-type': 'application/json' },
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

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] as number
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1])
  return kb / 1024
}

function report(
  load: Record<string, Record<Target, LoadResult>>,
  streams: Record<Target, StreamResult>,
  idleRss: number,
  afterRss: number,
): void {
  const rows: string[][] = [['', 'direct', 'nginx', 'gate', 'gate/direct', 'gate/nginx']]
  const add = (label: string, values: Record<Target, number>, digits: number) => {
    rows.push([
      label,
      ...TARGETS.map((t) => values[t].toFixed(digits)),
      `${(values.gate / values.direct).toFixed(2)}×`,
      `${(values.gate / values.nginx).toFixed(2)}×`,
    ])
  }
  const pick = (row: Record<Target, LoadResult>, key: keyof LoadResult) =>
    Object.fromEntries(TARGETS.map((t) => [t, row[t][key]])) as Record<Target, number>
  for (const [c, row] of Object.entries(load)) {
    add(`${c} req/s`, pick(row, 'rps'), 0)
    add(`${c} p50 ms`, pick(row, 'p50'), 3)
    add(`${c} p99 ms`, pick(row, 'p99'), 3)
  }
  const streamPick = (key: keyof StreamResult) =>
    Object.fromEntries(TARGETS.map((t) => [t, streams[t][key]])) as Record<Target, number>
  add(`stream ${STREAM_CHUNKS} chunks TTFB p50 ms`, streamPick('ttfb'), 3)
  add(`stream ${STREAM_CHUNKS} chunks total p50 ms`, streamPick('total'), 3)
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? []
  for (const row of rows) {
    console.log(
      row
        .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
        .join('  '),
    )
  }
  const errors = Object.entries(load).flatMap(([c, row]) =>
    TARGETS.filter((t) => row[t].errors > 0).map((t) => `${t} ${c}: ${row[t].errors}`),
  )
  console.log(
    `\ngate daemon RSS: ${idleRss.toFixed(1)} MB idle at start, ${afterRss.toFixed(1)} MB idle ${IDLE_SETTLE_MS / 1000} s after the load`,
  )
  if (errors.length > 0) console.log(`errors (non-2xx or socket): ${errors.join(', ')}`)

  const c1 = load['c=1'] as Record<Target, LoadResult>
  const c64 = load['c=64'] as Record<Target, LoadResult>
  const goals: Array<[string, boolean]> = [
    [
      `throughput at c=64 ≥ 0.5× nginx (${(c64.gate.rps / c64.nginx.rps).toFixed(2)}×)`,
      c64.gate.rps >= 0.5 * c64.nginx.rps,
    ],
    [
      `added p50 at c=1 ≤ 0.3 ms over direct (${(c1.gate.p50 - c1.direct.p50).toFixed(3)} ms)`,
      c1.gate.p50 - c1.direct.p50 <= 0.3,
    ],
    [
      `stream TTFB within 0.5 ms of nginx (${(streams.gate.ttfb - streams.nginx.ttfb).toFixed(3)} ms)`,
      streams.gate.ttfb - streams.nginx.ttfb <= 0.5,
    ],
    [`idle RSS ≤ 100 MB (${afterRss.toFixed(1)} MB)`, Math.max(idleRss, afterRss) <= 100],
  ]
  console.log('\ngoals:')
  for (const [label, met] of goals) console.log(`  ${met ? '✓' : '✗'} ${label}`)
}

await main()
