import { isIPv6 } from 'node:net'
import { noise } from '@chainsafe/libp2p-noise'
import { quic } from '@chainsafe/libp2p-quic'
import { yamux } from '@chainsafe/libp2p-yamux'
import {
  DEFAULT_MAX_CONNECTIONS,
  type Identity,
  type Logger,
  libp2pPrivateKey,
  nodeIdToPeerId,
  peerIdToNodeId,
} from '@gate/core'
import { autoNAT } from '@libp2p/autonat'
import { type CircuitRelayService, circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { type Identify, identify } from '@libp2p/identify'
import type { Connection, ConnectionGater, Libp2p, PeerId } from '@libp2p/interface'
import { type KadDHT, type KadDHTInit, kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { mdns } from '@libp2p/mdns'
import { peerIdFromString } from '@libp2p/peer-id'
import { type Ping, ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import type { UPnPNAT } from '@libp2p/upnp-nat'
import { isLoopback } from '@libp2p/utils'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2pOptions } from 'libp2p'
import { MAX_STREAMS_PER_CONNECTION, UNTRUSTED_CONNECTION_SHARE } from './constants.ts'
import { dialPolicy } from './dial-order.ts'
import { type NatTraversal, natTraversal } from './nat.ts'

/** Gate's own DHT: Gate nodes do not join the public IPFS one. */
export const DHT_PROTOCOL = '/gate/kad/1.0.0'

/** What Gate nodes announce on the LAN, so they find each other and not every libp2p app. */
export const MDNS_SERVICE_TAG = '_gate._udp.local'

/** What every Gate libp2p node runs, daemon or relay. */
type BaseServices = { identify: Identify; ping: Ping; dht: KadDHT }

/** A daemon's node: with NAT traversal, and AutoNAT and UPnP when it is on. */
export type GateServices = BaseServices & { nat: NatTraversal; autonat?: unknown; upnp?: UPnPNAT }
export type GateLibp2p = Libp2p<GateServices>

/** A relay's node: a circuit relay, and AutoNAT's dial-backs for the nodes that ask. */
export type RelayServices = BaseServices & { autonat: unknown; circuitRelay?: CircuitRelayService }
export type RelayLibp2p = Libp2p<RelayServices>

/** What a node needs to be a libp2p peer at all. */
interface BaseNodeInit {
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

export interface P2PNodeInit extends BaseNodeInit {
  /** NAT traversal (`network.nat`, with the relays to keep reservations on); off when absent. */
  nat?: {
    relays: readonly string[]
    upnp: boolean
    allowPrivateAddresses: boolean
    logger: Logger
  }
}

export interface RelayNodeInit extends BaseNodeInit {
  /** The circuit relay's limits; no circuit relay when absent. */
  circuit?: CircuitRelayInit
}

/** A relay's circuit-relay server: what each reservation gets, and who gets one. */
export interface CircuitRelayInit {
  maxReservations: number
  /** How long one relayed connection may last. */
  durationMs: number
  /** Bytes one relayed connection may carry, both ways together. */
  dataLimit: number
  /** Relayed connections one node may have open through the relay at once, each way. */
  maxCircuitsPerNode: number
  /** Whether `peer` is refused a reservation (resolves once the relay knows who it is). */
  denyReservation: (peer: PeerId) => Promise<boolean>
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

/** AutoNAT on Gate's own protocol, so that Gate nodes and relays answer each other only. */
const AUTONAT_INIT = { protocolPrefix: 'gate' }

/**
 * A started libp2p node under the Gate identity: QUIC first, TCP + noise + yamux as fallback,
 * identify, ping, a Kademlia DHT in server mode on Gate's protocol, and mDNS when asked; with
 * `nat`, the circuit-relay transport (dialling and being dialled through relays), AutoNAT, Gate's
 * NAT traversal (reservations, hole punching) and, when asked, UPnP.
 */
export async function createP2PNode(init: P2PNodeInit): Promise<GateLibp2p> {
  const { nat, trusts } = init
  let node: GateLibp2p | undefined
  const base = baseOptions(init, () => node?.getConnections() ?? [], nat?.relays)
  node = await createLibp2p<GateServices>({
    ...base,
    peerDiscovery: init.mdns ? [mdns({ serviceTag: MDNS_SERVICE_TAG })] : [],
    transports: nat ? [...base.transports, circuitRelayTransport()] : base.transports,
    services: {
      ...baseServices(),
      nat: natTraversal({
        enabled: nat !== undefined,
        relays: nat?.relays ?? [],
        allowPrivateAddresses: nat?.allowPrivateAddresses ?? false,
        trusts: (nodeId) => trusts?.(nodeId) ?? true,
        logger: nat?.logger ?? SILENT,
      }),
      ...(nat ? { autonat: autoNAT(AUTONAT_INIT) } : {}),
      // Off by default: loaded only when on (its UPnP and XML code is about 6 MB of memory).
      ...(nat?.upnp ? { upnp: (await import('@libp2p/upnp-nat')).uPnPNAT() } : {}),
    },
  })
  return node
}

/**
 * A started libp2p node for `gate relay`: a peer and DHT bootstrap node that answers AutoNAT's
 * dial-back requests and, with `circuit`, relays connections between nodes that cannot reach each
 * other (circuit relay v2) under the given limits.
 */
export async function createRelayNode(init: RelayNodeInit): Promise<RelayLibp2p> {
  const { circuit } = init
  let node: RelayLibp2p | undefined
  const base = baseOptions(init, () => node?.getConnections() ?? [])
  node = await createLibp2p<RelayServices>({
    ...base,
    connectionGater: {
      ...base.connectionGater,
      ...(circuit ? { denyInboundRelayReservation: circuit.denyReservation } : {}),
    },
    services: {
      ...baseServices(),
      autonat: autoNAT(AUTONAT_INIT),
      ...(circuit
        ? {
            circuitRelay: circuitRelayServer({
              reservations: {
                maxReservations: circuit.maxReservations,
                applyDefaultLimit: true,
                // The server times relayed connections in milliseconds.
                defaultDurationLimit: circuit.durationMs,
                defaultDataLimit: BigInt(circuit.dataLimit),
              },
              maxInboundHopStreams: circuit.maxCircuitsPerNode,
              maxOutboundStopStreams: circuit.maxCircuitsPerNode,
            }),
          }
        : {}),
    },
  })
  return node
}

/**
 * The options every Gate node shares; `connections` reads the node's connections once it exists,
 * `relays` are the relays it is told to use.
 */
function baseOptions(init: BaseNodeInit, connections: () => Connection[], relays: readonly string[] = []) {
  const { host, port, trusts } = init
  const ip = isIPv6(host) ? 'ip6' : 'ip4'
  const maxConnections = init.maxConnections ?? DEFAULT_MAX_CONNECTIONS
  const untrustedCap = Math.max(1, Math.floor(maxConnections * UNTRUSTED_CONNECTION_SHARE))
  const untrusted = (peer: PeerId): boolean =>
    trusts !== undefined && !trusts(peerIdToNodeId(peer.toString()))
  const dial = dialPolicy(new Set(relays.map(peerOfAddress)))
  const connectionGater: ConnectionGater = {
    denyInboundEncryptedConnection: (peer) =>
      untrusted(peer) && connections().filter((c) => untrusted(c.remotePeer)).length >= untrustedCap,
    denyDialMultiaddr: dial.denyDial,
  }
  return {
    connectionManager: { maxConnections, addressSorter: dial.sorter },
    connectionGater,
    privateKey: libp2pPrivateKey(init.identity),
    addresses: {
      listen: [`/${ip}/${host}/udp/${port}/quic-v1`, `/${ip}/${host}/tcp/${port}`],
      announceFilter: withoutLoopback,
    },
    // QUIC brings its own TLS 1.3 and stream muxing; noise and yamux serve TCP only.
    transports: [quic(), tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({ maxInboundStreams: MAX_STREAMS_PER_CONNECTION })],
  } satisfies Libp2pOptions
}

/**
 * A node's own addresses, as it tells others of them: loopback ones only when it has no other. A
 * peer elsewhere that dials one reaches its own host (and a QUIC dial to it waits out a timeout).
 */
function withoutLoopback(addresses: Multiaddr[]): Multiaddr[] {
  const outside = addresses.filter((ma) => !isLoopback(ma))
  return outside.length > 0 ? outside : addresses
}

/** The PeerId a multiaddr ends in (`…/p2p/<PeerId>`), or '' when it names none. */
function peerOfAddress(address: string): string {
  return (
    multiaddr(address)
      .getComponents()
      .findLast((c) => c.name === 'p2p')?.value ?? ''
  )
}

function baseServices() {
  return { identify: identify(), ping: ping(PING_INIT), dht: kadDHT(DHT_INIT) }
}

const SILENT: Logger = { debug() {}, info() {}, warn() {}, error() {} }

/** The libp2p PeerId of a node ID. */
export function peerIdOf(nodeId: string): PeerId {
  return peerIdFromString(nodeIdToPeerId(nodeId))
}
