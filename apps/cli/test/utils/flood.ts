/**
 * Untrusted libp2p nodes that flood a Gate node, run as their own process so that their work
 * does not stall the test's measurements: `node flood.ts <tcp multiaddr> <connections>`. On each
 * connection they open 2,000 streams that never negotiate a protocol (a byte each, opened on the
 * muxer as an attacker's own code would) and 500 negotiated `/gate/http` ones that send garbage.
 * Prints `connections <n>` once connected, `done` once the flood is sent; stays up until killed.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { generateIdentity } from '@gate/core'
import { multiaddr } from '@multiformats/multiaddr'
import {
  type Connection,
  createP2PNode,
  HTTP_PROTOCOL,
  type Stream,
} from '../../../../packages/p2p/src/index.ts'

/** Connections each attacking node opens: libp2p holds a few per peer. */
const PER_NODE = 4
/** libp2p takes at most 5 connections a second from one host: the attacker paces its dials. */
const DIAL_GAP_MS = 250

const [target, count] = process.argv.slice(2)
const wanted = Number(count)
const connections: Connection[] = []
for (let n = 0; n * PER_NODE < wanted; n++) {
  const node = await createP2PNode({ identity: generateIdentity(), host: '127.0.0.1', port: 0 })
  for (let i = 0; i < PER_NODE && n * PER_NODE + i < wanted; i++) {
    await sleep(DIAL_GAP_MS)
    const c = await node
      .dial(multiaddr(target as string), { force: true, signal: AbortSignal.timeout(10_000) })
      .catch(() => null)
    if (c) connections.push(c)
  }
}
process.stdout.write(`connections ${connections.length}\n`)
await Promise.all(
  connections.map(async (connection) => {
    const muxer = (connection as Connection & { muxer?: { createStream(): Promise<Stream> } }).muxer
    for (let i = 0; i < 2000 && muxer; i++) {
      try {
        ;(await muxer.createStream()).send(Uint8Array.of(1))
      } catch {}
    }
    await Promise.all(
      Array.from({ length: 500 }, () =>
        connection
          .newStream(HTTP_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
          .then((s) => s.send(Uint8Array.of(5, 2, 0, 0, 0, 0)))
          .catch(() => {}),
      ),
    )
  }),
)
process.stdout.write('done\n')
