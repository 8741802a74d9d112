import type { Stream, StreamCloseEvent } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'

/**
 * Gate's stream framing: each frame is an unsigned varint length, then that many bytes: a type
 * byte and the payload. A frame over the size cap, an unknown type, a head that is not a JSON
 * object, or more data than the receiver allowed is a protocol error that resets the one stream
 * it came on.
 *
 * Flow control is Gate's own, per stream and each way, because libp2p 3.3 does not carry a slow
 * reader back to the writer on every transport (the QUIC transport keeps reading whatever the
 * application does): a writer may have at most RECEIVE_WINDOW bytes of data frames that the
 * reader's application has not taken yet; the reader grants more with `credit` frames as it
 * takes them. Writes also wait for the stream's `drain` event when its send buffer is full
 * (`stream.onDrain()` in libp2p 3.3 resolves at once after the first drain, so it is not used).
 */
export const FRAME_TYPES = { head: 1, data: 2, end: 3, error: 4, credit: 5 } as const
export type FrameType = keyof typeof FRAME_TYPES

/** Largest frame accepted, type byte included; bodies are cut into data frames below it. @default 256 KiB */
export const MAX_FRAME_BYTES = 256 * 1024
/** Data bytes a writer may send ahead of the reader's application. @default 1 MiB */
export const RECEIVE_WINDOW = 1024 * 1024
/** A varint for a length up to 2^35 fits in 5 bytes; more is garbage. */
const MAX_VARINT_BYTES = 5

/** What the exchange layers see; credit frames stay inside FrameStream. */
export type Frame =
  | { type: 'head'; value: Record<string, unknown> }
  | { type: 'data'; bytes: Uint8Array }
  | { type: 'end' }
  | { type: 'error'; value: Record<string, unknown> }

const NAMES = new Map<number, FrameType>(Object.entries(FRAME_TYPES).map(([k, v]) => [v, k as FrameType]))

/**
 * An abort signal that fires after `ms` with `reason()`, and `clear` to drop its timer once the
 * wait is over. Not `AbortSignal.timeout()`: that signal, and what its listeners reached, stays in
 * memory until its timer fires whatever became of the wait (about 3 KB for each `/gate/control`
 * stream for 10 s: a peer opening streams fast made a node hold hundreds of MB).
 */
export function deadline(ms: number, reason: () => Error): { signal: AbortSignal; clear(): void } {
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(reason()), ms).unref()
  return { signal: controller.signal, clear: () => clearTimeout(timer) }
}

/** The peer broke the protocol (or the stream ended mid-exchange): the stream is reset. */
export class ProtocolError extends Error {
  override name = 'ProtocolError'
}

/** Frames in both directions on one stream. */
export class FrameStream {
  readonly stream: Stream
  readonly #buffer = new Uint8ArrayList()
  /** Parsed frames the application has not read yet (at most RECEIVE_WINDOW of data). */
  readonly #queue: Frame[] = []
  #ended = false
  /** The peer has sent its head; its end or error. */
  #peerHead = false
  #peerDone = false
  #error: Error | undefined
  #wakeReader: (() => void) | undefined
  #wakeWriter: (() => void) | undefined
  /** Data bytes we may still send. */
  #credit = RECEIVE_WINDOW
  /** Data bytes the peer may still send us. */
  #allowance = RECEIVE_WINDOW
  /** Data bytes our application has taken but we have not granted back yet. */
  #taken = 0

  constructor(stream: Stream) {
    this.stream = stream
    stream.addEventListener('message', (event) => {
      this.#buffer.append(event.data)
      try {
        this.#parseAll()
      } catch (err) {
        this.#error = err as Error
        stream.abort(err as Error)
      }
      this.#notify()
    })
    // 'end': nothing is buffered and nothing more will come. A stream closed with an error
    // (reset, aborted) has dropped its buffers and ends at once.
    stream.addEventListener('end', () => {
      this.#ended = true
      this.#notify()
    })
    stream.addEventListener('close', (event) => {
      const { error } = event as StreamCloseEvent
      if (error) this.#error ??= error
      this.#ended = true
      this.#notify()
    })
    if (stream.readableEnded) this.#ended = true
  }

  #notify(): void {
    const reader = this.#wakeReader
    const writer = this.#wakeWriter
    this.#wakeReader = undefined
    this.#wakeWriter = undefined
    reader?.()
    writer?.()
  }

  /** The next frame. Throws ProtocolError for a malformed frame or when the stream ends first. */
  async read(signal?: AbortSignal): Promise<Frame> {
    const frame = await this.next(signal)
    if (frame === null) throw new ProtocolError('the stream ended before the exchange did')
    return frame
  }

  /**
   * The next frame, or null when the stream ends cleanly first: for a reader that expects the
   * end, which need not be an error (an error's stack trace costs more than the rest of a read).
   */
  async next(signal?: AbortSignal): Promise<Frame | null> {
    for (;;) {
      const frame = this.#queue.shift()
      if (frame) {
        if (frame.type === 'data') this.#took(frame.bytes.length)
        return frame
      }
      if (this.#error) throw this.#error
      if (this.#ended) return null
      signal?.throwIfAborted()
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(signal?.reason)
        signal?.addEventListener('abort', onAbort, { once: true })
        this.#wakeReader = () => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        }
      })
    }
  }

  /** Grants the peer more data once our application has taken half a window. */
  #took(bytes: number): void {
    this.#taken += bytes
    if (this.#taken < RECEIVE_WINDOW / 2 || this.stream.writeStatus !== 'writable') return
    const grant = this.#taken
    this.#taken = 0
    this.#allowance += grant
    const payload = new Uint8Array(4)
    new DataView(payload.buffer).setUint32(0, grant)
    this.stream.send(encodeFrame('credit', payload))
  }

  /**
   * Queues what the peer sent, which must be one exchange's worth: one head, data, then at most
   * one end or error. Anything past that, or empty data, would be queued for nobody to read.
   */
  #parseAll(): void {
    for (let frame = this.#parse(); frame; frame = this.#parse()) {
      if (this.#peerDone) throw new ProtocolError(`a ${frame.type} frame after the end of the exchange`)
      if (frame.type === 'data') {
        this.#allowance -= frame.bytes.length
        if (this.#allowance < 0) throw new ProtocolError('the peer sent more data than it was allowed')
        if (frame.bytes.length === 0) continue
      } else if (frame.type === 'head') {
        if (this.#peerHead) throw new ProtocolError('a second head frame')
        this.#peerHead = true
      } else this.#peerDone = true
      this.#queue.push(frame)
    }
  }

  #parse(): Frame | undefined {
    for (;;) {
      const buffer = this.#buffer
      let length = 0
      let i = 0
      for (; ; i++) {
        if (i >= buffer.byteLength) return undefined
        if (i >= MAX_VARINT_BYTES) throw new ProtocolError('malformed frame length')
        const byte = buffer.get(i)
        length += (byte & 0x7f) * 2 ** (7 * i)
        if (byte < 0x80) break
      }
      if (length === 0) throw new ProtocolError('empty frame')
      if (length > MAX_FRAME_BYTES)
        throw new ProtocolError(`frame of ${length} bytes is over the ${MAX_FRAME_BYTES}-byte cap`)
      const start = i + 1
      if (buffer.byteLength < start + length) return undefined
      const kind = buffer.get(start)
      const payload = buffer.subarray(start + 1, start + length)
      buffer.consume(start + length)
      switch (NAMES.get(kind)) {
        case 'data':
          return { type: 'data', bytes: payload }
        case 'end':
          return { type: 'end' }
        case 'head':
          return { type: 'head', value: parseObject(payload) }
        case 'error':
          return { type: 'error', value: parseObject(payload) }
        case 'credit':
          if (payload.length !== 4) throw new ProtocolError('malformed credit frame')
          this.#credit += new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0)
          continue
        default:
          throw new ProtocolError(`unknown frame type ${kind}`)
      }
    }
  }

  /** Sends a frame, waiting first for credit (data) and while the stream's send buffer is full. */
  write(frame: Frame): Promise<void> {
    return this.writeAll([frame])
  }

  /**
   * Sends frames in one write (one encryption, one packet where they fit), data split under the
   * frame cap; waits first for credit for all their data and while the send buffer is full.
   * Data over half a window goes in several writes, as credit comes back.
   */
  async writeAll(frames: Frame[]): Promise<void> {
    let out = new Uint8ArrayList()
    let data = 0
    for (const frame of frames) {
      if (frame.type !== 'data') {
        const payload =
          frame.type === 'head' || frame.type === 'error'
            ? new TextEncoder().encode(JSON.stringify(frame.value))
            : undefined
        out.append(encodeFrame(frame.type, payload))
        continue
      }
      const step = MAX_FRAME_BYTES - 1
      for (let at = 0; at < frame.bytes.length; at += step) {
        const bytes = frame.bytes.subarray(at, at + step)
        if (data + bytes.length > RECEIVE_WINDOW / 2) {
          await this.#send(out, data)
          out = new Uint8ArrayList()
          data = 0
        }
        data += bytes.length
        out.append(encodeFrame('data', bytes))
      }
    }
    await this.#send(out, data)
  }

  /** Sends encoded frames carrying `data` bytes of data once there is credit and room for them. */
  async #send(encoded: Uint8ArrayList, data: number): Promise<void> {
    if (encoded.byteLength === 0) return
    while (this.#credit < data) {
      if (this.#error || this.#ended || this.stream.writeStatus !== 'writable') {
        throw this.#error ?? new ProtocolError('the stream closed while sending')
      }
      await new Promise<void>((resolve) => {
        this.#wakeWriter = resolve
      })
    }
    this.#credit -= data
    if (this.stream.writableNeedsDrain) await drained(this.stream)
    this.stream.send(encoded)
  }
}

function encodeFrame(type: FrameType, payload?: Uint8Array): Uint8ArrayList {
  const out = new Uint8ArrayList(encodeVarint(1 + (payload?.length ?? 0)), Uint8Array.of(FRAME_TYPES[type]))
  if (payload) out.append(payload)
  return out
}

/** Resolves on the stream's next `drain`; rejects if it closes first. */
export function drained(stream: Stream): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      stream.removeEventListener('close', onClose)
      resolve()
    }
    const onClose = (event: Event) => {
      stream.removeEventListener('drain', onDrain)
      reject((event as StreamCloseEvent).error ?? new ProtocolError('the stream closed while sending'))
    }
    stream.addEventListener('drain', onDrain, { once: true })
    stream.addEventListener('close', onClose, { once: true })
  })
}

function encodeVarint(n: number): Uint8Array {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80)
    n = Math.floor(n / 0x80)
  }
  out.push(n)
  return Uint8Array.from(out)
}

function parseObject(bytes: Uint8Array): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch {
    throw new ProtocolError('head frame is not JSON')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ProtocolError('head frame is not a JSON object')
  }
  return value as Record<string, unknown>
}
