import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { inspect } from 'node:util'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { IdentityError, InvalidNodeIdError } from '../src/errors.ts'
import { generateIdentity, identityFromSeed, libp2pPrivateKey, verifySignature } from '../src/identity.ts'

// RFC 8032 section 7.1, test 1 (empty message).
const SEED = Buffer.from('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'hex')
const PUBLIC_KEY = Buffer.from('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a', 'hex')
const SIGNATURE = Buffer.from(
  'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  'hex',
)
const NODE_ID = '25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkena'
const PEER_ID = '12D3KooWQK1wnefoLrcVHbbnf5tLzbopUd3K3bFAoJpA7YJgL5pV'

describe('identity', () => {
  it('derives keys and IDs from a seed (RFC 8032 vector)', () => {
    const identity = identityFromSeed(SEED)
    assert.deepEqual(identity.publicKey, new Uint8Array(PUBLIC_KEY))
    assert.deepEqual(identity.privateKey, new Uint8Array(SEED))
    assert.equal(identity.nodeId, NODE_ID)
    assert.equal(identity.peerId, PEER_ID)
  })

  it('signs as RFC 8032 says and verifies', async () => {
    const identity = identityFromSeed(SEED)
    const empty = new Uint8Array()
    assert.deepEqual(await identity.sign(empty), new Uint8Array(SIGNATURE))
    assert.equal(await verifySignature(NODE_ID, empty, SIGNATURE), true)
    assert.equal(await verifySignature(PEER_ID, empty, SIGNATURE), true)
  })

  it('rejects a wrong message, signature or signer', async () => {
    const msg = new TextEncoder().encode('register relay')
    const identity = generateIdentity()
    const sig = await identity.sign(msg)
    assert.equal(await verifySignature(identity.nodeId, msg, sig), true)
    assert.equal(
      await verifySignature(identity.nodeId, new TextEncoder().encode('register relaY'), sig),
      false,
    )
    const flipped = Uint8Array.from(sig)
    flipped[0] = (flipped[0] ?? 0) ^ 1
    assert.equal(await verifySignature(identity.nodeId, msg, flipped), false)
    assert.equal(await verifySignature(identity.nodeId, msg, sig.subarray(1)), false)
    assert.equal(await verifySignature(NODE_ID, msg, sig), false)
    await assert.rejects(verifySignature('nope', msg, sig), InvalidNodeIdError)
  })

  it('generates distinct identities', () => {
    const a = generateIdentity()
    const b = generateIdentity()
    assert.notEqual(a.nodeId, b.nodeId)
    assert.equal(a.privateKey.length, 32)
    assert.deepEqual(identityFromSeed(a.privateKey).nodeId, a.nodeId)
  })

  it('copies the seed and keeps it out of logs and JSON', () => {
    const seed = Uint8Array.from(SEED)
    const identity = identityFromSeed(seed)
    seed.fill(0)
    assert.deepEqual(identity.privateKey, new Uint8Array(SEED))
    assert.ok(!JSON.stringify(identity).includes('privateKey'))
    assert.ok(!inspect(identity).includes('privateKey'))
  })

  it('rejects a seed of the wrong length', () => {
    assert.throws(() => identityFromSeed(new Uint8Array(31)), IdentityError)
    assert.throws(() => identityFromSeed(new Uint8Array(64)), IdentityError)
  })

  it('gives libp2p the same key', async () => {
    const identity = identityFromSeed(SEED)
    const key = libp2pPrivateKey(identity)
    assert.equal(key.type, 'Ed25519')
    assert.equal(peerIdFromPrivateKey(key).toString(), identity.peerId)
    const msg = new TextEncoder().encode('hello')
    // Signed by libp2p's implementation, checked by ours.
    assert.equal(await verifySignature(identity.nodeId, msg, await key.sign(msg)), true)
  })
})
