import type { AddressInfo } from 'node:net'
import { createServer, type Server, type Socket } from 'node:net'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { deadline, FrameStream, peerIdOf, TLS_PROTOCOL, tunnelDuplex } from '@gate/p2p'
import type { Libp2p } from '@libp2p/interface'
import type { Logger } from 'pino'
import { MAX_HELLO_BYTES, normalizeServerName, parseClientHello } from './client-hello.ts'
import type { RelayConfig } from './config.ts'
import type { RelayMetrics } from './metrics.ts'
import type { NodeRegistry, Registration } from './registry.ts'
import { TokenBucket } from './token-bucket.ts'

/** What may precede a whole ClientHello: its records' headers (a hello of 16 KiB in records of 1 byte would not fit; none does that). */
const MAX_PREREAD_BYTES = MAX_HELLO_BYTES + 1024
/** Source addresses whose accept rate is tracked at once; past it the oldest is forgotten. */
const MAX_TRACKED_SOURCES = 10_000

export interface SniRouterInit {
  node: Libp2p
  registry: NodeRegistry
  limits: RelayConfig['relay_server']['limits']
  metrics: RelayMetrics
  logger: Logger
}

/**
 * The relay's TLS listener. It reads a connection's ClientHello, never terminating TLS, and pipes
 * the connection to the node its server name names over a `/gate/tls` stream on that node's own
 * connection to the relay. Anything it cannot route (no hello in time, not TLS, no or unknown
 * name, too big) is closed without a handshake.
 */
export class SniRouter {
  readonly #init: SniRouterInit
  readonly #server: Server
  readonly #accepts = new Map<string, TokenBucket>()
  readonly #open = new Set<Socket>()

  constructor(init: SniRouterInit) {
    this.#init = init
    // noDelay: the relay passes on records as they come; Nagle would hold a small one (an SSE
    // chunk right after the answer's head) until the client's delayed ACK, some 40 ms.
    this.#server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.#accept(socket))
    this.#server.maxConnections = init.limits.max_connections
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject)
        resolve(this.#server.address() as AddressInfo)
      })
    })
  }

  async close(): Promise<void> {
    const closed = new Promise((resolve) => this.#server.close(resolve))
    for (const socket of this.#open) socket.destroy()
    await closed
  }

  #accept(socket: Socket): void {
    const { metrics, limits } = this.#init
    socket.on('error', () => {})
    const source = socket.remoteAddress ?? ''
    if (!this.#bucket(source).tryTake()) {
      metrics.accepted.inc({ outcome: 'refused' })
      socket.destroy()
      return
    }
    this.#open.add(socket)
    socket.once('close', () => this.#open.delete(socket))
    const chunks: Buffer[] = []
    let size = 0
    const fail = (reason: string) => {
      metrics.helloFailures.inc({ reason })
      metrics.accepted.inc({ outcome: reason === 'unknown_name' ? 'sni_miss' : 'hello_failed' })
      cleanup()
      socket.destroy()
    }
    const timer = setTimeout(() => fail('timeout'), limits.hello_timeout * 1000)
    const onData = (chunk: Buffer) => {
      chunks.push(chunk)
      size += chunk.length
      const preread = chunks.length === 1 ? chunk : Buffer.concat(chunks)
      const hello = parseClientHello(preread)
      if (hello.kind === 'need-more') {
        if (size > MAX_PREREAD_BYTES) fail('oversized')
        return
      }
      if (hello.kind === 'not-tls') return fail('not_tls')
      if (hello.kind === 'invalid')
        return fail(/ClientHello of|record length/.test(hello.reason) ? 'oversized' : 'invalid')
      const name = hello.serverName === null ? null : normalizeServerName(hello.serverName)
      if (name === null) return fail('no_sni')
      const registration = this.#init.registry.route(name)
      if (!registration) return fail('unknown_name')
      if (registration.connections >= limits.max_connections_per_node) {
        metrics.accepted.inc({ outcome: 'refused' })
        cleanup()
        socket.destroy()
        return
      }
      cleanup()
      socket.pause()
      void this.#route(socket, registration, preread)
    }
    const onEnd = () => fail('invalid')
    const cleanup = () => {
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('end', onEnd)
    }
    socket.on('data', onData)
    socket.once('end', onEnd)
  }

  /** Pipes the connection to the node, the hello already read first. */
  async #route(socket: Socket, registration: Registration, hello: Buffer): Promise<void> {
    const { node, metrics, limits, logger } = this.#init
    const started = performance.now()
    registration.connections++
    metrics.connections.inc()
    metrics.accepted.inc({ outcome: 'routed' })
    try {
      const [connection] = node.getConnections(peerIdOf(registration.nodeId))
      if (!connection) throw new Error('the node has no connection to this relay')
      const late = deadline(
        limits.hello_timeout * 1000,
        () => new Error('the node did not take the stream in time'),
      )
      const stream = await connection.newStream(TLS_PROTOCOL, { signal: late.signal }).finally(late.clear)
      const frames = new FrameStream(stream)
      await frames.write({ type: 'head', value: { client: `${socket.remoteAddress}:${socket.remotePort}` } })
      const tunnel = tunnelDuplex(frames)
      // Idle only: a completion may stream for hours, but a connection carrying nothing is let go.
      socket.setTimeout(limits.idle_timeout * 1000, () => socket.destroy(new Error('idle')))
      const toNode = this.#meter(registration, 'to_node')
      toNode.write(hello)
      await Promise.all([
        pipeline(socket, toNode, tunnel),
        pipeline(tunnel, this.#meter(registration, 'to_client'), socket),
      ])
    } catch (err) {
      logger.debug({ node: registration.nodeId, err: (err as Error).message }, 'relayed connection ended')
      socket.destroy()
    } finally {
      registration.connections--
      metrics.connections.dec()
      metrics.durations.observe((performance.now() - started) / 1000)
    }
  }

  /** Counts bytes one way, held to the node's bandwidth (shared by its connections, both ways). */
  #meter(registration: Registration, direction: 'to_node' | 'to_client'): Transform {
    const bytes = this.#init.metrics.bytes.labels({ direction })
    return new Transform({
      transform(chunk: Buffer, _encoding, done) {
        bytes.inc(chunk.length)
        const wait = registration.bandwidth.take(chunk.length)
        if (wait === 0) done(null, chunk)
        else setTimeout(() => done(null, chunk), wait)
      },
    })
  }

  /** The accept-rate bucket of a source address. */
  #bucket(source: string): TokenBucket {
    let bucket = this.#accepts.get(source)
    if (!bucket) {
      if (this.#accepts.size >= MAX_TRACKED_SOURCES)
        this.#accepts.delete(this.#accepts.keys().next().value as string)
      const rate = this.#init.limits.accepts_per_second_per_ip
      bucket = new TokenBucket(rate, Math.max(1, rate))
      this.#accepts.set(source, bucket)
    }
    return bucket
  }
}
