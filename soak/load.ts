/**
 * The soak's client side: workers that send a mix of requests to two daemons, each with its own
 * timeout, and count what became of every one: answered (by status), aborted on purpose, lost (the
 * connection failed before any answer), cut (the answer's body broke off) or stuck (no whole
 * answer by its timeout).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { Pool } from 'undici'

/** One kind of request in the mix. */
interface Kind {
  name: string
  weight: number
  to: 'a' | 'b'
  path: '/v1/chat/completions' | '/v1/embeddings'
  model: string
  stream: boolean
  /** Names node B in X-Target-Node. */
  targetB?: boolean
  /** The client goes away: after the first chunk of the answer, or before any of it. */
  abort?: 'after-first-chunk' | 'soon'
}

const chat = '/v1/chat/completions'

/** The mix: local, forwarded (named and routed by model), served either place, at B, and aborted. */
const KINDS: Kind[] = [
  { name: 'local', weight: 3, to: 'a', path: chat, model: 'soak-a', stream: false },
  { name: 'local stream', weight: 2, to: 'a', path: chat, model: 'soak-a', stream: true },
  { name: 'embeddings', weight: 1, to: 'a', path: '/v1/embeddings', model: 'soak-a', stream: false },
  { name: 'to B', weight: 1, to: 'a', path: chat, model: 'soak-b', stream: false, targetB: true },
  { name: 'to B stream', weight: 1, to: 'a', path: chat, model: 'soak-b', stream: true, targetB: true },
  { name: 'routed to B', weight: 1, to: 'a', path: chat, model: 'soak-b', stream: false },
  { name: 'either', weight: 2, to: 'a', path: chat, model: 'soak-shared', stream: false },
  { name: 'either stream', weight: 1, to: 'a', path: chat, model: 'soak-shared', stream: true },
  { name: 'at B', weight: 1, to: 'b', path: chat, model: 'soak-b', stream: false },
  {
    name: 'abort stream',
    weight: 1,
    to: 'a',
    path: chat,
    model: 'soak-a',
    stream: true,
    abort: 'after-first-chunk',
  },
  {
    name: 'abort to B',
    weight: 1,
    to: 'a',
    path: chat,
    model: 'soak-b',
    stream: true,
    targetB: true,
    abort: 'after-first-chunk',
  },
  { name: 'abort soon', weight: 1, to: 'a', path: chat, model: 'soak-shared', stream: false, abort: 'soon' },
]

export const MODELS = { a: ['soak-a', 'soak-shared'], b: ['soak-b', 'soak-shared'] }

/** What became of the requests sent in one period. */
export interface Tally {
  sent: number
  /** By status; a 200 stream that ended with Gate's SSE error event counts as `200 error event`. */
  answered: Map<string, number>
  aborted: number
  lost: number
  cut: number
  stuck: number
  /** The first few lost, cut and stuck requests: kind, and what happened. */
  examples: string[]
}

const MAX_EXAMPLES = 20

export function emptyTally(): Tally {
  return { sent: 0, answered: new Map(), aborted: 0, lost: 0, cut: 0, stuck: 0, examples: [] }
}

export function addTally(into: Tally, from: Tally): void {
  into.sent += from.sent
  for (const [status, n] of from.answered) into.answered.set(status, (into.answered.get(status) ?? 0) + n)
  into.aborted += from.aborted
  into.lost += from.lost
  into.cut += from.cut
  into.stuck += from.stuck
  into.examples.push(...from.examples.slice(0, MAX_EXAMPLES - into.examples.length))
}

export interface LoadInit {
  /** Base URLs of the two APIs. */
  a: string
  b: string
  /** Node ID of B, for X-Target-Node. */
  nodeB: string
  workers: number
  /** A request with no whole answer by then is stuck. */
  timeoutMs: number
  /** Longest pause of a worker between two requests. */
  maxPauseMs: number
}

export class Load {
  readonly #init: LoadInit
  readonly #pools: { a: Pool; b: Pool }
  #tally = emptyTally()
  #running = false
  #workers: Promise<void>[] = []
  /** While B restarts, no request goes to it directly (those through A carry on). */
  #bDown = false
  /** Requests to B under way: it is restarted once they are over. */
  #atB = 0

  constructor(init: LoadInit) {
    this.#init = init
    this.#pools = {
      a: new Pool(init.a, { connections: init.workers }),
      b: new Pool(init.b, { connections: init.workers }),
    }
  }

  start(): void {
    this.#running = true
    this.#workers = Array.from({ length: this.#init.workers }, () => this.#work())
  }

  /** Stops sending; resolves once every request under way is over. */
  async stop(): Promise<void> {
    this.#running = false
    await Promise.all(this.#workers)
    await Promise.all([this.#pools.a.close(), this.#pools.b.close()])
  }

  /** The tally since the last call. */
  take(): Tally {
    const tally = this.#tally
    this.#tally = emptyTally()
    return tally
  }

  /** Sends nothing more to B directly and waits for what was sent to it to be over. */
  async pauseB(): Promise<void> {
    this.#bDown = true
    while (this.#atB > 0) await sleep(10)
    // Its keep-alive connections go with it: a new pool finds the restarted daemon.
    const old = this.#pools.b
    this.#pools.b = new Pool(this.#init.b, { connections: this.#init.workers })
    await old.close()
  }

  resumeB(): void {
    this.#bDown = false
  }

  async #work(): Promise<void> {
    while (this.#running) {
      const kind = pick()
      if (kind.to === 'b' && this.#bDown) continue
      await this.#send(kind)
      await sleep(Math.random() * this.#init.maxPauseMs)
    }
  }

  /** Sends one request and counts its outcome in the tally of the period it ends in. */
  async #send(kind: Kind): Promise<void> {
    this.#tally.sent++
    if (kind.to === 'b') this.#atB++
    const controller = new AbortController()
    let stuck = false
    let aborted = false
    let status: number | undefined
    const timer = setTimeout(() => {
      stuck = true
      controller.abort()
    }, this.#init.timeoutMs)
    const leave = () => {
      aborted = true
      controller.abort()
    }
    const soon = kind.abort === 'soon' ? setTimeout(leave, Math.random() * 50) : undefined
    try {
      const res = await this.#pools[kind.to].request({
        method: 'POST',
        path: kind.path,
        headers: {
          'content-type': 'application/json',
          ...(kind.targetB ? { 'x-target-node': this.#init.nodeB } : {}),
        },
        body: JSON.stringify(
          kind.path === chat
            ? { model: kind.model, messages: [{ role: 'user', content: 'soak' }], stream: kind.stream }
            : { model: kind.model, input: 'soak' },
        ),
        signal: controller.signal,
      })
      status = res.statusCode
      let text = ''
      for await (const chunk of res.body) {
        text += chunk
        if (kind.abort === 'after-first-chunk') leave()
      }
      const errorEvent = kind.stream && status === 200 && text.includes('data: {"error"')
      count(this.#tally.answered, errorEvent ? '200 error event' : String(status))
    } catch (err) {
      const tally = this.#tally
      if (stuck) {
        tally.stuck++
        example(tally, kind, `no whole answer in ${this.#init.timeoutMs} ms (status ${status ?? 'none'})`)
      } else if (aborted) tally.aborted++
      else if (status !== undefined) {
        tally.cut++
        example(tally, kind, `the ${status} answer broke off: ${describe(err)}`)
      } else {
        tally.lost++
        example(tally, kind, `no answer: ${describe(err)}`)
      }
    } finally {
      clearTimeout(timer)
      clearTimeout(soon)
      if (kind.to === 'b') this.#atB--
    }
  }
}

const TOTAL_WEIGHT = KINDS.reduce((sum, k) => sum + k.weight, 0)

function pick(): Kind {
  let r = Math.random() * TOTAL_WEIGHT
  for (const kind of KINDS) {
    r -= kind.weight
    if (r < 0) return kind
  }
  return KINDS[0] as Kind
}

function count(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1)
}

function example(tally: Tally, kind: Kind, what: string): void {
  if (tally.examples.length < MAX_EXAMPLES)
    tally.examples.push(`${new Date().toISOString()} ${kind.name}: ${what}`)
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  const code = (err as { code?: unknown }).code
  return `${err.name}${typeof code === 'string' ? ` ${code}` : ''}: ${err.message}`
}
