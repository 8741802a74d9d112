import type { RequestRecord, TrafficMinute } from '@gate/rpc'

/** Minutes of traffic kept: the dashboard's charts show the last hour. @default 60 */
export const TRAFFIC_MINUTES = 60

/**
 * Latency bins per doubling: bin `i` holds latencies up to 2^(i/4) ms, so a quantile read from the
 * bins is within 19% of the true one whatever the load, in memory that does not grow with it.
 */
const BINS_PER_DOUBLING = 4
/** 2^(120/4) ms is about 12 days: every latency fits. */
const BINS = 120

interface Bucket {
  /** Minutes since the epoch. */
  minute: number
  requests: number
  errors: number
  tokens: number
  latencies: Uint32Array
}

/**
 * Requests per minute over the last TRAFFIC_MINUTES, with latency quantiles: a ring of buckets, one
 * per minute, each holding a log-scale latency histogram. Memory is fixed, and adding a record is a
 * few increments, cheap enough for every request.
 */
export class TrafficWindow {
  readonly #buckets: Bucket[] = Array.from({ length: TRAFFIC_MINUTES }, () => ({
    minute: -1,
    requests: 0,
    errors: 0,
    tokens: 0,
    latencies: new Uint32Array(BINS),
  }))

  /** Counts a finished request in the minute it finished (`now`). */
  add(record: RequestRecord, now = Date.now()): void {
    const bucket = this.#bucket(Math.floor(now / 60_000))
    bucket.requests++
    if (record.status >= 400) bucket.errors++
    bucket.tokens += (record.usage?.prompt_tokens ?? 0) + (record.usage?.completion_tokens ?? 0)
    ;(bucket.latencies[binOf(record.latency_ms)] as number)++
  }

  /** The last TRAFFIC_MINUTES minutes up to `now`'s, oldest first; minutes without requests are zeros. */
  minutes(now = Date.now()): TrafficMinute[] {
    const current = Math.floor(now / 60_000)
    const out: TrafficMinute[] = []
    for (let minute = current - TRAFFIC_MINUTES + 1; minute <= current; minute++) {
      const bucket = this.#buckets[minute % TRAFFIC_MINUTES] as Bucket
      const held = bucket.minute === minute
      out.push({
        minute: new Date(minute * 60_000).toISOString(),
        requests: held ? bucket.requests : 0,
        errors: held ? bucket.errors : 0,
        p50_ms: held ? quantile(bucket, 0.5) : null,
        p95_ms: held ? quantile(bucket, 0.95) : null,
        tokens: held ? bucket.tokens : 0,
      })
    }
    return out
  }

  /** The bucket of `minute`, emptied first when it last held an older minute. */
  #bucket(minute: number): Bucket {
    const bucket = this.#buckets[minute % TRAFFIC_MINUTES] as Bucket
    if (bucket.minute !== minute) {
      bucket.minute = minute
      bucket.requests = 0
      bucket.errors = 0
      bucket.tokens = 0
      bucket.latencies.fill(0)
    }
    return bucket
  }
}

function binOf(ms: number): number {
  if (!(ms > 1)) return 0
  return Math.min(BINS - 1, Math.ceil(Math.log2(ms) * BINS_PER_DOUBLING))
}

/** The upper bound of the bin holding the `q` quantile, rounded to 0.1 ms; null for no requests. */
function quantile(bucket: Bucket, q: number): number | null {
  if (bucket.requests === 0) return null
  const rank = Math.ceil(q * bucket.requests)
  let seen = 0
  for (let i = 0; i < BINS; i++) {
    seen += bucket.latencies[i] as number
    if (seen >= rank) return Math.round(2 ** (i / BINS_PER_DOUBLING) * 10) / 10
  }
  return null
}
