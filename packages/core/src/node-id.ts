/**
 * Node IDs: a node's 32-byte Ed25519 public key as lowercase RFC 4648 base32 without padding
 * (52 characters, a valid DNS label). Every input that takes a node ID also takes the libp2p
 * PeerId of the same key (`12D3KooW…`, or its `bafz…`/`k51…` CID forms).
 *
 * @example
 * ```ts
 * const id = parseNodeId('12D3KooWQK1wnefoLrcVHbbnf5tLzbopUd3K3bFAoJpA7YJgL5pV')
 * // '25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkena'
 * nodeIdToPeerId(id) // '12D3KooWQK1wnefoLrcVHbbnf5tLzbopUd3K3bFAoJpA7YJgL5pV'
 * ```
 */
import { publicKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id'
import { base32 } from 'multiformats/bases/base32'
import { InvalidNodeIdError } from './errors.ts'

export const NODE_ID_LENGTH = 52
export const PUBLIC_KEY_LENGTH = 32

const NODE_ID_PATTERN = /^[a-z2-7]{52}$/

export function nodeIdFromPublicKey(pub: Uint8Array): string {
  if (pub.length !== PUBLIC_KEY_LENGTH) {
    throw new InvalidNodeIdError(
      `expected a ${PUBLIC_KEY_LENGTH}-byte Ed25519 public key, got ${pub.length} bytes`,
    )
  }
  return base32.baseEncode(pub)
}

/** The public key inside a canonical (lowercase) node ID. */
export function publicKeyFromNodeId(id: string): Uint8Array {
  const pub = decodeNodeId(id)
  if (pub === null) throw new InvalidNodeIdError(`not a node ID: ${quote(id)}`)
  return pub
}

export function isNodeId(s: string): boolean {
  return decodeNodeId(s) !== null
}

export function nodeIdToPeerId(id: string): string {
  return peerIdFromPublicKey(publicKeyFromRaw(publicKeyFromNodeId(id))).toString()
}

export function peerIdToNodeId(peerId: string): string {
  const pub = ed25519KeyOfPeerId(peerId)
  if (pub === null) throw new InvalidNodeIdError(`not an Ed25519 PeerId: ${quote(peerId)}`)
  return nodeIdFromPublicKey(pub)
}

/** Accepts a node ID (any case) or a PeerId string and returns the canonical node ID. */
export function parseNodeId(input: string): string {
  const s = input.trim()
  const lower = s.toLowerCase()
  if (decodeNodeId(lower) !== null) return lower
  const pub = ed25519KeyOfPeerId(s)
  if (pub !== null) return nodeIdFromPublicKey(pub)
  throw new InvalidNodeIdError(`not a node ID or PeerId: ${quote(input)}`)
}

function decodeNodeId(id: string): Uint8Array | null {
  if (!NODE_ID_PATTERN.test(id)) return null
  try {
    // Rejects non-zero trailing bits, so each key has exactly one node ID.
    return base32.baseDecode(id)
  } catch {
    return null
  }
}

function ed25519KeyOfPeerId(s: string): Uint8Array | null {
  try {
    const peerId = peerIdFromString(s)
    return peerId.type === 'Ed25519' ? peerId.publicKey.raw : null
  } catch {
    return null
  }
}

/** Bounded, so a header full of junk does not end up whole in an error message or log line. */
function quote(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s)
}
