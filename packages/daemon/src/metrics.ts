import {
  Counter,
  collectDefaultMetrics,
  Gauge,
  type Metric,
  type MetricValueWithName,
  Registry,
} from 'prom-client'
import type { UsageTotals } from './request-log.ts'

/** What the provider gauges read on each scrape. */
export interface ProviderHealth {
  name: string
  healthy: boolean | null
  breaker: string
}

/** What the counters and gauges read at scrape time, so the request path only counts in plain maps. */
export interface MetricSources {
  providers(): ProviderHealth[]
  /** Requests and streaming responses in flight. */
  inflight(): { requests: number; streams: number }
  /** Finished requests by route and status. */
  requests(): Iterable<{ route: string; status: number; count: number }>
  /** Requests and tokens by consumer (`peer:<node ID>` for what peers asked of us). */
  usage(): Iterable<[consumer: string, totals: UsageTotals]>
  /** Requests and tokens this node's clients consumed from each peer. */
  consumed(): Iterable<[node: string, totals: UsageTotals]>
  /** Trusted peers: connected or not, and their breakers. */
  peers(): Iterable<PeerHealth>
}

/** What the peer gauges read on each scrape. */
export interface PeerHealth {
  node_id: string
  connected: boolean
  breaker: string
}

const NO_SOURCES: MetricSources = {
  providers: () => [],
  inflight: () => ({ requests: 0, streams: 0 }),
  requests: () => [],
  usage: () => [],
  consumed: () => [],
  peers: () => [],
}

type Labels = Record<string, string | number>

/** Prompt and completion tokens of `totals` as two label sets, `kind` added to `labels`. */
function byKind(labels: Labels, totals: UsageTotals): Array<[Labels, number]> {
  return [
    [{ ...labels, kind: 'prompt' }, totals.prompt_tokens],
    [{ ...labels, kind: 'completion' }, totals.completion_tokens],
  ]
}

/**
 * A Prometheus histogram by route, counted in plain arrays and laid out for the registry at each
 * scrape. prom-client's `Histogram` hashes its label set on every observation, a cost on every
 * request; a route is one of a fixed few strings, so this finds its counts in a map.
 */
class RouteHistogram {
  readonly name: string
  readonly help: string
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly #bounds: number[]
  /** Per route: observations per bucket (not cumulative; the last one is above every bound), sum. */
  readonly #routes = new Map<string, { buckets: number[]; sum: number }>()

  constructor(name: string, help: string, bounds: number[], registry: Registry) {
    this.name = name
    this.help = help
    this.#bounds = bounds
    // The registry takes any object with a name and a `get()` giving this shape; its types only
    // name prom-client's own classes.
    registry.registerMetric(this as unknown as Metric)
  }

  observe(route: string, value: number): void {
    let counts = this.#routes.get(route)
    if (!counts) {
      counts = { buckets: new Array<number>(this.#bounds.length + 1).fill(0), sum: 0 }
      this.#routes.set(route, counts)
    }
    let i = 0
    while (i < this.#bounds.length && value > (this.#bounds[i] as number)) i++
    counts.buckets[i] = (counts.buckets[i] as number) + 1
    counts.sum += value
  }

  get(): {
    name: string
    help: string
    type: string
    aggregator: string
    values: MetricValueWithName<string>[]
  } {
    const values: MetricValueWithName<string>[] = []
    for (const [route, { buckets, sum }] of this.#routes) {
      let count = 0
      for (const [i, n] of buckets.entries()) {
        count += n
        const le = i < this.#bounds.length ? (this.#bounds[i] as number) : '+Inf'
        values.push({ metricName: `${this.name}_bucket`, labels: { le, route }, value: count })
      }
      values.push({ metricName: `${this.name}_sum`, labels: { route }, value: sum })
      values.push({ metricName: `${this.name}_count`, labels: { route }, value: count })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }
}

/** The daemon's Prometheus metrics, one registry per daemon so tests can run several. */
export class Metrics {
  readonly registry = new Registry()
  /** Set by the daemon once it runs. */
  sources: MetricSources = NO_SOURCES

  constructor() {
    // The process's own: resident memory, heap, event-loop delay, GC, open handles.
    collectDefaultMetrics({ register: this.registry })
  }
  readonly requests = this.#totals(
    'gate_requests_total',
    'API requests by route and status',
    ['route', 'status'],
    () => [...this.sources.requests()].map(({ route, status, count }) => [{ route, status }, count]),
  )
  readonly duration = new RouteHistogram(
    'gate_request_duration_seconds',
    'API request latency by route',
    [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
    this.registry,
  )
  readonly tokens = this.#totals(
    'gate_tokens_total',
    'Tokens served, by consumer and kind (prompt|completion)',
    ['consumer', 'kind'],
    () => [...this.sources.usage()].flatMap(([consumer, t]) => byKind({ consumer }, t)),
  )
  readonly consumerRequests = this.#totals(
    'gate_consumer_requests_total',
    'Requests served, by consumer (local, key:<fingerprint>, or peer:<node ID>)',
    ['consumer'],
    () => [...this.sources.usage()].map(([consumer, t]) => [{ consumer }, t.requests]),
  )
  readonly consumedRequests = this.#totals(
    'gate_peer_consumed_requests_total',
    'Requests this node sent to each peer',
    ['peer'],
    () => [...this.sources.consumed()].map(([peer, t]) => [{ peer }, t.requests]),
  )
  readonly consumedTokens = this.#totals(
    'gate_peer_consumed_tokens_total',
    'Tokens this node consumed from each peer, by kind (prompt|completion)',
    ['peer', 'kind'],
    () => [...this.sources.consumed()].flatMap(([peer, t]) => byKind({ peer }, t)),
  )
  readonly active: Gauge = new Gauge({
    name: 'gate_active_requests',
    help: 'Requests in flight',
    registers: [this.registry],
    collect: () => this.active.set(this.sources.inflight().requests),
  })
  readonly activeStreams: Gauge = new Gauge({
    name: 'gate_active_streams',
    help: 'Streaming responses in flight',
    registers: [this.registry],
    collect: () => this.activeStreams.set(this.sources.inflight().streams),
  })
  readonly providerUp = this.#flags(
    'gate_provider_up',
    '1 when the provider answered its last health check',
    'provider',
    () => [...this.sources.providers()].map((p) => [p.name, p.healthy === true]),
  )
  readonly breakerOpen = this.#flags(
    'gate_provider_breaker_open',
    '1 when the provider circuit breaker is open or half-open',
    'provider',
    () => [...this.sources.providers()].map((p) => [p.name, p.breaker !== 'closed']),
  )
  readonly peerUp = this.#flags('gate_peer_up', '1 when the trusted peer is connected', 'peer', () =>
    [...this.sources.peers()].map((p) => [p.node_id, p.connected]),
  )
  readonly peerBreakerOpen = this.#flags(
    'gate_peer_breaker_open',
    "1 when the trusted peer's circuit breaker is open or half-open",
    'peer',
    () => [...this.sources.peers()].map((p) => [p.node_id, p.breaker !== 'closed']),
  )

  /** A counter of totals kept elsewhere: set at each scrape to what `read()` gives, per label set. */
  #totals(name: string, help: string, labelNames: string[], read: () => Array<[Labels, number]>): Counter {
    const counter: Counter = new Counter({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect: () => {
        counter.reset()
        for (const [labels, value] of read()) counter.inc(labels, value)
      },
    })
    return counter
  }

  /** A gauge of 1 or 0 per `label` value, read from `read()` at each scrape. */
  #flags(name: string, help: string, label: string, read: () => Array<[string, boolean]>): Gauge {
    const gauge: Gauge = new Gauge({
      name,
      help,
      labelNames: [label],
      registers: [this.registry],
      collect: () => {
        gauge.reset()
        for (const [value, on] of read()) gauge.set({ [label]: value }, on ? 1 : 0)
      },
    })
    return gauge
  }
}
