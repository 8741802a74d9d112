import { RPC_ERROR_CODES, type RpcClient, RpcError } from '@gate/rpc/client'

/** `live`: the event stream is open; `connecting`: first attempt; `disconnected`: retrying. */
export type LiveState = 'connecting' | 'live' | 'disconnected'

/** Event the hub sends when the stream opens again after it broke: views reload what they missed. */
export const RECONNECTED = 'reconnected'

/** Delays between reconnect attempts; the last one repeats. */
const RETRY_MS = [500, 1000, 2000, 4000]
/** How long the stream may take to open before the attempt counts as failed. */
const CONNECT_TIMEOUT_MS = 5000

type Listener = (data: unknown) => void

/**
 * The daemon's `/events`, shared by every view: one stream, reopened after it breaks (the daemon
 * restarted, the machine slept), with its state for the "disconnected" banner. Listeners subscribe
 * by event name.
 */
export class LiveEvents {
  readonly #listeners = new Map<string, Set<Listener>>()
  readonly #stateListeners = new Set<(state: LiveState) => void>()
  #state: LiveState = 'connecting'

  get state(): LiveState {
    return this.#state
  }

  on(event: string, listener: Listener): () => void {
    let set = this.#listeners.get(event)
    if (!set) {
      set = new Set()
      this.#listeners.set(event, set)
    }
    set.add(listener)
    return () => set.delete(listener)
  }

  onState(listener: (state: LiveState) => void): () => void {
    this.#stateListeners.add(listener)
    return () => this.#stateListeners.delete(listener)
  }

  /**
   * Reads the stream until `signal` aborts, reconnecting with backoff. `onRefused` is called when
   * the daemon refuses the token (it was changed), and the loop ends.
   */
  async run(rpc: RpcClient, signal: AbortSignal, onRefused: () => void): Promise<void> {
    let failures = 0
    while (!signal.aborted) {
      try {
        for await (const { event, data } of rpc.events({ signal, connectTimeoutMs: CONNECT_TIMEOUT_MS })) {
          if (event === 'hello') {
            failures = 0
            const broke = this.#state === 'disconnected'
            this.#setState('live')
            if (broke) this.#emit(RECONNECTED, null)
          } else this.#emit(event, data)
        }
      } catch (err) {
        if (isRefused(err)) {
          onRefused()
          return
        }
      }
      if (signal.aborted) return
      this.#setState('disconnected')
      const delay = RETRY_MS[Math.min(failures++, RETRY_MS.length - 1)]
      await new Promise((resolve) => setTimeout(resolve, delay))
    }
  }

  #emit(event: string, data: unknown): void {
    for (const listener of this.#listeners.get(event) ?? []) listener(data)
  }

  #setState(state: LiveState): void {
    if (state === this.#state) return
    this.#state = state
    for (const listener of this.#stateListeners) listener(state)
  }
}

/** The daemon answered 401: the token is wrong, or no longer valid. */
export function isRefused(err: unknown): boolean {
  return err instanceof RpcError && err.code === RPC_ERROR_CODES.unauthorized
}
