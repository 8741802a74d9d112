import { DHT_PROTOCOL, type RelayLibp2p } from '@gate/p2p'
import type { IdentifyResult, PeerId } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { RelayMetrics } from './metrics.ts'

/** How long a reservation request waits for identify to say who the peer is. @default 5 s */
const IDENTIFY_WAIT_MS = 5000

export interface CircuitPolicyInit {
  /** The relay's node, once it exists (the policy is part of its connection gater). */
  node: () => RelayLibp2p | undefined
  /** `relay_server.circuit.untrusted_quota`: reservations for peers that are not Gate nodes. */
  untrustedQuota: number
  metrics: RelayMetrics
  logger: Logger
}

/**
 * Who gets a circuit-relay reservation. Gate nodes get one up to `max_reservations` (the circuit
 * relay server counts those); other peers share `untrusted_quota` of them. A Gate node is a peer
 * whose identify lists Gate's DHT protocol, which every daemon serves from the moment it starts,
 * whether or not it registers a name with this relay. That is a classification, not proof: any
 * peer can announce the protocol; the limits every relayed connection gets bound what it can take.
 */
export class CircuitPolicy {
  readonly #init: CircuitPolicyInit
  /** Whether each peer that asked for a reservation is a Gate node. */
  readonly #gate = new Map<string, boolean>()

  constructor(init: CircuitPolicyInit) {
    this.#init = init
    init.metrics.reservations = () => this.counts()
  }

  /** The connection gater's `denyInboundRelayReservation`: true refuses the reservation. */
  async denyReservation(peer: PeerId): Promise<boolean> {
    const node = this.#init.node()
    if (!node) return true
    const gate = await this.#isGateNode(node, peer)
    this.#forgetLeavers(node)
    this.#gate.set(peer.toString(), gate)
    // A peer that holds a reservation may always renew it.
    if (gate || node.services.circuitRelay?.reservations.has(peer)) return false
    if (this.counts().other < this.#init.untrustedQuota) return false
    this.#init.metrics.circuitRefused.inc({ reason: 'untrusted_quota' })
    this.#init.logger.info(
      { peer: peer.toString() },
      'reservation refused: the peer is no Gate node and the untrusted quota is full',
    )
    return true
  }

  /** Reservations held now, by kind. */
  counts(): { gate: number; other: number } {
    let gate = 0
    let other = 0
    for (const peer of this.#init.node()?.services.circuitRelay?.reservations.keys() ?? []) {
      if (this.#gate.get(peer.toString()) === false) other++
      else gate++
    }
    return { gate, other }
  }

  /** Forgets the kind of peers that no longer hold a reservation, once they are many. */
  #forgetLeavers(node: RelayLibp2p): void {
    const reservations = node.services.circuitRelay?.reservations
    if (!reservations || this.#gate.size < 2 * reservations.size + 64) return
    const held = new Set([...reservations.keys()].map(String))
    for (const key of this.#gate.keys()) if (!held.has(key)) this.#gate.delete(key)
  }

  /** Whether the peer announces Gate's DHT protocol, waiting for identify if it has not run yet. */
  async #isGateNode(node: RelayLibp2p, peer: PeerId): Promise<boolean> {
    const protocols = async () => (await node.peerStore.get(peer).catch(() => undefined))?.protocols ?? []
    let identified: () => void = () => {}
    const wait = new Promise<void>((resolve) => {
      identified = resolve
    })
    const onIdentify = (event: CustomEvent<IdentifyResult>) => {
      if (event.detail.peerId.equals(peer)) identified()
    }
    node.addEventListener('peer:identify', onIdentify)
    const timer = setTimeout(identified, IDENTIFY_WAIT_MS)
    try {
      // No protocols known yet: identify has not run on this side.
      if ((await protocols()).length === 0) await wait
      return (await protocols()).includes(DHT_PROTOCOL)
    } finally {
      clearTimeout(timer)
      node.removeEventListener('peer:identify', onIdentify)
    }
  }
}
