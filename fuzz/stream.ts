/**
 * A stand-in for a libp2p Stream, with only what FrameStream, the `/gate/control` and
 * `/gate/http` handlers and @libp2p/utils' `lpStream` (the `/gate/punch` messages) use: 'message',
 * 'end', 'remoteCloseWrite', 'close' and 'drain' listeners, `send`, `close`, `abort` and the
 * status fields. The fuzz targets deliver the peer's bytes with `deliver` and
 * read what the node sent back from `sent`, so a parser runs at hundreds of thousands of inputs
 * a second with no network under it.
 */
import type { Connection, Stream } from '../packages/p2p/src/index.ts'
import { PropertyFailure } from './lib.ts'

type Listener = (event: Event) => void

/** How the peer's side ends once its bytes are delivered. */
export type PeerEnd = 'end' | 'reset'

/** The peer reset the stream (what libp2p reports as a StreamResetError). */
export class FakeResetError extends Error {
  override name = 'StreamResetError'
}

/** A write on a closed stream (libp2p throws a StreamStateError). */
export class FakeStateError extends Error {
  override name = 'StreamStateError'
}

export class FakeStream {
  status: 'open' | 'closing' | 'closed' | 'aborted' | 'reset' = 'open'
  writeStatus: 'writable' | 'closing' | 'closed' = 'writable'
  readableEnded = false
  remoteWriteStatus: 'writable' | 'closed' = 'writable'
  /** Delivered bytes go straight to the listeners: none wait in a buffer. */
  readonly readBufferLength = 0
  /** `lpStream` logs through the stream's logger. */
  readonly log = Object.assign(() => {}, { error: () => {}, trace: () => {} })
  readonly writableNeedsDrain = false
  /** What the node sent, in order. */
  readonly sent: Uint8Array[] = []
  /** Why the node aborted the stream, if it did. */
  abortedWith: Error | undefined
  closed = false
  readonly #listeners = new Map<string, Set<Listener>>()

  addEventListener(type: string, listener: Listener, options?: { once?: boolean }): void {
    let set = this.#listeners.get(type)
    if (!set) {
      set = new Set()
      this.#listeners.set(type, set)
    }
    const wrapped: Listener = options?.once
      ? (event) => {
          this.removeEventListener(type, wrapped)
          listener(event)
        }
      : listener
    set.add(wrapped)
  }

  removeEventListener(type: string, listener: Listener): void {
    this.#listeners.get(type)?.delete(listener)
  }

  /**
   * Calls the listeners directly: a listener that throws is a crash of the parser (a real stream
   * would surface it as an uncaught exception), so it fails the input here.
   */
  #dispatch(event: Event): void {
    for (const listener of [...(this.#listeners.get(event.type) ?? [])]) {
      try {
        listener(event)
      } catch (err) {
        throw new PropertyFailure(`a '${event.type}' listener threw: ${String(err)}`, { cause: err })
      }
    }
  }

  /** The peer sends `bytes`; dropped once the stream is closed, as libp2p drops them. */
  deliver(bytes: Uint8Array): void {
    if (this.status !== 'open' && this.status !== 'closing') return
    this.#dispatch(Object.assign(new Event('message'), { data: bytes }))
  }

  /** The peer closes its side ('end') or resets the stream. */
  finish(how: PeerEnd): void {
    if (this.status === 'aborted' || this.status === 'reset') return
    this.remoteWriteStatus = 'closed'
    if (how === 'end') {
      if (this.readableEnded) return
      this.readableEnded = true
      this.#dispatch(new Event('remoteCloseWrite'))
      this.#dispatch(new Event('end'))
      return
    }
    this.status = 'reset'
    this.writeStatus = 'closed'
    this.#dispatch(
      Object.assign(new Event('close'), { error: new FakeResetError('the peer reset the stream') }),
    )
  }

  send(data: Uint8Array | { subarray(): Uint8Array }): boolean {
    if (this.writeStatus !== 'writable') throw new FakeStateError(`the stream is ${this.status}`)
    this.sent.push(data instanceof Uint8Array ? data : data.subarray())
    return true
  }

  /** `lpStream` takes a stream for one by these two methods; the code under test calls neither. */
  push(): void {}
  async closeRead(): Promise<void> {}

  async close(): Promise<void> {
    this.closed = true
    if (this.status === 'open') this.status = 'closing'
    this.writeStatus = 'closed'
  }

  abort(err: Error): void {
    if (this.status === 'aborted' || this.status === 'reset') return
    this.abortedWith = err
    this.status = 'aborted'
    this.writeStatus = 'closed'
    this.#dispatch(Object.assign(new Event('close'), { error: err }))
  }

  /** Everything the node sent, as one buffer. */
  output(): Uint8Array {
    return Buffer.concat(this.sent)
  }

  /** This object as the libp2p Stream the code under test takes: it uses only what is above. */
  asStream(): Stream {
    return this as unknown as Stream
  }
}

/** The connection a handler is given: the fuzzed handlers only pass it on. */
export const FAKE_CONNECTION = {} as Connection
