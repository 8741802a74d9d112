import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { exited, type GateHome } from './utils/gate.ts'
import {
  connectionTo,
  type LabNode,
  type LabRelay,
  logTail,
  pairByInvite,
  peers,
  startLabEngine,
  startLabNode,
  startLabRelay,
  status,
  until,
} from './utils/nat-world.ts'
import { type NatKind, type NatLab, natLabUnavailable, startNatLab } from './utils/netns.ts'

const FETCH = fileURLToPath(new URL('./utils/fetch-process.ts', import.meta.url))
const MODEL = 'llama3.2:1b'

const unavailable = await natLabUnavailable()
const skip = unavailable ? `network namespaces unavailable: ${unavailable}` : false

/** The lab, a relay in its public network, node A at home A and node B (with the engines) at home B. */
interface World {
  lab: NatLab
  relay: LabRelay
  a: LabNode
  b: LabNode
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
  const lab = await startNatLab(['endpoint-independent', natB])
  const [nsA, nsB] = lab.ns.homes as [string, string]
  const homes: GateHome[] = []
  // Homes first (their daemons stop), then the lab (its namespaces and what is left in them).
  const close = async () => {
    for (const home of homes.reverse()) {
      try {
        await home[Symbol.asyncDispose]()
      } catch {}
    }
    await lab[Symbol.asyncDispose]()
  }
  try {
    const relay = await startLabRelay(lab, circuit)
    homes.push(relay.home)
    const providers = []
    for (const spec of engines) {
      const url = await startLabEngine(lab, nsB, { chunks: spec.chunks, models: [spec.model] })
      providers.push({ name: spec.name, kind: 'openai', url: `${url}/v1`, health_check_interval: 60 })
    }
    const a = await startLabNode(nsA, relay)
    homes.push(a.home)
    const b = await startLabNode(nsB, relay, { providers })
    homes.push(b.home)
    const logs = async () => {
      const tails = await Promise.all([a, b].map((node) => logTail(node.home)))
      return tails
        .map((lines, i) => [`node ${'AB'[i]}:`, ...lines.map((l) => `  ${l}`)].join('\n'))
        .join('\n')
    }
    return { lab, relay, a, b, logs, close }
  } catch (err) {
    await close()
    throw err
  }
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
  const child = world.lab.spawn(world.lab.ns.homes[0] as string, [
    process.execPath,
    FETCH,
    `${world.a.api}/v1/chat/completions`,
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

/** Runs `body`; when it fails, the daemons' last log lines go with the failure's message. */
async function withLogs(world: World, body: () => Promise<void>): Promise<void> {
  try {
    await body()
  } catch (err) {
    if (err instanceof Error) err.message += `\n${await world.logs()}`
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

  it('pair by invite code through the relay, chat streamed, and end on a hole-punched connection', async () => {
    await withLogs(world, async () => {
      await pairByInvite(world.a.home, world.b.home)
      const reply = await chat(world, 'hello through two NATs')
      assert.equal(reply.status, 200, reply.text)
      assert.equal(reply.headers['x-gate-node'], world.b.nodeId)
      assert.equal(content(reply.text), 'echo: hello through two NATs')
      assert.match(reply.text, /data: \[DONE\]\n\n$/)
      for (const [home, peer] of [
        [world.a.home, world.b.nodeId],
        [world.b.home, world.a.nodeId],
      ] as const) {
        await until(
          async () => (await connectionTo(home, peer))?.type === 'hole-punched',
          'a hole-punched connection',
          { timeoutMs: 20_000, intervalMs: 250 },
        )
        assert.deepEqual(await connectionTo(home, peer), {
          type: 'hole-punched',
          transport: 'tcp',
          relay: null,
        })
      }
      const again = await chat(world, 'and once more, direct')
      assert.equal(content(again.text), 'echo: and once more, direct')
      const listed = await world.a.home.run(['peers', 'list'])
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
    await withLogs(world, () => pairByInvite(world.a.home, world.b.home))
  })
  after(async () => {
    await world?.close()
  })

  it('carries the exchange relayed, and says so', async () => {
    await withLogs(world, async () => {
      const reply = await chat(world, 'hello through a symmetric NAT')
      assert.equal(reply.status, 200, reply.text)
      assert.equal(content(reply.text), 'echo: hello through a symmetric NAT')
      assert.match(reply.text, /data: \[DONE\]\n\n$/)
      // B punched (it dialled the relayed connection) and missed: its NAT gave each destination
      // another port.
      await until(
        async () => /hole punching failed: staying relayed/.test(await world.logs()),
        'the failed hole punch in the log',
        { timeoutMs: 30_000, intervalMs: 500 },
      )
      const relayed = { type: 'relayed', transport: null, relay: world.relay.nodeId }
      assert.deepEqual(await connectionTo(world.a.home, world.b.nodeId), relayed)
      assert.deepEqual(await connectionTo(world.b.home, world.a.nodeId), relayed)
      const listed = await world.b.home.run(['peers', 'list'])
      assert.match(listed.stdout, new RegExp(`connection\\s+relayed via ${world.relay.nodeId}`))
    })
  })

  it('ends a relayed answer that outgrows the relay’s data limit with a clear error, and refuses one that cannot fit', async () => {
    await withLogs(world, async () => {
      const started = Date.now()
      const cut = await chat(world, 'tell me a long story', 'long-story')
      assert.equal(cut.status, 200)
      assert.doesNotMatch(cut.text, /\[DONE\]/)
      const error = /data: (\{"error".*\})\n\n$/.exec(cut.text)?.[1]
      assert.ok(error, `an error event ends the stream: …${cut.text.slice(-300)}`)
      assert.match(
        JSON.parse(error).error.message,
        new RegExp(
          `relayed connection to node ${world.b.nodeId} through relay ${world.relay.nodeId} ended mid-exchange: ` +
            "the relay's data limit for one relayed connection \\(about 2\\.0 MiB\\) is used up",
        ),
      )
      assert.ok(Date.now() - started < 30_000, 'the cut is noticed at once, not after a timeout')
      // The cut took the relayed connection down; the nodes make another one.
      await until(
        async () => (await peers(world.a.home))[0]?.status === 'connected',
        'the peers relayed to each other again',
        { timeoutMs: 30_000, intervalMs: 250 },
      )
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

  it('recovers when the relay restarts mid-session', async () => {
    await withLogs(world, async () => {
      world.relay.process.kill('SIGTERM')
      await exited(world.relay.process)
      await until(
        async () => (await connectionTo(world.b.home, world.a.nodeId)) === null,
        'the relayed connection gone with the relay',
        { timeoutMs: 30_000, intervalMs: 250 },
      )
      await world.relay.restart()
      for (const { home } of [world.a, world.b]) {
        await until(
          async () => (await status(home)).nat.relays[0]?.reserved === true,
          'the reservation made again',
          { timeoutMs: 60_000, intervalMs: 500 },
        )
      }
      await until(
        async () => (await connectionTo(world.b.home, world.a.nodeId))?.type === 'relayed',
        'the peers relayed to each other again',
        { timeoutMs: 60_000, intervalMs: 500 },
      )
      const reply = await chat(world, 'after the restart')
      assert.equal(content(reply.text), 'echo: after the restart')
    })
  })
})
