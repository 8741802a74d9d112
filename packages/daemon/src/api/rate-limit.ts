/**
 * Token buckets by key (a peer's node ID): each holds up to `burst` tokens and refills at `rps`
 * a second; a request takes one.
 */
export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>()

  /** Takes a token for `key`: 0 when allowed, else the seconds until one is available. */
  take(key: string, rps: number, burst: number, now = performance.now()): number {
    const bucket = this.#buckets.get(key) ?? { tokens: burst, at: now }
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * rps)
    bucket.at = now
    this.#buckets.set(key, bucket)
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      return 0
    }
    return (1 - bucket.tokens) / rps
  }
}
