import { setTimeout as sleep } from 'node:timers/promises'
import {
  type Capabilities,
  type Config,
  describeError,
  ForbiddenError,
  type GateError,
  type Identity,
  type Logger,
  LogThrottle,
  type NatStatus,
  PayloadTooLargeError,
  peerIdToNodeId,
  UpstreamError,
} from '@gate/core'
import type { Connection, PeerId } from '@libp2p/interface'
import { bestConnection, describeConnection, relayedCutReason } from './connections.ts'
import {
  DIRECT_UPGRADE_WAIT_MS,
  MAX_STREAMS_PER_CONNECTION,
  PEER_DIAL_TIMEOUT_MS,
  RELAYED_MIN_SECONDS,
  RELAYED_RESPONSE_ROOM_BYTES,
} from './constants.ts'
import { CONTROL_PROTOCOL, controlStreamHandler } from './control.ts'
import {
  HTTP_PROTOCOL,
  httpStreamHandler,
  type IncomingRequest,
  type PeerResponse,
  PeerStreamError,
  type RequestHead,
  type ResponseHead,
  type ResponseWriter,
  sendRequest,
} from './http.ts'
import { createP2PNode, type GateLibp2p, peerIdOf } from './node.ts'
import { type PeerEvents, PeerManager, TrustedPeers } from './peer-manager.ts'

const STREAM_LIMITS = {
  maxInboundStreams: MAX_STREAMS_PER_CONNECTION,
  maxOutboundStreams: MAX_STREAMS_PER_CONNECTION,
}

/**
 * How Gate's protocols are served: on relayed connections too. Control messages are small, and a
 * requester sends a request over a relayed connection only when its limits leave room for it.
 */
const HANDLER_OPTIONS = { ...STREAM_LIMITS, runOnLimitedConnection: true }

/** An answer this node gives a peer's request itself, before it reaches the request pipeline. */
export type OwnAnswer = { head: ResponseHead; body: Uint8Array }

export interface MeshInit {
  identity: Identity
  /**
   * The config, read live: `network` (trusted peers, bootstrap), `security.max_body_bytes`;
   * `network.nat` and `relay.addresses` are read at start.
   */
  config: () => Config
  /** `peers.json`. */
  peerCache: string
  /** This node's capabilities now (models, load). */
  capabilities: () => Capabilities
  /** A node redeems an invite secret; true when valid (the daemon then trusts it). */
  onPair: (nodeId: string, secret: string) => Promise<boolean>
  /** How this node's errors read to a peer's client: the same body a local client would get. */
  answer: (error: GateError) => OwnAnswer
  logger: Logger
  events: PeerEvents
}

/** Runs a trusted peer's request (`node`: who sent it) and writes its response; settles when done. */
export type PeerRequestHandler = (
  request: IncomingRequest,
  response: ResponseWriter,
  node: string,
) => Promise<void>

/**
 * A Gate node's place in the P2P network: its libp2p node, its trusted peers (the peer manager),
 * and Gate's protocols on it: `/gate/control` between peers, and `/gate/http` requests to and from
 * trusted peers.
 */
export class Mesh {
  readonly node: GateLibp2p
  readonly peers: PeerManager
  readonly #init: MeshInit

  readonly #protocolErrors: LogThrottle

  private constructor(node: GateLibp2p, trusted: TrustedPeers, init: MeshInit) {
    this.node = node
    this.#init = init
    this.#protocolErrors = new LogThrottle(init.logger)
    this.peers = new PeerManager({
      node,
      nodeId: init.identity.nodeId,
      trusted,
      bootstrap: () => init.config().network.bootstrap,
      capabilities: init.capabilities,
      cachePath: init.peerCache,
      onPair: init.onPair,
      logger: init.logger,
      events: init.events,
    })
  }

  /** Starts the libp2p node on `network.p2p_host:p2p_port` and the peer manager; serves `/gate/control`. */
  static async start(init: MeshInit): Promise<Mesh> {
    const { network, relay } = init.config()
    const trusted = new TrustedPeers(() => init.config().network.trusted_peers, init.identity.nodeId)
    const node = await createP2PNode({
      identity: init.identity,
      host: network.p2p_host,
      port: network.p2p_port,
      mdns: network.mdns,
      maxConnections: network.max_connections,
      trusts: (nodeId) => trusted.has(nodeId),
      ...(network.nat.enabled
        ? {
            nat: {
              // The relays a node registers with for HTTPS are circuit relays too.
              relays: [...new Set([...relay.addresses, ...network.nat.relays])],
              upnp: network.nat.upnp,
              allowPrivateAddresses: network.nat.allow_private_addresses,
              logger: init.logger,
            },
          }
        : {}),
    })
    const mesh = new Mesh(node, trusted, init)
    await node.handle(
      CONTROL_PROTOCOL,
      controlStreamHandler((payload, connection) => mesh.peers.answer(payload, nodeIdOf(connection)), {
        onProtocolError: mesh.#onProtocolError,
      }),
      HANDLER_OPTIONS,
    )
    await mesh.peers.start()
    return mesh
  }

  /**
   * Serves trusted peers' `/gate/http` requests with `handler`. A node that does not trust the
   * requester answers 403 before its body is held; a body over `security.max_body_bytes` is read,
   * dropped and answered 413.
   */
  async serve(handler: PeerRequestHandler): Promise<void> {
    const init = this.#init
    await this.node.handle(
      HTTP_PROTOCOL,
      httpStreamHandler((request, response) => handler(request, response, nodeIdOf(request.connection)), {
        // Read for each stream, so that a change to the config applies at once.
        get maxBodyBytes() {
          return init.config().security.max_body_bytes
        },
        tooLarge: (limit) =>
          init.answer(new PayloadTooLargeError(`request body is larger than the ${limit}-byte limit`)),
        onProtocolError: this.#onProtocolError,
        refuse: (connection) => this.#refuse(nodeIdOf(connection)),
      }),
      HANDLER_OPTIONS,
    )
  }

  /**
   * A stream reset for breaking a Gate protocol; the node goes on serving. Logged at most once a
   * while per peer, with how many more there were: a peer can break streams faster than a disk fills.
   */
  readonly #onProtocolError = (err: Error, connection: Connection): void => {
    const peer = connection.remotePeer.toString()
    this.#protocolErrors.warn(peer, { peer, err: err.message }, 'peer broke the protocol')
  }

  /** Multiaddrs this node listens on, each ending in `/p2p/<PeerId>`. */
  addresses(): string[] {
    return this.node.getMultiaddrs().map((ma) => ma.toString())
  }

  /** NAT traversal as this node sees it: reachability, observed address, relay reservations. */
  nat(): NatStatus {
    return this.node.services.nat.status()
  }

  /**
   * Sends one request to a trusted peer and returns its response as it arrives: over a direct
   * connection when there is one (a hole punch under way is waited for, briefly), else over a
   * relayed one whose limits leave room for the whole exchange.
   */
  async exchange(
    nodeId: string,
    head: RequestHead,
    body: Uint8Array,
    signal: AbortSignal,
  ): Promise<PeerResponse> {
    const connection = await this.#connectionFor(peerIdOf(nodeId), nodeId, body.length, signal)
    if (connection.direct) return sendRequest(connection, { head, body }, signal)
    try {
      const response = await sendRequest(connection, { head, body }, signal, { runOnLimitedConnection: true })
      return { head: response.head, body: explainCut(response.body, connection, nodeId) }
    } catch (err) {
      signal.throwIfAborted()
      throw connection.status === 'open'
        ? err
        : new UpstreamError(relayedCut(connection, nodeId), { cause: err })
    }
  }

  /** The connection to send a request of `bodyBytes` over, dialling the peer if need be. */
  async #connectionFor(
    peer: PeerId,
    nodeId: string,
    bodyBytes: number,
    signal: AbortSignal,
  ): Promise<Connection> {
    let connection =
      bestConnection(this.node.getConnections(peer)) ?? (await this.#dial(peer, nodeId, signal))
    if (connection.direct) return connection
    const punch = this.node.services.nat.pending(peer)
    if (punch) {
      await Promise.race([
        punch,
        sleep(DIRECT_UPGRADE_WAIT_MS, undefined, { signal, ref: false }).catch(() => {}),
      ])
      signal.throwIfAborted()
      connection = bestConnection(this.node.getConnections(peer)) ?? connection
      if (connection.direct) return connection
    }
    if (hasRoom(connection, bodyBytes)) return connection
    // This relayed connection is nearly spent; a new one comes with the relay's limits afresh.
    const fresh = await this.#dial(peer, nodeId, signal, true)
    if (connection.streams.length === 0) void connection.close().catch(() => {})
    if (fresh.direct || hasRoom(fresh, bodyBytes)) return fresh
    throw new UpstreamError(
      `node ${nodeId} is reachable only through ${relayOf(fresh)}, whose limits for one relayed connection ` +
        `(${fresh.limits?.bytes ?? 'unlimited'} bytes left) leave no room for this request (${bodyBytes} bytes ` +
        `and ${RELAYED_RESPONSE_ROOM_BYTES} for the answer)`,
    )
  }

  /** Dials a peer (libp2p asks the DHT when the peer store has no address for it). */
  async #dial(peer: PeerId, nodeId: string, signal: AbortSignal, force = false): Promise<Connection> {
    try {
      const dialSignal = AbortSignal.any([signal, AbortSignal.timeout(PEER_DIAL_TIMEOUT_MS)])
      return await this.node.dial(peer, { signal: dialSignal, force })
    } catch (err) {
      signal.throwIfAborted()
      throw new UpstreamError(`cannot reach node ${nodeId}: ${describeError(err)}`, { cause: err })
    }
  }

  /** The 403 for a node not in trusted_peers, answered before its request body is held. */
  #refuse(from: string): OwnAnswer | undefined {
    if (this.peers.isTrusted(from)) return undefined
    const self = this.#init.identity.nodeId
    return this.#init.answer(new ForbiddenError(`node ${self} does not trust node ${from}`))
  }

  /**
   * Takes no more requests from peers (a new `/gate/http` stream is refused at protocol
   * selection, and its requester fails over); those being served go on.
   */
  async refuseRequests(): Promise<void> {
    await this.node.unhandle(HTTP_PROTOCOL)
  }

  async stop(): Promise<void> {
    await this.peers.stop()
    await this.node.stop()
  }
}

/** Whether a relayed connection's limits leave room for a request of `bodyBytes` and its answer. */
function hasRoom(connection: Connection, bodyBytes: number): boolean {
  const { bytes, seconds } = connection.limits ?? {}
  if (bytes !== undefined && bytes < BigInt(bodyBytes + RELAYED_RESPONSE_ROOM_BYTES)) return false
  return seconds === undefined || seconds >= RELAYED_MIN_SECONDS
}

/** A response body read over a relayed connection, whose errors say when the relay cut it. */
async function* explainCut(
  body: AsyncGenerator<Uint8Array, void, undefined>,
  connection: Connection,
  nodeId: string,
): AsyncGenerator<Uint8Array, void, undefined> {
  try {
    yield* body
  } catch (err) {
    if (connection.status === 'open') throw err
    throw new PeerStreamError(relayedCut(connection, nodeId), { cause: err })
  }
}

/** What a client reads when a relayed connection closes mid-exchange. */
function relayedCut(connection: Connection, nodeId: string): string {
  return `the relayed connection to node ${nodeId} through ${relayOf(connection)} ended mid-exchange: ${relayedCutReason(connection)}`
}

function relayOf(connection: Connection): string {
  const relay = describeConnection(connection).relay
  return relay ? `relay ${relay}` : 'a relay'
}

/** Node IDs of connections' remote peers, each worked out once (from the PeerId's key), not per stream. */
const nodeIds = new WeakMap<Connection, string>()

function nodeIdOf(connection: Connection): string {
  let nodeId = nodeIds.get(connection)
  if (nodeId === undefined) {
    nodeId = peerIdToNodeId(connection.remotePeer.toString())
    nodeIds.set(connection, nodeId)
  }
  return nodeId
}
