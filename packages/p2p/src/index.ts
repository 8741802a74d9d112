/**
 * @gate/p2p — Gate nodes as libp2p peers: the node (QUIC, TCP + noise + yamux, identify, ping,
 * Kademlia DHT on Gate's protocol), NAT traversal (relay reservations, AutoNAT, hole punching over
 * `/gate/punch`), Gate's stream protocols (`/gate/control`, `/gate/http`), and the mesh: trusted
 * peers kept connected by the peer manager, requests to and from them over the best connection.
 *
 * @example
 * ```ts
 * import { Mesh } from '@gate/p2p'
 * const mesh = await Mesh.start({ identity, config, peerCache, capabilities, onPair, answer, logger, events })
 * await mesh.serve((request, response, node) => handle(request, response, node))
 * const { head, body } = await mesh.exchange(nodeId, { method: 'POST', path, headers }, bytes, signal)
 * for await (const chunk of body) res.write(chunk)
 * await mesh.stop()
 * ```
 */
export type { Connection, Stream } from '@libp2p/interface'
export { bestConnection, connectionType, describeConnection } from './connections.ts'
export {
  CONTROL_READ_TIMEOUT_MS,
  DIRECT_UPGRADE_WAIT_MS,
  MAX_STREAMS_PER_CONNECTION,
  PEER_BACKOFF_MAX_MS,
  PEER_DIAL_TIMEOUT_MS,
  PEER_REFRESH_MS,
  PUNCH_TIMEOUT_MS,
  REFUSED_REQUEST_BYTES,
  RELAYED_MIN_SECONDS,
  RELAYED_RESPONSE_ROOM_BYTES,
  REQUEST_READ_TIMEOUT_MS,
  RESERVATION_CHECK_MS,
  UNTRUSTED_CONNECTION_SHARE,
} from './constants.ts'
export type { ControlPayload, NodeMessage } from './control.ts'
export { CONTROL_PROTOCOL, controlRequest, controlStreamHandler } from './control.ts'
export type { Frame } from './frames.ts'
export { deadline, drained, FrameStream, MAX_FRAME_BYTES, ProtocolError, RECEIVE_WINDOW } from './frames.ts'
export { PUNCH_PROTOCOL } from './hole-punch.ts'
export type {
  HeaderMap,
  HttpServerOptions,
  IncomingRequest,
  PeerResponse,
  RequestHead,
  ResponseHead,
  ResponseWriter,
} from './http.ts'
export { HTTP_PROTOCOL, httpStreamHandler, PeerStreamError, sendRequest } from './http.ts'
export type { MeshInit, OwnAnswer, PeerRequestHandler } from './mesh.ts'
export { Mesh } from './mesh.ts'
export type { NatTraversal, NatTraversalInit } from './nat.ts'
export type {
  CircuitRelayInit,
  GateLibp2p,
  GateServices,
  P2PNodeInit,
  RelayLibp2p,
  RelayNodeInit,
  RelayServices,
} from './node.ts'
export {
  createP2PNode,
  createRelayNode,
  DHT_INIT,
  DHT_PROTOCOL,
  MDNS_SERVICE_TAG,
  PING_INIT,
  peerIdOf,
} from './node.ts'
export type { PeerEvents, PeerManagerInit, PeerView } from './peer-manager.ts'
export { PeerManager, safeNodeId, TrustedPeers } from './peer-manager.ts'
export type { RelayAnswer, RelayMessage, RelayRequest } from './relay-protocol.ts'
export { RELAY_CLOCK_SKEW_MS, RELAY_PROTOCOL, relayRequest, relayStreamHandler } from './relay-protocol.ts'
export type { TunnelHead } from './tunnel.ts'
export { readTunnelHead, TLS_PROTOCOL, tunnelDuplex } from './tunnel.ts'
