import { type ConnectionType, type PeerConnection, peerIdToNodeId } from '@gate/core'
import type { Connection } from '@libp2p/interface'

/**
 * Connections this node opened by hole punching. Kept here rather than read off the connection:
 * libp2p sees a punched connection as any other direct one.
 */
const punched = new WeakSet<Connection>()

/** Marks a connection as made by hole punching. */
export function markPunched(connection: Connection): void {
  punched.add(connection)
}

export function connectionType(connection: Connection): ConnectionType {
  if (!connection.direct) return 'relayed'
  return punched.has(connection) ? 'hole-punched' : 'direct'
}

/** How `connection` reaches its peer, as `peer_info` shows it. */
export function describeConnection(connection: Connection): PeerConnection {
  const components = connection.remoteAddr.getComponents()
  const names = components.map((c) => c.name)
  const relayIndex = names.indexOf('p2p-circuit')
  // A relayed address is `<relay address>/p2p/<relay>/p2p-circuit/p2p/<peer>`.
  const relay = relayIndex > 0 ? components[relayIndex - 1]?.value : undefined
  return {
    type: connectionType(connection),
    transport: names.includes('quic-v1') ? 'quic' : names.includes('tcp') ? 'tcp' : 'other',
    relay: relay === undefined ? null : safeNodeIdOfPeer(relay),
  }
}

/** How much better one connection is than another for carrying requests: lower is better. */
const RANK: Record<ConnectionType, number> = { direct: 0, 'hole-punched': 0, relayed: 1 }

/**
 * The connection to carry the next request: an open direct one (QUIC before TCP: QUIC has no
 * head-of-line blocking across streams), else the relayed one with the most data left.
 */
export function bestConnection(connections: readonly Connection[]): Connection | undefined {
  let best: Connection | undefined
  for (const connection of connections) {
    if (connection.status !== 'open') continue
    if (best === undefined || compare(connection, best) < 0) best = connection
  }
  return best
}

function compare(a: Connection, b: Connection): number {
  const rank = RANK[connectionType(a)] - RANK[connectionType(b)]
  if (rank !== 0) return rank
  if (a.direct) return Number(!isQuic(a)) - Number(!isQuic(b))
  const left = (a.limits?.bytes ?? UNLIMITED) - (b.limits?.bytes ?? UNLIMITED)
  return left > 0n ? -1 : left < 0n ? 1 : 0
}

const UNLIMITED = 2n ** 64n

function isQuic(connection: Connection): boolean {
  return connection.remoteAddr.getComponents().some((c) => c.name === 'quic-v1')
}

function safeNodeIdOfPeer(peerId: string): string | null {
  try {
    return peerIdToNodeId(peerId)
  } catch {
    return null
  }
}
