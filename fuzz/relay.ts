/**
 * `/gate/relay` requests as `gate relay` reads them from any peer that connects
 * (relayStreamHandler, packages/p2p/src/relay-protocol.ts): requests signed by the connection's
 * node, the same signed by another node or for another node, with one field of the message wrong
 * (and signed again, so that the checks past the signature are reached), their body or signature
 * edited, stale; hostile frames and random bytes; delivered in random pieces, then ended or reset.
 *
 * Properties: the handler settles and resets the stream only with a ProtocolError; the relay's
 * logic is handed only a well-formed request from the connection's own node; a valid request
 * reaches it as sent and gets one answer back; any other request that keeps the framing gets one
 * error answer.
 */
import fc from 'fast-check'
import { generateIdentity, type Identity } from '../packages/core/src/index.ts'
import { FRAME_TYPES } from '../packages/p2p/src/frames.ts'
import {
  type Connection,
  ProtocolError,
  peerIdOf,
  type RelayRequest,
  relayStreamHandler,
} from '../packages/p2p/src/index.ts'
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
import { FakeStream } from './stream.ts'

const HEAD = FRAME_TYPES.head
/** The node on the other end of the connection, and one that is not. */
const NODE = generateIdentity()
const OTHER = generateIdentity()
const CONNECTION = { remotePeer: peerIdOf(NODE.nodeId) } as unknown as Connection
const REQUEST_TYPES = ['domain_request', 'dns_challenge', 'dns_challenge_remove', 'activate_domain']

const payload: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record({ type: fc.constantFrom('domain_request', 'activate_domain') }),
  fc.record({
    type: fc.constantFrom('dns_challenge', 'dns_challenge_remove'),
    value: fc.string({ minLength: 1, maxLength: 64 }),
  }),
)

const message = fc.record({
  version: fc.constant(1),
  id: fc.uuid(),
  payload,
})

type Input = { cuts: number[]; reset: boolean } & (
  | { kind: 'valid'; message: Record<string, unknown> }
  /** A message with a field wrong or signed by the wrong node, for itself or for the other node. */
  | {
      kind: 'mutated'
      message: Record<string, unknown>
      change: Parameters<typeof mutate>[1] | null
      signer: 'node' | 'other'
      claims: 'node' | 'other'
      age: 'fresh' | 'stale'
      edit: { body: [number, number] | null; signature: [number, number] | null }
    }
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
          message,
          change: fc.option(mutation),
          signer: fc.constantFrom('node' as const, 'other' as const),
          claims: fc.constantFrom('node' as const, 'other' as const),
          age: fc.constantFrom('fresh' as const, 'stale' as const),
          edit: fc.record({ body: byteEdit, signature: byteEdit }),
          ...delivery,
        }),
      },
      fc.record({ kind: fc.constant('hostile' as const), bytes: hostileBytes, ...delivery }),
      fc.record({
        kind: fc.constant('hostile' as const),
        bytes: fc
          .record({
            body: fc.oneof(awkwardString, fc.string()),
            signature: fc.oneof(awkwardString, fc.base64String()),
          })
          .map((value) => encodeFrame(HEAD, json(value))),
        ...delivery,
      }),
    ),
    check,
  }
}

async function check(input: Input): Promise<void> {
  const bytes = input.kind === 'hostile' ? input.bytes : await signed(input)
  const fake = new FakeStream()
  let handed: RelayRequest | undefined
  let broken: string | undefined
  const protocolErrors: unknown[] = []
  const handler = relayStreamHandler(
    async (request, nodeId) => {
      handed = request
      broken = nodeId === NODE.nodeId ? breach(request) : `a request handed on as from ${nodeId}`
      return { type: 'ack' }
    },
    { onProtocolError: (err) => protocolErrors.push(err) },
  )
  const done = handler(fake.asStream(), CONNECTION)
  for (const piece of split(bytes, input.cuts)) fake.deliver(piece)
  fake.finish(input.reset ? 'reset' : 'end')
  await done

  if (broken) throw new PropertyFailure(`handed on a request it should not have: ${broken}`)
  if (fake.abortedWith)
    ensure(fake.abortedWith instanceof ProtocolError, `reset with ${describe(fake.abortedWith)}`)
  for (const err of protocolErrors)
    ensure(err instanceof ProtocolError, `onProtocolError got ${describe(err)}`)
  if (input.kind === 'hostile' || input.reset) return
  const [answer, ...more] = await decodeAll(fake.output())
  if (input.kind === 'valid') {
    ensure(
      JSON.stringify(handed) === JSON.stringify(input.message.payload),
      'a valid request was not handed on',
    )
    ensure(answer?.type === 'head' && answer.value.type === 'ack' && more.length === 0, 'no one answer')
    return
  }
  // A wrong request that is still a frame of JSON with a body and a signature: an error answer,
  // unless the wrong field left it valid, or its body no longer parses (a broken framing).
  if (handed === undefined && !fake.abortedWith)
    ensure(answer?.type === 'head' && answer.value.type === 'error' && more.length === 0, 'no error answer')
}

/** The request framed as a node sends it: its body JSON, signed. */
async function signed(input: Exclude<Input, { kind: 'hostile' }>): Promise<Uint8Array> {
  const mutated = input.kind === 'mutated'
  const claims: Identity = mutated && input.claims === 'other' ? OTHER : NODE
  const signer: Identity = mutated && input.signer === 'other' ? OTHER : NODE
  const stale = mutated && input.age === 'stale'
  const base = {
    ...input.message,
    timestamp: Date.now() - (stale ? 10 * 60_000 : 0),
    node_id: claims.nodeId,
  }
  const message = mutated && input.change ? mutate(base, input.change) : base
  const body = JSON.stringify(message)
  const signature = Buffer.from(await signer.sign(Buffer.from(body)))
  const edit = mutated ? input.edit : { body: null, signature: null }
  const value = {
    body: Buffer.from(applyEdit(Buffer.from(body), edit.body)).toString(),
    signature: Buffer.from(applyEdit(signature, edit.signature)).toString('base64'),
  }
  return encodeFrame(HEAD, json(value))
}

/** What is wrong with `request` as a RelayRequest, or undefined. */
function breach(request: RelayRequest): string | undefined {
  const r = request as Record<string, unknown>
  if (!REQUEST_TYPES.includes(r.type as string)) return `type ${JSON.stringify(r.type)}`
  if (String(r.type).startsWith('dns_challenge'))
    return typeof r.value === 'string' && r.value.length <= 256 ? undefined : 'a bad challenge value'
  return undefined
}
