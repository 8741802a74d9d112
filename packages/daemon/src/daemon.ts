import { rm } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import {
  type Config,
  ConfigError,
  createOsKeyring,
  ensureDir,
  type GatePaths,
  gatePaths,
  type Identity,
  type Keyring,
  type KeyStoreInit,
  loadOrCreateIdentity,
  resolveHome,
  writeFileAtomic,
} from '@gate/core'
import type { Logger } from 'pino'
import { ApiServer, type RequestSource } from './api/server.ts'
import { ConfigManager } from './config-manager.ts'
import { IDLE_TRIM_MS, SHUTDOWN_GRACE_MS } from './constants.ts'
import { createRpcHandlers } from './control/methods.ts'
import { createControlServer } from './control/server.ts'
import { loadOrCreateControlToken } from './control-token.ts'
import { EventBus } from './events.ts'
import { Invites } from './invites.ts'
import { createLogger } from './logger.ts'
import { MemoryTrimmer } from './memory.ts'
import { Mesh } from './mesh.ts'
import { Metrics } from './metrics.ts'
import { addTrusted } from './peers.ts'
import { ProviderRegistry } from './providers/registry.ts'
import { RequestLog } from './request-log.ts'

export interface DaemonInit {
  /** Data dir. @default GATE_HOME or the platform config dir */
  home?: string
  /** @default `<home>/config.json` */
  configPath?: string | undefined
  /** Unlocks an identity key protected by a passphrase. @default process.env.GATE_PASSPHRASE */
  passphrase?: string
  /** @default the OS keyring, when one answers */
  keyring?: Keyring | null
  /** Also print readable logs to stdout. @default false */
  terminal?: boolean
  /** How long in-flight requests may finish on stop. @default SHUTDOWN_GRACE_MS */
  shutdownGraceMs?: number
  /** Called when a control client asks the daemon to shut down (`node_shutdown`). */
  onShutdownRequest?: () => void
}

/** What a running daemon writes to `daemon.json` so the CLI can find it. */
export interface RuntimeInfo {
  pid: number
  node_id: string
  peer_id: string
  /** P2P multiaddrs, each ending in `/p2p/<peer_id>`. */
  p2p: string[]
  http: { host: string; port: number }
  control: { host: string; port: number }
  started_at: string
}

/** Services that live from start to stop; rebuilt by a restart. */
interface Running {
  config: ConfigManager
  logger: Logger
  closeLogger: () => Promise<void>
  identity: Identity
  providers: ProviderRegistry
  requestLog: RequestLog
  mesh: Mesh
  api: ApiServer
  control: ReturnType<typeof createControlServer>
  trimmer: MemoryTrimmer
  runtime: RuntimeInfo
}

const LOCAL_HOST = '127.0.0.1'

/**
 * The Gate daemon: the OpenAI-compatible API, its providers and the control port, with a
 * start/stop lifecycle; `stop()` leaves nothing running.
 */
export class Daemon {
  readonly paths: GatePaths
  readonly events = new EventBus()
  readonly metrics = new Metrics()
  /** Pairing codes made by `create_invite`, valid until used, expired or the process ends. */
  readonly invites = new Invites()
  /** The node ID of the identity last saved over RPC; a restart takes it up when it is another. */
  savedNodeId: string | undefined
  readonly #init: DaemonInit
  #running: Running | undefined
  #startedAt = 0

  constructor(init: DaemonInit = {}) {
    this.#init = init
    this.paths = gatePaths(init.home ?? resolveHome(), init.configPath)
  }

  #get(): Running {
    if (!this.#running) throw new Error('daemon is not running')
    return this.#running
  }

  get nodeId(): string {
    return this.#get().identity.nodeId
  }
  get identity(): Identity {
    return this.#get().identity
  }
  get runtime(): RuntimeInfo {
    return this.#get().runtime
  }
  get config(): Config {
    return this.#get().config.config
  }
  get logger(): Logger {
    return this.#get().logger
  }

  /** Where and how the identity key is kept; identity changes are saved the same way. */
  get keyStore(): KeyStoreInit {
    return {
      path: this.paths.identity,
      keyring: this.#init.keyring === undefined ? createOsKeyring() : this.#init.keyring,
      passphrase: this.#init.passphrase ?? process.env.GATE_PASSPHRASE,
      // A key saved over RPC without a keyring or passphrase is stored in the clear: say so.
      onWarning: (msg) => this.logger.warn(msg),
    }
  }

  async start(): Promise<void> {
    if (this.#running) return
    const { paths } = this
    await ensureDir(paths.home, 0o700)
    await ensureDir(paths.logs, 0o700)
    const configManager = new ConfigManager({
      path: paths.config,
      onChange: (next, previous, restart) => this.#applyConfig(next, previous, restart),
      onInvalid: (err) => {
        this.#running?.logger.error({ issues: err.issues }, `config.json not applied: ${err.message}`)
        this.events.emit('config_error', { issues: err.issues })
      },
    })
    const config = await configManager.load()
    const { logger, close: closeLogger } = createLogger({
      file: paths.daemonLog,
      level: config.node.log_level,
      terminal: this.#init.terminal ?? false,
      onLine: (line) => this.events.emit('log', line),
    })
    // What has started so far, stopped again if a later step fails.
    let mesh: Mesh | undefined
    let api: ApiServer | undefined
    try {
      const { identity, created } = await loadOrCreateIdentity({
        ...this.keyStore,
        onWarning: (msg) => logger.warn(msg),
      })
      if (created) logger.info({ node_id: identity.nodeId }, 'created a new node identity')
      const token = await loadOrCreateControlToken(paths.controlToken)
      const providers = new ProviderRegistry()
      await providers.update(config.providers)
      const requestLog = new RequestLog(paths.requestLog, identity.nodeId)
      const { network } = config
      mesh = await listening('network.p2p_port', network.p2p_host, network.p2p_port, () =>
        Mesh.start({
          identity,
          config: () => configManager.config,
          serve: (request, response, from) =>
            api ? api.servePeer(request, response, from) : Promise.reject(new Error('starting')),
          peerCache: paths.peers,
          onPair: async (nodeId, secret) => {
            if (!this.invites.redeem(secret)) return false
            await addTrusted(configManager, nodeId)
            void mesh?.peers.add(nodeId).catch(() => {})
            return true
          },
          capabilities: () => ({
            node_id: identity.nodeId,
            supported_models: providers.models(),
            max_context_length: null,
            supports_streaming: true,
            load_factor: Math.min(
              1,
              (api?.active ?? 0) / configManager.config.security.max_concurrent_requests,
            ),
          }),
          logger,
          events: this.events,
        }),
      )
      api = new ApiServer({
        nodeId: identity.nodeId,
        mesh,
        config: () => configManager.config,
        providers,
        requestLog,
        metrics: this.metrics,
        events: this.events,
        logger,
      })
      const running = {
        config: configManager,
        logger,
        closeLogger,
        identity,
        providers,
        requestLog,
        mesh,
        api,
      } as Running
      running.control = createControlServer({
        token,
        handlers: createRpcHandlers({ daemon: this, running: () => this.#get() }),
        events: this.events,
        metrics: this.metrics,
        logger,
      })
      const httpAddress = await listening('network.http_port', LOCAL_HOST, network.http_port, () =>
        running.api.listen(LOCAL_HOST, network.http_port),
      )
      const controlAddress = await listening('network.control_port', LOCAL_HOST, network.control_port, () =>
        running.control.listen(LOCAL_HOST, network.control_port),
      )
      this.#startedAt = Date.now()
      running.runtime = {
        pid: process.pid,
        node_id: identity.nodeId,
        peer_id: identity.peerId,
        p2p: mesh.addresses(),
        http: { host: LOCAL_HOST, port: httpAddress.port },
        control: { host: LOCAL_HOST, port: controlAddress.port },
        started_at: new Date(this.#startedAt).toISOString(),
      }
      this.#running = running
      providers.start()
      configManager.start()
      running.trimmer = new MemoryTrimmer({
        activity: () => ({ finished: requestLog.total, active: running.api.active }),
        intervalMs: IDLE_TRIM_MS,
        logger,
      })
      running.trimmer.start()
      this.metrics.sources = {
        providers: () => providers.status(),
        inflight: () => ({ requests: running.api.active, streams: running.api.streams }),
        requests: () => requestLog.counts(),
        usage: () => requestLog.usage,
        consumed: () => requestLog.consumed,
        peers: () => running.mesh.peers.health(),
      }
      await writeFileAtomic(paths.runtime, `${JSON.stringify(running.runtime, null, 2)}\n`, { mode: 0o600 })
      logger.info(
        { node_id: identity.nodeId, http: running.runtime.http, control: running.runtime.control },
        `gate daemon ready: OpenAI API on http://${LOCAL_HOST}:${httpAddress.port}/v1`,
      )
      if (config.providers.length === 0) {
        logger.warn(
          'no providers configured: run `gate setup` to detect local engines; peers can still serve requests',
        )
      }
    } catch (err) {
      // For a daemon in the background, whose terminal is gone. On a terminal the command's own
      // one-line error says it; a log line there would repeat it, stack and all.
      if (!this.#init.terminal) logger.error({ err }, 'gate daemon could not start')
      await mesh?.stop()
      await api?.close(0)
      await closeLogger()
      throw err
    }
  }

  async #applyConfig(next: Config, previous: Config, restartRequired: string[]): Promise<void> {
    const running = this.#running
    if (!running) return
    running.logger.level = next.node.log_level
    await running.providers.update(next.providers)
    if (restartRequired.length > 0) {
      running.logger.warn(
        { fields: restartRequired },
        `restart the daemon to apply: ${restartRequired.join(', ')}`,
      )
    }
    running.logger.info('config reloaded')
    this.events.emit('config_changed', {
      restart_required: restartRequired,
      providers_changed: previous.providers !== next.providers,
    })
  }

  /** Runs a request that did not arrive on the local API socket (e.g. through the relay) through the same pipeline. */
  handle(req: IncomingMessage, res: ServerResponse, source: RequestSource): void {
    this.#get().api.handle(req, res, source)
  }

  get uptimeSeconds(): number {
    return this.#running ? (Date.now() - this.#startedAt) / 1000 : 0
  }

  /**
   * Stops accepting requests, from clients and from peers, lets those in flight finish within the
   * grace period (the mesh stays up for those sent to or served for peers), then stops everything.
   */
  async stop(): Promise<void> {
    const running = this.#running
    if (!running) return
    this.#running = undefined
    running.logger.info('gate daemon stopping')
    running.config.stop()
    running.trimmer.stop()
    await running.mesh.refuseRequests()
    await running.api.close(this.#init.shutdownGraceMs ?? SHUTDOWN_GRACE_MS)
    await running.mesh.stop()
    await running.control.close()
    await running.providers.stop()
    await running.requestLog.close()
    await rm(this.paths.runtime, { force: true })
    running.logger.info('gate daemon stopped')
    await running.closeLogger()
  }

  async restart(): Promise<void> {
    await this.stop()
    await this.start()
  }

  requestShutdown(): void {
    if (this.#init.onShutdownRequest) this.#init.onShutdownRequest()
    else void this.stop()
  }
}

/**
 * Runs `listen`, which binds `host:port` (`field` in the config); a port that another program
 * holds becomes an error that names the field. libp2p reports its own listen failures as one
 * `UnsupportedListenAddressesError` with the cause in its text.
 */
async function listening<T>(field: string, host: string, port: number, listen: () => Promise<T>): Promise<T> {
  try {
    return await listen()
  } catch (err) {
    const { code, name, message } = err as { code?: unknown; name?: unknown; message?: unknown }
    if (
      code === 'EADDRINUSE' ||
      (name === 'UnsupportedListenAddressesError' && /in use/i.test(String(message)))
    ) {
      throw new ConfigError(
        [`${field}: ${host}:${port} is in use (another gate daemon, with another GATE_HOME?)`],
        { cause: err },
      )
    }
    throw err
  }
}
