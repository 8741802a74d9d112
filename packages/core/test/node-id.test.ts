import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { base58btc } from 'multiformats/bases/base58'
import { InvalidNodeIdError } from '../src/errors.ts'
import {
  isNodeId,
  nodeIdFromPublicKey,
  nodeIdToPeerId,
  parseNodeId,
  peerIdToNodeId,
  publicKeyFromNodeId,
} from '../src/node-id.ts'

// RFC 8032 section 7.1, test 1.
const PUBLIC_KEY = Buffer.from('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a', 'hex')
const NODE_ID = '25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkena'
const PEER_ID = '12D3KooWQK1wnefoLrcVHbbnf5tLzbopUd3K3bFAoJpA7YJgL5pV'
const PEER_ID_CID = 'bafzaajaiaejcbv22taayfmikw7kux7wtzfsaooqo4fzphwvgems26aq2nd3qoui2'

/** RFC 4648 base32, lowercase, no padding: a reference independent of multiformats. */
function base32(bytes: Uint8Array): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567'
  let bits = ''
  for (const b of bytes) bits += b.toString(2).padStart(8, '0')
  bits = bits.padEnd(Math.ceil(bits.length / 5) * 5, '0')
  let out = ''
  for (let i = 0; i < bits.length; i += 5) out += alphabet[Number.parseInt(bits.slice(i, i + 5), 2)]
  return out
}

describe('node IDs', () => {
  it('match independently computed vectors', () => {
    assert.equal(base32(PUBLIC_KEY), NODE_ID)
    // identity multihash (0x00, length 0x24) of the libp2p protobuf key (Ed25519 = 0x08 0x01, data 0x12 0x20).
    const multihash = Buffer.concat([Buffer.from([0x00, 0x24, 0x08, 0x01, 0x12, 0x20]), PUBLIC_KEY])
    assert.equal(base58btc.baseEncode(multihash), PEER_ID)
  })

  it('encode a public key', () => {
    assert.equal(nodeIdFromPublicKey(PUBLIC_KEY), NODE_ID)
    assert.equal(NODE_ID.length, 52)
    assert.throws(() => nodeIdFromPublicKey(PUBLIC_KEY.subarray(1)), InvalidNodeIdError)
  })

  it('round-trip between public key, node ID and PeerId', () => {
    assert.deepEqual(publicKeyFromNodeId(NODE_ID), new Uint8Array(PUBLIC_KEY))
    assert.equal(nodeIdToPeerId(NODE_ID), PEER_ID)
    assert.equal(peerIdToNodeId(PEER_ID), NODE_ID)
    assert.equal(peerIdToNodeId(nodeIdToPeerId(NODE_ID)), NODE_ID)
    assert.equal(peerIdToNodeId(PEER_ID_CID), NODE_ID)
  })

  it('parse a node ID in any case or a PeerId, trimmed', () => {
    assert.equal(parseNodeId(NODE_ID), NODE_ID)
    assert.equal(parseNodeId(NODE_ID.toUpperCase()), NODE_ID)
    assert.equal(parseNodeId(`  ${NODE_ID}\n`), NODE_ID)
    assert.equal(parseNodeId(PEER_ID), NODE_ID)
    assert.equal(parseNodeId(` ${PEER_ID} `), NODE_ID)
    assert.equal(parseNodeId(PEER_ID_CID), NODE_ID)
  })

  it('reject what is neither', () => {
    const bad = [
      '',
      'abc',
      NODE_ID.slice(0, -1), // 51 chars
      `${NODE_ID}a`, // 53 chars
      `${NODE_ID.slice(0, -1)}1`, // not in the alphabet
      `${NODE_ID.slice(0, -1)}b`, // non-zero trailing bits: not the canonical encoding
      `${NODE_ID.slice(0, 10)}-${NODE_ID.slice(11)}`,
      PEER_ID.slice(0, -1),
      PEER_ID.toLowerCase(), // base58 is case-sensitive
      'QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N', // RSA PeerId
      '16Uiu2HAkuaE6eLkY3yYuPSG9HSaSuo6hu36tcSTk1RMsr4NUNXhZ', // secp256k1 PeerId
    ]
    for (const input of bad) {
      assert.throws(
        () => parseNodeId(input),
        (err: Error) =>
          err instanceof InvalidNodeIdError && err.message.startsWith('not a node ID or PeerId: '),
        input,
      )
      assert.equal(isNodeId(input), false, input)
    }
  })

  it('isNodeId accepts only the canonical form', () => {
    assert.equal(isNodeId(NODE_ID), true)
    assert.equal(isNodeId(NODE_ID.toUpperCase()), false)
    assert.equal(isNodeId(PEER_ID), false)
    assert.throws(() => publicKeyFromNodeId(PEER_ID), InvalidNodeIdError)
    assert.throws(() => peerIdToNodeId(NODE_ID), InvalidNodeIdError)
    assert.throws(() => peerIdToNodeId('QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N'), InvalidNodeIdError)
  })

  it('keeps error messages short', () => {
    assert.throws(
      () => parseNodeId('x'.repeat(10_000)),
      (err: Error) => err.message.length < 120,
    )
  })
})
