import { readFile, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import {
  ConfigError,
  createLogger,
  createOsKeyring,
  ensureDir,
  type GatePaths,
  gatePaths,
  type Keyring,
  loadOrCreateIdentity,
  peerIdToNodeId,
  resolveHome,
  writeFileAtomic,
} from '@gate/core'
import { createRelayNode, RELAY_PROTOCOL, type RelayLibp2p, relayStreamHandler } from '@gate/p2p'
import type { Logger } from 'pino'
import { CircuitPolicy } from './circuit.ts'
import { parseRelayConfig, type RelayConfig } from './config.ts'
import { BuiltinDns } from './dns/builtin.ts'
import { CloudflareDns } from './dns/cloudflare.ts'
import type { ZoneBackend } from './dns/zone.ts'
import { RelayMetrics } from './metrics.ts'
import { NodeRegistry } from './registry.ts'
import { SniRouter } from './sni-router.ts'

export interface RelayInit {
  /** Data dir. @default GATE_HOME or the platform config dir */
  home?: string
  /** @default `<home>/relay.json` */
  configPath?: string | undefined
  passphrase?: string
  keyring?: Keyring | null
  /** Also print readable logs to stdout. @default false */
  terminal?: boolean
}

/** What a running relay writes to `relay-runtime.json`, and prints on start. */
export interface RelayRuntime {
  pid: number
  node_id: string
  peer_id: string
  /** P2P multiaddrs, each ending in `/p2p/<peer_id>`: what nodes put in `relay.addresses`. */
  p2p: string[]
  domain: string
  tls: { host: string; port: number }
  /** The built-in DNS server's ports (UDP and TCP); null with the Cloudflare backend. */
  dns: { host: string; udp: number; tcp: number } | null
  metrics: { host: string; port: number }
}

/** Connections the relay's libp2p node keeps: one or two per registered node, and the DHT's. @default 20,000 */
const RELAY_MAX_CONNECTIONS = 20_000

interface Running {
  logger: Logger
  closeLogger: () => Promise<void>
  node: RelayLibp2p
  zone: ZoneBackend
  router: SniRouter
  metricsServer: Server
  runtime: RelayRuntime
}

/**
 * `gate relay`: makes Gate nodes reachable at `https://<node-id>.<domain>` while seeing only
 * ciphertext. A libp2p peer and DHT bootstrap node that nodes register with over
 * `/gate/relay/1.0.0`, a TLS listener that routes connections by SNI to the registered node over
 * `/gate/tls/1.0.0`, and the zone's DNS (built in, or at Cloudflare).
 */
export class Relay {
  readonly paths: GatePaths
  readonly configPath: string
  readonly metrics = new RelayMetrics()
  readonly #init: RelayInit
  #running: Running | undefined

  constructor(init: RelayInit = {}) {
    this.#init = init
    const home = init.home ?? resolveHome()
    this.paths = gatePaths(home)
    this.configPath = init.configPath ?? join(home, 'relay.json')
  }

  get runtime(): RelayRuntime {
    if (!this.#running) throw new Error('the relay is not running')
    return this.#running.runtime
  }

  async start(): Promise<void> {
    if (this.#running) return
    const config = await this.#loadConfig()
    await ensureDir(this.paths.home, 0o700)
    await ensureDir(this.paths.logs, 0o700)
    const { logger, close: closeLogger } = createLogger({
      file: join(this.paths.logs, 'relay.log'),
      level: config.node.log_level,
      terminal: this.#init.terminal ?? false,
    })
    await using started = new AsyncDisposableStack()
    started.defer(closeLogger)
    const { relay_server: server } = config
    const { identity } = await loadOrCreateIdentity({
      path: this.paths.identity,
      keyring: this.#init.keyring === undefined ? createOsKeyring() : this.#init.keyring,
      passphrase: this.#init.passphrase ?? process.env.GATE_PASSPHRASE,
      onWarning: (msg) => logger.warn(msg),
    })
    const zone = this.#zone(config, logger)
    await zone.start()
    started.defer(() => zone.stop())
    const registry = new NodeRegistry({
      domain: server.domain,
      publicIp: server.public_ip,
      zone,
      maxBytesPerSecond: server.limits.max_bytes_per_second_per_node,
      metrics: this.metrics,
      logger,
    })
    const { circuit } = server
    let node: RelayLibp2p | undefined
    const policy = new CircuitPolicy({
      node: () => node,
      untrustedQuota: circuit.untrusted_quota,
      metrics: this.metrics,
      logger,
    })
    node = await createRelayNode({
      identity,
      host: config.network.p2p_host,
      port: config.network.p2p_port,
      maxConnections: RELAY_MAX_CONNECTIONS,
      ...(circuit.enabled
        ? {
            circuit: {
              maxReservations: circuit.max_reservations,
              durationMs: circuit.duration * 1000,
              dataLimit: circuit.data_limit,
              maxCircuitsPerNode: circuit.max_circuits_per_node,
              denyReservation: (peer) => policy.denyReservation(peer),
            },
          }
        : {}),
    })
    started.defer(() => node.stop())
    await node.handle(
      RELAY_PROTOCOL,
      relayStreamHandler((request, nodeId) => registry.answer(request, nodeId), {
        onProtocolError: (err, connection) =>
          logger.debug(
            { peer: connection.remotePeer.toString(), err: err.message },
            'node broke the relay protocol',
          ),
      }),
    )
    // A node is unregistered when its last connection to the relay closes.
    node.addEventListener('peer:disconnect', (event) => {
      void registry.unregister(peerIdToNodeId(event.detail.toString()))
    })
    const router = new SniRouter({ node, registry, limits: server.limits, metrics: this.metrics, logger })
    started.defer(() => router.close())
    const tls = await router.listen(server.tls_host, server.tls_port)
    const metricsServer = createServer((req, res) => {
      if (req.url !== '/metrics') return void res.writeHead(404).end()
      void this.metrics.registry
        .metrics()
        .then((text) => res.writeHead(200, { 'content-type': this.metrics.registry.contentType }).end(text))
    })
    started.defer(() => new Promise<void>((resolve) => metricsServer.close(() => resolve())))
    const metricsAddress = await new Promise<AddressInfo>((resolve, reject) => {
      metricsServer.once('error', reject)
      metricsServer.listen(server.metrics.port, server.metrics.host, () =>
        resolve(metricsServer.address() as AddressInfo),
      )
    })
    const runtime: RelayRuntime = {
      pid: process.pid,
      node_id: identity.nodeId,
      peer_id: identity.peerId,
      p2p: node.getMultiaddrs().map(String),
      domain: server.domain,
      tls: { host: server.tls_host, port: tls.port },
      dns: zone instanceof BuiltinDns ? { host: server.dns.host, ...zone.ports } : null,
      metrics: { host: server.metrics.host, port: metricsAddress.port },
    }
    await writeFileAtomic(this.#runtimePath, `${JSON.stringify(runtime, null, 2)}\n`, { mode: 0o600 })
    started.move()
    this.#running = { logger, closeLogger, node, zone, router, metricsServer, runtime }
    logger.info(runtime, `gate relay ready for *.${server.domain}`)
  }

  get #runtimePath(): string {
    return join(this.paths.home, 'relay-runtime.json')
  }

  /** Stops taking connections, closes those relayed, unregisters every node and stops. */
  async stop(): Promise<void> {
    const running = this.#running
    if (!running) return
    this.#running = undefined
    running.logger.info('gate relay stopping')
    await running.router.close()
    await running.node.stop()
    await running.zone.stop()
    await new Promise<void>((resolve) => running.metricsServer.close(() => resolve()))
    await rm(this.#runtimePath, { force: true })
    running.logger.info('gate relay stopped')
    await running.closeLogger()
  }

  async #loadConfig(): Promise<RelayConfig> {
    let text: string
    try {
      text = await readFile(this.configPath, 'utf8')
    } catch {
      throw new ConfigError([
        `${this.configPath}: no relay config: write one with at least {"relay_server": {"domain": "relay.example.com", "public_ip": "203.0.113.7"}}`,
      ])
    }
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      throw new ConfigError([`${this.configPath}: not valid JSON`])
    }
    try {
      return parseRelayConfig(value)
    } catch (err) {
      if (err instanceof ConfigError)
        throw new ConfigError(err.issues.map((issue) => `${this.configPath}: ${issue}`))
      throw err
    }
  }

  #zone(config: RelayConfig, logger: Logger): ZoneBackend {
    const { relay_server: server } = config
    const { dns } = server
    if (dns.backend === 'cloudflare' && dns.cloudflare) {
      return new CloudflareDns({
        apiUrl: dns.cloudflare.api_url,
        apiToken: dns.cloudflare.api_token,
        zoneId: dns.cloudflare.zone_id,
        publicIp: server.public_ip,
      })
    }
    return new BuiltinDns({
      domain: server.domain,
      publicIp: server.public_ip,
      host: dns.host,
      port: dns.port,
      caa: dns.caa,
      metrics: this.metrics,
      onError: (err) => logger.warn({ err: err.message }, 'dns server error'),
    })
  }
}
