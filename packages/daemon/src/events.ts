import { EventEmitter } from 'node:events'

/** What `/events` streams: peer up/down, requests, log lines, config changes. */
export interface GateEvent {
  type: string
  data: unknown
}

/** The daemon's event bus; `/events` subscribers and tests listen on it. */
export class EventBus {
  readonly #emitter = new EventEmitter()

  constructor() {
    this.#emitter.setMaxListeners(0)
  }

  /** Whether anyone subscribes: an event's data need not be made for nobody. */
  get listening(): boolean {
    return this.#emitter.listenerCount('event') > 0
  }

  emit(type: string, data: unknown): void {
    if (this.listening) this.#emitter.emit('event', { type, data } satisfies GateEvent)
  }

  subscribe(listener: (event: GateEvent) => void): () => void {
    this.#emitter.on('event', listener)
    return () => this.#emitter.off('event', listener)
  }
}
