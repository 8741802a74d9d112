import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateIdentity } from '@gate/core'
import { decodeInvite, Invites } from '../src/invites.ts'

describe('invites', () => {
  const { nodeId } = generateIdentity()
  const now = Date.parse('2026-11-23T12:00:00Z')

  it('round-trips a code and redeems its secret exactly once', () => {
    const invites = new Invites()
    const { code, invite } = invites.create(nodeId, ['/ip4/127.0.0.1/tcp/41145'], 600, now)
    assert.match(code, /^[\w-]+$/)
    assert.deepEqual(decodeInvite(code, now), invite)
    assert.equal(invites.redeem('made-up', now), false)
    assert.equal(invites.redeem(invite.secret, now), true)
    assert.equal(invites.redeem(invite.secret, now), false, 'one-time')
  })

  it('refuses expired codes and secrets, and garbage', () => {
    const invites = new Invites()
    const { code, invite } = invites.create(nodeId, [], 60, now)
    assert.throws(() => decodeInvite(code, now + 61_000), /expired/)
    assert.equal(invites.redeem(invite.secret, now + 61_000), false)
    for (const garbage of [
      '',
      'hello',
      Buffer.from('[1,2]').toString('base64url'),
      Buffer.from('{"a":1}').toString('base64url'),
    ]) {
      assert.throws(() => decodeInvite(garbage, now), /not an invite code/)
    }
    const wrongNode = Buffer.from(JSON.stringify(['nope', [], 's', now / 1000 + 60])).toString('base64url')
    assert.throws(() => decodeInvite(wrongNode, now), /not a node ID/)
  })
})
