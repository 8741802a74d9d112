/**
 * A token bucket: `rate` tokens a second, holding at most `burst` (one second's worth unless said
 * otherwise). Bandwidth per node (tokens are bytes) and accepts per source address (a token each).
 */
export class TokenBucket {
  readonly #rate: number
  readonly #burst: number
  #tokens: number
  #at = performance.now()

  constructor(rate: number, burst = rate) {
    this.#rate = rate
    this.#burst = burst
    this.#tokens = burst
  }

  /** Takes `n` tokens, going into debt if need be: the milliseconds until the debt is paid (0: none). */
  take(n: number, now = performance.now()): number {
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#at) / 1000) * this.#rate)
    this.#at = now
    this.#tokens -= n
    return this.#tokens >= 0 ? 0 : (-this.#tokens / this.#rate) * 1000
  }

  /** Takes one token if there is one. */
  tryTake(now = performance.now()): boolean {
    if (this.take(1, now) === 0) return true
    this.#tokens += 1
    return false
  }
}
