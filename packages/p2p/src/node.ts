import { isIPv6 } from 'node:net'
import { noise } from '@chainsafe/libp2p-noise'
import { quic } from '@chainsafe/libp2p-quic'
import { yamux } from '@chainsafe/libp2p-yamux'
import {
  DEFAULT_MAX_CONNECTIONS,
  type Identity,
  libp2pPrivateKey,
  nodeIdToPeerId,
  peerIdToNodeId,
} from '@gate/core'
import { type Identify, identify } from '@libp2p/identify'
import type { Libp2p, PeerId } from '@libp2p/interface'
import { type KadDHT, type KadDHTInit, kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { mdns } from '@libp2p/mdns'
import { peerIdFromString } from '@libp2p/peer-id'
import { type Ping, ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { MAX_STREAMS_PER_CONNECTION, UNTRUSTED_CONNECTION_SHARE } from './constants.ts'

/** Gate's own DHT: Gate nodes do not join the public IPFS one. */
export const DHT_PROTOCOL = '/gate/kad/1.0.0'

/** What Gate nodes announce on the LAN, so they find each other and not every libp2p app. */
export const MDNS_SERVICE_TAG = '_gate._udp.local'

export type GateServices = { identify: Identify; ping: Ping; dht: KadDHT }
export type GateLibp2p = Libp2p<GateServices>

export interface P2PNodeInit {
  identity: Identity
  /** `network.p2p_host`: an IPv4 or IPv6 address, e.g. `0.0.0.0` or `::`. */
  host: string
  /** `network.p2p_port`: QUIC on UDP and TCP on the same number; 0 picks free ports. */
  port: number
  /** `network.mdns`: find nodes on the LAN by multicast DNS. @default false */
  mdns?: boolean
  /** `network.max_connections`: beyond it libp2p prunes the connections it values least. */
  maxConnections?: number
  /**
   * Whether a node is trusted: nodes that are not may hold at most UNTRUSTED_CONNECTION_SHARE of
   * `maxConnections` (inbound connections past it are refused), so trusted peers keep room.
   * @default every node is trusted
   */
  trusts?: (nodeId: string) => boolean
}

/**
 * Gate's ping service. The DHT pings every new contact through it; with the default single
 * outbound stream per connection, a ping of our own racing it fails.
 */
export const PING_INIT = { maxOutboundStreams: 4, maxInboundStreams: 4 }

/** Gate's Kademlia DHT, in server mode on Gate's own protocol. */
export const DHT_INIT = {
  protocol: DHT_PROTOCOL,
  // The code default is client mode until a public address shows up, which never happens on a
  // LAN; and the default mapper drops private and loopback addresses.
  clientMode: false,
  peerInfoMapper: passthroughMapper,
  allowQueryWithZeroPeers: true,
  logPrefix: 'libp2p:gate-dht',
  datastorePrefix: '/gate-dht',
  metricsPrefix: 'gate_dht',
} satisfies KadDHTInit

/**
 * A started libp2p node under the Gate identity: QUIC first, TCP + noise + yamux as fallback,
 * identify, ping, a Kademlia DHT in server mode on Gate's protocol, and mDNS when asked.
 */
export async function createP2PNode(init: P2PNodeInit): Promise<GateLibp2p> {
  const { host, port, trusts } = init
  const ip = isIPv6(host) ? 'ip6' : 'ip4'
  const maxConnections = init.maxConnections ?? DEFAULT_MAX_CONNECTIONS
  const untrustedCap = Math.max(1, Math.floor(maxConnections * UNTRUSTED_CONNECTION_SHARE))
  let node: GateLibp2p | undefined
  const untrusted = (peer: PeerId): boolean =>
    trusts !== undefined && !trusts(peerIdToNodeId(peer.toString()))
  node = await createLibp2p({
    connectionManager: { maxConnections },
    connectionGater: {
      denyInboundEncryptedConnection: (peer) =>
        untrusted(peer) &&
        (node?.getConnections().filter((c) => untrusted(c.remotePeer)).length ?? 0) >= untrustedCap,
    },
    peerDiscovery: init.mdns ? [mdns({ serviceTag: MDNS_SERVICE_TAG })] : [],
    privateKey: libp2pPrivateKey(init.identity),
    addresses: { listen: [`/${ip}/${host}/udp/${port}/quic-v1`, `/${ip}/${host}/tcp/${port}`] },
    // QUIC brings its own TLS 1.3 and stream muxing; noise and yamux serve TCP only.
    transports: [quic(), tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({ maxInboundStreams: MAX_STREAMS_PER_CONNECTION })],
    services: {
      identify: identify(),
      ping: ping(PING_INIT),
      dht: kadDHT(DHT_INIT),
    },
  })
  return node
}

/** The libp2p PeerId of a node ID. */
export function peerIdOf(nodeId: string): PeerId {
  return peerIdFromString(nodeIdToPeerId(nodeId))
}
