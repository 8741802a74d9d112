import type { Writable } from 'node:stream'
import { rotatingFile } from '@gate/core'
import type { RequestRecord, UsageTotals } from '@gate/rpc'
import { REQUEST_HISTORY_SIZE, REQUEST_LOG_FLUSH_MS } from './constants.ts'
import { TrafficWindow } from './traffic.ts'

export type { RequestRecord, UsageTotals }

/**
 * Appends one JSON line per finished request to `requests.jsonl`, keeps the latest in memory for
 * `request_history`, adds up usage per consumer, and counts requests per minute for the dashboard.
 */
export class RequestLog {
  readonly #file: Writable
  /**
   * Records not yet handed to the file: written together REQUEST_LOG_FLUSH_MS after the first. Each
   * file write is a round trip to libuv's thread pool (two thread wake-ups), too much per request.
   * Their lines are made at the flush too: made per request, they would outlive young-generation
   * collections while they wait, and be copied by each.
   */
  #pending: RequestRecord[] = []
  #timer: NodeJS.Timeout | undefined
  /** A ring of the latest REQUEST_HISTORY_SIZE records; `total` counts every one ever added. */
  readonly #recent: RequestRecord[] = []
  /** Per consumer: `local`, `key:<fingerprint>`, or `peer:<node ID>` for what peers asked of us. */
  readonly usage = new Map<string, UsageTotals>()
  /** Per peer node ID: what this node's clients consumed from that peer. */
  readonly consumed = new Map<string, UsageTotals>()
  /** What this node's own engines served, to anyone. */
  readonly served: UsageTotals = { requests: 0, prompt_tokens: 0, completion_tokens: 0 }
  /** Requests, errors, latency and tokens per minute over the last hour. */
  readonly traffic = new TrafficWindow()
  total = 0
  /** Finished requests by route, then status. */
  readonly #counts = new Map<string, Map<number, number>>()

  readonly #self: string

  /** `self`: this node's ID; records served by another node count as consumed from it. */
  constructor(path: string, self: string) {
    this.#self = self
    this.#file = rotatingFile(path)
  }

  add(record: RequestRecord): void {
    if (this.#pending.length === 0) this.#timer = setTimeout(() => this.#flush(), REQUEST_LOG_FLUSH_MS)
    this.#pending.push(record)
    this.#recent[this.total % REQUEST_HISTORY_SIZE] = record
    this.total++
    let byStatus = this.#counts.get(record.route)
    if (!byStatus) {
      byStatus = new Map()
      this.#counts.set(record.route, byStatus)
    }
    byStatus.set(record.status, (byStatus.get(record.status) ?? 0) + 1)
    count(this.usage, record.consumer, record)
    // Served: what reached one of this node's engines (a refused request reached none).
    if (record.node === this.#self) {
      if (record.provider !== null) add(this.served, record)
    } else if (record.node !== null) count(this.consumed, record.node, record)
    this.traffic.add(record)
  }

  /** Finished requests by route and status. */
  *counts(): Generator<{ route: string; status: number; count: number }> {
    for (const [route, byStatus] of this.#counts) {
      for (const [status, count] of byStatus) yield { route, status, count }
    }
  }

  /** The latest `limit` records, newest first. */
  recent(limit: number): RequestRecord[] {
    const n = Math.min(limit, this.#recent.length)
    const out: RequestRecord[] = []
    for (let i = 1; i <= n; i++)
      out.push(this.#recent[(this.total - i) % REQUEST_HISTORY_SIZE] as RequestRecord)
    return out
  }

  #flush(): void {
    clearTimeout(this.#timer)
    if (this.#pending.length === 0) return
    let lines = ''
    for (const record of this.#pending) lines += `${JSON.stringify(record)}\n`
    this.#file.write(lines)
    this.#pending = []
  }

  close(): Promise<void> {
    this.#flush()
    return new Promise((resolve) => this.#file.end(resolve))
  }
}

function count(totals: Map<string, UsageTotals>, key: string, record: RequestRecord): void {
  let entry = totals.get(key)
  if (!entry) {
    entry = { requests: 0, prompt_tokens: 0, completion_tokens: 0 }
    totals.set(key, entry)
  }
  add(entry, record)
}

function add(entry: UsageTotals, record: RequestRecord): void {
  entry.requests++
  entry.prompt_tokens += record.usage?.prompt_tokens ?? 0
  entry.completion_tokens += record.usage?.completion_tokens ?? 0
}
