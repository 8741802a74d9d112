import { isIPv6, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { describeError, type Logger, type NatRelayStatus, type NatStatus, peerIdToNodeId } from '@gate/core'
import type {
  ComponentLogger,
  Connection,
  IdentifyResult,
  Libp2pEvents,
  PeerId,
  Startable,
  Stream,
  TypedEventTarget,
  Upgrader,
} from '@libp2p/interface'
import type {
  AddressManager,
  ConnectionManager,
  Registrar,
  TransportManager,
} from '@libp2p/interface-internal'
import { peerIdFromString } from '@libp2p/peer-id'
import { isPrivate, isPrivateIp } from '@libp2p/utils'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import { bestConnection, markPunched, noteDataLimit } from './connections.ts'
import {
  PEER_BACKOFF_MAX_MS,
  PEER_DIAL_TIMEOUT_MS,
  PUNCH_TIMEOUT_MS,
  RESERVATION_CHECK_MS,
} from './constants.ts'
import { deadline, ProtocolError } from './frames.ts'
import { freePort, PUNCH_PROTOCOL, type PunchAddress, punchMessages, simultaneousOpen } from './hole-punch.ts'
import { SocketConnection } from './socket-connection.ts'

export interface NatTraversalInit {
  /** `network.nat.enabled`: off, connections are still described but nothing else happens. */
  enabled: boolean
  /** Relays to keep a reservation on: multiaddrs ending in `/p2p/<relay PeerId>`. */
  relays: readonly string[]
  /** `network.nat.allow_private_addresses`: punch from a private address a relay observes. */
  allowPrivateAddresses: boolean
  /** Only trusted nodes are punched to, or answered. */
  trusts: (nodeId: string) => boolean
  logger: Logger
}

/** What of libp2p the service uses. */
export interface NatTraversalComponents {
  addressManager: AddressManager
  transportManager: TransportManager
  connectionManager: ConnectionManager
  registrar: Registrar
  upgrader: Upgrader
  events: TypedEventTarget<Libp2pEvents>
  logger: ComponentLogger
}

interface RelayState {
  /** As configured. */
  address: string
  ma: Multiaddr
  peer: PeerId
  error: string | null
  /** Failed attempts in a row. */
  failures: number
  /** When it is tried next (ms since the epoch). */
  retryAt: number
  pending: boolean
}

/**
 * NAT traversal for a Gate node, as a libp2p service: while AutoNAT has confirmed no public
 * address, it keeps a circuit-relay reservation on each relay (again after the relay restarts or
 * the connection drops), so the node is reachable at `<relay>/p2p-circuit/p2p/<node>`; and it
 * upgrades a relayed connection with a trusted peer to a direct one by hole punching
 * (`/gate/punch/1.0.0`), after which requests take the direct one.
 */
export class NatTraversal implements Startable {
  readonly #c: NatTraversalComponents
  readonly #init: NatTraversalInit
  readonly #relays: RelayState[]
  /** Punches under way, by PeerId: a request to that peer waits for the outcome. */
  readonly #punches = new Map<string, Promise<void>>()
  /** Relayed connections a punch has been tried on: once each. */
  readonly #tried = new WeakSet<Connection>()
  /** Where a relay last saw this node. */
  #observed: Multiaddr | undefined
  #timer: NodeJS.Timeout | undefined
  #stopping = new AbortController()

  constructor(components: NatTraversalComponents, init: NatTraversalInit) {
    this.#c = components
    this.#init = init
    this.#relays = init.relays.map((address) => {
      const ma = multiaddr(address)
      const id = ma.getComponents().findLast((c) => c.name === 'p2p')?.value
      if (id === undefined) throw new Error(`relay address without /p2p/<PeerId>: ${address}`)
      return { address, ma, peer: peerIdFromString(id), error: null, failures: 0, retryAt: 0, pending: false }
    })
  }

  readonly [Symbol.toStringTag] = '@gate/nat-traversal'

  async start(): Promise<void> {
    this.#c.events.addEventListener('connection:open', this.#onConnection)
    if (!this.#init.enabled) return
    this.#stopping = new AbortController()
    await this.#c.registrar.handle(PUNCH_PROTOCOL, this.#answer, {
      runOnLimitedConnection: true,
      maxInboundStreams: 2,
      maxOutboundStreams: 2,
    })
    this.#c.events.addEventListener('peer:identify', this.#onIdentify)
  }

  /** Once the transports listen: reservations need a connection to each relay. */
  afterStart(): void {
    if (!this.#init.enabled || this.#relays.length === 0) return
    this.#timer = setInterval(() => this.#keepReservations(), RESERVATION_CHECK_MS)
    this.#timer.unref()
    this.#keepReservations()
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer)
    this.#stopping.abort(new Error('the node is stopping'))
    this.#c.events.removeEventListener('peer:identify', this.#onIdentify)
    this.#c.events.removeEventListener('connection:open', this.#onConnection)
    if (this.#init.enabled) await this.#c.registrar.unhandle(PUNCH_PROTOCOL)
  }

  /**
   * `public` once AutoNAT has had a public address of this node dialled back (or UPnP mapped one
   * and AutoNAT confirmed it); `private` otherwise.
   */
  reachability(): NatStatus['reachability'] {
    const confirmed = this.#c.addressManager
      .getAddressesWithMetadata()
      .some(
        ({ multiaddr: ma, verified }) =>
          verified && !isPrivate(ma) && !ma.getComponents().some((c) => c.name === 'p2p-circuit'),
      )
    return confirmed ? 'public' : 'private'
  }

  status(): NatStatus {
    return {
      enabled: this.#init.enabled,
      reachability: this.reachability(),
      observed_address: this.#observed?.toString() ?? null,
      relays: this.#relays.map(
        (relay): NatRelayStatus => ({
          address: relay.address,
          node_id: peerIdToNodeId(relay.peer.toString()),
          reserved: this.#relayedAddress(relay) !== undefined,
          relayed_address: this.#relayedAddress(relay)?.toString() ?? null,
          error: relay.error,
        }),
      ),
    }
  }

  /**
   * Tries, once per relayed connection, to replace this node's relayed connection with `peer` (a
   * trusted node) by a hole-punched one. The side that dialled the relayed connection punches;
   * the other answers.
   */
  upgrade(peer: PeerId): void {
    if (!this.#init.enabled || this.#punches.has(peer.toString())) return
    const connections = this.#c.connectionManager.getConnections(peer)
    if (connections.some((c) => c.direct && c.status === 'open')) return
    const relayed = connections.find((c) => !c.direct && c.direction === 'outbound' && !this.#tried.has(c))
    if (!relayed) return
    this.#tried.add(relayed)
    this.#track(peer, this.#punch(relayed))
  }

  /** The punch under way with `peer`, if any: settles when it is over, whatever the outcome. */
  pending(peer: PeerId): Promise<void> | undefined {
    return this.#punches.get(peer.toString())
  }

  #track(peer: PeerId, punch: Promise<void>): void {
    const key = peer.toString()
    const tracked = punch.finally(() => this.#punches.delete(key))
    this.#punches.set(key, tracked)
  }

  readonly #onConnection = (event: CustomEvent<Connection>): void => {
    noteDataLimit(event.detail)
  }

  readonly #onIdentify = (event: CustomEvent<IdentifyResult>): void => {
    const { peerId, observedAddr, connection } = event.detail
    if (observedAddr && connection.direct && this.#relays.some((r) => r.peer.equals(peerId))) {
      this.#observed = observedAddr
    }
  }

  /** The IP to punch from: where the relays see this node, if it may take part. */
  #punchIp(): string | undefined {
    const ip = this.#observed?.getComponents().find((c) => c.name === 'ip4' || c.name === 'ip6')?.value
    return ip !== undefined && this.#mayPunch(ip) ? ip : undefined
  }

  /**
   * Whether an address may take part in hole punching: a public one, or with
   * `allow_private_addresses` any. A peer's address is held to the same rule, so that a trusted
   * peer cannot send this node's SYNs into a private network it does not allow.
   */
  #mayPunch(ip: string): boolean {
    return this.#init.allowPrivateAddresses || isPrivateIp(ip) !== true
  }

  #relayedAddress(relay: RelayState): Multiaddr | undefined {
    const prefix = `/p2p/${relay.peer.toString()}/p2p-circuit`
    return this.#c.addressManager.getAddresses().find((ma) => ma.toString().includes(prefix))
  }

  #keepReservations(): void {
    if (this.reachability() === 'public') return
    const now = Date.now()
    for (const relay of this.#relays) {
      if (relay.pending || now < relay.retryAt) continue
      if (this.#relayedAddress(relay)) {
        relay.failures = 0
        continue
      }
      void this.#reserve(relay)
    }
  }

  async #reserve(relay: RelayState): Promise<void> {
    relay.pending = true
    try {
      const signal = AbortSignal.any([this.#stopping.signal, AbortSignal.timeout(PEER_DIAL_TIMEOUT_MS)])
      // Dialled here first: a relay that is down then fails this dial, not one inside the circuit
      // transport, which would refuse that relay for good.
      await this.#c.connectionManager.openConnection(relay.ma, { signal })
      await this.#c.transportManager.listen([relay.ma.encapsulate('/p2p-circuit')])
      relay.error = null
      relay.failures = 0
      this.#init.logger.info(
        { relay: relay.address, address: this.#relayedAddress(relay)?.toString() },
        'relay reservation made: reachable through the relay',
      )
    } catch (err) {
      if (this.#stopping.signal.aborted) return
      relay.failures++
      relay.error = reservationError(err)
      const wait = Math.min(RESERVATION_CHECK_MS * 2 ** (relay.failures - 1), PEER_BACKOFF_MAX_MS)
      relay.retryAt = Date.now() + wait * (0.8 + Math.random() * 0.4)
      this.#init.logger.warn(
        { relay: relay.address, err: relay.error, retry_in_s: Math.round(wait / 1000) },
        'no relay reservation',
      )
    } finally {
      relay.pending = false
    }
  }

  /** The initiator's side: over the relayed connection it dialled. */
  async #punch(relayed: Connection): Promise<void> {
    const peer = relayed.remotePeer
    const ip = this.#punchIp()
    if (ip === undefined) {
      this.#init.logger.info(
        { peer: peer.toString(), observed: this.#observed?.toString() ?? null },
        'no hole punching: no relay has seen a public address of this node (network.nat.allow_private_addresses admits private ones)',
      )
      return
    }
    const { signal, clear } = this.#punchDeadline()
    let stream: Stream | undefined
    try {
      const port = await freePort(isIPv6(ip))
      stream = await relayed.newStream(PUNCH_PROTOCOL, { signal, runOnLimitedConnection: true })
      const messages = punchMessages(stream)
      const started = performance.now()
      await messages.write({ type: 'connect', ip, port })
      const answer = await messages.read(signal)
      if (answer.type === 'refuse') throw new Error(`the peer declined: ${answer.reason}`)
      if (answer.type !== 'connect') throw new ProtocolError(`expected connect, got ${answer.type}`)
      if (!this.#mayPunch(answer.ip)) throw new Error(`the peer's address ${answer.ip} is private`)
      await messages.write({ type: 'sync' })
      // The sync reaches the peer after half the round trip: both SYNs then leave together.
      await sleep((performance.now() - started) / 2, undefined, { signal })
      const socket = await simultaneousOpen(port, answer, signal)
      await this.#connect(socket, answer, relayed, 'outbound', signal)
      void stream.close().catch(() => {})
    } catch (err) {
      stream?.abort(err instanceof Error ? err : new Error(String(err)))
      this.#punchFailed(peer, err)
    } finally {
      clear()
    }
  }

  /** The responder's side. */
  readonly #answer = async (stream: Stream, relayed: Connection): Promise<void> => {
    const peer = relayed.remotePeer
    const { signal, clear } = this.#punchDeadline()
    const messages = punchMessages(stream)
    let answered: (() => void) | undefined
    this.#track(peer, new Promise<void>((resolve) => (answered = resolve)))
    try {
      const request = await messages.read(signal)
      if (request.type !== 'connect') throw new ProtocolError(`expected connect, got ${request.type}`)
      const ip = this.#punchIp()
      const trusted = this.#init.trusts(peerIdToNodeId(peer.toString()))
      if (!trusted || ip === undefined || !this.#mayPunch(request.ip)) {
        const reason = !trusted
          ? 'not trusted'
          : ip === undefined
            ? 'no public address of this node is known'
            : `your address ${request.ip} is private`
        await messages.write({ type: 'refuse', reason })
        await stream.close()
        return
      }
      const port = await freePort(isIPv6(ip))
      await messages.write({ type: 'connect', ip, port })
      const sync = await messages.read(signal)
      if (sync.type !== 'sync') throw new ProtocolError(`expected sync, got ${sync.type}`)
      const socket = await simultaneousOpen(port, request, signal)
      await this.#connect(socket, request, relayed, 'inbound', signal)
      await stream.close().catch(() => {})
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
      this.#punchFailed(peer, err)
    } finally {
      clear()
      answered?.()
    }
  }

  /** What bounds one punch: PUNCH_TIMEOUT_MS, or the node stopping; `clear` once it is over. */
  #punchDeadline(): { signal: AbortSignal; clear(): void } {
    const late = deadline(PUNCH_TIMEOUT_MS, () => new Error(`the punch took over ${PUNCH_TIMEOUT_MS} ms`))
    return { signal: AbortSignal.any([this.#stopping.signal, late.signal]), clear: late.clear }
  }

  /**
   * Makes the punched socket a libp2p connection (noise and yamux, as any TCP connection; the
   * initiator is the noise initiator) and retires the relayed connection once the requests on it
   * are done.
   */
  async #connect(
    socket: Socket,
    remote: PunchAddress,
    relayed: Connection,
    direction: 'inbound' | 'outbound',
    signal: AbortSignal,
  ): Promise<void> {
    const peer = relayed.remotePeer
    const family = isIPv6(remote.ip) ? 'ip6' : 'ip4'
    const maConn = new SocketConnection(socket, {
      remoteAddr: multiaddr(`/${family}/${remote.ip}/tcp/${remote.port}/p2p/${peer.toString()}`),
      direction,
      log: this.#c.logger.forComponent('libp2p:gate:punch:connection'),
    })
    let connection: Connection
    try {
      connection = await this.#c.upgrader.upgradeOutbound(maConn, {
        signal,
        initiator: direction === 'outbound',
      })
    } catch (err) {
      maConn.abort(err instanceof Error ? err : new Error(String(err)))
      throw err
    }
    markPunched(connection)
    this.#init.logger.info(
      { peer: peer.toString(), address: connection.remoteAddr.toString() },
      'hole punched: direct connection to the peer',
    )
    retireWhenIdle(relayed)
  }

  #punchFailed(peer: PeerId, err: unknown): void {
    if (this.#stopping.signal.aborted) return
    const direct = bestConnection(this.#c.connectionManager.getConnections(peer))?.direct === true
    this.#init.logger.info(
      { peer: peer.toString(), err: describeError(err) },
      direct
        ? 'hole punching failed, but a direct connection exists'
        : 'hole punching failed: staying relayed',
    )
  }
}

/**
 * Closes a relayed connection once the streams on it (requests in flight) have ended; new
 * requests take the direct connection meanwhile.
 */
function retireWhenIdle(relayed: Connection): void {
  const busy = relayed.streams.filter(
    (s) => s.protocol !== PUNCH_PROTOCOL && (s.status === 'open' || s.status === 'closing'),
  )
  void Promise.all(
    busy.map((s) => new Promise((resolve) => s.addEventListener('close', resolve, { once: true }))),
  ).then(() => relayed.close().catch(() => {}))
}

/** Why a reservation failed, in a line: the relay's status when it answered. */
function reservationError(err: unknown): string {
  const text = describeError(err)
  const status = /status (RESERVATION_REFUSED|PERMISSION_DENIED|RESOURCE_LIMIT_EXCEEDED)/.exec(text)?.[1]
  if (status === 'RESERVATION_REFUSED')
    return 'the relay refused the reservation: it holds as many as it takes'
  if (status === 'PERMISSION_DENIED') return 'the relay refused the reservation to this node'
  if (status === 'RESOURCE_LIMIT_EXCEEDED') return 'the relay is out of resources'
  // The transport manager folds a listener's error into a long message; its last line is the cause.
  return (
    text
      .split('\n')
      .map((line) => line.trim())
      .filter(Boolean)
      .pop() ?? text
  )
}

/** The factory libp2p takes: `services: { nat: natTraversal(init) }`. */
export function natTraversal(init: NatTraversalInit): (components: NatTraversalComponents) => NatTraversal {
  return (components) => new NatTraversal(components, init)
}
