/** Consecutive failures that open a circuit breaker. @default 3 */
export const BREAKER_FAILURE_THRESHOLD = 3
/** How long an open breaker waits before letting one probe request through. @default 10_000 ms */
export const BREAKER_COOLDOWN_MS = 10_000

export type BreakerState = 'closed' | 'open' | 'half_open'

export interface BreakerOptions {
  /** @default BREAKER_FAILURE_THRESHOLD */
  failureThreshold?: number
  /** @default BREAKER_COOLDOWN_MS */
  cooldownMs?: number
  now?: () => number
}

/**
 * A circuit breaker: closed until `failureThreshold` failures in a row, then open (requests are
 * refused) for `cooldownMs`, then half-open: one probe goes through and its outcome closes or
 * re-opens the breaker.
 */
export class Breaker {
  #failures = 0
  #openedAt = 0
  #state: BreakerState = 'closed'
  #probing = false
  readonly #threshold: number
  readonly #cooldownMs: number
  readonly #now: () => number

  constructor(options: BreakerOptions = {}) {
    this.#threshold = options.failureThreshold ?? BREAKER_FAILURE_THRESHOLD
    this.#cooldownMs = options.cooldownMs ?? BREAKER_COOLDOWN_MS
    this.#now = options.now ?? Date.now
  }

  get state(): BreakerState {
    if (this.#state === 'open' && this.#now() - this.#openedAt >= this.#cooldownMs) this.#state = 'half_open'
    return this.#state
  }

  /** Whether a request may go through now; in half-open state only one probe at a time may. */
  tryAcquire(): boolean {
    const state = this.state
    if (state === 'closed') return true
    if (state === 'open' || this.#probing) return false
    this.#probing = true
    return true
  }

  /** Whether a request could go through, without taking the half-open probe slot. */
  get available(): boolean {
    const state = this.state
    return state === 'closed' || (state === 'half_open' && !this.#probing)
  }

  success(): void {
    this.#failures = 0
    this.#probing = false
    this.#state = 'closed'
  }

  failure(): void {
    this.#probing = false
    this.#failures++
    if (this.#state === 'half_open' || this.#failures >= this.#threshold) {
      this.#state = 'open'
      this.#openedAt = this.#now()
    }
  }

  /** Ends a probe that neither succeeded nor failed (the client went away). */
  release(): void {
    this.#probing = false
  }
}
