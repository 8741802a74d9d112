import {
  type Config,
  ForbiddenError,
  type GateError,
  type Identity,
  peerIdToNodeId,
  UpstreamError,
} from '@gate/core'
import {
  type Capabilities,
  CONTROL_PROTOCOL,
  type Connection,
  controlStreamHandler,
  createP2PNode,
  type GateLibp2p,
  HTTP_PROTOCOL,
  httpStreamHandler,
  type IncomingRequest,
  MAX_STREAMS_PER_CONNECTION,
  type PeerResponse,
  peerIdOf,
  type RequestHead,
  type ResponseHead,
  type ResponseWriter,
  sendRequest,
} from '@gate/p2p'
import type { Logger } from 'pino'
import { openAiErrorBody, tooLarge } from './api/errors.ts'
import { PEER_DIAL_TIMEOUT_MS } from './constants.ts'
import type { EventBus } from './events.ts'
import { PeerManager } from './peers.ts'
import { describeError } from './providers/provider.ts'

const STREAM_LIMITS = {
  maxInboundStreams: MAX_STREAMS_PER_CONNECTION,
  maxOutboundStreams: MAX_STREAMS_PER_CONNECTION,
}

export interface MeshInit {
  identity: Identity
  config: () => Config
  /** Runs a trusted peer's request through the API pipeline; settles when it is answered. */
  serve: (request: IncomingRequest, response: ResponseWriter, from: string) => Promise<void>
  /** `peers.json`. */
  peerCache: string
  /** A node redeems an invite secret; true when valid (the daemon then trusts it). */
  onPair: (nodeId: string, secret: string) => Promise<boolean>
  /** This node's capabilities now (models, load). */
  capabilities: () => Capabilities
  logger: Logger
  events: EventBus
}

/**
 * The node's place in the P2P network: its libp2p node, requests to peers (`X-Target-Node`) and
 * requests from trusted peers, which go through the same API pipeline as local ones.
 */
export class Mesh {
  readonly node: GateLibp2p
  readonly peers: PeerManager
  readonly #init: MeshInit

  private constructor(node: GateLibp2p, init: MeshInit) {
    this.node = node
    this.#init = init
    this.peers = new PeerManager({
      node,
      nodeId: init.identity.nodeId,
      trusted: () => init.config().network.trusted_peers,
      bootstrap: () => init.config().network.bootstrap,
      capabilities: init.capabilities,
      cachePath: init.peerCache,
      onPair: init.onPair,
      logger: init.logger,
      events: init.events,
    })
  }

  static async start(init: MeshInit): Promise<Mesh> {
    const { network } = init.config()
    const node = await createP2PNode({
      identity: init.identity,
      host: network.p2p_host,
      port: network.p2p_port,
      mdns: network.mdns,
      maxConnections: network.max_connections,
    })
    const mesh = new Mesh(node, init)
    // A stream reset for breaking a Gate protocol; the node goes on serving.
    const onProtocolError = (err: Error, connection: Connection) =>
      init.logger.warn(
        { peer: connection.remotePeer.toString(), err: err.message },
        'peer broke the protocol',
      )
    await node.handle(
      HTTP_PROTOCOL,
      httpStreamHandler((request, response) => init.serve(request, response, nodeIdOf(request.connection)), {
        // Read for each stream, so that a change to the config applies at once.
        get maxBodyBytes() {
          return init.config().security.max_body_bytes
        },
        // The 413 a local client would get: the requester passes it on.
        tooLarge: (limit) => answer(init.identity.nodeId, 413, tooLarge(limit)),
        onProtocolError,
        refuse: (connection) => mesh.#refuse(nodeIdOf(connection)),
      }),
      STREAM_LIMITS,
    )
    await node.handle(
      CONTROL_PROTOCOL,
      controlStreamHandler((payload, connection) => mesh.peers.answer(payload, nodeIdOf(connection)), {
        onProtocolError,
      }),
    )
    await mesh.peers.start()
    return mesh
  }

  /** Multiaddrs this node listens on, each ending in `/p2p/<PeerId>`. */
  addresses(): string[] {
    return this.node.getMultiaddrs().map((ma) => ma.toString())
  }

  /** Whether `nodeId` is in network.trusted_peers: the only nodes requests are sent to. */
  trusts(nodeId: string): boolean {
    return this.peers.isTrusted(nodeId)
  }

  /** Sends one request to a trusted peer (see `trusts`) and returns its response as it arrives. */
  async exchange(
    nodeId: string,
    head: RequestHead,
    body: Uint8Array,
    signal: AbortSignal,
  ): Promise<PeerResponse> {
    const peer = peerIdOf(nodeId)
    // An open connection gets a new stream with the protocol selected optimistically (no round
    // trip before the request goes out); otherwise libp2p dials, asking the DHT when the peer
    // store has no address, and negotiates.
    const [open] = this.node.getConnections(peer)
    if (open) return sendRequest(open, { head, body }, signal)
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
  #refuse(from: string): { head: ResponseHead; body: Uint8Array } | undefined {
    if (this.peers.isTrusted(from)) return undefined
    const self = this.#init.identity.nodeId
    return answer(self, 403, new ForbiddenError(`node ${self} does not trust node ${from}`))
  }

  /** Trusted peers to try for `model`, best first. */
  candidates(model: string): string[] {
    return this.peers.candidates(model).map((p) => p.node_id)
  }

  /** Models of connected trusted peers and who serves them. */
  models(): Map<string, string[]> {
    return this.peers.models()
  }

  reserve(nodeId: string): (ok: boolean) => void {
    return this.peers.reserve(nodeId)
  }

  /**
   * Takes no more requests from peers (a new `/gate/http` stream is refused at protocol
   * selection, and its requester fails over); those being served go on.
   */
  async refuseRequests(): Promise<void> {
    await this.node.unhandle(HTTP_PROTOCOL)
  }

  async stop(): Promise<void> {
    this.peers.stop()
    await this.peers.flush()
    await this.node.stop()
  }
}

/** An error this node (`self`) answers in frames, with the body a local client would get. */
function answer(self: string, status: number, error: GateError): { head: ResponseHead; body: Uint8Array } {
  const body = new TextEncoder().encode(openAiErrorBody(error))
  return { head: { status, headers: { 'content-type': 'application/json', 'x-gate-node': self } }, body }
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
