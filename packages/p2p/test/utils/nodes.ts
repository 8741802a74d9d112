import { setTimeout as sleep } from 'node:timers/promises'
import { generateIdentity, type Logger } from '@gate/core'
import type { Connection } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { createP2PNode, type GateLibp2p } from '../../src/index.ts'

export type Transport = 'quic' | 'tcp'
export const TRANSPORTS: Transport[] = ['quic', 'tcp']

/** Started nodes on `host` (default 127.0.0.1) with random ports; disposing stops them all. */
export async function startNodes(count: number, host = '127.0.0.1'): Promise<GateLibp2p[] & AsyncDisposable> {
  const nodes = await Promise.all(
    Array.from({ length: count }, () => createP2PNode({ identity: generateIdentity(), host, port: 0 })),
  )
  return Object.assign(nodes, {
    [Symbol.asyncDispose]: async () => {
      await Promise.all(nodes.map((n) => n.stop()))
    },
  })
}

export function addressOf(node: GateLibp2p, transport: Transport): Multiaddr {
  const found = node
    .getMultiaddrs()
    .find((ma) => ma.getComponents().some((c) => c.name === (transport === 'quic' ? 'quic-v1' : 'tcp')))
  if (!found) throw new Error(`node has no ${transport} address`)
  return found
}

/** A new connection from `from` to `to` over `transport` (not a reused one on another transport). */
export function connect(from: GateLibp2p, to: GateLibp2p, transport: Transport): Promise<Connection> {
  return from.dial(addressOf(to, transport), { force: true, signal: AbortSignal.timeout(10_000) })
}

/** Two started nodes; disposing stops both. */
export async function startPair(): Promise<{ a: GateLibp2p; b: GateLibp2p } & AsyncDisposable> {
  const nodes = await startNodes(2)
  const [a, b] = nodes
  if (!a || !b) throw new Error('unreachable')
  return { a, b, [Symbol.asyncDispose]: () => nodes[Symbol.asyncDispose]() }
}

/** Polls `condition` every 10 ms; fails naming `what` after `timeoutMs`. */
export async function waitUntil(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

/** A logger that drops everything. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} }
