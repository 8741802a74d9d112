import { connect, createServer, isIP, isIPv6, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Stream } from '@libp2p/interface'
import { FrameStream, ProtocolError } from './frames.ts'

/**
 * `/gate/punch/1.0.0`: two trusted nodes, relayed to each other, open a direct TCP connection
 * through their NATs, after DCUtR's pattern (the relay's connection carries the coordination and
 * times the two dials): the initiator sends `connect` (the address the relay sees it at, and the
 * local port it will connect from), the responder answers `connect` likewise (or `refuse`), the
 * initiator sends `sync`, waits half the round trip it measured, and both connect to each other at
 * once (TCP simultaneous open). Each SYN leaves through its own NAT before the other's arrives, so
 * each NAT takes the other's SYN for an answer. That needs NATs that keep a connection's source
 * port (endpoint-independent mapping, as Linux masquerading and most home routers do); behind a
 * NAT that picks a new port for each destination (symmetric) the SYNs miss, and the nodes stay
 * relayed.
 *
 * Gate does this itself rather than with `@libp2p/dcutr`: both of js-libp2p's transports dial from
 * a port other than the one they listen on (QUIC from its own client socket, TCP from an ephemeral
 * port), so the NAT mapping a relay observes belongs to a socket that accepts nothing, and the
 * synchronised dials of DCUtR meet no listener.
 */
export const PUNCH_PROTOCOL = '/gate/punch/1.0.0'

/** Where a node will connect from, as the other node must reach it: its NAT's outside. */
export interface PunchAddress {
  ip: string
  port: number
}

export type PunchMessage =
  | ({ type: 'connect' } & PunchAddress)
  | { type: 'refuse'; reason: string }
  | { type: 'sync' }

/** Wait between connect attempts a NAT refused (one that resets an unexpected SYN refuses the first). @default 50 ms */
const RETRY_MS = 50

/**
 * The punch protocol's messages on a stream, in Gate's framing (frames.ts, bounded and fuzzed
 * with `/gate/control`): `connect` and `refuse` each a `head` frame, and the initiator's `sync` its
 * `end` frame, the last thing it says. Not libp2p's length-prefixed `lpStream`: its reader takes a
 * length prefix that never ends one byte at a time for as long as the peer sends (its
 * length-of-length limit is checked only once a varint decodes), about 1.5 µs of CPU for each byte.
 */
export interface PunchMessages {
  write(message: PunchMessage): Promise<void>
  read(signal: AbortSignal): Promise<PunchMessage>
}

export function punchMessages(stream: Stream): PunchMessages {
  const frames = new FrameStream(stream)
  return {
    write: (message) =>
      frames.write(message.type === 'sync' ? { type: 'end' } : { type: 'head', value: { ...message } }),
    read: async (signal) => {
      const frame = await frames.read(signal)
      if (frame.type === 'end') return { type: 'sync' }
      if (frame.type !== 'head')
        throw new ProtocolError(`expected a punch message, got a ${frame.type} frame`)
      return parsePunchMessage(frame.value)
    },
  }
}

function parsePunchMessage(value: Record<string, unknown>): PunchMessage {
  const { type, ip, port, reason } = value
  if (type === 'refuse' && typeof reason === 'string') return { type, reason: reason.slice(0, 200) }
  if (
    type === 'connect' &&
    typeof ip === 'string' &&
    isIP(ip) !== 0 &&
    typeof port === 'number' &&
    Number.isInteger(port) &&
    port > 0 &&
    port < 65536
  ) {
    return { type, ip, port }
  }
  throw new ProtocolError('malformed punch message')
}

/** A TCP port free on this host now: the one to punch from. */
export function freePort(ipv6: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, ipv6 ? '::' : '0.0.0.0', () => {
      const address = server.address()
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      )
    })
  })
}

/**
 * Connects from `localPort` to `remote` while the peer connects the other way: a TCP simultaneous
 * open. Tries again while the NATs refuse, until `signal` aborts.
 */
export async function simultaneousOpen(
  localPort: number,
  remote: PunchAddress,
  signal: AbortSignal,
): Promise<Socket> {
  for (;;) {
    try {
      return await connectOnce(localPort, remote, signal)
    } catch (err) {
      signal.throwIfAborted()
      // Refused or reset: the peer's SYN has not left its NAT yet.
      await sleep(RETRY_MS, undefined, { signal }).catch(() => {
        throw err
      })
    }
  }
}

function connectOnce(localPort: number, remote: PunchAddress, signal: AbortSignal): Promise<Socket> {
  signal.throwIfAborted()
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: remote.ip,
      port: remote.port,
      localPort,
      localAddress: isIPv6(remote.ip) ? '::' : '0.0.0.0',
      noDelay: true,
      keepAlive: true,
    })
    const done = () => {
      signal.removeEventListener('abort', onAbort)
      socket.off('error', onError)
    }
    const onAbort = () => socket.destroy(signal.reason)
    const onError = (err: Error) => {
      done()
      socket.destroy()
      reject(err)
    }
    signal.addEventListener('abort', onAbort, { once: true })
    socket.once('error', onError)
    socket.once('connect', () => {
      done()
      resolve(socket)
    })
  })
}
