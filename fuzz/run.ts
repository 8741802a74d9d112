/**
 * `pnpm fuzz [--seconds N | --inputs N] [--target a,b] [--seed S [--path P]]`: property-based
 * fuzzing (fast-check) of every parser that takes bytes from outside. Each target runs in its
 * own process (`worker.ts`) for N seconds (default 60) or N inputs; the runner kills one that
 * goes silent (a hang no per-input timer can catch: a synchronous loop) and prints a table:
 * inputs run, inputs/s, heap gained in the run's second half, the slowest input, failures. Any
 * failure prints its seed and counterexample path, and the exit code is 1.
 */
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { printTable } from '../bench/lib.ts'
import { TARGETS } from './targets.ts'
import type { WorkerMessage, WorkerOptions, WorkerResult } from './worker.ts'

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url))
/** @default 60 s per target */
const DEFAULT_SECONDS = 60
/** A worker silent for this long past its per-input bound is stuck in a loop. */
const SILENCE_MS = 10_000
/** How long a target may take to start (the `http` one starts a daemon). */
const START_MS = 60_000
/**
 * The worker's heap limit: far above what any target needs, so that an input that makes a parser
 * allocate without bound ends the worker (a crash, reported) instead of the machine.
 */
const WORKER_HEAP_MB = 512

const { values } = parseArgs({
  options: {
    seconds: { type: 'string' },
    inputs: { type: 'string' },
    target: { type: 'string' },
    seed: { type: 'string' },
    path: { type: 'string' },
  },
})
const names = values.target?.split(',') ?? Object.keys(TARGETS)
for (const name of names)
  if (!TARGETS[name]) usage(`no target "${name}"; there are ${Object.keys(TARGETS).join(', ')}`)
const seconds = positive(values.seconds ?? String(DEFAULT_SECONDS), '--seconds')
const options: WorkerOptions = {
  seconds,
  seed: values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed),
  ...(values.inputs === undefined ? {} : { inputs: positive(values.inputs, '--inputs') }),
  ...(values.path === undefined ? {} : { path: values.path }),
}
if (values.path !== undefined && (values.seed === undefined || names.length !== 1))
  usage('--path replays one target: give --target and --seed too')

const rows = [['target', 'inputs', 'inputs/s', 'heap +MB', 'slowest ms', 'failures']]
const failures: string[] = []
for (const name of names) {
  process.stderr.write(`fuzzing ${name}…\n`)
  const result = await runWorker(name, options)
  rows.push([
    name,
    result.inputs.toLocaleString('en-US'),
    Math.round(result.inputs / Math.max(result.seconds, 1e-3)).toLocaleString('en-US'),
    result.heapGrowthMb.toFixed(1),
    result.slowestMs.toFixed(1),
    result.failure ? '1' : '0',
  ])
  const { failure } = result
  if (failure) {
    const replay = `pnpm fuzz --target ${name} --seed ${failure.seed}${failure.path === null ? '' : ` --path ${failure.path}`}`
    failures.push(
      [
        `${name}: ${failure.message}`,
        `  seed ${failure.seed}, path ${failure.path ?? '(none)'}; replay: ${replay}`,
        ...(failure.counterexample === null ? [] : [`  counterexample: ${failure.counterexample}`]),
      ].join('\n'),
    )
  }
}
printTable(rows)
for (const failure of failures) console.log(`\n${failure}`)
process.exitCode = failures.length > 0 ? 1 : 0

/** Runs one target in a worker process and returns what it reported, or what became of it. */
function runWorker(name: string, options: WorkerOptions): Promise<WorkerResult> {
  const child = fork(WORKER, [name, JSON.stringify(options)], {
    execArgv: ['--expose-gc', `--max-old-space-size=${WORKER_HEAP_MB}`],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  return new Promise((resolve) => {
    let result: WorkerResult | undefined
    let inputs = 0
    let timeoutMs = 0
    let heardAt = Date.now()
    let silent = false
    const watchdog = setInterval(() => {
      if (Date.now() - heardAt < (timeoutMs === 0 ? START_MS : timeoutMs + SILENCE_MS)) return
      silent = true
      child.kill('SIGKILL')
    }, 1000)
    child.on('message', (message: WorkerMessage) => {
      heardAt = Date.now()
      if (message.type === 'start') timeoutMs = message.timeoutMs
      else if (message.type === 'progress') inputs = message.inputs
      else result = message.result
    })
    child.on('exit', (code, signal) => {
      clearInterval(watchdog)
      if (result && code === 0) return resolve(result)
      const what = silent
        ? `went silent for ${(timeoutMs + SILENCE_MS) / 1000} s (a hang) after about ${inputs} inputs`
        : `crashed (${signal ?? `exit code ${code}`}) after about ${inputs} inputs`
      resolve({
        inputs,
        seconds: options.seconds,
        heapGrowthMb: Number.NaN,
        slowestMs: Number.NaN,
        failure: {
          message: `the worker ${what}; its output is above`,
          seed: options.seed,
          path: null,
          counterexample: null,
        },
      })
    })
  })
}

function positive(text: string, flag: string): number {
  const n = Number(text)
  if (!Number.isFinite(n) || n <= 0) usage(`${flag} takes a positive number, got "${text}"`)
  return n
}

function usage(message: string): never {
  console.error(`pnpm fuzz: ${message}`)
  process.exit(2)
}
