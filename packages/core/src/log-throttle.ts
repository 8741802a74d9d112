import type { Logger } from './logger.ts'

/** How long a throttled message stays quiet after it was logged. @default 10 s */
export const LOG_THROTTLE_MS = 10_000
/** Keys (peers, sources) a throttle keeps; past it the oldest is forgotten. @default 1024 */
const MAX_KEYS = 1024

/**
 * Warnings that something outside may cause at any rate (a peer breaking the protocol, clients
 * refused at a connection cap): each key logs at most once per `intervalMs`, and the next line
 * says how many were held back meanwhile (`repeated`), so a flood costs a line per interval.
 */
export class LogThrottle {
  readonly #logger: Logger
  readonly #intervalMs: number
  readonly #keys = new Map<string, { at: number; held: number }>()

  constructor(logger: Logger, intervalMs = LOG_THROTTLE_MS) {
    this.#logger = logger
    this.#intervalMs = intervalMs
  }

  warn(key: string, fields: object, message: string, now = Date.now()): void {
    const last = this.#keys.get(key)
    if (last && now - last.at < this.#intervalMs) {
      last.held++
      return
    }
    this.#keys.delete(key)
    if (this.#keys.size >= MAX_KEYS) this.#keys.delete(this.#keys.keys().next().value as string)
    this.#keys.set(key, { at: now, held: 0 })
    this.#logger.warn(last?.held ? { ...fields, repeated: last.held } : fields, message)
  }
}
