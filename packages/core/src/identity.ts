/**
 * A node's Ed25519 identity: key pair, node ID, PeerId and signing.
 *
 * @example
 * ```ts
 * const identity = generateIdentity()
 * const sig = await identity.sign(message)
 * await verifySignature(identity.nodeId, message, sig) // true
 * ```
 */
import { createHash, randomBytes } from 'node:crypto'
import { privateKeyFromRaw } from '@libp2p/crypto/keys'
import * as ed from '@noble/ed25519'
import { IdentityError } from './errors.ts'
import { nodeIdFromPublicKey, nodeIdToPeerId, parseNodeId, publicKeyFromNodeId } from './node-id.ts'

// The synchronous API (used to derive public keys without awaiting) needs a SHA-512.
ed.hashes.sha512 ??= (msg) => new Uint8Array(createHash('sha512').update(msg).digest())

export const SEED_LENGTH = 32

export interface Identity {
  nodeId: string
  /** The libp2p PeerId string of the same key (`12D3KooW…`). */
  peerId: string
  publicKey: Uint8Array
  /** The 32-byte RFC 8032 seed. Not enumerable, so logging or serialising an identity omits it. */
  privateKey: Uint8Array
  sign(msg: Uint8Array): Promise<Uint8Array>
}

export function generateIdentity(): Identity {
  return identityFromSeed(randomBytes(SEED_LENGTH))
}

export function identityFromSeed(seed: Uint8Array): Identity {
  if (seed.length !== SEED_LENGTH) {
    throw new IdentityError(`an Ed25519 private key is ${SEED_LENGTH} bytes, got ${seed.length}`)
  }
  const privateKey = Uint8Array.from(seed)
  const publicKey = ed.getPublicKey(privateKey)
  const nodeId = nodeIdFromPublicKey(publicKey)
  const identity = {
    nodeId,
    peerId: nodeIdToPeerId(nodeId),
    publicKey,
    sign: (msg: Uint8Array) => ed.signAsync(msg, privateKey),
  }
  return Object.defineProperty(identity, 'privateKey', { value: privateKey, enumerable: false }) as Identity
}

/**
 * Checks an Ed25519 signature against a node ID (or PeerId). Strict RFC 8032 verification, as
 * OpenSSL (and so libp2p on Node) does it. Throws InvalidNodeIdError for a malformed ID.
 */
export async function verifySignature(nodeId: string, msg: Uint8Array, sig: Uint8Array): Promise<boolean> {
  const publicKey = publicKeyFromNodeId(parseNodeId(nodeId))
  try {
    return await ed.verifyAsync(sig, msg, publicKey, { zip215: false })
  } catch {
    return false
  }
}

/** The identity as a libp2p private key (for `createLibp2p({ privateKey })`). */
export function libp2pPrivateKey(identity: Identity): ReturnType<typeof privateKeyFromRaw> {
  // libp2p's raw Ed25519 private key is seed ‖ public key.
  const raw = new Uint8Array(SEED_LENGTH * 2)
  raw.set(identity.privateKey)
  raw.set(identity.publicKey, SEED_LENGTH)
  return privateKeyFromRaw(raw)
}
