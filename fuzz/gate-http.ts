/**
 * `/gate/http` requests (httpStreamHandler, packages/p2p/src/http.ts) on a stand-in stream: the
 * request heads peers send (method, path, headers of strings or string arrays) with one field
 * wrong, bodies around the size limit, a missing end, frames after it, hostile frames and random
 * bytes; from a trusted peer, or from one the node refuses (answered before its body is held).
 *
 * Properties: the handler settles and resets the stream only with a ProtocolError, and reports
 * only those (or the failure to answer on a stream already reset) as protocol errors; a request it serves has a head of the documented shape and a body
 * within the limit; a valid request is served as sent; a stream left open carries one whole
 * answer (head, body, end).
 */
import fc from 'fast-check'
import { FRAME_TYPES } from '../packages/p2p/src/frames.ts'
import {
  type HeaderMap,
  httpStreamHandler,
  type IncomingRequest,
  ProtocolError,
} from '../packages/p2p/src/index.ts'
import { decodeAll, encodeFrame, hostileBytes } from './frames.ts'
import {
  applyEdit,
  awkwardString,
  byteEdit,
  delivery,
  describe,
  ensure,
  mutate,
  mutation,
  PropertyFailure,
  split,
  type Target,
} from './lib.ts'
import { FAKE_CONNECTION, FakeResetError, FakeStateError, FakeStream } from './stream.ts'

const TYPE = FRAME_TYPES
/** Small, so that bodies reach it. */
const MAX_BODY_BYTES = 4096
const ANSWER = { status: 200, headers: { 'content-type': 'text/plain' } }

const head = fc.record({
  method: fc.constantFrom('POST', 'GET', 'OPTIONS'),
  path: fc.oneof(
    fc.constantFrom('/v1/chat/completions', '/v1/models', '/'),
    fc.webPath().map((p) => `/${p}`),
  ),
  headers: fc.dictionary(
    fc.oneof(fc.constantFrom('content-type', 'x-request-id', 'Authorization'), awkwardString),
    fc.oneof({ weight: 4, arbitrary: awkwardString }, fc.array(awkwardString, { maxLength: 3 })),
    { maxKeys: 4 },
  ),
})

/** A request head with one field wrong, in the head or in its headers. */
const mutatedHead = fc
  .tuple(head, fc.boolean(), mutation)
  .map(([h, inHeaders, change]) =>
    inHeaders ? { ...h, headers: mutate(h.headers, change) } : mutate(h as Record<string, unknown>, change),
  )

const bodySizes = fc.array(
  fc.oneof(
    { weight: 8, arbitrary: fc.nat(64) },
    { weight: 1, arbitrary: fc.integer({ min: MAX_BODY_BYTES - 2, max: MAX_BODY_BYTES + 2 }) },
  ),
  { maxLength: 4 },
)

type Input = { cuts: number[]; reset: boolean; refused: boolean } & (
  | { kind: 'valid'; head: Record<string, unknown>; body: number[] }
  | {
      kind: 'mutated'
      head: Record<string, unknown>
      edit: [number, number] | null
      body: number[]
      end: boolean
      tail: Uint8Array
    }
  | { kind: 'hostile'; bytes: Uint8Array }
)

/** How the bytes arrive, and whether the node refuses the peer (an untrusted one). */
const arrival = { ...delivery, refused: fc.boolean() }

export async function createTarget(): Promise<Target<Input>> {
  return {
    arbitrary: fc.oneof(
      {
        weight: 2,
        arbitrary: fc.record({ kind: fc.constant('valid' as const), head, body: bodySizes, ...arrival }),
      },
      {
        weight: 4,
        arbitrary: fc.record({
          kind: fc.constant('mutated' as const),
          head: mutatedHead,
          edit: byteEdit,
          body: bodySizes,
          end: fc.boolean(),
          tail: fc.oneof({ weight: 4, arbitrary: fc.constant(new Uint8Array(0)) }, hostileBytes),
          ...arrival,
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({ kind: fc.constant('hostile' as const), bytes: hostileBytes, ...arrival }),
      },
    ),
    check,
  }
}

function requestBytes(input: Input): Uint8Array {
  if (input.kind === 'hostile') return input.bytes
  const json = Buffer.from(JSON.stringify(input.head))
  const parts = [encodeFrame(TYPE.head, input.kind === 'mutated' ? applyEdit(json, input.edit) : json)]
  for (const [i, size] of input.body.entries())
    parts.push(encodeFrame(TYPE.data, new Uint8Array(size).fill(i)))
  if (input.kind === 'valid' || input.end) parts.push(encodeFrame(TYPE.end))
  if (input.kind === 'mutated') parts.push(input.tail)
  return Buffer.concat(parts)
}

async function check(input: Input): Promise<void> {
  const fake = new FakeStream()
  let served: IncomingRequest | undefined
  const reported: unknown[] = []
  const handler = httpStreamHandler(
    async (request, response) => {
      served = request
      await response.whole(ANSWER, Buffer.from('ok'))
    },
    {
      maxBodyBytes: MAX_BODY_BYTES,
      tooLarge: () => ({ head: { status: 413, headers: {} }, body: Buffer.from('too large') }),
      onProtocolError: (err) => reported.push(err),
      refuse: () =>
        input.refused ? { head: { status: 403, headers: {} }, body: Buffer.from('no') } : undefined,
    },
  )
  const done = handler(fake.asStream(), FAKE_CONNECTION)
  for (const piece of split(requestBytes(input), input.cuts)) fake.deliver(piece)
  fake.finish(input.reset ? 'reset' : 'end')
  await done

  if (fake.abortedWith)
    ensure(fake.abortedWith instanceof ProtocolError, `reset with ${describe(fake.abortedWith)}`)
  // Once the stream is reset (by the peer, or by the decoder for a frame past the request), the
  // failure to answer on it is what gets reported.
  for (const err of reported)
    ensure(
      err instanceof ProtocolError ||
        ((err instanceof FakeResetError || err instanceof FakeStateError) && fake.status !== 'open'),
      `reported as a protocol error: ${describe(err)}`,
    )
  if (served) {
    ensure(!input.refused, 'a refused requester was served')
    checkHead(served.head)
    ensure(served.body.length <= MAX_BODY_BYTES, `served a body of ${served.body.length} bytes`)
  }
  // Served, refused or too large, a stream left open carries one whole answer back.
  if (!input.reset && !fake.abortedWith) {
    const types = (await decodeAll(fake.output())).map((f) => f.type).join(' ')
    ensure(types === 'head data end', `answered with ${types || 'nothing'}`)
  }
  if (input.kind === 'valid' && !input.refused) {
    const size = input.body.reduce((a, b) => a + b, 0)
    if (size <= MAX_BODY_BYTES) {
      ensure(served !== undefined, 'a valid request was not served')
      ensure(JSON.stringify(served.head) === JSON.stringify(input.head), 'a valid head was served changed')
      ensure(served.body.length === size, 'a valid body was served changed')
    }
  }
}

function checkHead(head: { method: unknown; path: unknown; headers: HeaderMap }): void {
  if (typeof head.method !== 'string' || typeof head.path !== 'string' || !head.path.startsWith('/'))
    throw new PropertyFailure(`served a head without method and path: ${JSON.stringify(head)}`)
  for (const value of Object.values(head.headers))
    ensure(
      typeof value === 'string' || (Array.isArray(value) && value.every((v) => typeof v === 'string')),
      `served a header that is not a string: ${JSON.stringify(value)}`,
    )
}
