/**
 * Gate inside the namespace lab (./netns.ts), as the NAT tests and `bench/nat.ts` use it: `gate
 * relay` in the public network, engines and `gate daemon`s at homes, and what the CLI says of them.
 */
import type { ChildProcess } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import type { NatStatus, PeerInfo } from '@gate/rpc'
import { type GateHome, gateHome, waitForOutput } from './gate.ts'
import { type NatLab, PUBLIC_NET } from './netns.ts'

const ENGINE = fileURLToPath(new URL('./engine-process.ts', import.meta.url))
/** The relay's P2P port: fixed, so that it comes back at the same address after a restart. */
const RELAY_PORT = 41145

export interface LabRelay {
  home: GateHome
  /** The running `gate relay`. */
  process: ChildProcess
  /** Its QUIC multiaddr in the public network, ending in `/p2p/<PeerId>`. */
  address: string
  nodeId: string
  /** Starts it again (after it was stopped), same identity and address. */
  restart(): Promise<void>
}

/** `gate relay` in the lab's public network, with `circuit` for `relay_server.circuit`. */
export async function startLabRelay(lab: NatLab, circuit: Record<string, unknown> = {}): Promise<LabRelay> {
  const home = await gateHome({}, { netns: lab.ns.public })
  await writeFile(
    join(home.home, 'relay.json'),
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
  const start = async () => {
    const child = home.spawn(['relay'])
    const printed = await waitForOutput(child, /relay\.addresses:\n( {2}\S+\n)+/)
    const relayIp = PUBLIC_NET.relay.replaceAll('.', '\\.')
    const address = new RegExp(`/ip4/${relayIp}/udp/\\d+/quic-v1/p2p/\\w+`).exec(printed)?.[0]
    const nodeId = /node ID ([a-z2-7]{52})/.exec(printed)?.[1]
    if (!address || !nodeId) throw new Error(`gate relay printed no address: ${printed}`)
    return { process: child, address, nodeId }
  }
  const relay: LabRelay = {
    home,
    ...(await start()),
    restart: async () => {
      relay.process = (await start()).process
    },
  }
  return relay
}

/** A fake engine (FakeEngineOptions) as a process inside `ns`; its base URL there. */
export async function startLabEngine(
  lab: NatLab,
  ns: string,
  options: Record<string, unknown>,
): Promise<string> {
  const child = lab.spawn(ns, [process.execPath, ENGINE, JSON.stringify({ record: false, ...options })])
  return JSON.parse(await firstLine(child)).url as string
}

export interface LabNode {
  home: GateHome
  nodeId: string
  /** `http://127.0.0.1:<port>` of its OpenAI API, inside its namespace. */
  api: string
}

/**
 * `gate daemon --background` inside `ns`, keeping a reservation on `relay` (private addresses
 * allowed: the lab has no others); `config` is merged into its config.json.
 */
export async function startLabNode(
  ns: string,
  relay: LabRelay,
  config: Record<string, unknown> = {},
): Promise<LabNode> {
  const network = { p2p_host: '0.0.0.0', nat: { relays: [relay.address], allow_private_addresses: true } }
  const home = await gateHome({ ...config, network }, { netns: ns })
  const started = await home.run(['daemon', '--background'])
  if (started.code !== 0) throw new Error(`gate daemon did not start in ${ns}: ${started.stderr}`)
  const { node_id, http } = await status(home)
  return { home, nodeId: node_id, api: `http://127.0.0.1:${http.port}` }
}

export interface Status {
  node_id: string
  http: { port: number }
  nat: NatStatus
}

export async function status(home: GateHome): Promise<Status> {
  return JSON.parse(await gate(home, ['status', '--json']))
}

export async function peers(home: GateHome): Promise<PeerInfo[]> {
  return JSON.parse(await gate(home, ['peers', 'list', '--json']))
}

export async function connectionTo(home: GateHome, nodeId: string): Promise<PeerInfo['connection']> {
  return (await peers(home)).find((p) => p.node_id === nodeId)?.connection ?? null
}

/** Polls `check` every `intervalMs` until it holds; throws naming `what` after `timeoutMs`. */
export async function until(
  check: () => Promise<boolean>,
  what: string,
  { timeoutMs = 30_000, intervalMs = 250 } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(intervalMs)
  }
}

/**
 * Pairs two nodes by invite code once both hold their relay reservation: `inviter` makes the code
 * (which must carry its relayed address), `joiner` redeems it.
 */
export async function pairByInvite(inviter: GateHome, joiner: GateHome): Promise<void> {
  for (const home of [inviter, joiner]) {
    await until(async () => (await status(home)).nat.relays[0]?.reserved === true, 'a relay reservation')
  }
  const { code, addresses } = JSON.parse(await gate(inviter, ['peers', 'invite', '--json'])) as {
    code: string
    addresses: string[]
  }
  if (!addresses.some((a) => a.includes('/p2p-circuit/p2p/')))
    throw new Error(`the invite carries no relayed address: ${addresses.join(' ')}`)
  await gate(joiner, ['peers', 'join', code, '--json'])
}

/** The last lines of a daemon's log, one `time level message {fields}` each. */
export async function logTail(home: GateHome, lines = 40): Promise<string[]> {
  const text = await readFile(join(home.home, 'logs', 'daemon.log'), 'utf8').catch(() => '')
  return text.trim().split('\n').slice(-lines).map(brief)
}

/** Runs `gate …args` in the home's namespace; its stdout, or an error with its stderr. */
async function gate(home: GateHome, args: string[]): Promise<string> {
  const result = await home.run(args)
  if (result.code !== 0) throw new Error(`gate ${args.join(' ')}: ${result.stderr.trim()}`)
  return result.stdout
}

/** A pino line as `time level msg {other fields}`. */
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
