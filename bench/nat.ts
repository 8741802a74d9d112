/**
 * `pnpm bench` (part 4): what reaching a peer behind a NAT costs. In network namespaces (root and
 * iproute2/iptables, as the NAT tests; skipped, saying why, without them): `gate relay` in the
 * public network; node A behind an endpoint-independent NAT; and three peers with an engine each:
 * D in the public network (A dials it: direct), B behind an endpoint-independent NAT (A and B end
 * hole-punched) and C behind a symmetric NAT (relayed). For each, in one run: the p50 at c=1 of
 * the chat request sent to the peer itself and forwarded by A (`X-Target-Node`), what A's hop adds,
 * and requests/s at c=8 forwarded (wrk inside the namespaces; BENCH_ROUNDS rounds, medians); then
 * the relay's CPU time per MB it received while it carried a c=8 run to C.
 *
 * Needs `wrk`. The namespaces are private networks on this host; nothing leaves it.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { GateHome } from '../apps/cli/test/utils/gate.ts'
import {
  connectionTo,
  type LabNode,
  logTail,
  pairByInvite,
  peers,
  startLabEngine,
  startLabNode,
  startLabRelay,
  until,
} from '../apps/cli/test/utils/nat-world.ts'
import { natLabUnavailable, startNatLab } from '../apps/cli/test/utils/netns.ts'
import {
  DURATION_S,
  f,
  interleaved,
  type LoadResult,
  MODEL,
  printTable,
  requireTools,
  run,
  signed,
  writeWrkScript,
  wrk,
} from './lib.ts'

/** The prompt of the bulk request, which the engine echoes: bytes rather than requests. */
const BULK_PROMPT_BYTES = 64 * 1024

/** Room for wrk's connections and the bench's rate. */
const SECURITY = { max_concurrent_requests: 256, rate_limit: { per_peer_rps: 1e6, burst: 1e6 } }

interface Target {
  type: 'direct' | 'hole-punched' | 'relayed'
  ns: string
  node: LabNode
}

async function main(): Promise<void> {
  const unavailable = await natLabUnavailable()
  if (unavailable) {
    console.log(`bench/nat.ts skipped: network namespaces unavailable: ${unavailable}`)
    return
  }
  await requireTools(['wrk'])
  const dir = await mkdtemp(join(tmpdir(), 'gate-bench-nat-'))
  await using lab = await startNatLab(['endpoint-independent', 'endpoint-independent', 'symmetric'])
  const [nsA, nsB, nsC] = lab.ns.homes as [string, string, string]
  const homes: GateHome[] = []
  try {
    const relay = await startLabRelay(lab)
    homes.push(relay.home)
    const peerNode = async (ns: string) => {
      const url = await startLabEngine(lab, ns, { models: [MODEL] })
      const providers = [{ name: 'engine', kind: 'openai', url: `${url}/v1`, health_check_interval: 60 }]
      const node = await startLabNode(ns, relay, { providers, security: SECURITY })
      homes.push(node.home)
      return node
    }
    const a = await startLabNode(nsA, relay, { security: SECURITY })
    homes.push(a.home)
    const targets: Target[] = [
      { type: 'direct', ns: lab.ns.public, node: await peerNode(lab.ns.public) },
      { type: 'hole-punched', ns: nsB, node: await peerNode(nsB) },
      { type: 'relayed', ns: nsC, node: await peerNode(nsC) },
    ]
    process.stderr.write('pairing…\n')
    await connect(a, targets)
    const script = await writeWrkScript(dir)
    const rows: string[][] = [['', ...targets.map((t) => t.type)]]
    const results: LoadResult[][] = []
    for (const target of targets) {
      const via = { 'x-target-node': target.node.nodeId }
      const url = (node: LabNode) => `${node.api}/v1/chat/completions`
      results.push(
        await interleaved(target.type, [
          () => wrk(url(target.node), script, 1, {}, target.ns),
          () => wrk(url(a), script, 1, via, nsA),
          () => wrk(url(a), script, 8, via, nsA),
        ]),
      )
      const now = (await connectionTo(a.home, target.node.nodeId))?.type
      if (now !== target.type) throw new Error(`the ${target.type} connection became ${now} during the run`)
    }
    const column = (i: number) => results.map((r) => r[i] as LoadResult)
    const [atPeer, hop1, hop8] = [column(0), column(1), column(2)]
    rows.push(['p50 at the peer itself, c=1 (ms)', ...atPeer.map((r) => f(r.p50))])
    rows.push(['p50 forwarded by A, c=1 (ms)', ...hop1.map((r) => f(r.p50))])
    rows.push(['added by the hop (ms)', ...hop1.map((r, i) => signed(r.p50 - (atPeer[i] as LoadResult).p50))])
    rows.push(['req/s forwarded by A, c=8', ...hop8.map((r) => f(r.rps, 0))])
    rows.push(['p99 forwarded by A, c=8 (ms)', ...hop8.map((r) => f(r.p99))])
    const errors = [...atPeer, ...hop1, ...hop8].reduce((n, r) => n + r.errors, 0)
    printTable(rows)
    if (errors > 0) console.log(`${errors} requests failed`)
    const relayed = { 'x-target-node': (targets[2] as Target).node.nodeId }
    const bulkScript = await writeBulkScript(dir)
    for (const [what, body] of [
      ['the chat request', script],
      [`a ${BULK_PROMPT_BYTES / 1024} KiB prompt, echoed`, bulkScript],
    ] as const) {
      process.stderr.write(`relay cost, ${what}…\n`)
      const cost = await relayCost(relay.process.pid as number, lab.ns.public, () =>
        wrk(`${a.api}/v1/chat/completions`, body, 8, relayed, nsA),
      )
      console.log(
        `relay, ${what} at c=8: ${f(cost.cpuMs / cost.mb, 1)} ms of CPU per MB relayed, ` +
          `${f(cost.cpuMs / cost.requests, 2)} ms per request (${f(cost.mb, 1)} MB in ${DURATION_S} s)`,
      )
    }
  } finally {
    for (const home of homes.reverse()) {
      try {
        await home[Symbol.asyncDispose]()
      } catch {}
    }
    await rm(dir, { recursive: true, force: true })
  }
}

/**
 * Connects A to each target the way users would and waits until A sees each one reached as its
 * type says and serving the model: D added by its public address (and trusting A), B and C by
 * invite codes through the relay.
 */
async function connect(a: LabNode, targets: Target[]): Promise<void> {
  for (const { type, node } of targets) {
    if (type === 'direct') {
      const status = JSON.parse((await node.home.run(['status', '--json'])).stdout) as { p2p: string[] }
      const address = status.p2p.find((p) => p.includes('/tcp/') && !p.includes('/p2p-circuit'))
      if (!address) throw new Error(`no direct address for D in ${status.p2p.join(' ')}`)
      await gate(a.home, ['peers', 'add', node.nodeId, address])
      await gate(node.home, ['peers', 'add', a.nodeId])
    } else {
      await pairByInvite(a.home, node.home)
    }
    await until(
      async () => (await connectionTo(a.home, node.nodeId))?.type === type,
      `A ${type} to ${node.nodeId}`,
      { timeoutMs: 60_000 },
    )
    if (type === 'relayed') {
      // Its hole punch has failed (and will not be tried again on this connection).
      await until(
        async () => (await logTail(node.home, 200)).some((l) => l.includes('hole punching failed')),
        'the failed hole punch',
        { timeoutMs: 60_000 },
      )
    }
  }
  await until(
    async () => (await peers(a.home)).every((p) => p.status === 'connected' && p.models.includes(MODEL)),
    'every peer serving the model',
  )
}

/** wrk's script for a chat request with a BULK_PROMPT_BYTES prompt. */
async function writeBulkScript(dir: string): Promise<string> {
  const script = join(dir, 'bulk.lua')
  const body = JSON.stringify({
    model: MODEL,
    messages: [{ role: 'user', content: 'x'.repeat(BULK_PROMPT_BYTES) }],
  })
  await writeFile(
    script,
    `wrk.method = "POST"\nwrk.body = '${body}'\nwrk.headers["Content-Type"] = "application/json"\n`,
  )
  return script
}

async function gate(home: GateHome, args: string[]): Promise<void> {
  const result = await home.run(args)
  if (result.code !== 0) throw new Error(`gate ${args.join(' ')}: ${result.stderr.trim()}`)
}

/**
 * The relay's CPU time (user and system, from /proc) and the bytes its network namespace's bridge
 * received (what came in to the relay: everything it carried came in once) while `load` ran.
 */
async function relayCost(
  pid: number,
  ns: string,
  load: () => Promise<LoadResult>,
): Promise<{ cpuMs: number; mb: number; requests: number }> {
  const tick = 1000 / Number((await run('getconf', ['CLK_TCK'])).stdout.trim())
  const cpu = async () => {
    const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? []
    return (Number(fields[11]) + Number(fields[12])) * tick
  }
  const received = async () => {
    const { stdout } = await run('ip', ['netns', 'exec', ns, 'cat', '/proc/net/dev'])
    const line = stdout.split('\n').find((l) => l.trim().startsWith('br0:'))
    return Number(line?.split(':')[1]?.trim().split(/\s+/)[0])
  }
  const [cpu0, bytes0] = [await cpu(), await received()]
  const result = await load()
  if (result.errors > 0) console.log(`${result.errors} relayed requests failed`)
  return {
    cpuMs: (await cpu()) - cpu0,
    mb: ((await received()) - bytes0) / 2 ** 20,
    requests: result.rps * DURATION_S,
  }
}

await main()
