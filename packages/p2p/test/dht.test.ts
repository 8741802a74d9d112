import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { nodeIdToPeerId, peerIdToNodeId } from '@gate/core'
import { DHT_PROTOCOL, peerIdOf } from '../src/index.ts'
import { connect, startNodes } from './utils/nodes.ts'

describe('Gate DHT', () => {
  it('finds a node by node ID alone among ten, through nodes that know only their neighbours', async () => {
    await using nodes = await startNodes(10)
    // A chain: each node knows only the next one.
    for (let i = 0; i < nodes.length - 1; i++)
      await connect(nodes[i] as (typeof nodes)[0], nodes[i + 1] as (typeof nodes)[0], 'tcp')
    const first = nodes[0] as (typeof nodes)[0]
    const last = nodes[9] as (typeof nodes)[0]
    assert.equal(first.getConnections(last.peerId).length, 0)
    assert.equal(await first.peerStore.has(last.peerId), false)
    assert.ok(
      (await first.peerStore.get(nodes[1]?.peerId as typeof last.peerId)).protocols.includes(DHT_PROTOCOL),
    )

    const target = peerIdOf(peerIdToNodeId(last.peerId.toString()))
    assert.equal(target.toString(), nodeIdToPeerId(peerIdToNodeId(last.peerId.toString())))
    let found: Awaited<ReturnType<typeof first.peerRouting.findPeer>> | undefined
    const deadline = Date.now() + 20_000
    while (!found && Date.now() < deadline) {
      found = await first.peerRouting
        .findPeer(target, { useCache: false, signal: AbortSignal.timeout(5000) })
        .catch(() => undefined)
      if (!found) await sleep(200) // routing tables still filling
    }
    assert.ok(found, 'the DHT found the node')
    assert.ok(found.multiaddrs.some((ma) => ma.toString().startsWith('/ip4/127.0.0.1/')))
    const rtt = await first.services.ping.ping(target, { signal: AbortSignal.timeout(5000) })
    assert.ok(rtt >= 0)
  })
})
