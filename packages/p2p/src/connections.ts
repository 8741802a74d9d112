import { type ConnectionType, type PeerConnection, peerIdToNodeId } from '@gate/core'
import type { Connection } from '@libp2p/interface'
import { RECEIVE_WINDOW } from './frames.ts'

/**
 * Connections this node opened by hole punching. Kept here rather than read off the connection:
 * libp2p sees a punched connection as any other direct one.
 */
const punched = new WeakSet<Connection>()

/** Marks a connection as made by hole punching. */
export function markPunched(connection: Connection): void {
  punched.add(connection)
}

/** What each relayed connection was allowed to carry when it opened (libp2p keeps only what is left). */
const dataLimits = new WeakMap<Connection, bigint>()

/** Notes a new relayed connection's data limit; call it when the connection opens. */
export function noteDataLimit(connection: Connection): void {
  const bytes = connection.limits?.bytes
  if (bytes !== undefined) dataLimits.set(connection, bytes)
}

/**
 * Bytes of a relayed connection the relay may count before its ends do: those on their way
 * through it and in the transports' buffers, a stream's receive window at most, and as much again.
 */
const IN_FLIGHT_BYTES = 2n * BigInt(RECEIVE_WINDOW)

/** Why a relayed connection that ended mid-exchange did: its data limit, or not. */
export function relayedCutReason(connection: Connection): string {
  const limit = dataLimits.get(connection)
  const left = connection.limits?.bytes
  if (limit === undefined || left === undefined) return 'the relay closed it'
  if (left < IN_FLIGHT_BYTES)
    return `the relay's data limit for one relayed connection (about ${mebibytes(limit)}) is used up`
  return (
    `the relay closed it after ${mebibytes(limit - left)} of the ${mebibytes(limit)} it lets one relayed ` +
    'connection carry (its time limit, or a restart)'
  )
}

/** Bytes as MiB with one decimal: the connection's own handshake has already taken a few. */
function mebibytes(bytes: bigint): string {
  return `${(Number(bytes) / 2 ** 20).toFixed(1)} MiB`
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
  const type = connectionType(connection)
  return {
    type,
    // A relayed connection's address names one of the relay's addresses, not the connection this
    // node has to the relay, which is what carries it.
    transport:
      type === 'relayed'
        ? null
        : names.includes('quic-v1')
          ? 'quic'
          : names.includes('tcp')
            ? 'tcp'
            : 'other',
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
