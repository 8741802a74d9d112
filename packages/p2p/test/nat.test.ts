import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { generateIdentity, type Logger, peerIdToNodeId } from '@gate/core'
import type { Connection } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import {
  createP2PNode,
  createRelayNode,
  describeConnection,
  type GateLibp2p,
  type RelayLibp2p,
} from '../src/index.ts'
import { waitUntil } from './utils/nodes.ts'

/** A logger that keeps what it is told, as `message {fields}`. */
function recordingLogger(): Logger & { messages: string[] } {
  const messages: string[] = []
  const keep = (fields: object, message: string) => void messages.push(`${message} ${JSON.stringify(fields)}`)
  return { messages, debug: keep, info: keep, warn: keep, error: keep }
}

/**
 * Nodes on loopback, where every address is private: a relay, and Gate nodes that keep a
 * reservation on it. Loopback has no NAT, and no hole to punch: a SYN to a port nobody listens on
 * is reset at once, so two sockets never meet in a simultaneous open (NATs that drop such SYNs
 * make it work). The namespace tests in apps/cli/test/nat.test.ts punch through real NATs.
 */
describe('NAT traversal on loopback', () => {
  let relay: RelayLibp2p
  let relayAddress: string
  const nodes: GateLibp2p[] = []

  async function gateNode(allowPrivateAddresses: boolean, logger: Logger = recordingLogger()) {
    const node = await createP2PNode({
      identity: generateIdentity(),
      host: '127.0.0.1',
      port: 0,
      nat: { relays: [relayAddress], upnp: false, allowPrivateAddresses, logger },
    })
    nodes.push(node)
    await waitUntil(() => node.services.nat.status().relays[0]?.reserved === true, 'a reservation', 10_000)
    return node
  }

  /** A relayed connection from `from` to `to`, through the relay (loopback would go direct). */
  function relayedDial(from: GateLibp2p, to: GateLibp2p): Promise<Connection> {
    const address = to.services.nat.status().relays[0]?.relayed_address
    assert.ok(address)
    return from.dial(multiaddr(address), { signal: AbortSignal.timeout(10_000) })
  }

  before(async () => {
    relay = await createRelayNode({
      identity: generateIdentity(),
      host: '127.0.0.1',
      port: 0,
      circuit: {
        maxReservations: 8,
        durationMs: 60_000,
        dataLimit: 64 * 1024 * 1024,
        maxCircuitsPerNode: 8,
        denyReservation: async () => false,
      },
    })
    relayAddress = relay
      .getMultiaddrs()
      .find((ma) => ma.toString().includes('/tcp/'))
      ?.toString() as string
  })

  after(async () => {
    await Promise.all([...nodes, relay].map((n) => n.stop()))
  })

  it('keeps a reservation, reports it, and advertises the relayed address to the DHT', async () => {
    const a = await gateNode(false)
    const status = a.services.nat.status()
    assert.equal(status.enabled, true)
    assert.equal(status.reachability, 'private', 'loopback addresses are no public ones')
    assert.equal(status.observed_address?.startsWith('/ip4/127.0.0.1/'), true)
    assert.equal(status.relays[0]?.error, null)
    assert.match(status.relays[0]?.relayed_address ?? '', new RegExp(`/p2p-circuit/p2p/${a.peerId}$`))
    assert.ok(a.getMultiaddrs().some((ma) => ma.toString().includes('/p2p-circuit')))
    const b = await gateNode(false)
    // B knows A only through the relay's DHT routing table, once B's own has the relay in it.
    const deadline = Date.now() + 10_000
    let found: string[] = []
    while (!found.some((address) => address.includes('/p2p-circuit'))) {
      assert.ok(Date.now() < deadline, `the DHT hands out the relayed address, not only ${found.join(' ')}`)
      await sleep(50)
      const peer = await b.peerRouting
        .findPeer(a.peerId, { useCache: false, signal: AbortSignal.timeout(2000) })
        .catch(() => undefined)
      found = peer?.multiaddrs.map(String) ?? []
    }
  })

  it('does not punch from a private address unless allowed, and says why', async () => {
    const logger = recordingLogger()
    const a = await gateNode(true)
    const b = await gateNode(false, logger)
    const relayed = await relayedDial(b, a)
    const relayNodeId = peerIdToNodeId(relay.peerId.toString())
    assert.deepEqual(describeConnection(relayed), { type: 'relayed', transport: null, relay: relayNodeId })
    assert.ok(relayed.limits?.bytes, 'a relayed connection carries the relay’s data limit')
    b.services.nat.upgrade(a.peerId)
    await b.services.nat.pending(a.peerId)
    assert.ok(
      logger.messages.some((m) => m.startsWith('no hole punching: no relay has seen a public address')),
      logger.messages.join('\n'),
    )
    assert.ok(a.getConnections(b.peerId).every((c) => !c.direct))
  })

  it('answers a punch from a peer it does not trust with a refusal', async () => {
    const a = await createP2PNode({
      identity: generateIdentity(),
      host: '127.0.0.1',
      port: 0,
      trusts: () => false,
      nat: { relays: [relayAddress], upnp: false, allowPrivateAddresses: true, logger: recordingLogger() },
    })
    nodes.push(a)
    await waitUntil(() => a.services.nat.status().relays[0]?.reserved === true, 'a reservation', 10_000)
    const logger = recordingLogger()
    const b = await gateNode(true, logger)
    await relayedDial(b, a)
    b.services.nat.upgrade(a.peerId)
    await b.services.nat.pending(a.peerId)
    assert.ok(
      logger.messages.some((m) =>
        /^hole punching failed: staying relayed .*the peer declined: not trusted/.test(m),
      ),
      logger.messages.join('\n'),
    )
    assert.ok(b.getConnections(a.peerId).every((c) => !c.direct))
  })
})
