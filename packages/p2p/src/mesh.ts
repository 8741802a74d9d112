import {
  type Capabilities,
  type Config,
  describeError,
  ForbiddenError,
  type GateError,
  type Identity,
  type Logger,
  LogThrottle,
  PayloadTooLargeError,
  peerIdToNodeId,
  UpstreamError,
} from '@gate/core'
import type { Connection } from '@libp2p/interface'
import { MAX_STREAMS_PER_CONNECTION, PEER_DIAL_TIMEOUT_MS } from './constants.ts'
import { CONTROL_PROTOCOL, controlStreamHandler } from './control.ts'
import {
  HTTP_PROTOCOL,
  httpStreamHandler,
  type IncomingRequest,
  type PeerResponse,
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

/** An answer this node gives a peer's request itself, before it reaches the request pipeline. */
export type OwnAnswer = { head: ResponseHead; body: Uint8Array }

export interface MeshInit {
  identity: Identity
  /** The config, read live: `network` (trusted peers, bootstrap), `security.max_body_bytes`. */
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
    const { network } = init.config()
    const trusted = new TrustedPeers(() => init.config().network.trusted_peers, init.identity.nodeId)
    const node = await createP2PNode({
      identity: init.identity,
      host: network.p2p_host,
      port: network.p2p_port,
      mdns: network.mdns,
      maxConnections: network.max_connections,
      trusts: (nodeId) => trusted.has(nodeId),
    })
    const mesh = new Mesh(node, trusted, init)
    await node.handle(
      CONTROL_PROTOCOL,
      controlStreamHandler((payload, connection) => mesh.peers.answer(payload, nodeIdOf(connection)), {
        onProtocolError: mesh.#onProtocolError,
      }),
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
      STREAM_LIMITS,
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

  /** Sends one request to a trusted peer and returns its response as it arrives. */
  async exchange(
    nodeId: string,
    head: RequestHead,
    body: Uint8Array,
    signal: AbortSignal,
  ): Promise<PeerResponse> {
    const peer = peerIdOf(nodeId)
    const [open] = this.node.getConnections(peer)
    if (open) return sendRequest(open, { head, body }, signal)
    // No connection: libp2p dials, asking the DHT when the peer store has no address.
    let stream: Awaited<ReturnType<GateLibp2p['dialProtocol']>>
    try {
      const dialSignal = AbortSignal.any([signal, AbortSignal.timeout(PEER_DIAL_TIMEOUT_MS)])
      stream = await this.node.dialProtocol(peer, HTTP_PROTOCOL, { signal: dialSignal, ...STREAM_LIMITS })
    } catch (err) {
      signal.throwIfAborted()
      throw new UpstreamError(`cannot reach node ${nodeId}: ${describeError(err)}`, { cause: err })
    }
    return sendRequest(stream, { head, body }, signal)
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
