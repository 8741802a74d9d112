import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it, type TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import type { NatStatus, PeerInfo } from '@gate/rpc'
import { waitFor } from '../../../packages/daemon/test/utils/wait.ts'
import { exited, type GateHome, gateHome, waitForOutput } from './utils/gate.ts'
import { type NatKind, type NatLab, natLabUnavailable, PUBLIC_NET, startNatLab } from './utils/netns.ts'

const ENGINE = fileURLToPath(new URL('./utils/engine-process.ts', import.meta.url))
const FETCH = fileURLToPath(new URL('./utils/fetch-process.ts', import.meta.url))
const MODEL = 'llama3.2:1b'
/** The relay's P2P port: fixed, so that it comes back at the same address after a restart. */
const RELAY_PORT = 41145

const unavailable = await natLabUnavailable()
const skip = unavailable ? `network namespaces unavailable: ${unavailable}` : false

/** The lab, a relay in its public network, node A at home A and node B (with the engine) at home B. */
interface World {
  lab: NatLab
  relayHome: GateHome
  relay: ChildProcess
  relayConfig: string
  relayAddress: string
  relayNodeId: string
  a: GateHome
  b: GateHome
  apiA: string
  nodeA: string
  nodeB: string
  /** The daemons' last log lines, for a failure's diagnostics. */
  logs(): Promise<string>
  close(): Promise<void>
}

/** An engine at home B: its name, the model it serves, and how many SSE events it cuts a reply into. */
interface EngineSpec {
  name: string
  model: string
  chunks: number
}

const CHAT_ENGINE: EngineSpec = { name: 'engine', model: MODEL, chunks: 5 }

async function startWorld(
  natB: NatKind,
  {
    circuit = {},
    engines = [CHAT_ENGINE],
  }: { circuit?: Record<string, unknown>; engines?: EngineSpec[] } = {},
): Promise<World> {
  const lab = await startNatLab({ natB })
  const closers: Array<() => PromiseLike<void>> = [() => lab[Symbol.asyncDispose]()]
  const close = async () => {
    for (const closer of closers.reverse()) {
      try {
        await closer()
      } catch {}
    }
  }
  try {
    const relayHome = await gateHome({}, { netns: lab.ns.public })
    closers.push(() => relayHome[Symbol.asyncDispose]())
    const relayConfig = join(await mkdtemp(join(tmpdir(), 'gate-nat-relay-')), 'relay.json')
    await writeFile(
      relayConfig,
      JSON.stringify({
        network: { p2p_port: RELAY_PORT, p2p_host: '0.0.0.0' },
        relay_server: {
          domain: 'gate.test',
          public_ip: PUBLIC_NET.relay,
          tls_host: PUBLIC_NET.relay,
          tls_port: 0,
          dns: { host: PUBLIC_NET.relay, port: 0 },
          metrics: { host: '127.0.0.1', port: 0 },
          circuit,
        },
      }),
    )
    const { relay, address, nodeId } = await startRelay(relayHome, relayConfig)
    const providers = []
    for (const spec of engines) {
      const options = JSON.stringify({ chunks: spec.chunks, models: [spec.model], record: false })
      const engine = lab.spawn(lab.ns.b, [process.execPath, ENGINE, options])
      const url = JSON.parse(await firstLine(engine)).url as string
      providers.push({ name: spec.name, kind: 'openai', url: `${url}/v1`, health_check_interval: 60 })
    }
    const nat = { relays: [address], allow_private_addresses: true }
    const network = { p2p_host: '0.0.0.0', nat }
    const a = await gateHome({ network }, { netns: lab.ns.a })
    closers.push(() => a[Symbol.asyncDispose]())
    const b = await gateHome({ network, providers }, { netns: lab.ns.b })
    closers.push(() => b[Symbol.asyncDispose]())
    for (const home of [a, b]) {
      const started = await home.run(['daemon', '--background'])
      assert.equal(started.code, 0, started.stderr)
    }
    const statusA = await status(a)
    const statusB = await status(b)
    return {
      lab,
      relayHome,
      relay,
      relayConfig,
      relayAddress: address,
      relayNodeId: nodeId,
      a,
      b,
      apiA: `http://127.0.0.1:${statusA.http.port}`,
      nodeA: statusA.node_id,
      nodeB: statusB.node_id,
      logs: async () => {
        const tails = await Promise.all(
          [a, b].map(async (home, i) => {
            const text = await readFile(join(home.home, 'logs', 'daemon.log'), 'utf8').catch(() => '')
            const lines = text.trim().split('\n').slice(-40)
            return [`node ${'AB'[i]}:`, ...lines.map((l) => `  ${brief(l)}`)].join('\n')
          }),
        )
        return tails.join('\n')
      },
      close,
    }
  } catch (err) {
    await close()
    throw err
  }
}

/** Starts `gate relay` in the public network; its QUIC address there, and its node ID. */
async function startRelay(home: GateHome, config: string) {
  const relay = home.spawn(['relay', '--config', config])
  const printed = await waitForOutput(relay, /relay\.addresses:\n( {2}\S+\n)+/)
  const address = new RegExp(
    `/ip4/${PUBLIC_NET.relay.replaceAll('.', '\\.')}/udp/\\d+/quic-v1/p2p/\\w+`,
  ).exec(printed)?.[0]
  const nodeId = /node ID ([a-z2-7]{52})/.exec(printed)?.[1]
  assert.ok(address && nodeId, printed)
  return { relay, address, nodeId }
}

/** A pino line as `level msg {other fields}`. */
function brief(line: string): string {
  try {
    const { level, msg, time, pid: _p, hostname: _h, ...rest } = JSON.parse(line)
    return `${new Date(time).toISOString().slice(11, 23)} ${level} ${msg} ${JSON.stringify(rest)}`
  } catch {
    return line
  }
}

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = ''
    child.stdout?.on('data', (d) => {
      text += d
      const end = text.indexOf('\n')
      if (end >= 0) resolve(text.slice(0, end))
    })
    child.once('exit', () => reject(new Error(`exited before printing a line: ${text}`)))
  })
}

interface Status {
  node_id: string
  http: { port: number }
  nat: NatStatus
}

async function status(home: GateHome): Promise<Status> {
  const result = await home.run(['status', '--json'])
  assert.equal(result.code, 0, result.stderr)
  return JSON.parse(result.stdout)
}

async function peers(home: GateHome): Promise<PeerInfo[]> {
  const result = await home.run(['peers', 'list', '--json'])
  assert.equal(result.code, 0, result.stderr)
  return JSON.parse(result.stdout)
}

async function connectionTo(home: GateHome, nodeId: string): Promise<PeerInfo['connection']> {
  return (await peers(home)).find((p) => p.node_id === nodeId)?.connection ?? null
}

/** Waits until both nodes hold a reservation on the relay, then pairs them by invite code. */
async function pair(world: World): Promise<void> {
  for (const home of [world.a, world.b]) {
    await waitFor(async () => (await status(home)).nat.relays[0]?.reserved === true, {
      timeoutMs: 30_000,
      intervalMs: 250,
      label: 'a relay reservation',
    })
  }
  const invite = await world.a.run(['peers', 'invite', '--json'])
  assert.equal(invite.code, 0, invite.stderr)
  const { code, addresses } = JSON.parse(invite.stdout) as { code: string; addresses: string[] }
  assert.ok(
    addresses.some((a) => a.includes(`/p2p-circuit/p2p/`)),
    `the invite carries a relayed address: ${addresses.join(' ')}`,
  )
  const joined = await world.b.run(['peers', 'join', code, '--json'])
  assert.equal(joined.code, 0, joined.stderr)
}

interface Exchange {
  status: number
  headers: Record<string, string>
  text: string
  error: string | null
  ms: number
}

/** A streamed chat completion through node A's API, sent from inside home A. */
async function chat(world: World, content: string, model = MODEL, timeoutMs = 60_000): Promise<Exchange> {
  const body = JSON.stringify({ model, stream: true, messages: [{ role: 'user', content }] })
  const child = world.lab.spawn(world.lab.ns.a, [
    process.execPath,
    FETCH,
    `${world.apiA}/v1/chat/completions`,
    'POST',
  ])
  child.stdin?.end(body)
  let out = ''
  child.stdout?.on('data', (d) => {
    out += d
  })
  await exited(child, timeoutMs)
  const result: Exchange = { status: 0, headers: {}, text: '', error: null, ms: -1 }
  for (const line of out.split('\n').filter(Boolean)) {
    const event = JSON.parse(line)
    if (event.head) Object.assign(result, event.head)
    if (event.chunk !== undefined) result.text += event.chunk
    if (event.end !== undefined) result.ms = event.end
    if (event.error) result.error = event.error
  }
  return result
}

/** The content of a streamed chat's deltas, put back together. */
function content(text: string): string {
  return text
    .split('\n')
    .filter((l) => l.startsWith('data: {'))
    .map((l) => JSON.parse(l.slice(6)).choices?.[0]?.delta?.content ?? '')
    .join('')
}

/** Runs a test's body; when it fails, the daemons' logs go with the failure. */
async function diagnosed(t: TestContext, world: World, body: () => Promise<void>): Promise<void> {
  try {
    await body()
  } catch (err) {
    t.diagnostic(await world.logs())
    throw err
  }
}

describe('two nodes behind endpoint-independent NATs', { skip }, () => {
  let world: World
  before(async () => {
    world = await startWorld('endpoint-independent')
  })
  after(async () => {
    await world?.close()
  })

  it('pair by invite code through the relay, chat streamed, and end on a hole-punched connection', async (t) => {
    await diagnosed(t, world, async () => {
      await pair(world)
      const reply = await chat(world, 'hello through two NATs')
      assert.equal(reply.status, 200, reply.text)
      assert.equal(reply.headers['x-gate-node'], world.nodeB)
      assert.equal(content(reply.text), 'echo: hello through two NATs')
      assert.match(reply.text, /data: \[DONE\]\n\n$/)
      for (const [home, peer] of [
        [world.a, world.nodeB],
        [world.b, world.nodeA],
      ] as const) {
        await waitFor(async () => (await connectionTo(home, peer))?.type === 'hole-punched', {
          timeoutMs: 20_000,
          intervalMs: 250,
          label: 'a hole-punched connection',
        })
        assert.deepEqual(await connectionTo(home, peer), {
          type: 'hole-punched',
          transport: 'tcp',
          relay: null,
        })
      }
      const again = await chat(world, 'and once more, direct')
      assert.equal(content(again.text), 'echo: and once more, direct')
      const listed = await world.a.run(['peers', 'list'])
      assert.match(listed.stdout, /connection\s+hole-punched \(TCP\)/)
    })
  })
})

/** The relay's limit on one relayed connection in the symmetric world: small, so a long answer outgrows it. */
const DATA_LIMIT = 2 * 1024 * 1024

describe('a symmetric NAT at home B', { skip }, () => {
  let world: World
  before(async () => {
    world = await startWorld('symmetric', {
      circuit: { data_limit: DATA_LIMIT },
      // 40,000 SSE events, some 8 MB: more than one relayed connection may carry.
      engines: [CHAT_ENGINE, { name: 'long', model: 'long-story', chunks: 40_000 }],
    })
    await pair(world)
  })
  after(async () => {
    await world?.close()
  })

  it('carries the exchange relayed, and says so', async (t) => {
    await diagnosed(t, world, async () => {
      const reply = await chat(world, 'hello through a symmetric NAT')
      assert.equal(reply.status, 200, reply.text)
      assert.equal(content(reply.text), 'echo: hello through a symmetric NAT')
      assert.match(reply.text, /data: \[DONE\]\n\n$/)
      // B punched (it dialled the relayed connection) and missed: its NAT gave each destination
      // another port.
      await waitFor(async () => /hole punching failed: staying relayed/.test(await world.logs()), {
        timeoutMs: 30_000,
        intervalMs: 500,
        label: 'the failed hole punch in the log',
      })
      const relayed = { type: 'relayed', transport: null, relay: world.relayNodeId }
      assert.deepEqual(await connectionTo(world.a, world.nodeB), relayed)
      assert.deepEqual(await connectionTo(world.b, world.nodeA), relayed)
      const listed = await world.b.run(['peers', 'list'])
      assert.match(listed.stdout, new RegExp(`connection\\s+relayed via ${world.relayNodeId}`))
    })
  })

  it('ends a relayed answer that outgrows the relay’s data limit with a clear error, and refuses one that cannot fit', async (t) => {
    await diagnosed(t, world, async () => {
      const started = Date.now()
      const cut = await chat(world, 'tell me a long story', 'long-story')
      assert.equal(cut.status, 200)
      assert.doesNotMatch(cut.text, /\[DONE\]/)
      const error = /data: (\{"error".*\})\n\n$/.exec(cut.text)?.[1]
      assert.ok(error, `an error event ends the stream: …${cut.text.slice(-300)}`)
      assert.match(
        JSON.parse(error).error.message,
        new RegExp(
          `relayed connection to node ${world.nodeB} through relay ${world.relayNodeId} ended mid-exchange: ` +
            "the relay's data limit for one relayed connection \\(about 2\\.0 MiB\\) is used up",
        ),
      )
      assert.ok(Date.now() - started < 30_000, 'the cut is noticed at once, not after a timeout')
      // The cut took the relayed connection down; the nodes make another one.
      await waitFor(async () => (await peers(world.a))[0]?.status === 'connected', {
        timeoutMs: 30_000,
        intervalMs: 250,
        label: 'the peers relayed to each other again',
      })
      // A request larger than a relayed connection may carry is refused before a byte goes out.
      const huge = await chat(world, 'x'.repeat(DATA_LIMIT))
      assert.equal(huge.status, 502, huge.text)
      assert.match(
        JSON.parse(huge.text).error.message,
        /reachable only through relay \w+, whose limits for one relayed connection .* leave no room for this request/,
      )
      const after = await chat(world, 'still there?')
      assert.equal(content(after.text), 'echo: still there?')
    })
  })

  it('recovers when the relay restarts mid-session', async (t) => {
    await diagnosed(t, world, async () => {
      world.relay.kill('SIGTERM')
      await exited(world.relay)
      await waitFor(async () => (await connectionTo(world.b, world.nodeA)) === null, {
        timeoutMs: 30_000,
        intervalMs: 250,
        label: 'the relayed connection gone with the relay',
      })
      world.relay = (await startRelay(world.relayHome, world.relayConfig)).relay
      for (const home of [world.a, world.b]) {
        await waitFor(async () => (await status(home)).nat.relays[0]?.reserved === true, {
          timeoutMs: 60_000,
          intervalMs: 500,
          label: 'the reservation made again',
        })
      }
      await waitFor(async () => (await connectionTo(world.b, world.nodeA))?.type === 'relayed', {
        timeoutMs: 60_000,
        intervalMs: 500,
        label: 'the peers relayed to each other again',
      })
      const reply = await chat(world, 'after the restart')
      assert.equal(content(reply.text), 'echo: after the restart')
    })
  })
})
