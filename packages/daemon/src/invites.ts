import { randomBytes, timingSafeEqual } from 'node:crypto'
import { InvalidRequestError, parseNodeId } from '@gate/core'

/** What `gate peers join` needs to reach and pair with the inviter. */
export interface Invite {
  node_id: string
  addresses: string[]
  secret: string
  /** Unix seconds. */
  expires_at: number
}

/**
 * One-time pairing codes: `gate peers invite` makes one (the node ID, addresses and a secret,
 * base64url), `gate peers join CODE` on another node redeems it once before it expires, and
 * the two nodes then trust each other.
 */
export class Invites {
  readonly #pending = new Map<string, number>()

  create(
    nodeId: string,
    addresses: string[],
    ttlSeconds: number,
    now = Date.now(),
  ): { code: string; invite: Invite } {
    this.#prune(now)
    const secret = randomBytes(16).toString('base64url')
    const expiresAt = Math.floor(now / 1000) + ttlSeconds
    this.#pending.set(secret, expiresAt * 1000)
    const invite = { node_id: nodeId, addresses, secret, expires_at: expiresAt }
    return { code: encodeInvite(invite), invite }
  }

  /** True once for a secret this node issued that has not expired; it is then spent. */
  redeem(secret: string, now = Date.now()): boolean {
    this.#prune(now)
    for (const [known, expires] of this.#pending) {
      const a = Buffer.from(known)
      const b = Buffer.from(secret)
      if (a.length === b.length && timingSafeEqual(a, b) && expires > now) {
        this.#pending.delete(known)
        return true
      }
    }
    return false
  }

  #prune(now: number): void {
    for (const [secret, expires] of this.#pending) if (expires <= now) this.#pending.delete(secret)
  }
}

export function encodeInvite(invite: Invite): string {
  const compact = [invite.node_id, invite.addresses, invite.secret, invite.expires_at]
  return Buffer.from(JSON.stringify(compact)).toString('base64url')
}

export function decodeInvite(code: string, now = Date.now()): Invite {
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(code.trim(), 'base64url').toString('utf8'))
  } catch {
    throw new InvalidRequestError('not an invite code', { param: 'code' })
  }
  if (!Array.isArray(value) || value.length !== 4)
    throw new InvalidRequestError('not an invite code', { param: 'code' })
  const [nodeId, addresses, secret, expiresAt] = value as unknown[]
  if (
    typeof nodeId !== 'string' ||
    !Array.isArray(addresses) ||
    !addresses.every((a) => typeof a === 'string') ||
    typeof secret !== 'string' ||
    typeof expiresAt !== 'number'
  ) {
    throw new InvalidRequestError('not an invite code', { param: 'code' })
  }
  if (expiresAt * 1000 <= now)
    throw new InvalidRequestError('this invite code has expired', { param: 'code' })
  return { node_id: parseNodeId(nodeId), addresses, secret, expires_at: expiresAt }
}
