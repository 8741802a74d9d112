import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'

/**
 * The relay's Prometheus metrics. Labels come from fixed sets (outcomes, reasons, record types),
 * never from node IDs or addresses, so they stay few however many nodes register.
 */
export class RelayMetrics {
  readonly registry = new Registry()
  readonly connections = new Gauge({
    name: 'gate_relay_connections',
    help: 'TLS connections being relayed',
    registers: [this.registry],
  })
  readonly accepted = new Counter({
    name: 'gate_relay_connections_total',
    help: 'TLS connections taken, by outcome (routed, sni_miss, hello_failed, refused)',
    labelNames: ['outcome'],
    registers: [this.registry],
  })
  readonly helloFailures = new Counter({
    name: 'gate_relay_client_hello_failures_total',
    help: 'Connections closed before routing, by reason (timeout, oversized, invalid, not_tls, no_sni)',
    labelNames: ['reason'],
    registers: [this.registry],
  })
  readonly bytes = new Counter({
    name: 'gate_relay_bytes_total',
    help: 'Bytes relayed, by direction (to_node, to_client)',
    labelNames: ['direction'],
    registers: [this.registry],
  })
  readonly durations = new Histogram({
    name: 'gate_relay_connection_duration_seconds',
    help: 'How long relayed connections lasted',
    buckets: [0.1, 1, 10, 60, 600, 3600, 21600],
    registers: [this.registry],
  })
  readonly registrations = new Gauge({
    name: 'gate_relay_registrations',
    help: 'Nodes registered, by state (registered, active)',
    labelNames: ['state'],
    registers: [this.registry],
  })
  readonly dnsQueries = new Counter({
    name: 'gate_relay_dns_queries_total',
    help: 'DNS queries answered, by record type and response code',
    labelNames: ['type', 'rcode'],
    registers: [this.registry],
  })
  readonly challenges = new Counter({
    name: 'gate_relay_dns_challenges_total',
    help: 'ACME DNS-01 challenge records, by outcome (published, removed, failed)',
    labelNames: ['outcome'],
    registers: [this.registry],
  })

  /** Where the circuit relay's reservations are counted, by kind, when scraped. */
  reservations: (() => { gate: number; other: number }) | undefined
  readonly circuitReservations = new Gauge({
    name: 'gate_relay_circuit_reservations',
    help: 'Circuit-relay reservations held, by kind of peer (gate, other)',
    labelNames: ['kind'],
    registers: [this.registry],
    collect: () => {
      const counts = this.reservations?.()
      if (!counts) return
      this.circuitReservations.set({ kind: 'gate' }, counts.gate)
      this.circuitReservations.set({ kind: 'other' }, counts.other)
    },
  })
  readonly circuitRefused = new Counter({
    name: 'gate_relay_circuit_reservations_refused_total',
    help: 'Circuit-relay reservations this relay refused, by reason (untrusted_quota)',
    labelNames: ['reason'],
    registers: [this.registry],
  })

  constructor() {
    collectDefaultMetrics({ register: this.registry })
  }
}
