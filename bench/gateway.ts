/**
 * `pnpm bench` (part 1): what Gate's local API costs over going to the engine directly, measured
 * against nginx (proxy_pass, keepalive upstream) and the least node proxy (`least.ts`: node:http
 * and undici, nothing else) in front of the same stand-in engine, in one run.
 *
 * - non-streaming chat completions: requests/s and p50/p99 latency at concurrency 1 and 64 (wrk);
 * - a 50-chunk stream: time to first byte and total time, p50 over sequential requests;
 * - the daemon's resident memory when idle: after start, and after the load (20 s and 150 s).
 *
 * Needs `wrk` and `nginx` (`apt-get install -y nginx wrk`). BENCH_DURATION sets seconds per wrk
 * run (default 5), BENCH_ROUNDS the runs per target whose medians are shown (default 3).
 * Everything binds to 127.0.0.1 on random ports and is stopped at the end.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { startFakeEngine } from '../packages/daemon/test/utils/fake-engine.ts'
import { startLeastProxy } from './least.ts'
import {
  freePort,
  interleaved,
  type LoadResult,
  MODEL,
  printTable,
  requireTools,
  rssMb,
  STREAM_CHUNKS,
  type StreamResult,
  startGate,
  startNginx,
  streamTimes,
  writeWrkScript,
  wrk,
} from './lib.ts'

/** How long the daemon sits idle before its memory is read, after start, and first after the load. */
const IDLE_SETTLE_MS = 20_000
/**
 * When the memory is read again after the load: V8 gives back the young generation that the load
 * grew only after about 90–120 s of idleness, on its own (docs/performance.md).
 */
const IDLE_AFTER_LOAD_MS = 150_000

type Target = 'direct' | 'nginx' | 'least' | 'gate'
const TARGETS: Target[] = ['direct', 'nginx', 'least', 'gate']
/** The least proxy holds each answer whole: it has no stream times to show. */
type StreamTarget = Exclude<Target, 'least'>
const STREAM_TARGETS: StreamTarget[] = ['direct', 'nginx', 'gate']

async function main(): Promise<void> {
  await requireTools(['wrk', 'nginx'])
  const dir = await mkdtemp(join(tmpdir(), 'gate-bench-'))
  const stack: Array<() => Promise<unknown>> = [() => rm(dir, { recursive: true, force: true })]
  try {
    const engine = await startFakeEngine({ models: [MODEL], chunks: STREAM_CHUNKS, record: false })
    stack.push(() => engine.stop())
    const nginx = await startGatewayNginx(dir, engine.port)
    stack.push(nginx.stop)
    const least = await startLeastProxy(engine.url)
    stack.push(() => least[Symbol.asyncDispose]())
    const gate = await startGate(
      dir,
      'gate',
      { providers: [{ name: 'engine', kind: 'openai', url: engine.url }] },
      MODEL,
    )
    stack.push(gate.stop)
    const urls: Record<Target, string> = {
      direct: engine.url,
      nginx: nginx.url,
      least: least.url,
      gate: gate.url,
    }
    await sleep(IDLE_SETTLE_MS)
    const idleRss = await rssMb(gate.pid)

    const script = await writeWrkScript(dir)
    const load: Record<string, Record<Target, LoadResult>> = {}
    for (const connections of [1, 64]) {
      const medians = await interleaved(
        `wrk c=${connections}`,
        TARGETS.map((target) => () => wrk(`${urls[target]}/v1/chat/completions`, script, connections)),
      )
      load[`c=${connections}`] = Object.fromEntries(TARGETS.map((t, i) => [t, medians[i]])) as Record<
        Target,
        LoadResult
      >
    }
    const streams = {} as Record<StreamTarget, StreamResult>
    for (const target of STREAM_TARGETS) {
      process.stderr.write(`stream → ${target}…\n`)
      streams[target] = await streamTimes(urls[target])
    }
    await sleep(IDLE_SETTLE_MS)
    const loadedRss = await rssMb(gate.pid)
    await sleep(IDLE_AFTER_LOAD_MS - IDLE_SETTLE_MS)
    const afterRss = await rssMb(gate.pid)
    report(load, streams, { start: idleRss, loaded: loadedRss, after: afterRss })
  } finally {
    for (const stop of stack.reverse()) await stop().catch(() => {})
  }
}

async function startGatewayNginx(
  dir: string,
  enginePort: number,
): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const http = `  upstream engine { server 127.0.0.1:${enginePort}; keepalive 128; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://engine;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }`
  const nginx = await startNginx(
    dir,
    { http },
    async () => (await fetch(`${url}/v1/models`).catch(() => null))?.ok === true,
  )
  return { url, stop: nginx.stop }
}

function report(
  load: Record<string, Record<Target, LoadResult>>,
  streams: Record<StreamTarget, StreamResult>,
  rss: { start: Rss; loaded: Rss; after: Rss },
): void {
  const rows: string[][] = [
    ['', 'direct', 'nginx', 'least proxy', 'gate', 'gate/direct', 'gate/nginx', 'gate/least'],
  ]
  const add = (label: string, values: Partial<Record<Target, number>>, digits: number) => {
    const ratio = (to: Target) => {
      const gate = values.gate as number
      const other = values[to]
      return other === undefined ? '' : `${(gate / other).toFixed(2)}×`
    }
    rows.push([
      label,
      ...TARGETS.map((t) => values[t]?.toFixed(digits) ?? ''),
      ratio('direct'),
      ratio('nginx'),
      ratio('least'),
    ])
  }
  const pick = (row: Record<Target, LoadResult>, key: keyof LoadResult) =>
    Object.fromEntries(TARGETS.map((t) => [t, row[t][key]]))
  for (const [c, row] of Object.entries(load)) {
    add(`${c} req/s`, pick(row, 'rps'), 0)
    add(`${c} p50 ms`, pick(row, 'p50'), 3)
    add(`${c} p99 ms`, pick(row, 'p99'), 3)
  }
  const streamPick = (key: keyof StreamResult) =>
    Object.fromEntries(STREAM_TARGETS.map((t) => [t, streams[t][key]]))
  add(`stream ${STREAM_CHUNKS} chunks TTFB p50 ms`, streamPick('ttfb'), 3)
  add(`stream ${STREAM_CHUNKS} chunks total p50 ms`, streamPick('total'), 3)
  printTable(rows)
  const errors = Object.entries(load).flatMap(([c, row]) =>
    TARGETS.filter((t) => row[t].errors > 0).map((t) => `${t} ${c}: ${row[t].errors}`),
  )
  console.log(
    [
      '\ngate daemon RSS:',
      `  ${IDLE_SETTLE_MS / 1000} s after start:     ${describeRss(rss.start)}`,
      `  ${IDLE_SETTLE_MS / 1000} s after the load:  ${describeRss(rss.loaded)}`,
      `  ${IDLE_AFTER_LOAD_MS / 1000} s after the load: ${describeRss(rss.after)}`,
    ].join('\n'),
  )
  if (errors.length > 0) console.log(`errors (non-2xx or socket): ${errors.join(', ')}`)

  const c1 = load['c=1'] as Record<Target, LoadResult>
  const c64 = load['c=64'] as Record<Target, LoadResult>
  const idle = Math.max(rss.start.total, rss.after.total)
  const goals: Array<[string, boolean]> = [
    [
      `throughput at c=64 ≥ 0.7× the least proxy (${(c64.gate.rps / c64.least.rps).toFixed(2)}×)`,
      c64.gate.rps >= 0.7 * c64.least.rps,
    ],
    [
      `added p50 at c=1 ≤ 0.3 ms over direct (${(c1.gate.p50 - c1.direct.p50).toFixed(3)} ms)`,
      c1.gate.p50 - c1.direct.p50 <= 0.3,
    ],
    [
      `stream TTFB within 0.5 ms of nginx (${(streams.gate.ttfb - streams.nginx.ttfb).toFixed(3)} ms)`,
      streams.gate.ttfb - streams.nginx.ttfb <= 0.5,
    ],
    [`idle RSS ≤ 120 MB after start and after the load (${idle.toFixed(1)} MB)`, idle <= 120],
  ]
  console.log('\ngoals:')
  for (const [label, met] of goals) console.log(`  ${met ? '✓' : '✗'} ${label}`)
}

type Rss = Awaited<ReturnType<typeof rssMb>>

function describeRss(rss: Rss): string {
  return `${rss.total.toFixed(1)} MB (${rss.anon.toFixed(1)} own + ${rss.file.toFixed(1)} file-backed)`
}

await main()
