/**
 * `/gate/punch` messages (punchMessages, packages/p2p/src/hole-punch.ts) as a peer sends them
 * over a relayed connection (read before the node checks whom it talks to): valid `connect`,
 * `refuse` and `sync` messages, the same with one field wrong, their JSON edited, length prefixes
 * that are huge or never end, random bytes; delivered in random pieces, then ended or reset.
 *
 * Properties: a read settles, failing only with a ProtocolError or the peer's reset; what it
 * returns is a PunchMessage (an IP address and a port in range, a reason of at most 200
 * characters); a valid message reads back as it was written.
 */
import { isIP } from 'node:net'
import fc from 'fast-check'
import { type PunchMessage, punchMessages } from '../packages/p2p/src/hole-punch.ts'
import { ProtocolError } from '../packages/p2p/src/index.ts'
import { hostileBytes } from './frames.ts'
import {
  applyEdit,
  awkwardString,
  byteEdit,
  delivery,
  describe,
  ensure,
  mutate,
  mutation,
  split,
  type Target,
} from './lib.ts'
import { FakeResetError, FakeStream } from './stream.ts'

/** The longest refusal reason a read hands on (hole-punch.ts). */
const MAX_REASON_CHARS = 200

const message: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record({
    type: fc.constant('connect'),
    ip: fc.oneof(fc.ipV4(), fc.ipV6()),
    port: fc.integer({ min: 1, max: 65_535 }),
  }),
  fc.record({ type: fc.constant('refuse'), reason: fc.oneof(awkwardString, fc.string({ maxLength: 2000 })) }),
  fc.record({ type: fc.constant('sync') }),
)

/** Varint length prefixes a hostile peer might send: huge, past the limit, never ending. */
const hostilePrefix = fc.constantFrom(
  Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x0f),
  Uint8Array.of(0x81, 0x08),
  Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01),
  Uint8Array.of(0x05),
)

type Input = { cuts: number[]; reset: boolean } & (
  | { kind: 'valid'; message: Record<string, unknown> }
  /** A message with a field wrong, its JSON maybe edited. */
  | { kind: 'mutated'; message: Record<string, unknown>; edit: [number, number] | null }
  | { kind: 'hostile'; prefix: Uint8Array; bytes: Uint8Array }
)

export async function createTarget(): Promise<Target<Input>> {
  return {
    arbitrary: fc.oneof(
      fc.record({ kind: fc.constant('valid' as const), message, ...delivery }),
      {
        weight: 4,
        arbitrary: fc.record({
          kind: fc.constant('mutated' as const),
          message: fc.tuple(message, mutation).map(([m, change]) => mutate(m, change)),
          edit: byteEdit,
          ...delivery,
        }),
      },
      fc.record({
        kind: fc.constant('hostile' as const),
        prefix: fc.oneof(hostilePrefix, fc.constant(new Uint8Array(0))),
        bytes: hostileBytes,
        ...delivery,
      }),
    ),
    check,
  }
}

async function check(input: Input): Promise<void> {
  const bytes =
    input.kind === 'hostile'
      ? Buffer.concat([input.prefix, input.bytes])
      : await encode(input.message, input.kind === 'mutated' ? input.edit : null)
  const fake = new FakeStream()
  const read = punchMessages(fake.asStream())
    .read(new AbortController().signal)
    .then(
      (value) => ({ value }),
      (err: unknown) => ({ err }),
    )
  for (const piece of split(bytes, input.cuts)) fake.deliver(piece)
  fake.finish(input.reset ? 'reset' : 'end')
  const outcome = await read

  if ('err' in outcome) {
    const { err } = outcome
    ensure(
      err instanceof ProtocolError || (err instanceof FakeResetError && input.reset),
      `a read failed with ${describe(err)}`,
    )
    ensure(input.kind !== 'valid' || input.reset, `a valid message failed: ${describe(err)}`)
    return
  }
  const broken = breach(outcome.value)
  ensure(broken === undefined, `handed on a message that is not a PunchMessage: ${broken}`)
  if (input.kind === 'valid') {
    const expected =
      input.message.type === 'refuse'
        ? { ...input.message, reason: String(input.message.reason).slice(0, MAX_REASON_CHARS) }
        : input.message
    ensure(JSON.stringify(outcome.value) === JSON.stringify(expected), 'a valid message read back changed')
  }
}

/** A message as the protocol's writer frames it, its JSON maybe edited in one place. */
async function encode(message: Record<string, unknown>, edit: [number, number] | null): Promise<Uint8Array> {
  const writer = new FakeStream()
  // The writer frames what it is given: a head frame, or for `sync` an end frame.
  await punchMessages(writer.asStream()).write(message as PunchMessage)
  const framed = writer.output()
  const json = Buffer.from(JSON.stringify(message))
  if (framed.length < json.length) return framed
  // An edit changes the JSON, not the frame's length and type.
  const prefix = framed.subarray(0, framed.length - json.length)
  return Buffer.concat([prefix, applyEdit(json, edit)])
}

/** What is wrong with `value` as a PunchMessage, or undefined. */
function breach(value: PunchMessage): string | undefined {
  const m = value as Record<string, unknown>
  if (m.type === 'sync') return undefined
  if (m.type === 'refuse')
    return typeof m.reason === 'string' && m.reason.length <= MAX_REASON_CHARS ? undefined : 'a bad reason'
  if (m.type === 'connect')
    return typeof m.ip === 'string' &&
      isIP(m.ip) !== 0 &&
      Number.isInteger(m.port) &&
      (m.port as number) > 0 &&
      (m.port as number) < 65_536
      ? undefined
      : 'a bad address'
  return `type ${JSON.stringify(m.type)}`
}
