import type { PeerInfo } from '@gate/rpc'
import type { Command } from 'commander'
import { cliPaths, connect, output, progress, table } from '../context.ts'

/**
 * How long `peers add` and `peers join` wait for the daemon: reaching a peer behind a NAT may take
 * two dials (a relayed one after the addresses that do not answer) and a round of messages.
 */
const REACH_TIMEOUT_MS = 30_000

export function registerPeersCommands(program: Command): void {
  const peers = program.command('peers').description('trusted peers: add, list, remove')

  peers
    .command('add')
    .description('trust a node and connect to it (without an address, the DHT finds it)')
    .argument('<node_id>', 'node ID or PeerId')
    .argument('[address]', 'multiaddr, e.g. /ip4/192.168.1.7/udp/41145/quic-v1')
    .option('--json', 'print JSON')
    .action(async (nodeId: string, address: string | undefined, options: { json?: boolean }) => {
      const { rpc } = await connect(cliPaths())
      progress(`reaching ${nodeId}…`)
      const { peer } = await rpc.call(
        'add_peer',
        address === undefined ? { node_id: nodeId } : { node_id: nodeId, address },
        { timeoutMs: REACH_TIMEOUT_MS },
      )
      output(options.json, peer, () => `trusted ${peer.node_id}\n${describePeer(peer)}`)
    })

  peers
    .command('list')
    .description('trusted peers and their state')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const { rpc } = await connect(cliPaths())
      const { peers: list } = await rpc.call('list_peers')
      output(options.json, list, () =>
        list.length === 0
          ? 'no trusted peers (add one with: gate peers add NODE_ID [ADDRESS])'
          : list.map(describePeer).join('\n\n'),
      )
    })

  peers
    .command('invite')
    .description('print a one-time code that pairs another node with this one')
    .option('--ttl <seconds>', 'how long the code stays valid (10–86400)', '600')
    .option('--json', 'print JSON')
    .action(async (options: { ttl: string; json?: boolean }) => {
      const { rpc } = await connect(cliPaths())
      const invite = await rpc.call('create_invite', { ttl_s: Number(options.ttl) })
      const minutes = Math.round((invite.expires_at * 1000 - Date.now()) / 60_000)
      output(
        options.json,
        invite,
        () => `${invite.code}\n\non the other node, within ${minutes} min: gate peers join <the code above>`,
      )
    })

  peers
    .command('join')
    .description("redeem another node's invite code: the two nodes then trust each other")
    .argument('<code>', 'what gate peers invite printed')
    .option('--json', 'print JSON')
    .action(async (code: string, options: { json?: boolean }) => {
      const { rpc } = await connect(cliPaths())
      progress('pairing…')
      const { peer } = await rpc.call('join_invite', { code }, { timeoutMs: REACH_TIMEOUT_MS })
      output(options.json, peer, () => `paired with ${peer.node_id}\n${describePeer(peer)}`)
    })

  peers
    .command('remove')
    .description('stop trusting a node and hang up on it')
    .argument('<node_id>', 'node ID or PeerId')
    .action(async (nodeId: string) => {
      const { rpc } = await connect(cliPaths())
      const { removed } = await rpc.call('remove_peer', { node_id: nodeId })
      process.stdout.write(removed ? `removed ${nodeId}\n` : `${nodeId} was not a peer\n`)
    })
}

/** `direct (QUIC)`, `hole-punched (TCP)`, `relayed via <relay node ID>`, or `none`. */
function describeConnection(connection: PeerInfo['connection']): string {
  if (!connection) return 'none'
  if (connection.type === 'relayed') return `relayed via ${connection.relay ?? 'a relay'}`
  const transport = connection.transport === 'quic' ? 'QUIC' : connection.transport === 'tcp' ? 'TCP' : null
  return transport ? `${connection.type} (${transport})` : connection.type
}

function describePeer(peer: PeerInfo): string {
  const retry = peer.next_attempt
    ? ` (next try in ${Math.max(0, Math.round((Date.parse(peer.next_attempt) - Date.now()) / 1000))} s)`
    : ''
  const status =
    peer.error && peer.status !== 'connected' ? `${peer.status}: ${peer.error}${retry}` : peer.status
  return table([
    ['node ID', peer.node_id],
    ['status', status],
    ['models', peer.models.join(', ') || 'none advertised'],
    ['load', peer.load_factor === null ? 'unknown' : `${Math.round(peer.load_factor * 100)}%`],
    ['connection', describeConnection(peer.connection)],
    ['RTT', peer.rtt_ms === null ? 'unknown' : `${peer.rtt_ms} ms`],
    ['addresses', peer.addresses.join(' ') || 'none known'],
  ])
}
