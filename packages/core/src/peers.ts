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

/** How a connected node is reached: directly over QUIC or TCP, or through a relay (a circuit). */
export type PeerConnection = 'quic' | 'tcp' | 'relayed' | 'other'

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
