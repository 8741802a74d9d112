import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import {
  type Config,
  ConfigError,
  createLogger,
  createOsKeyring,
  ensureDir,
  type GatePaths,
  gatePaths,
  type Keyring,
  type KeyStoreInit,
  loadFactor,
  loadOrCreateIdentity,
  resolveHome,
  saveIdentity,
  writeFileAtomic,
} from '@gate/core'
import { Mesh } from '@gate/p2p'
import { WEB_DIST } from '@gate/web'
import type { Logger } from 'pino'
import { Admission } from './api/admission.ts'
import { openAiErrorBody, statusOf } from './api/errors.ts'
import { servePeer } from './api/from-peer.ts'
import { Pipeline } from './api/pipeline.ts'
import { ApiServer } from './api/server.ts'
import { addTrusted, ConfigManager } from './config-manager.ts'
import { createRpcHandlers } from './control/methods.ts'
import { ControlServer } from './control/server.ts'
import { loadOrCreateControlToken } from './control-token.ts'
import { apiConnectionCap } from './descriptors.ts'
import { EventBus } from './events.ts'
import { Invites } from './invites.ts'
import { ApiKeys } from './keys.ts'
import { Metrics } from './metrics.ts'
import { detectEngines, ProviderRegistry } from './providers/registry.ts'
import type { PublicEndpoint } from './public/endpoint.ts'
import { RequestLog } from './request-log.ts'
import type { RuntimeInfo } from './runtime-info.ts'
import { VERSION } from './version.ts'

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
  /** Called when a control client asks the daemon to shut down (`node_shutdown`). */
  onShutdownRequest?: () => void
  /**
   * Where a new config looks for local engines, by kind. @default each kind's default URL
   * (Ollama on 11434, LM Studio on 1234)
   */
  engineUrls?: { ollama?: string; lmstudio?: string }
  /** The built dashboard the control port serves. @default `@gate/web`'s `WEB_DIST` */
  webDist?: string
}

/** Services that live from start to stop; rebuilt by a restart. */
interface Running {
  config: ConfigManager
  logger: Logger
  closeLogger: () => Promise<void>
  providers: ProviderRegistry
  requestLog: RequestLog
  mesh: Mesh
  pipeline: Pipeline
  api: ApiServer
  control: ControlServer
  keys: ApiKeys
  /** Null on a node with no relay. */
  endpoint: PublicEndpoint | null
  runtime: RuntimeInfo
}

const LOCAL_HOST = '127.0.0.1'

/**
 * The Gate daemon: the OpenAI-compatible API, its providers, the mesh of trusted peers and the
 * control port, with a start/stop lifecycle; `stop()` leaves nothing running.
 */
export class Daemon {
  readonly paths: GatePaths
  readonly events = new EventBus()
  readonly metrics = new Metrics()
  /** Pairing codes made by `create_invite`, valid until used, expired or the process ends. */
  readonly #invites = new Invites()
  /** The node ID of the identity last saved over RPC; a restart takes it up when it is another. */
  #savedNodeId: string | undefined
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
    return this.#get().runtime.node_id
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
  #keyStore(logger: Logger): KeyStoreInit {
    return {
      path: this.paths.identity,
      keyring: this.#init.keyring === undefined ? createOsKeyring() : this.#init.keyring,
      passphrase: this.#init.passphrase ?? process.env.GATE_PASSPHRASE,
      // A key saved without a keyring or passphrase is stored in the clear: say so.
      onWarning: (msg) => logger.warn(msg),
    }
  }

  async start(): Promise<void> {
    if (this.#running) return
    const { paths, events } = this
    await ensureDir(paths.home, 0o700)
    await ensureDir(paths.logs, 0o700)
    const config = new ConfigManager({
      path: paths.config,
      detect: () => detectEngines(this.#init.engineUrls),
      onChange: (next, previous, restart) => this.#applyConfig(next, previous, restart),
      onInvalid: (err) => {
        this.#running?.logger.error({ issues: err.issues }, `config.json not applied: ${err.message}`)
        events.emit('config_error', { issues: err.issues })
      },
    })
    const { config: initial, created: fresh } = await config.load()
    const { logger, close: closeLogger } = createLogger({
      file: paths.daemonLog,
      level: initial.node.log_level,
      terminal: this.#init.terminal ?? false,
      onLine: (line) => events.emit('log', line),
    })
    // What has started so far, stopped again if a later step fails; kept once all has.
    await using started = new AsyncDisposableStack()
    started.defer(closeLogger)
    try {
      const keyStore = this.#keyStore(logger)
      const { identity, created } = await loadOrCreateIdentity(keyStore)
      if (created) logger.info({ node_id: identity.nodeId }, 'created a new node identity')
      const token = await loadOrCreateControlToken(paths.controlToken)
      const providers = new ProviderRegistry()
      await providers.update(initial.providers)
      started.defer(() => providers.stop())
      const requestLog = new RequestLog(paths.requestLog, identity.nodeId)
      started.defer(() => requestLog.close())
      const admission = new Admission()
      const keys = new ApiKeys(join(paths.home, 'keys.json'))
      await keys.load()
      started.defer(() => keys.flush())
      const { network } = initial
      const mesh = await listening('network.p2p_port', network.p2p_host, network.p2p_port, () =>
        Mesh.start({
          identity,
          config: () => config.config,
          peerCache: paths.peers,
          capabilities: () => ({
            node_id: identity.nodeId,
            supported_models: providers.models(),
            max_context_length: null,
            supports_streaming: true,
            load_factor: loadFactor(admission.active, config.config.security.max_concurrent_requests),
          }),
          onPair: async (nodeId, secret) => {
            if (!this.#invites.redeem(secret)) return false
            await addTrusted(config, nodeId)
            return true
          },
          answer: (error) => ({
            head: { status: statusOf(error.code), headers: { 'content-type': 'application/json' } },
            body: new TextEncoder().encode(openAiErrorBody(error)),
          }),
          logger,
          events,
        }),
      )
      started.defer(() => mesh.stop())
      const pipeline = new Pipeline({
        nodeId: identity.nodeId,
        config: () => config.config,
        admission,
        keys,
        providers,
        peers: mesh.peers,
        mesh,
        requestLog,
        metrics: this.metrics,
        events,
        logger,
      })
      await mesh.serve((request, response, node) => servePeer(pipeline, request, response, node))
      // Only a node with relays loads the public endpoint, and with it the ACME and X.509
      // libraries: tens of MB resident that a node without one would hold for nothing.
      let endpoint: PublicEndpoint | null = null
      if (initial.relay.addresses.length > 0) {
        const { PublicEndpoint: Endpoint } = await import('./public/endpoint.ts')
        const relayed = new Endpoint({
          node: mesh.node,
          identity,
          relay: initial.relay,
          certsDir: paths.certs,
          acmeCa: initial.relay.acme?.ca_file
            ? await readFile(initial.relay.acme.ca_file, 'utf8')
            : undefined,
          door: pipeline,
          logger,
        })
        await relayed.start()
        started.defer(() => relayed.stop())
        endpoint = relayed
      }
      const api = new ApiServer({ door: pipeline, maxConnections: apiConnectionCap(), logger })
      started.defer(() => api.close())
      const httpAddress = await listening('network.http_port', LOCAL_HOST, network.http_port, () =>
        api.listen(LOCAL_HOST, network.http_port),
      )
      this.#startedAt = Date.now()
      const runtime: RuntimeInfo = {
        pid: process.pid,
        node_id: identity.nodeId,
        peer_id: identity.peerId,
        p2p: mesh.addresses(),
        http: { host: LOCAL_HOST, port: httpAddress.port },
        control: { host: LOCAL_HOST, port: 0 },
        started_at: new Date(this.#startedAt).toISOString(),
      }
      const control = new ControlServer({
        token,
        handlers: createRpcHandlers({
          identity,
          runtime,
          paths,
          config,
          providers,
          requestLog,
          admission,
          mesh,
          keys,
          endpoint,
          invites: this.#invites,
          events,
          engineUrls: this.#init.engineUrls,
          saveIdentity: async (next) => {
            await saveIdentity({ ...keyStore, identity: next })
            this.#savedNodeId = next.nodeId
          },
          savedNodeId: () => this.#savedNodeId,
          shutdown: () => this.requestShutdown(),
          restart: () => this.restart(),
        }),
        events,
        metrics: this.metrics,
        logger,
        dashboard: { dist: this.#init.webDist ?? WEB_DIST, enabled: () => config.config.web.enabled },
      })
      started.defer(() => control.close())
      const controlAddress = await listening('network.control_port', LOCAL_HOST, network.control_port, () =>
        control.listen(LOCAL_HOST, network.control_port),
      )
      runtime.control.port = controlAddress.port
      providers.start()
      config.start()
      started.defer(() => config.stop())
      this.metrics.sources = {
        providers: () => providers.status(),
        inflight: () => ({ requests: admission.active, streams: pipeline.streams }),
        requests: () => requestLog.counts(),
        usage: () => requestLog.usage,
        consumed: () => requestLog.consumed,
        peers: () => mesh.peers.views(),
      }
      await writeFileAtomic(paths.runtime, `${JSON.stringify(runtime, null, 2)}\n`, { mode: 0o600 })
      started.move()
      this.#running = {
        config,
        logger,
        closeLogger,
        providers,
        requestLog,
        mesh,
        pipeline,
        api,
        control,
        keys,
        endpoint,
        runtime,
      }
      logger.info(
        { node_id: identity.nodeId, version: VERSION, http: runtime.http, control: runtime.control },
        `gate daemon ready: OpenAI API on http://${LOCAL_HOST}:${httpAddress.port}/v1`,
      )
      for (const provider of fresh?.providers ?? []) {
        logger.info(
          { provider: provider.name, url: provider.url },
          `new config: found ${provider.kind} at ${provider.url}`,
        )
      }
      if (initial.providers.length === 0) {
        logger.warn(
          'no providers configured: run `gate setup` to detect local engines; peers can still serve requests',
        )
      }
    } catch (err) {
      // For a daemon in the background, whose terminal is gone. On a terminal the command's own
      // one-line error says it; a log line there would repeat it, stack and all.
      if (!this.#init.terminal) logger.error({ err }, 'gate daemon could not start')
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

  /**
   * Stops accepting requests, from clients and from peers, lets those in flight finish within the
   * grace period (the mesh stays up for those sent to or served for peers), cancels the rest with
   * an error their clients can read, then stops everything.
   */
  async stop(): Promise<void> {
    const running = this.#running
    if (!running) return
    this.#running = undefined
    running.logger.info('gate daemon stopping')
    running.config.stop()
    running.api.stopAccepting()
    await running.mesh.refuseRequests()
    await running.pipeline.drain(running.config.config.node.shutdown_grace * 1000)
    running.api.close()
    await running.endpoint?.stop()
    await running.mesh.stop()
    await running.control.close()
    await running.providers.stop()
    await running.requestLog.close()
    await running.keys.flush()
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
        {
          cause: err,
        },
      )
    }
    throw err
  }
}
