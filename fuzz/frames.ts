/**
 * The P2P frame decoder (FrameStream, packages/p2p/src/frames.ts) on a stand-in stream: the
 * peer's bytes are whole exchanges cut at random points, the same with bytes changed, crafted
 * headers (lengths over the cap, 6-byte varints, empty frames, unknown types, bad credit, heads
 * that are not JSON objects or not UTF-8), data past the receive window, and random bytes.
 *
 * Properties: only ProtocolError (or the peer's reset) comes out; a valid exchange reads back
 * frame for frame, however it is cut; every frame read is well-formed and in a legal order; and
 * the decoder never holds what it should have refused: while the stream is open, the frame it is
 * waiting for is declared within MAX_FRAME_BYTES, and the data taken is within the receive window
 * plus the credit it granted.
 */
import { setImmediate } from 'node:timers/promises'
import fc from 'fast-check'
import { FRAME_TYPES } from '../packages/p2p/src/frames.ts'
import {
  type Frame,
  FrameStream,
  MAX_FRAME_BYTES,
  ProtocolError,
  RECEIVE_WINDOW,
} from '../packages/p2p/src/index.ts'
import { anyJson, awkwardString, describe, ensure, PropertyFailure, split, type Target } from './lib.ts'
import { FakeResetError, FakeStream } from './stream.ts'

const TYPE = FRAME_TYPES
/** Largest payload of one frame: the cap counts the type byte. */
const MAX_PAYLOAD = MAX_FRAME_BYTES - 1

function varint(n: number): number[] {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80)
    n = Math.floor(n / 0x80)
  }
  out.push(n)
  return out
}

/** One frame as Gate's framing spec writes it: varint(1 + payload length), type byte, payload. */
export function encodeFrame(type: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  return Buffer.concat([Uint8Array.from([...varint(1 + payload.length), type]), payload])
}

/** The frames in `bytes` (what a handler sent), read back by the decoder; throws if they are not whole. */
export async function decodeAll(bytes: Uint8Array): Promise<Frame[]> {
  const fake = new FakeStream()
  const frames = new FrameStream(fake.asStream())
  fake.deliver(bytes)
  fake.finish('end')
  const out: Frame[] = []
  for (let frame = await frames.next(); frame; frame = await frames.next()) out.push(frame)
  return out
}

/** A frame of a well-behaved peer, as the reader must see it again (credit aside). */
type ValidFrame =
  | { type: 'head' | 'error'; value: Record<string, unknown> }
  | { type: 'data'; size: number; fill: number }
  | { type: 'credit'; grant: number }
  | { type: 'end' }

const jsonObject = fc.dictionary(awkwardString, anyJson, { maxKeys: 3 })

const dataFrame = fc.record({
  type: fc.constant('data' as const),
  // Mostly small: a large frame costs as much as a thousand small inputs.
  size: fc.oneof(
    { weight: 2000, arbitrary: fc.nat(64) },
    { weight: 100, arbitrary: fc.integer({ min: 65, max: 4096 }) },
    { weight: 1, arbitrary: fc.integer({ min: 4097, max: MAX_PAYLOAD }) },
    { weight: 1, arbitrary: fc.constantFrom(MAX_PAYLOAD - 1, MAX_PAYLOAD) },
  ),
  fill: fc.nat(255),
})

/** One exchange as a peer that keeps the protocol sends it: a head, data and credit, an end. */
const validExchange: fc.Arbitrary<ValidFrame[]> = fc
  .tuple(
    fc.option(jsonObject.map((value) => ({ type: 'head' as const, value }))),
    fc.array(
      fc.oneof(
        { weight: 4, arbitrary: dataFrame },
        { weight: 1, arbitrary: fc.record({ type: fc.constant('credit' as const), grant: fc.nat() }) },
      ),
      { maxLength: 8 },
    ),
    fc.oneof(
      fc.constant(null),
      fc.constant({ type: 'end' as const }),
      jsonObject.map((value) => ({ type: 'error' as const, value })),
    ),
  )
  .map(([head, middle, last]) => {
    // Within the receive window: a peer that keeps the protocol waits for credit past it.
    const frames: ValidFrame[] = head ? [head] : []
    let data = 0
    for (const frame of middle) {
      if (frame.type === 'data') data += frame.size
      if (data > RECEIVE_WINDOW) break
      frames.push(frame)
    }
    return last ? [...frames, last] : frames
  })

function encodeValid(frame: ValidFrame): Uint8Array {
  switch (frame.type) {
    case 'head':
    case 'error':
      return encodeFrame(TYPE[frame.type], Buffer.from(JSON.stringify(frame.value)))
    case 'data':
      return encodeFrame(TYPE.data, new Uint8Array(frame.size).fill(frame.fill))
    case 'credit': {
      const payload = new Uint8Array(4)
      new DataView(payload.buffer).setUint32(0, frame.grant)
      return encodeFrame(TYPE.credit, payload)
    }
    case 'end':
      return encodeFrame(TYPE.end)
  }
}

/** More data than the receive window (by -2 to 2 bytes), in frames at the cap. */
const pastTheWindow = fc.integer({ min: -2, max: 2 }).map((extra) => {
  const frames: Uint8Array[] = []
  for (let left = RECEIVE_WINDOW + extra; left > 0; left -= MAX_PAYLOAD)
    frames.push(encodeFrame(TYPE.data, new Uint8Array(Math.min(left, MAX_PAYLOAD))))
  return Buffer.concat(frames)
})

/** Bytes that break the framing in one place each. */
const craftedFrame: fc.Arbitrary<Uint8Array> = fc.oneof(
  // A length over the cap, up to what 5 varint bytes hold, with some payload after it.
  fc
    .tuple(fc.integer({ min: MAX_FRAME_BYTES + 1, max: 2 ** 35 - 1 }), fc.nat(64))
    .map(([length, tail]) => Uint8Array.from([...varint(length), TYPE.data, ...new Array(tail).fill(0)])),
  fc.constant(Uint8Array.from([...varint(MAX_FRAME_BYTES + 1), TYPE.data])),
  // Varints that never end within 5 bytes, and non-canonical ones (0x80 padding) that do.
  fc.integer({ min: 5, max: 12 }).map((n) => new Uint8Array(n).fill(0xff)),
  fc
    .integer({ min: 1, max: 3 })
    .map((pad) => Uint8Array.from([0x81, ...new Array(pad).fill(0x80), 0x00, TYPE.end])),
  fc.constant(Uint8Array.of(0)), // an empty frame
  fc
    .integer({ min: 0, max: 255 })
    .filter((t) => !Object.values<number>(TYPE).includes(t))
    .map((t) => encodeFrame(t)),
  fc
    .uint8Array({ maxLength: 8 })
    .filter((p) => p.length !== 4)
    .map((p) => encodeFrame(TYPE.credit, p)),
  // Heads and errors that are not a JSON object, or not UTF-8.
  fc
    .tuple(
      fc.constantFrom(TYPE.head, TYPE.error),
      fc.oneof(
        anyJson.map((v) => Buffer.from(JSON.stringify(v) ?? '')),
        fc.constantFrom(
          Uint8Array.of(0xff, 0xfe),
          Uint8Array.of(0x7b, 0xed, 0xa0, 0x80, 0x7d), // a surrogate encoded as UTF-8
          Uint8Array.of(0x22, 0xc0, 0xaf, 0x22), // an overlong encoding
          Buffer.from('{"a":1'),
          Buffer.from('{"a":1}{'),
        ),
      ),
    )
    .map(([type, payload]) => encodeFrame(type, payload)),
)

/** Hostile bytes: frames valid and crafted in any order (second heads, frames after the end), edited. */
export const hostileBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 512 }) },
  {
    weight: 5,
    arbitrary: fc
      .tuple(
        fc.array(
          fc.oneof(
            { weight: 500, arbitrary: validExchange.map((fs) => Buffer.concat(fs.map(encodeValid))) },
            { weight: 500, arbitrary: craftedFrame },
            // A megabyte costs as much as a thousand small inputs: rare.
            { weight: 1, arbitrary: pastTheWindow },
          ),
          { minLength: 1, maxLength: 3 },
        ),
        fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 3 }),
      )
      .map(([parts, edits]) => {
        const bytes = Buffer.concat(parts)
        for (const [at, byte] of edits) if (bytes.length > 0) bytes[at % bytes.length] = byte
        return bytes
      }),
  },
)

type Input =
  | { kind: 'valid'; frames: ValidFrame[]; cuts: number[]; reset: boolean; eager: boolean }
  | { kind: 'hostile'; bytes: Uint8Array; cuts: number[]; reset: boolean; eager: boolean }

const delivery = {
  cuts: fc.array(fc.nat(), { maxLength: 8 }),
  reset: fc.boolean(),
  eager: fc.boolean(),
}

export async function createTarget(): Promise<Target<Input>> {
  return {
    arbitrary: fc.oneof(
      fc.record({ kind: fc.constant('valid' as const), frames: validExchange, ...delivery }),
      fc.record({ kind: fc.constant('hostile' as const), bytes: hostileBytes, ...delivery }),
    ),
    check,
  }
}

async function check(input: Input): Promise<void> {
  const bytes = input.kind === 'valid' ? Buffer.concat(input.frames.map(encodeValid)) : input.bytes
  const fake = new FakeStream()
  const frames = new FrameStream(fake.asStream())
  const read: Frame[] = []
  let readError: unknown
  const readAll = async () => {
    try {
      for (let frame = await frames.next(); frame; frame = await frames.next()) read.push(frame)
    } catch (err) {
      readError = err
    }
  }
  // Eager: the application reads as frames arrive, so credit goes back while the peer sends.
  const reading = input.eager ? readAll() : undefined
  const held = new HeldCheck(bytes)
  let delivered = 0
  for (const piece of split(bytes, input.cuts)) {
    fake.deliver(piece)
    delivered += piece.length
    if (!fake.abortedWith) held.check(delivered, granted(fake.output()))
    if (input.eager) await setImmediate()
  }
  fake.finish(input.reset ? 'reset' : 'end')
  await (reading ?? readAll())

  if (fake.abortedWith)
    ensure(fake.abortedWith instanceof ProtocolError, `aborted with ${describe(fake.abortedWith)}`)
  if (readError !== undefined)
    ensure(
      readError instanceof ProtocolError || readError instanceof FakeResetError,
      `read threw ${describe(readError)}`,
    )
  checkOrder(read)
  if (input.kind === 'valid') {
    ensure(!fake.abortedWith, `a valid exchange was refused: ${describe(fake.abortedWith)}`)
    const expected = input.frames.flatMap((f) => expectedFrame(f))
    ensure(
      JSON.stringify(read.map(summary)) === JSON.stringify(expected),
      `read ${read.length} frames back, not the ${expected.length} sent`,
    )
    ensure(
      input.reset ? readError instanceof FakeResetError : readError === undefined,
      `the peer's ${input.reset ? 'reset' : 'end'} read as ${describe(readError)}`,
    )
  }
}

/**
 * What the decoder may hold, read off the framing alone: after the complete frames delivered,
 * at most one frame in progress, whose declared length (once its varint is whole) is within the
 * cap; and data within the window plus the credit granted so far. Reads on from where it stopped.
 */
class HeldCheck {
  readonly #bytes: Uint8Array
  /** Start of the first frame not yet complete. */
  #at = 0
  #data = 0

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes
  }

  /** Checks the state once the first `delivered` bytes have arrived. */
  check(delivered: number, credit: number): void {
    while (this.#stepOver(delivered)) {}
    ensure(
      this.#data <= RECEIVE_WINDOW + credit,
      `took ${this.#data} data bytes with a window of ${RECEIVE_WINDOW} and ${credit} granted`,
    )
  }

  /** Steps over the next frame if it has all arrived; checks its length once its varint has. */
  #stepOver(delivered: number): boolean {
    const bytes = this.#bytes
    let length = 0
    let i = 0
    for (; ; i++) {
      if (this.#at + i >= delivered) return false
      if (i >= 5) throw new PropertyFailure('the stream is still open after a varint of over 5 bytes')
      const byte = bytes[this.#at + i] as number
      length += (byte & 0x7f) * 2 ** (7 * i)
      if (byte < 0x80) break
    }
    ensure(length <= MAX_FRAME_BYTES, `the stream is still open waiting for a frame of ${length} bytes`)
    const end = this.#at + i + 1 + length
    if (end > delivered) return false
    if (bytes[this.#at + i + 1] === TYPE.data) this.#data += length - 1
    this.#at = end
    return true
  }
}

/** The credit granted in `sent`: the uint32 of each credit frame the node wrote. */
function granted(sent: Uint8Array): number {
  let total = 0
  for (let at = 0; at < sent.length; ) {
    const length = sent[at] as number // credit frames are 5 bytes: a one-byte varint
    if (sent[at + 1] === TYPE.credit)
      total += new DataView(sent.buffer, sent.byteOffset + at + 2, 4).getUint32(0)
    at += 1 + length
  }
  return total
}

/** Frames as the peer's application may see them: one head at most, nothing after an end or error. */
function checkOrder(read: Frame[]): void {
  let heads = 0
  for (const [i, frame] of read.entries()) {
    ensure(
      i === read.length - 1 || (frame.type !== 'end' && frame.type !== 'error'),
      `a frame after ${frame.type}`,
    )
    if (frame.type === 'head') heads++
    if (frame.type === 'data') ensure(frame.bytes.length > 0, 'an empty data frame was handed on')
    if (frame.type === 'head' || frame.type === 'error')
      ensure(
        typeof frame.value === 'object' && frame.value !== null && !Array.isArray(frame.value),
        `a ${frame.type} that is not an object`,
      )
  }
  ensure(heads <= 1, `${heads} heads were handed on`)
}

function expectedFrame(frame: ValidFrame): unknown[] {
  switch (frame.type) {
    case 'credit':
      return []
    case 'data':
      return frame.size === 0 ? [] : [{ type: 'data', size: frame.size, fill: frame.fill }]
    case 'head':
    case 'error':
      return [{ type: frame.type, value: JSON.parse(JSON.stringify(frame.value)) }]
    case 'end':
      return [{ type: 'end' }]
  }
}

/** A frame read, in the shape of `expectedFrame`: data as its size and (uniform) fill byte. */
function summary(frame: Frame): unknown {
  if (frame.type === 'data') {
    const fill = frame.bytes[0]
    return { type: 'data', size: frame.bytes.length, fill: frame.bytes.every((b) => b === fill) ? fill : -1 }
  }
  return frame
}
