import { createRequire } from 'node:module'
import type { Logger } from 'pino'

/** What the trimmer watches: requests finished so far, and requests in flight now. */
export interface Activity {
  finished: number
  active: number
}

export interface MemoryTrimmerInit {
  activity: () => Activity
  /** How long the API must be quiet before memory is handed back. */
  intervalMs: number
  logger: Logger
  /**
   * A full collection that returns freed memory to the system. @default V8's, when node runs with
   * `--expose-gc`, then `mallocTrim()`
   */
  collect?: (() => void) | undefined
}

/** `malloc_trim` once loaded: null where there is none; undefined until first asked for. */
let trim: (() => boolean) | null | undefined

/**
 * glibc's `malloc_trim(0)`, through koffi (a foreign-function library with prebuilt binaries):
 * hands back to the system every free page inside malloc's heaps. `free()` only ever returns the
 * top of a heap, so after a burst of requests the pages that native code (node, V8's compiler,
 * the QUIC transport) freed in the middle stay resident: about 19 MB of a daemon's 114 MB.
 * Returns whether it released memory; undefined where there is no glibc. koffi is loaded on the
 * first call, so that only a daemon that trims pays for it, not every `gate` command.
 */
export function mallocTrim(): boolean | undefined {
  if (trim === undefined) trim = loadMallocTrim()
  return trim?.()
}

function loadMallocTrim(): (() => boolean) | null {
  if (process.platform !== 'linux') return null
  try {
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi')
    const fn = koffi.load('libc.so.6').func('int malloc_trim(size_t pad)')
    return () => fn(0) === 1
  } catch {
    return null // musl, or another libc
  }
}

/**
 * Hands memory back to the system once the daemon has gone quiet. After a burst of requests V8
 * keeps its grown heap resident, garbage included: its own memory reducer waits for an allocation
 * rate it only measures at collections, and an idle daemon makes none. A daemon that had served
 * a burst stayed at about 300 MB for good.
 *
 * When requests have finished since the last trim, and then none finishes or is in flight for a
 * whole interval, this runs one memory-reducing collection (V8's last-resort flavour: it compacts
 * and releases empty pages), then trims malloc's heaps. It also runs once after start, for the
 * garbage of loading the code.
 * It needs node's `--expose-gc`, which the `gate` command passes; without it, it does nothing.
 */
export class MemoryTrimmer {
  readonly #init: MemoryTrimmerInit
  readonly #collect: (() => void) | undefined
  #timer: NodeJS.Timeout | undefined
  #finished: number
  /** Requests were served since the last trim (true at start: the start-up garbage). */
  #pending = true

  constructor(init: MemoryTrimmerInit) {
    this.#init = init
    const { gc } = globalThis
    this.#collect =
      init.collect ??
      (gc
        ? () => {
            gc({ type: 'major', execution: 'sync', flavor: 'last-resort' })
            mallocTrim()
          }
        : undefined)
    this.#finished = init.activity().finished
  }

  start(): void {
    if (!this.#collect) return
    this.#timer = setInterval(() => this.tick(), this.#init.intervalMs)
    this.#timer.unref()
  }

  stop(): void {
    clearInterval(this.#timer)
  }

  /** One interval's check; true when it trimmed. */
  tick(): boolean {
    const { finished, active } = this.#init.activity()
    const quiet = active === 0 && finished === this.#finished
    this.#finished = finished
    if (!quiet) {
      this.#pending = true
      return false
    }
    if (!this.#pending || !this.#collect) return false
    this.#pending = false
    const before = process.memoryUsage.rss()
    const start = performance.now()
    this.#collect()
    this.#init.logger.debug(
      {
        ms: Math.round(performance.now() - start),
        rss_mb_before: Math.round(before / 2 ** 20),
        rss_mb: Math.round(process.memoryUsage.rss() / 2 ** 20),
      },
      'idle: memory handed back',
    )
    return true
  }
}
