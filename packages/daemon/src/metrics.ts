import { Counter, Gauge, Histogram, Registry } from 'prom-client'

/** What the provider gauges read on each scrape. */
export interface ProviderHealth {
  name: string
  healthy: boolean | null
  breaker: string
}

/** The daemon's Prometheus metrics, one registry per daemon so tests can run several. */
export class Metrics {
  readonly registry = new Registry()
  /** Set by the daemon: the providers whose health the gauges report, read at scrape time. */
  providers: () => ProviderHealth[] = () => []
  /** Set by the daemon: requests and streaming responses in flight, read at scrape time. */
  inflight: () => { requests: number; streams: number } = () => ({ requests: 0, streams: 0 })
  readonly requests = new Counter({
    name: 'gate_requests_total',
    help: 'API requests by route and status',
    labelNames: ['route', 'status'] as const,
    registers: [this.registry],
  })
  readonly duration = new Histogram({
    name: 'gate_request_duration_seconds',
    help: 'API request latency by route',
    labelNames: ['route'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
    registers: [this.registry],
  })
  readonly tokens = new Counter({
    name: 'gate_tokens_total',
    help: 'Tokens served, by consumer and kind (prompt|completion)',
    labelNames: ['consumer', 'kind'] as const,
    registers: [this.registry],
  })
  readonly active: Gauge = new Gauge({
    name: 'gate_active_requests',
    help: 'Requests in flight',
    registers: [this.registry],
    collect: () => this.active.set(this.inflight().requests),
  })
  readonly activeStreams: Gauge = new Gauge({
    name: 'gate_active_streams',
    help: 'Streaming responses in flight',
    registers: [this.registry],
    collect: () => this.activeStreams.set(this.inflight().streams),
  })
  readonly providerUp = new Gauge({
    name: 'gate_provider_up',
    help: '1 when the provider answered its last health check',
    labelNames: ['provider'] as const,
    registers: [this.registry],
    collect: () => {
      this.providerUp.reset()
      for (const p of this.providers()) this.providerUp.set({ provider: p.name }, p.healthy ? 1 : 0)
    },
  })
  readonly breakerOpen = new Gauge({
    name: 'gate_provider_breaker_open',
    help: '1 when the provider circuit breaker is open or half-open',
    labelNames: ['provider'] as const,
    registers: [this.registry],
    collect: () => {
      this.breakerOpen.reset()
      for (const p of this.providers())
        this.breakerOpen.set({ provider: p.name }, p.breaker === 'closed' ? 0 : 1)
    },
  })
}
