import { memory } from '@libp2p/memory'
import { plaintext } from '@libp2p/plaintext'
import { yamux } from '../packages/p2p/node_modules/@chainsafe/libp2p-yamux/dist/src/index.js'
import { identify } from '../packages/p2p/node_modules/@libp2p/identify/dist/src/index.js'
import { kadDHT, passthroughMapper } from '../packages/p2p/node_modules/@libp2p/kad-dht/dist/src/index.js'
import { ping } from '../packages/p2p/node_modules/@libp2p/ping/dist/src/index.js'
import { createLibp2p } from '../packages/p2p/node_modules/libp2p/dist/src/index.js'

const withDht = process.argv[2] === 'dht'
function mk(i: number) {
  return createLibp2p({
    addresses: { listen: [`/memory/m-${i}`] },
    transports: [memory()],
    connectionEncrypters: [plaintext()],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false },
    services: withDht
      ? {
          identify: identify(),
          ping: ping(),
          dht: kadDHT({
            protocol: '/gate/kad/1.0.0',
            clientMode: false,
            peerInfoMapper: passthroughMapper,
            allowQueryWithZeroPeers: true,
          }),
        }
      : ({ identify: identify(), ping: ping() } as any),
  })
}
const nodes = await Promise.all(Array.from({ length: 401 }, (_, i) => mk(i)))
const [a, ...rest] = nodes as any
let t = performance.now()
for (const b of rest.slice(0, 50)) await a.dial(b.getMultiaddrs())
console.log('50 dials seq', (performance.now() - t).toFixed(0), 'ms')
t = performance.now()
await Promise.all(rest.slice(50).map((b: any) => a.dial(b.getMultiaddrs())))
console.log('350 dials parallel', (performance.now() - t).toFixed(0), 'ms')
await new Promise((r) => setTimeout(r, 3000))
t = performance.now()
await Promise.all(rest.slice(0, 200).map((b: any) => a.services.ping.ping(b.peerId)))
console.log('200 pings parallel on open conns', (performance.now() - t).toFixed(0), 'ms')
await Promise.all(nodes.map((n: any) => n.stop()))
