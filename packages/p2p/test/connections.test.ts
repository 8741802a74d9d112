import assert from 'node:assert/strict'
import { BlockList } from 'node:net'
import { describe, it } from 'node:test'
import type { Address, Connection } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { bestConnection } from '../src/connections.ts'
import { dialPolicy } from '../src/dial-order.ts'

const RELAY = '12D3KooWLh4PZofLnkHcVLh8xzhKmVLw7sMco7LGzvPUTDF6tSJT'
const PEER = '12D3KooWCCuvQX34FsFsB3BEWdFxfWsH9hpVTK2ng7zQQeQPSc58'

describe('dial policy', () => {
  // This host is on 10.71.2.0/24; the peer's home is 10.71.1.0/24; the relay is on 172.31.0.0/24.
  const subnets = new BlockList()
  subnets.addSubnet('10.71.2.0', 24, 'ipv4')
  const { sorter, denyDial } = dialPolicy(new Set([RELAY]), () => subnets)
  const sort = (addresses: string[]) =>
    addresses
      .map((a): Address => ({ multiaddr: multiaddr(a), isCertified: false }))
      .sort(sorter)
      .map((a) => a.multiaddr.toString())

  it('puts relayed addresses before private addresses of networks this host is not on', () => {
    assert.deepEqual(
      sort([
        '/ip4/127.0.0.1/udp/4001/quic-v1',
        '/ip4/10.71.1.2/udp/4001/quic-v1',
        `/ip4/127.0.0.1/tcp/41145/p2p/${RELAY}/p2p-circuit`,
        `/ip4/172.31.0.1/udp/41145/quic-v1/p2p/${RELAY}/p2p-circuit`,
        '/ip4/10.71.2.7/udp/4001/quic-v1',
        '/ip4/93.184.216.34/udp/4001/quic-v1',
        '/ip4/10.71.1.2/tcp/4001',
      ]),
      [
        '/ip4/10.71.2.7/udp/4001/quic-v1',
        '/ip4/93.184.216.34/udp/4001/quic-v1',
        `/ip4/172.31.0.1/udp/41145/quic-v1/p2p/${RELAY}/p2p-circuit`,
        '/ip4/10.71.1.2/tcp/4001',
        '/ip4/10.71.1.2/udp/4001/quic-v1',
        '/ip4/127.0.0.1/udp/4001/quic-v1',
        `/ip4/127.0.0.1/tcp/41145/p2p/${RELAY}/p2p-circuit`,
      ],
    )
  })

  it('dials no QUIC to a private address of another network, but for a relay the config names', () => {
    const denied = (address: string) => denyDial(multiaddr(address))
    assert.equal(denied(`/ip4/10.71.1.2/udp/4001/quic-v1/p2p/${PEER}`), true, 'a home LAN elsewhere')
    assert.equal(denied(`/ip4/10.71.1.2/tcp/4001/p2p/${PEER}`), false, 'its TCP twin is tried')
    assert.equal(denied(`/ip4/10.71.2.7/udp/4001/quic-v1/p2p/${PEER}`), false, 'this host’s LAN')
    assert.equal(denied(`/ip4/93.184.216.34/udp/4001/quic-v1/p2p/${PEER}`), false, 'public')
    assert.equal(denied(`/ip4/127.0.0.1/udp/4001/quic-v1/p2p/${PEER}`), false, 'this host')
    assert.equal(denied(`/ip4/172.31.0.1/udp/41145/quic-v1/p2p/${RELAY}`), false, 'a relay')
    assert.equal(denied(`/ip4/172.31.0.1/udp/41145/quic-v1/p2p/${RELAY}/p2p-circuit/p2p/${PEER}`), false)
  })
})

/** Enough of a connection for choosing one. */
function connection(address: string, extra: Partial<Connection> = {}): Connection {
  const remoteAddr = multiaddr(address)
  const direct = !address.includes('/p2p-circuit')
  return { remoteAddr, direct, status: 'open', ...extra } as Connection
}

describe('best connection', () => {
  const relayed = (bytes: bigint) =>
    connection(`/ip4/172.31.0.1/tcp/41145/p2p/${RELAY}/p2p-circuit/p2p/${PEER}`, { limits: { bytes } })
  const quic = connection(`/ip4/10.71.2.7/udp/4001/quic-v1/p2p/${PEER}`)
  const tcp = connection(`/ip4/10.71.2.7/tcp/4001/p2p/${PEER}`)

  it('takes a direct connection over a relayed one, QUIC over TCP, and of relayed ones the fullest', () => {
    const spent = relayed(10n)
    const fresh = relayed(1000n)
    assert.equal(bestConnection([spent, tcp, fresh]), tcp)
    assert.equal(bestConnection([tcp, quic]), quic)
    assert.equal(bestConnection([spent, fresh]), fresh)
    assert.equal(
      bestConnection([connection(quic.remoteAddr.toString(), { status: 'closing' }), spent]),
      spent,
    )
    assert.equal(bestConnection([]), undefined)
  })
})
