/**
 * `/gate/control` requests (controlStreamHandler and parseMessage, packages/p2p/src/control.ts) on
 * a stand-in stream: valid NodeMessages of every payload type, the same with one field wrong at
 * the message, payload or capabilities level, their JSON cut or edited, hostile frames, random
 * bytes; delivered in random pieces, then ended or reset.
 *
 * Properties: the handler settles and resets the stream only with a ProtocolError; a payload it
 * hands on is what the ControlPayload type promises (capabilities where the type carries them,
 * a bounded secret, a boolean `accepted`); a valid request reaches the handler as sent and gets
 * one control message back.
 */
import fc from 'fast-check'
import { FRAME_TYPES } from '../packages/p2p/src/frames.ts'
import { type ControlPayload, controlStreamHandler, ProtocolError } from '../packages/p2p/src/index.ts'
import { decodeAll, encodeFrame, hostileBytes } from './frames.ts'
import {
  applyEdit,
  awkwardString,
  byteEdit,
  delivery,
  describe,
  ensure,
  json,
  mutate,
  mutation,
  PropertyFailure,
  split,
  type Target,
} from './lib.ts'
import { FAKE_CONNECTION, FakeStream } from './stream.ts'

const HEAD = FRAME_TYPES.head
/** The longest invite secret a node takes (control.ts). */
const MAX_SECRET_CHARS = 256
const CAPABILITY_TYPES = ['handshake', 'handshake_response', 'capability_response', 'capability_update']

const capabilities = fc.record({
  node_id: awkwardString,
  supported_models: fc.array(awkwardString, { maxLength: 4 }),
  max_context_length: fc.option(fc.nat()),
  supports_streaming: fc.boolean(),
  load_factor: fc.double({ min: 0, max: 1, noNaN: true }),
})

const payload: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record({ type: fc.constantFrom(...CAPABILITY_TYPES), capabilities }),
  fc.record({ type: fc.constantFrom('capability_request', 'ack', 'ping', 'pong') }),
  fc.record({ type: fc.constant('pair'), secret: fc.string({ maxLength: MAX_SECRET_CHARS }) }),
  fc.record({ type: fc.constant('pair_response'), accepted: fc.boolean(), reason: fc.option(awkwardString) }),
)

const message = fc.record({
  version: fc.constant(1),
  id: fc.oneof(fc.uuid(), awkwardString),
  timestamp: fc.oneof(fc.nat(), fc.double({ noNaN: true, noDefaultInfinity: true })),
  payload,
})

/** A message with one field wrong: in the envelope, the payload, or its capabilities. */
const mutated = fc
  .tuple(message, fc.constantFrom('message', 'payload', 'capabilities'), mutation)
  .map(([m, level, change]) => {
    if (level === 'message') return mutate(m, change)
    const payload = m.payload
    if (level === 'payload' || !('capabilities' in payload)) return { ...m, payload: mutate(payload, change) }
    const capabilities = mutate(payload.capabilities as Record<string, unknown>, change)
    return { ...m, payload: { ...payload, capabilities } }
  })

type Input = { cuts: number[]; reset: boolean } & (
  | { kind: 'valid'; message: Record<string, unknown> }
  /** A message with a field wrong, its JSON maybe edited, and more bytes after its frame. */
  | { kind: 'mutated'; message: Record<string, unknown>; edit: [number, number] | null; tail: Uint8Array }
  | { kind: 'hostile'; bytes: Uint8Array }
)

export async function createTarget(): Promise<Target<Input>> {
  return {
    arbitrary: fc.oneof(
      fc.record({ kind: fc.constant('valid' as const), message, ...delivery }),
      {
        weight: 4,
        arbitrary: fc.record({
          kind: fc.constant('mutated' as const),
          message: mutated,
          edit: byteEdit,
          tail: fc.oneof({ weight: 4, arbitrary: fc.constant(new Uint8Array(0)) }, hostileBytes),
          ...delivery,
        }),
      },
      fc.record({ kind: fc.constant('hostile' as const), bytes: hostileBytes, ...delivery }),
    ),
    check,
  }
}

async function check(input: Input): Promise<void> {
  const bytes =
    input.kind === 'hostile'
      ? input.bytes
      : input.kind === 'valid'
        ? encodeFrame(HEAD, json(input.message))
        : Buffer.concat([encodeFrame(HEAD, applyEdit(json(input.message), input.edit)), input.tail])
  const fake = new FakeStream()
  let handed: ControlPayload | undefined
  let broken: string | undefined
  const protocolErrors: unknown[] = []
  const handler = controlStreamHandler(
    async (payload) => {
      handed = payload
      broken = breach(payload)
      return { type: 'ack' }
    },
    { onProtocolError: (err) => protocolErrors.push(err) },
  )
  const done = handler(fake.asStream(), FAKE_CONNECTION)
  for (const piece of split(bytes, input.cuts)) fake.deliver(piece)
  fake.finish(input.reset ? 'reset' : 'end')
  await done

  if (broken) throw new PropertyFailure(`handed on a payload that is not a ControlPayload: ${broken}`)
  if (fake.abortedWith)
    ensure(fake.abortedWith instanceof ProtocolError, `reset with ${describe(fake.abortedWith)}`)
  for (const err of protocolErrors)
    ensure(err instanceof ProtocolError, `onProtocolError got ${describe(err)}`)
  if (input.kind === 'valid') {
    ensure(
      JSON.stringify(handed) === JSON.stringify(input.message.payload),
      'a valid request was not handed on as sent',
    )
    if (!input.reset) {
      const [answer, ...more] = await decodeAll(fake.output())
      ensure(
        answer?.type === 'head' && answer.value.version === 1 && more.length === 0,
        'a valid request did not get one control message back',
      )
    }
  }
}

/** What is wrong with `payload` as a ControlPayload, or undefined. */
function breach(payload: ControlPayload): string | undefined {
  const p = payload as Record<string, unknown>
  if (CAPABILITY_TYPES.includes(p.type as string))
    return isCapabilities(p.capabilities) ? undefined : `a ${String(p.type)} without valid capabilities`
  if (p.type === 'pair')
    return typeof p.secret === 'string' && p.secret.length <= MAX_SECRET_CHARS ? undefined : 'a bad secret'
  if (p.type === 'pair_response')
    return typeof p.accepted === 'boolean' && (p.reason === null || typeof p.reason === 'string')
      ? undefined
      : 'a bad pair_response'
  return ['capability_request', 'ack', 'ping', 'pong'].includes(p.type as string)
    ? undefined
    : `type ${JSON.stringify(p.type)}`
}

/** The Capabilities type of @gate/core, field by field. */
function isCapabilities(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false
  const c = value as Record<string, unknown>
  return (
    typeof c.node_id === 'string' &&
    Array.isArray(c.supported_models) &&
    c.supported_models.every((m) => typeof m === 'string') &&
    (c.max_context_length === null || typeof c.max_context_length === 'number') &&
    typeof c.supports_streaming === 'boolean' &&
    typeof c.load_factor === 'number' &&
    c.load_factor >= 0 &&
    c.load_factor <= 1
  )
}
