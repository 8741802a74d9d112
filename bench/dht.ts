/**
 * `pnpm bench` (part 3): the DHT at scale, by simulation. One network of real libp2p nodes in this
 * process grows to 50, 100, 250, 500 and 1,000 nodes; at each size, LOOKUPS lookups of a random
 * node's peer ID by a random other node: how many find the target's address, in how many hops and
 * with how many requests, against ⌈log2 N⌉.
 *
 * The nodes run Gate's kad-dht setup (`/gate/kad/1.0.0`, server mode, passthrough address mapper,
 * k = 20, default prefix length), identify and ping over the in-memory transport with plaintext
 * "encryption" and yamux at its default stream limits: no sockets, no encryption, zero link
 * latency. Every connection still runs identify, and every new routing-table contact is pinged
 * first, as in production; that costs ~7-10 ms of this one thread per connection, so the rest
 * differs from Gate's production config:
 * - Joins are seeded, not looked up. A joining node dials its NEAREST XOR-closest present nodes
 *   (where its self-lookup would converge) and one random node at each farther common-prefix
 *   length (what the routing-table refresh looks up): ~15 dials at 1,000 nodes. Identify and the
 *   DHT's topology listener then put each connection's peers into both routing tables. A real
 *   self-lookup pings every peer its answers name into the table: at Gate's settings, growing the
 *   network that way to 250 nodes alone took 220 s here.
 * - Lookups ask α = 3 peers at a time on 1 path (classic Kademlia), not kad-dht's default 10 on
 *   10 paths: each answer's 20 peers get pinged into the querier's table, and at Gate's width a
 *   lookup at 500 nodes took ~1 s here. Wider lookups ask more peers per round, so they take no
 *   more hops: 1.26 on average at 500 nodes, against 1.5-1.7 at α = 3.
 * - No connection monitor (a ping on every connection every 10 s), no periodic self-query (the
 *   seeded join stands in for it). The routing-table refresh keeps its 5-minute period, which a
 *   run ends before.
 *
 * A lookup is `dht.findPeer(target, { useCache: false })` by a node whose routing table does not
 * hold the target: pairs where it does are drawn again and counted under "in table", as they
 * need no hop. It succeeds when a remote answer names the target with its address (nodes answer
 * from their routing table and their peer store, which also holds every peer they were told of).
 * Hops: the peers in the querier's routing table are at depth 1; a peer first named by the answer
 * of a depth-d peer is at depth d + 1; a lookup's hop count is the depth of the peer whose answer
 * named the target: its rounds of requests. "requests mean" counts the FIND_NODE requests a lookup
 * sent until then; "table p50" is the median routing-table size. There is no time column: in one
 * thread at zero link latency a lookup's time is the simulator's backlog, not the network's.
 * Lookups teach queriers peers, so the network ages as it grows, as a real one does.
 *
 * BENCH_DHT_MAX caps the network size (e.g. 250 for a quick run), BENCH_DHT_LOOKUPS sets LOOKUPS.
 */
import { createHash } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { type DHTProgressEvents, kadDHT } from '@libp2p/kad-dht'
import { memory } from '@libp2p/memory'
import { ping } from '@libp2p/ping'
import { plaintext } from '@libp2p/plaintext'
import { createLibp2p } from 'libp2p'
import { DHT_INIT, PING_INIT } from '../packages/p2p/src/index.ts'
import { median, printTable } from './lib.ts'

const MAX_NODES = Number(process.env.BENCH_DHT_MAX ?? 1000)
const SIZES = [50, 100, 250, 500, 1000].filter((n) => n <= MAX_NODES)
/** Lookups per network size. @default 40, or BENCH_DHT_LOOKUPS */
const LOOKUPS = Number(process.env.BENCH_DHT_LOOKUPS ?? 40)
/** XOR-closest present nodes a joining node dials. */
const NEAREST = 8
const ALPHA = 3
const DISJOINT_PATHS = 1
/** Random pairs drawn at most per size, most of them already in each other's routing table. */
const MAX_DRAWS = 100 * LOOKUPS
const JOIN_TIMEOUT_MS = 15_000
const LOOKUP_TIMEOUT_MS = 15_000
const SETTLED_MS = 500
const SETTLE_TIMEOUT_MS = 60_000
const STOP_TIMEOUT_MS = 30_000

type Node = Awaited<ReturnType<typeof createNode>>
type PeerId = Node['peerId']

interface Member {
  node: Node
  /** The address it listens on, which a lookup must find. */
  address: string
  /** SHA-256 of its peer ID: its position in the Kademlia keyspace. */
  kadId: Buffer
}

/** What the benchmark reads of kad-dht's routing table, which its types do not expose. */
interface RoutingTable {
  size: number
  kb: { toIterable(): Iterable<{ peerId: PeerId }> }
}

interface Lookup {
  found: boolean
  hops: number
  /** FIND_NODE requests sent before the answer (or the end). */
  requests: number
  /** Why it found nothing. */
  error?: string
}

function createNode(address: string) {
  return createLibp2p({
    addresses: { listen: [address] },
    transports: [memory()],
    connectionEncrypters: [plaintext()],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false },
    services: {
      identify: identify(),
      ping: ping(PING_INIT),
      dht: kadDHT({
        ...DHT_INIT,
        alpha: ALPHA,
        disjointPaths: DISJOINT_PATHS,
        initialQuerySelfInterval: 24 * 3_600_000,
        querySelfInterval: 24 * 3_600_000,
      }),
    },
  })
}

function routingTable(node: Node): RoutingTable {
  return (node.services.dht as unknown as { routingTable: RoutingTable }).routingTable
}

/** Starts a node and joins it to the present members. */
async function addMember(members: Member[]): Promise<void> {
  const address = `/memory/gate-dht-${members.length}`
  const node = await createNode(address)
  const member = { node, address, kadId: kadIdOf(node.peerId) }
  const present = [...members]
  members.push(member)
  const signal = AbortSignal.timeout(JOIN_TIMEOUT_MS)
  await Promise.all(seeds(member, present).map((peer) => node.dial(peer.node.getMultiaddrs(), { signal })))
}

/** The NEAREST XOR-closest present members, and one random member at each farther common-prefix length. */
function seeds(self: Member, present: Member[]): Member[] {
  const byDistance = [...present].sort((a, b) => compareDistance(a.kadId, b.kadId, self.kadId))
  const byPrefix = new Map<number, Member[]>()
  for (const member of byDistance.slice(NEAREST)) {
    const prefix = commonPrefixLength(member.kadId, self.kadId)
    byPrefix.set(prefix, [...(byPrefix.get(prefix) ?? []), member])
  }
  return [...byDistance.slice(0, NEAREST), ...[...byPrefix.values()].flatMap((group) => sample(group, 1))]
}

/** LOOKUPS lookups, each of a random member by a random other whose routing table does not hold it. */
async function measure(members: Member[]): Promise<{ lookups: Lookup[]; inTable: number }> {
  const lookups: Lookup[] = []
  let draws = 0
  while (lookups.length < LOOKUPS) {
    if (++draws > MAX_DRAWS)
      throw new Error(`${MAX_DRAWS} random pairs gave only ${lookups.length} to look up`)
    const [querier, target] = sample(members, 2) as [Member, Member]
    const known = new Set(
      Array.from(routingTable(querier.node).kb.toIterable(), ({ peerId }) => peerId.toString()),
    )
    if (known.has(target.node.peerId.toString())) continue
    lookups.push(await lookup(querier.node, target, known))
  }
  return { lookups, inTable: (draws - LOOKUPS) / draws }
}

/** `known`: the peers in the querier's routing table, at depth 1. */
async function lookup(querier: Node, target: Member, known: Set<string>): Promise<Lookup> {
  const depths = new Map<string, number>()
  const depth = (peer: PeerId) => (known.has(peer.toString()) ? 1 : depths.get(peer.toString()))
  // A peer asked is either named by an earlier answer or from the routing table, perhaps added to
  // it since `known` was read.
  const responderDepth = (peer: PeerId) => depth(peer) ?? 1
  let requests = 0
  // Called as each event is created, so an answer is seen before any request to a peer it names.
  // Dial and stream progress events arrive here too and match neither type.
  const onProgress = (event: DHTProgressEvents): void => {
    if (event.type === 'kad-dht:query:send-query') requests++
    if (event.type !== 'kad-dht:query:peer-response') return
    const next = responderDepth(event.detail.from) + 1
    for (const { id } of event.detail.closer) if (depth(id) === undefined) depths.set(id.toString(), next)
  }
  const options = { useCache: false, signal: AbortSignal.timeout(LOOKUP_TIMEOUT_MS), onProgress }
  try {
    for await (const event of querier.services.dht.findPeer(target.node.peerId, options)) {
      if (event.name !== 'FINAL_PEER') continue
      const hops = responderDepth(event.from)
      if (event.peer.multiaddrs.some((ma) => ma.toString() === target.address)) {
        return { found: true, hops, requests }
      }
      return { found: false, hops, requests, error: 'named without its address' }
    }
    return { found: false, hops: 0, requests, error: 'no answer' }
  } catch (err) {
    return { found: false, hops: 0, requests, error: (err as Error).name }
  }
}

/** Waits for the joins' routing-table updates: until the tables' total size holds for SETTLED_MS. */
async function settle(members: Member[]): Promise<void> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS
  const total = () => members.reduce((sum, m) => sum + routingTable(m.node).size, 0)
  for (let last = -1, now = total(); now !== last; last = now, now = total()) {
    if (Date.now() > deadline)
      throw new Error(`routing tables still changing after ${SETTLE_TIMEOUT_MS / 1000} s`)
    await sleep(SETTLED_MS)
  }
}

async function stopAll(members: Member[]): Promise<void> {
  const stopped = Promise.allSettled(members.map(({ node }) => node.stop())).then(() => true)
  if (!(await Promise.race([stopped, sleep(STOP_TIMEOUT_MS, false, { ref: false })]))) {
    throw new Error(`the nodes did not stop within ${STOP_TIMEOUT_MS / 1000} s`)
  }
}

function kadIdOf(peerId: PeerId): Buffer {
  return createHash('sha256').update(peerId.toMultihash().bytes).digest()
}

function commonPrefixLength(a: Buffer, b: Buffer): number {
  for (let i = 0; i < a.length; i++) {
    const bits = (a[i] as number) ^ (b[i] as number)
    if (bits !== 0) return i * 8 + Math.clz32(bits) - 24
  }
  return a.length * 8
}

/** Negative if `a` is XOR-closer to `to` than `b`. */
function compareDistance(a: Buffer, b: Buffer, to: Buffer): number {
  for (let i = 0; i < to.length; i++) {
    const diff = ((a[i] as number) ^ (to[i] as number)) - ((b[i] as number) ^ (to[i] as number))
    if (diff !== 0) return diff
  }
  return 0
}

/** `n` distinct random items. */
function sample<T>(items: T[], n: number): T[] {
  const pool = [...items]
  const out: T[] = []
  while (out.length < n && pool.length > 0) {
    out.push(pool.splice(Math.floor(Math.random() * pool.length), 1)[0] as T)
  }
  return out
}

function row(n: number, lookups: Lookup[], inTable: number, members: Member[]): string[] {
  const found = lookups.filter((l) => l.found)
  const hops = found.map((l) => l.hops)
  const mean = (values: number[]) => values.reduce((sum, v) => sum + v, 0) / values.length
  return [
    String(n),
    String(Math.ceil(Math.log2(n))),
    String(lookups.length),
    `${((100 * found.length) / lookups.length).toFixed(0)}%`,
    hops.length > 0 ? mean(hops).toFixed(2) : '-',
    hops.length > 0 ? String(median(hops)) : '-',
    hops.length > 0 ? String(Math.max(...hops)) : '-',
    mean(lookups.map((l) => l.requests)).toFixed(1),
    `${(100 * inTable).toFixed(0)}%`,
    String(median(members.map((m) => routingTable(m.node).size))),
  ]
}

async function main(): Promise<void> {
  if (SIZES.length === 0 || !Number.isInteger(LOOKUPS) || LOOKUPS < 1) {
    throw new Error('BENCH_DHT_MAX must be at least 50 and BENCH_DHT_LOOKUPS a positive integer')
  }
  const members: Member[] = []
  const started = performance.now()
  const log = (line: string) =>
    process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(0)} s] ${line}\n`)
  const rows = [
    [
      'nodes',
      '⌈log2 N⌉',
      'lookups',
      'found',
      'hops mean',
      'hops p50',
      'hops max',
      'requests mean',
      'in table',
      'table p50',
    ],
  ]
  try {
    for (const n of SIZES) {
      while (members.length < n) {
        await addMember(members)
        if (members.length % 100 === 0) log(`${members.length} nodes`)
      }
      await settle(members)
      log(`${n} nodes: ${LOOKUPS} lookups…`)
      const { lookups, inTable } = await measure(members)
      for (const error of new Set(lookups.flatMap((l) => l.error ?? []))) {
        log(`${lookups.filter((l) => l.error === error).length} lookups failed: ${error}`)
      }
      rows.push(row(n, lookups, inTable, members))
    }
  } finally {
    log(`stopping ${members.length} nodes…`)
    await stopAll(members)
  }
  log(`done, peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`)
  printTable(rows)
}

await main().catch((err: unknown) => {
  process.stderr.write(`bench/dht.ts failed: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
