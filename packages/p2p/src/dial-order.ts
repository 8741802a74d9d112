import { BlockList } from 'node:net'
import { networkInterfaces } from 'node:os'
import type { Address, AddressSorter } from '@libp2p/interface'
import { isLoopback, isPrivate, reliableTransportsFirst, tryGetNetConfig } from '@libp2p/utils'
import type { Multiaddr } from '@multiformats/multiaddr'

/** How long the host's own subnets are taken as known. @default 10 s */
const SUBNETS_TTL_MS = 10_000

/**
 * How Gate dials a peer's addresses. libp2p dials them one after the other, and a QUIC dial that
 * hears no answer cannot be abandoned (the QUIC transport ignores the abort signal and waits out
 * its 10 s idle timeout), so each unreachable address ahead of a good one costs seconds:
 * - `sorter`: public addresses and private ones on a network this host is on first; then relayed
 *   addresses; then private addresses of networks this host is not on (a peer's home LAN, seen from
 *   another one); loopback last. libp2p's own order puts relayed addresses after every private one,
 *   so a peer behind a NAT would only be reached through its relay once its dial budget is spent.
 * - `denyDial`: no QUIC to a private address of a network this host is not on, but for the relays
 *   (`relayPeers`, named in the config). Such an address is some other network's; when it is
 *   reachable at all (a routed LAN, a VPN), its TCP twin is, and a TCP dial that gets nowhere is
 *   abandoned on time.
 */
export function dialPolicy(
  relayPeers: ReadonlySet<string>,
  subnets: () => BlockList = ownSubnets(),
): { sorter: AddressSorter; denyDial: (ma: Multiaddr) => boolean } {
  const elsewhere = (ma: Multiaddr): boolean => {
    if (!isPrivate(ma) || isLoopback(ma)) return false
    const config = tryGetNetConfig(ma)
    if (config?.type !== 'ip4' && config?.type !== 'ip6') return true
    return !subnets().check(config.host, config.type === 'ip4' ? 'ipv4' : 'ipv6')
  }
  const rank = (ma: Multiaddr): number => {
    // A relayed address through a relay's loopback address reaches nothing off the relay's host.
    if (isRelayed(ma)) return isLoopback(ma) ? 3 : 1
    if (isLoopback(ma)) return 3
    return elsewhere(ma) ? 2 : 0
  }
  return {
    sorter: (a: Address, b: Address) =>
      sign(rank(a.multiaddr) - rank(b.multiaddr)) ||
      reliableTransportsFirst(a.multiaddr, b.multiaddr) ||
      sign(Number(b.isCertified) - Number(a.isCertified)),
    denyDial: (ma) => {
      const components = ma.getComponents()
      if (isRelayed(ma) || !components.some((c) => c.name === 'quic-v1')) return false
      const peer = components.findLast((c) => c.name === 'p2p')?.value
      return !(peer !== undefined && relayPeers.has(peer)) && elsewhere(ma)
    },
  }
}

function isRelayed(ma: Multiaddr): boolean {
  return ma.getComponents().some((c) => c.name === 'p2p-circuit')
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
