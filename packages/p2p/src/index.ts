/**
 * @gate/p2p — Gate nodes as libp2p peers: the node (QUIC, TCP + noise + yamux, identify, ping,
 * Kademlia DHT on Gate's protocol) and Gate's stream protocols.
 *
 * @example
 * ```ts
 * const node = await createP2PNode({ identity, host: '0.0.0.0', port: 41145 })
 * await node.handle(HTTP_PROTOCOL, httpStreamHandler(serve, { maxBodyBytes: 16 << 20 }))
 * const [connection] = node.getConnections(peerId)
 * const { head, body } = await sendRequest(connection, { head: { method: 'POST', path, headers }, body: bytes }, signal)
 * for await (const chunk of body) res.write(chunk)
 * ```
 */

export type { Connection, Stream } from '@libp2p/interface'
export * from './control.ts'
export * from './frames.ts'
export * from './http.ts'
export * from './node.ts'
export * from './select.ts'
