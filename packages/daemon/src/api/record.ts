/** The last step of a request's way: its record, in the request log, the metrics and `/events`. */
import { MAX_RECORDED_ERROR_CHARS } from '../constants.ts'
import type { EventBus } from '../events.ts'
import type { Metrics } from '../metrics.ts'
import type { RequestLog, RequestRecord } from '../request-log.ts'
import type { ApiResponse } from './types.ts'
import type { Usage } from './usage.ts'

/** What the pipeline learns of a request on its way, which its record keeps. */
export interface Exchange {
  id: string
  /** `performance.now()` at its arrival. */
  start: number
  method: string
  route: string
  model: string | null
  /** The node that served it: this one, or the peer it was sent to. */
  node: string
  provider: string | null
  stream: boolean
  consumer: string
  usage: Usage | null
  error: string | null
  /** The whole answer reached the client, even if it closed the connection before our last write. */
  complete: boolean
}

export interface RecorderComponents {
  requestLog: RequestLog
  metrics: Metrics
  events: EventBus
}

/** Records finished requests. */
export class Recorder {
  readonly #c: RecorderComponents

  constructor(components: RecorderComponents) {
    this.#c = components
  }

  /** Records `ex` once its response `res` has closed; a response the client left unfinished is a 499. */
  record(ex: Exchange, res: ApiResponse): void {
    const latency = performance.now() - ex.start
    const record: RequestRecord = {
      id: ex.id,
      time: new Date(Date.now() - latency).toISOString(),
      method: ex.method,
      route: ex.route,
      model: ex.model,
      node: ex.node,
      provider: ex.provider,
      status: res.writableFinished || ex.complete ? res.statusCode : 499,
      latency_ms: Math.round(latency * 100) / 100,
      stream: ex.stream,
      consumer: ex.consumer,
      usage: ex.usage,
      error: ex.error === null ? null : bounded(ex.error),
    }
    this.#c.metrics.duration.observe(ex.route, latency / 1000)
    this.#c.requestLog.add(record)
    this.#c.events.emit('request', record)
  }
}

/** An error message as recorded: cut to MAX_RECORDED_ERROR_CHARS, whatever an upstream said. */
function bounded(message: string): string {
  return message.length > MAX_RECORDED_ERROR_CHARS
    ? `${message.slice(0, MAX_RECORDED_ERROR_CHARS)}…`
    : message
}
