import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { addressOf, connect, startNodes, TRANSPORTS } from './utils/nodes.ts'

describe('p2p node', () => {
  it('listens on an IPv6 address when given one, over QUIC and TCP', async () => {
    await using nodes = await startNodes(2, '::1')
    const [a, b] = nodes
    assert.ok(a && b)
    for (const transport of TRANSPORTS) {
      assert.match(addressOf(b, transport).toString(), /^\/ip6\/::1\//)
      const connection = await connect(a, b, transport)
      assert.equal(connection.remotePeer.toString(), b.peerId.toString())
      const rtt = await a.services.ping.ping(addressOf(b, transport), { signal: AbortSignal.timeout(5000) })
      assert.ok(rtt >= 0)
    }
  })
})
