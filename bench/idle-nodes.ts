/**
 * A child process of `bench/relay.ts`: `count` Gate identities that register with a relay and stay
 * registered, idle, until SIGTERM. Usage: `node bench/idle-nodes.ts <relay multiaddr> <count> <first>`.
 *
 * Each is the lightest real node: its own libp2p peer under its own key (TCP + noise + yamux,
 * identify, which the relay runs on every connection, and ping, which libp2p's connection monitor
 * uses both ways), registered by the daemon's own RelayLink (`/gate/relay` requests signed by
 * @gate/p2p, again whenever the connection drops, as the daemon does): what the relay holds for a
 * daemon, without the daemon.
 * Unlike a daemon it runs no DHT, so it is not in the relay's routing table. Nodes register one
 * after another; the parent runs several of these at once. Reports `{ registered, retries, drops, done }`
 * over IPC every second, and at once when all are registered.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2p } from 'libp2p'
import { generateIdentity, libp2pPrivateKey } from '../packages/core/src/index.ts'
import { RelayLink } from '../packages/daemon/src/public/relay-link.ts'
import { type GateLibp2p, PING_INIT } from '../packages/p2p/src/index.ts'

const [relayAddress, countArg, firstArg] = process.argv.slice(2)
const count = Number(countArg)
const first = Number(firstArg)
if (!relayAddress || !Number.isInteger(count) || !Number.isInteger(first)) {
  throw new Error('usage: node bench/idle-nodes.ts <relay multiaddr> <count> <first>')
}

/**
 * Node `i`'s own loopback address (127.1.0.0 and up: 127.0.0.1 is left to the rest): libp2p takes
 * at most 5 new connections a second from one host, and real nodes come from many.
 */
function sourceAddress(i: number): string {
  const n = 0x7f010000 + i
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')
}

const nodes: Libp2p[] = []
const links: RelayLink[] = []
let registered = 0
let retries = 0
let drops = 0
let done = false
const report = () => process.send?.({ registered, retries, drops, done })
setInterval(report, 1000)
process.once('SIGTERM', () => {
  for (const link of links) link.stop()
  void Promise.all(nodes.map((n) => n.stop())).then(() => process.exit(0))
})

for (let i = first; i < first + count; i++) {
  const identity = generateIdentity()
  const node = await createLibp2p({
    privateKey: libp2pPrivateKey(identity),
    // Dial only: a node behind a relay listens on nothing the relay needs.
    addresses: { listen: [] },
    // @libp2p/tcp hands its dial options to net.connect, though its type names only a few.
    transports: [tcp({ dialOpts: { localAddress: sourceAddress(i) } as object })],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), ping: ping(PING_INIT) },
  })
  nodes.push(node)
  // RelayLink says it is active only in its log: the logger is how to wait for it.
  const active = Promise.withResolvers<void>()
  const link = new RelayLink({
    address: relayAddress,
    // RelayLink only dials the relay: the daemon's DHT, absent here, is not used.
    node: node as unknown as GateLibp2p,
    identity,
    onDomain: async () => {},
    logger: {
      debug() {},
      info: () => active.resolve(),
      warn: () => void retries++,
      error() {},
    },
  })
  links.push(link)
  node.addEventListener('peer:disconnect', () => {
    drops++
    link.disconnected()
  })
  link.start()
  await active.promise
  registered++
}
done = true
report()
