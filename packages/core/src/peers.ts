/** What Gate nodes tell each other and what every view of a peer shows: capabilities and peer info. */

/** What a node serves and how busy it is, sent to trusted peers on connect and when it changes. */
export interface Capabilities {
  node_id: string
  supported_models: string[]
  max_context_length: number | null
  supports_streaming: boolean
  /** 0 idle … 1 full. */
  load_factor: number
}

export type PeerStatus = 'connected' | 'connecting' | 'disconnected' | 'failed'

/**
 * How a connected node is reached: `direct` (one dialled the other), `hole-punched` (a direct
 * connection that the two opened at once through their NATs, coordinated over a relayed one), or
 * `relayed` (a circuit through a relay, which caps its duration and data).
 */
export type ConnectionType = 'direct' | 'hole-punched' | 'relayed'

/** The connection a node is reached over now: the best of its connections. */
export interface PeerConnection {
  type: ConnectionType
  /** What carries it: QUIC or TCP; null for a relayed connection (the relay's hops are its own). */
  transport: 'quic' | 'tcp' | 'other' | null
  /** The node ID of the relay a relayed connection goes through; null otherwise. */
  relay: string | null
}

/** This node's view of NAT traversal (`network_state`). */
export interface NatStatus {
  /** `network.nat.enabled`. */
  enabled: boolean
  /** `public` once AutoNAT has had a public address of this node dialled back; `private` until then. */
  reachability: 'public' | 'private'
  /** The address a relay last saw this node at (its NAT's outside), when one has been seen. */
  observed_address: string | null
  /** Each relay this node keeps a reservation on while it is not publicly reachable. */
  relays: NatRelayStatus[]
}

export interface NatRelayStatus {
  /** The relay's multiaddr, as configured. */
  address: string
  node_id: string
  /** A reservation is held: peers reach this node through the relay at `relayed_address`. */
  reserved: boolean
  relayed_address: string | null
  /** Why the last attempt to make a reservation failed. */
  error: string | null
}

/** One node as this node sees it (`list_peers`, `peer_info`, `network_state`). */
export interface PeerInfo {
  node_id: string
  peer_id: string
  trusted: boolean
  status: PeerStatus
  /** Why the last attempt to reach it failed. */
  error: string | null
  addresses: string[]
  models: string[]
  load_factor: number | null
  rtt_ms: number | null
  /** How it is reached now, the most direct of its connections; null when not connected. */
  connection: PeerConnection | null
  last_seen: string | null
  /** When an unreachable peer is tried again (ISO 8601); null unless `status` is `failed`. */
  next_attempt: string | null
}

/** How busy a node is, 0 idle … 1 full: requests in flight against its concurrency cap. */
export function loadFactor(active: number, maxConcurrent: number): number {
  return Math.min(1, active / maxConcurrent)
}
