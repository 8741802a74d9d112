import { BlockList } from 'node:net'
import { networkInterfaces } from 'node:os'
import type { Address, AddressSorter } from '@libp2p/interface'
import { isLoopback, isPrivate, reliableTransportsFirst, tryGetNetConfig } from '@libp2p/utils'
import type { Multiaddr } from '@multiformats/multiaddr'

/** How long the host's own subnets are taken as known. @default 10 s */
const SUBNETS_TTL_MS = 10_000

/**
 * The order libp2p dials a peer's addresses in, one after the other: public addresses and private
 * ones on a network this host is on first; then relayed addresses; then private addresses of
 * networks this host is not on (a peer's home LAN, seen from another one); loopback last.
 * libp2p's own order puts relayed addresses after every private one, and a private address on
 * someone else's network takes a whole dial timeout to fail (QUIC hears no answer), so a peer
 * behind a NAT would only be reached through its relay after its dial budget is spent.
 */
export function dialOrder(subnets: () => BlockList = ownSubnets()): AddressSorter {
  const rank = (ma: Multiaddr): number => {
    // A relayed address through a relay's loopback address reaches nothing off the relay's host.
    if (ma.getComponents().some((c) => c.name === 'p2p-circuit')) return isLoopback(ma) ? 3 : 1
    if (isLoopback(ma)) return 3
    if (!isPrivate(ma)) return 0
    const config = tryGetNetConfig(ma)
    if (config?.type !== 'ip4' && config?.type !== 'ip6') return 2
    return subnets().check(config.host, config.type === 'ip4' ? 'ipv4' : 'ipv6') ? 0 : 2
  }
  return (a: Address, b: Address) =>
    sign(rank(a.multiaddr) - rank(b.multiaddr)) ||
    reliableTransportsFirst(a.multiaddr, b.multiaddr) ||
    sign(Number(b.isCertified) - Number(a.isCertified))
}

/** The subnets of this host's interfaces, read again once they are SUBNETS_TTL_MS old. */
function ownSubnets(): () => BlockList {
  let list = new BlockList()
  let readAt = Number.NEGATIVE_INFINITY
  return () => {
    if (performance.now() - readAt < SUBNETS_TTL_MS) return list
    list = new BlockList()
    for (const iface of Object.values(networkInterfaces()).flat()) {
      if (!iface?.cidr) continue
      const [network, prefix] = iface.cidr.split('/')
      list.addSubnet(network as string, Number(prefix), iface.family === 'IPv4' ? 'ipv4' : 'ipv6')
    }
    readAt = performance.now()
    return list
  }
}

function sign(n: number): -1 | 0 | 1 {
  return n < 0 ? -1 : n > 0 ? 1 : 0
}
