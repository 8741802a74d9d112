/** Keys tracked at once; past it the one used least recently is forgotten (and starts full). */
const MAX_KEYS = 10_000

/**
 * Token buckets by key (a peer, a relayed client's address, an API key): each holds up to `burst`
 * tokens and refills at `rps` a second; a request takes one.
 */
export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>()

  /** Takes a token for `key`: 0 when allowed, else the seconds until one is available. */
  take(key: string, rps: number, burst: number, now = performance.now()): number {
    const bucket = this.#buckets.get(key) ?? { tokens: burst, at: now }
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * rps)
    bucket.at = now
    // Re-inserted: the map's order is the order of last use.
    this.#buckets.delete(key)
    if (this.#buckets.size >= MAX_KEYS) this.#buckets.delete(this.#buckets.keys().next().value as string)
    this.#buckets.set(key, bucket)
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      return 0
    }
    return (1 - bucket.tokens) / rps
  }
}
