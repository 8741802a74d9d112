/**
 * Invite codes (decodeInvite, packages/daemon/src/invites.ts), as `gate peers join` and the
 * `join_invite` method take them from a user: codes Gate makes, the same with one element wrong
 * (node IDs and PeerIds valid or not, addresses of any type, expiry in the past, far future, or
 * not a number), base64url of other JSON, edited codes, and random text.
 *
 * Properties: only InvalidRequestError or InvalidNodeIdError comes out; a code that decodes gives
 * a canonical node ID, string addresses, a string secret and a number expiry in the future; and a
 * code Gate made decodes to what went in.
 */
import fc from 'fast-check'
import { generateIdentity, InvalidNodeIdError, InvalidRequestError } from '../packages/core/src/index.ts'
import { decodeInvite, encodeInvite, type Invite } from '../packages/daemon/src/invites.ts'
import {
  anyJson,
  applyEdit,
  awkwardString,
  byteEdit,
  ensure,
  onlyThrows,
  type Target,
  wrongType,
} from './lib.ts'

/** Node IDs and PeerIds of a few real keys: generating a key per input would cost more than the decode. */
const IDENTITIES = Array.from({ length: 4 }, () => generateIdentity())
const NOW = 1_800_000_000_000

const nodeId = fc.oneof(
  fc.constantFrom(...IDENTITIES.map((i) => i.nodeId)),
  fc.constantFrom(...IDENTITIES.map((i) => i.peerId)),
  fc.constantFrom(...IDENTITIES.map((i) => `  ${i.nodeId.toUpperCase()} `)),
  awkwardString,
  fc.stringMatching(/^[a-z2-7]{52}$/),
)

const invite = fc.record({
  node_id: fc.constantFrom(...IDENTITIES.map((i) => i.nodeId)),
  addresses: fc.array(
    fc.oneof(fc.constantFrom('/ip4/127.0.0.1/tcp/41145', '/ip6/::1/udp/41145/quic-v1'), awkwardString),
    { maxLength: 3 },
  ),
  secret: fc.oneof(fc.base64String({ maxLength: 24 }), awkwardString),
  expires_at: fc.integer({ min: NOW / 1000 + 1, max: NOW / 1000 + 86_400 }),
})

/** The four elements of a code, each maybe of the wrong kind. */
const elements = fc.tuple(
  nodeId,
  fc.oneof(
    { weight: 4, arbitrary: fc.array(awkwardString, { maxLength: 3 }) },
    fc.array(anyJson, { maxLength: 2 }),
    wrongType,
  ),
  fc.oneof({ weight: 4, arbitrary: awkwardString }, wrongType),
  fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: NOW / 1000 - 10, max: NOW / 1000 + 10 }) },
    fc.double({ noNaN: true }),
    wrongType,
  ),
)

type Input = { kind: 'made'; invite: Invite } | { kind: 'code'; code: string }

const code: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: elements.map((e) => base64url(JSON.stringify(e))) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.array(anyJson, { minLength: 3, maxLength: 5 }), fc.constantFrom('', ' ', '\n', '=='))
      .map(([e, pad]) => `${pad}${base64url(JSON.stringify(e))}${pad}`),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(invite, byteEdit)
      .map(([i, edit]) => Buffer.from(applyEdit(Buffer.from(encodeInvite(i)), edit)).toString()),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 128 }) },
  { weight: 1, arbitrary: fc.base64String({ maxLength: 128 }) },
)

export async function createTarget(): Promise<Target<Input>> {
  return {
    arbitrary: fc.oneof(fc.record({ kind: fc.constant('made' as const), invite }), {
      weight: 4,
      arbitrary: fc.record({ kind: fc.constant('code' as const), code }),
    }),
    check(input) {
      const text = input.kind === 'made' ? encodeInvite(input.invite) : input.code
      const decoded = onlyThrows(
        () => decodeInvite(text, NOW),
        (err) => err instanceof InvalidRequestError || err instanceof InvalidNodeIdError,
      )
      if (input.kind === 'made') {
        ensure(decoded.ok, `a code Gate made does not decode: ${String(decoded.ok || decoded.error)}`)
        ensure(
          JSON.stringify(decoded.value) === JSON.stringify(input.invite),
          'a code Gate made decodes to something else',
        )
      }
      if (!decoded.ok) return
      const { node_id, addresses, secret, expires_at } = decoded.value
      ensure(/^[a-z2-7]{52}$/.test(node_id), `node ID ${JSON.stringify(node_id)} is not canonical`)
      ensure(
        Array.isArray(addresses) && addresses.every((a) => typeof a === 'string'),
        'addresses not strings',
      )
      ensure(typeof secret === 'string', 'the secret is not a string')
      ensure(typeof expires_at === 'number' && expires_at * 1000 > NOW, 'an expired or non-numeric expiry')
    },
  }
}

function base64url(text: string): string {
  return Buffer.from(text).toString('base64url')
}
