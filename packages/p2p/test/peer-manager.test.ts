import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { generateIdentity, type Identity } from '@gate/core'
import { multiaddr } from '@multiformats/multiaddr'
import {
  CONTROL_PROTOCOL,
  controlStreamHandler,
  createP2PNode,
  type GateLibp2p,
  PeerManager,
  peerIdOf,
  TrustedPeers,
} from '../src/index.ts'
import { silentLogger, waitUntil } from './utils/nodes.ts'

const capabilities = {
  node_id: 'x',
  supported_models: [],
  max_context_length: null,
  supports_streaming: true,
  load_factor: 0,
}

/**
 * A PeerManager on a real libp2p node that trusts one peer, which is down: at its port, a TCP
 * server hangs up on every dial and counts it. `comeBack` closes that server and starts the peer
 * there.
 */
async function unreachablePeer(backoff: { refreshMs: number; maxBackoffMs: number }) {
  const home = await mkdtemp(join(tmpdir(), 'gate-peers-'))
  const node = await createP2PNode({ identity: generateIdentity(), host: '127.0.0.1', port: 0 })
  const peer = generateIdentity()
  const dials: number[] = []
  const refuser: Server = createServer((socket) => {
    dials.push(Date.now())
    socket.destroy()
  })
  await new Promise<void>((resolve) => refuser.listen(0, '127.0.0.1', resolve))
  const port = (refuser.address() as { port: number }).port
  const manager = new PeerManager({
    node,
    nodeId: node.peerId.toString(),
    trusted: new TrustedPeers(() => [peer.nodeId], node.peerId.toString()),
    bootstrap: () => [],
    capabilities: () => capabilities,
    cachePath: join(home, 'peers.json'),
    onPair: async () => false,
    logger: silentLogger,
    events: { emit: () => {} },
    ...backoff,
  })
  let peerNode: GateLibp2p | undefined
  return {
    node,
    peer,
    manager,
    dials,
    address: `/ip4/127.0.0.1/tcp/${port}`,
    async comeBack(): Promise<void> {
      await new Promise<void>((resolve) => refuser.close(() => resolve()))
      peerNode = await createP2PNode({ identity: peer as Identity, host: '127.0.0.1', port })
      await peerNode.handle(
        CONTROL_PROTOCOL,
        controlStreamHandler(async () => ({ type: 'handshake_response', capabilities })),
      )
    },
    async [Symbol.asyncDispose](): Promise<void> {
      refuser.close()
      await manager.stop()
      await Promise.all([node.stop(), peerNode?.stop()])
      await rm(home, { recursive: true, force: true })
    },
  }
}

describe('PeerManager reconnects', () => {
  it('backs off exponentially from an unreachable trusted peer, then connects when it comes back', async () => {
    await using t = await unreachablePeer({ refreshMs: 100, maxBackoffMs: 800 })
    const added = await t.manager.add(t.peer.nodeId, t.address)
    assert.equal(added.status, 'failed')
    assert.ok(added.error)
    assert.ok(added.next_attempt, 'a failed peer says when it is tried next')
    assert.ok(Date.parse(added.next_attempt) > Date.now())

    await t.manager.start()
    await sleep(3000)
    // Ticks every 100 ms would dial 30 times; backing off 100, 200, 400, 800, 800… ms, 6–8.
    assert.ok(t.dials.length >= 4 && t.dials.length <= 10, `${t.dials.length} dials in 3 s`)
    const gaps = t.dials.slice(1).map((at, i) => at - (t.dials[i] as number))
    assert.ok((gaps.at(-1) as number) >= 500, `the gaps grow: ${gaps.join(', ')} ms`)
    assert.equal(t.manager.info(t.peer.nodeId).status, 'failed')

    // The peer comes back at that address: it is reached within one longest backoff.
    await t.comeBack()
    await waitUntil(() => t.manager.info(t.peer.nodeId).status === 'connected', 'the peer connected', 5000)
    const info = t.manager.info(t.peer.nodeId)
    assert.equal(info.next_attempt, null)
    assert.equal(info.error, null)
    const { tags } = await t.node.peerStore.get(peerIdOf(t.peer.nodeId))
    assert.ok(tags.has('gate-trusted'), 'trusted peers are the last connections libp2p prunes')
  })

  it('tries a trusted peer at once when discovery (mDNS) finds it, whatever its backoff', async () => {
    // The first retry comes 4–6 s after the failed add: well past this test's waits.
    await using t = await unreachablePeer({ refreshMs: 5000, maxBackoffMs: 60_000 })
    await t.manager.add(t.peer.nodeId, t.address)
    await t.manager.start()
    await t.comeBack()
    const dialsBefore = t.dials.length
    await sleep(500)
    assert.equal(t.manager.info(t.peer.nodeId).status, 'failed', 'still waiting out its backoff')
    // What libp2p emits when its mDNS service hears the peer on the LAN.
    t.node.safeDispatchEvent('peer:discovery', {
      detail: { id: peerIdOf(t.peer.nodeId), multiaddrs: [multiaddr(t.address)] },
    })
    await waitUntil(() => t.manager.info(t.peer.nodeId).status === 'connected', 'the peer connected', 3000)
    assert.equal(t.dials.length, dialsBefore)
  })
})
