/**
 * Runs one fuzz target for `run.ts`, in a process of its own so that a hang can be killed and
 * an unbounded allocation meets a heap limit without taking the runner with it. Reports progress
 * while it runs and one result at the end, over the IPC channel.
 *
 * `node --expose-gc fuzz/worker.ts <target> <options as JSON>`
 */
import fc from 'fast-check'
import { DEFAULT_HEAP_GROWTH_MB, DEFAULT_INPUT_TIMEOUT_MS, PropertyFailure, type Target } from './lib.ts'
import { TARGETS } from './targets.ts'

export interface WorkerOptions {
  /** Time budget; ignored when `inputs` is set. */
  seconds: number
  inputs?: number
  seed: number
  /** Replays from this point of a failed run (fast-check's counterexample path). */
  path?: string
}

export type WorkerMessage =
  | { type: 'start'; timeoutMs: number }
  | { type: 'progress'; inputs: number }
  | { type: 'result'; result: WorkerResult }

export interface WorkerResult {
  inputs: number
  seconds: number
  /** Heap gained in the run's second half, measured after full collections, in MB. */
  heapGrowthMb: number
  slowestMs: number
  failure?: {
    message: string
    seed: number
    path: string | null
    counterexample: string | null
  }
}

/**
 * Share of the budget run before the heap baseline is taken. Half: besides JIT code and caches,
 * the parsers hold some memory for a while on purpose (the read timeouts of `/gate/control` and
 * `/gate/http` keep each stream's timer for 10 and 30 s), which a run's first half brings to
 * its steady level.
 */
const WARM_UP_SHARE = 0.5
/** How often the runner hears that the worker is alive. */
const PROGRESS_MS = 250
/** Longest counterexample printed. */
const MAX_SHOWN_CHARS = 4000

const send = (message: WorkerMessage) => process.send?.(message)

async function main(name: string, options: WorkerOptions): Promise<void> {
  const load = TARGETS[name]
  if (!load) throw new Error(`no fuzz target "${name}"`)
  const target = await (await load()).createTarget()
  const timeoutMs = target.timeoutMs ?? DEFAULT_INPUT_TIMEOUT_MS
  send({ type: 'start', timeoutMs })
  const collect = globalThis.gc
  if (!collect) throw new Error('the fuzz worker needs node --expose-gc')
  const heapMb = () => {
    collect()
    return process.memoryUsage().heapUsed / 2 ** 20
  }

  const numRuns = Math.min(
    options.inputs ?? Number.MAX_SAFE_INTEGER,
    target.maxInputs ?? Number.MAX_SAFE_INTEGER,
  )
  const started = performance.now()
  // Whichever comes first: half the time budget, or half the inputs when they are counted.
  const warmUpAt = {
    time:
      options.inputs === undefined
        ? started + options.seconds * 1000 * WARM_UP_SHARE
        : Number.POSITIVE_INFINITY,
    inputs:
      numRuns < Number.MAX_SAFE_INTEGER ? Math.floor(numRuns * WARM_UP_SHARE) : Number.POSITIVE_INFINITY,
  }
  let baseline: number | undefined
  let calls = 0
  let slowest = 0
  let heardAt = started

  const property = fc.asyncProperty(target.arbitrary, async (input) => {
    calls++
    const now = performance.now()
    if (now - heardAt >= PROGRESS_MS) {
      heardAt = now
      send({ type: 'progress', inputs: calls })
    }
    if (baseline === undefined && (now >= warmUpAt.time || calls >= warmUpAt.inputs)) baseline = heapMb()
    let took = await timed(target, input, timeoutMs)
    // One pause of a busy machine (a major collection, another process) is not a hang: a slow
    // input fails only if it is slow again.
    if (took > timeoutMs) took = await timed(target, input, timeoutMs)
    if (took > timeoutMs)
      throw new PropertyFailure(`one input took ${Math.round(took)} ms, over ${timeoutMs} ms`)
    slowest = Math.max(slowest, took)
  })
  const details = await fc.check(property, {
    numRuns,
    seed: options.seed,
    ...(options.path === undefined ? {} : { path: options.path }),
    ...(options.inputs === undefined
      ? { plugins: [fc.interruptAfterTimeLimit(options.seconds * 1000)] }
      : {}),
  })
  const seconds = (performance.now() - started) / 1000
  await target.close?.()
  const growth = heapMb() - (baseline ?? heapMb())
  const limit = target.heapGrowthMb ?? DEFAULT_HEAP_GROWTH_MB
  const result: WorkerResult = { inputs: details.numRuns, seconds, heapGrowthMb: growth, slowestMs: slowest }
  if (details.failed) {
    result.failure = {
      message: describe(details.errorInstance),
      seed: details.seed,
      path: details.counterexamplePath,
      counterexample: details.counterexample
        ? shorten(fc.stringify((details.counterexample as unknown[])[0]))
        : null,
    }
  } else if (growth > limit) {
    result.failure = {
      message: `the heap grew by ${growth.toFixed(1)} MB in the run's second half, over ${limit} MB: something holds inputs`,
      seed: details.seed,
      path: null,
      counterexample: null,
    }
  }
  await new Promise((resolve) => process.send?.({ type: 'result', result } satisfies WorkerMessage, resolve))
}

/** Milliseconds `target` takes over `input`; a promise still pending at the bound fails. */
async function timed(target: Target<unknown>, input: unknown, timeoutMs: number): Promise<number> {
  const started = performance.now()
  const outcome = target.check(input)
  if (outcome instanceof Promise) {
    let timer: NodeJS.Timeout | undefined
    const hang = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new PropertyFailure(`one input did not finish within ${timeoutMs} ms`)),
        timeoutMs,
      )
    })
    try {
      await Promise.race([outcome, hang])
    } finally {
      clearTimeout(timer)
    }
  }
  return performance.now() - started
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  const cause = err.cause instanceof Error ? `\ncaused by ${err.cause.stack ?? err.cause.message}` : ''
  return `${err.name}: ${err.message}${cause}`
}

function shorten(text: string): string {
  return text.length > MAX_SHOWN_CHARS ? `${text.slice(0, MAX_SHOWN_CHARS)}… (${text.length} chars)` : text
}

const [name, options] = process.argv.slice(2)
await main(name ?? '', JSON.parse(options ?? '{}') as WorkerOptions)
// The result is sent; what a target may have left running (a daemon's timers) need not hold the exit.
process.exit(0)
