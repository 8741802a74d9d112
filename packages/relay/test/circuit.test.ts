import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateIdentity } from '@gate/core'
import { DHT_PROTOCOL, peerIdOf, type RelayLibp2p } from '@gate/p2p'
import type { PeerId } from '@libp2p/interface'
import pino from 'pino'
import { CircuitPolicy } from '../src/circuit.ts'
import { RelayMetrics } from '../src/metrics.ts'

/**
 * A stand-in for the relay's libp2p node: what the policy reads of it (the peer store's protocols,
 * identify events, the circuit relay's reservations).
 */
function fakeRelay(protocols: Map<string, string[]>) {
  const reservations = new Map<string, PeerId>()
  const events = new EventTarget()
  const node = {
    peerStore: {
      get: async (peer: PeerId) => {
        const known = protocols.get(peer.toString())
        if (!known) throw Object.assign(new Error('Not found'), { name: 'NotFoundError' })
        return { protocols: known }
      },
    },
    addEventListener: events.addEventListener.bind(events),
    removeEventListener: events.removeEventListener.bind(events),
    services: {
      circuitRelay: {
        reservations: {
          keys: () => reservations.values(),
          has: (peer: PeerId) => reservations.has(peer.toString()),
          get size() {
            return reservations.size
          },
        },
      },
    },
  }
  return {
    node: node as unknown as RelayLibp2p,
    reserve: (peer: PeerId) => reservations.set(peer.toString(), peer),
    identify: (peer: PeerId, known: string[]) => {
      protocols.set(peer.toString(), known)
      events.dispatchEvent(new CustomEvent('peer:identify', { detail: { peerId: peer } }))
    },
  }
}

const peer = () => peerIdOf(generateIdentity().nodeId)

describe('circuit reservations', () => {
  it('takes Gate nodes, and other peers up to the untrusted quota; a holder may renew', async () => {
    const protocols = new Map<string, string[]>()
    const relay = fakeRelay(protocols)
    const metrics = new RelayMetrics()
    const policy = new CircuitPolicy({
      node: () => relay.node,
      untrustedQuota: 1,
      metrics,
      logger: pino({ level: 'silent' }),
    })
    const [gate1, gate2, other1, other2] = [peer(), peer(), peer(), peer()]
    for (const p of [gate1, gate2]) protocols.set(p.toString(), ['/ipfs/id/1.0.0', DHT_PROTOCOL])
    for (const p of [other1, other2]) protocols.set(p.toString(), ['/ipfs/id/1.0.0', '/ipfs/kad/1.0.0'])

    assert.equal(await policy.denyReservation(gate1), false)
    relay.reserve(gate1)
    assert.equal(await policy.denyReservation(other1), false, 'the quota has room for one')
    relay.reserve(other1)
    assert.equal(await policy.denyReservation(other2), true, 'the quota is full')
    assert.equal(await policy.denyReservation(other1), false, 'a holder renews')
    assert.equal(await policy.denyReservation(gate2), false, 'Gate nodes are not held to the quota')
    relay.reserve(gate2)
    assert.deepEqual(policy.counts(), { gate: 2, other: 1 })
    const text = await metrics.registry.metrics()
    assert.match(text, /gate_relay_circuit_reservations\{kind="gate"\} 2/)
    assert.match(text, /gate_relay_circuit_reservations\{kind="other"\} 1/)
    assert.match(text, /gate_relay_circuit_reservations_refused_total\{reason="untrusted_quota"\} 1/)
  })

  it('waits for identify to say who a peer is that asks before it is known', async () => {
    const relay = fakeRelay(new Map())
    const policy = new CircuitPolicy({
      node: () => relay.node,
      untrustedQuota: 0,
      metrics: new RelayMetrics(),
      logger: pino({ level: 'silent' }),
    })
    const early = peer()
    const decision = policy.denyReservation(early)
    setTimeout(() => relay.identify(early, [DHT_PROTOCOL]), 50)
    assert.equal(await decision, false)
  })
})
