import {
  type Config,
  ConfigError,
  exportIdentity,
  type GatePaths,
  generateIdentity,
  type Identity,
  InvalidRequestError,
  loadFactor,
  NotFoundError,
  ProviderConfigSchema,
  parseConfig,
  parseExportedIdentity,
  parseNodeId,
  redactConfig,
} from '@gate/core'
import { type Mesh, safeNodeId } from '@gate/p2p'
import type { NodeStatus, RpcHandlers } from '@gate/rpc'
import type { Admission } from '../api/admission.ts'
import { addTrusted, type ConfigManager } from '../config-manager.ts'
import type { EventBus } from '../events.ts'
import { decodeInvite, type Invites } from '../invites.ts'
import type { ApiKeys } from '../keys.ts'
import { readLogTail } from '../log-file.ts'
import { normalizeProviderUrl, probe, probeEngine } from '../providers/provider.ts'
import { findEngines, type ProviderRegistry } from '../providers/registry.ts'
import type { PublicEndpoint } from '../public/endpoint.ts'
import type { RequestLog } from '../request-log.ts'
import type { RuntimeInfo } from '../runtime-info.ts'
import { VERSION } from '../version.ts'

/** What the control port's methods use of a running daemon. */
export interface MethodComponents {
  identity: Identity
  runtime: RuntimeInfo
  paths: GatePaths
  config: ConfigManager
  providers: ProviderRegistry
  requestLog: RequestLog
  admission: Admission
  mesh: Mesh
  keys: ApiKeys
  /** Null on a node with no relay. */
  endpoint: PublicEndpoint | null
  invites: Invites
  events: EventBus
  /** Where `detect_engines` looks for Ollama and LM Studio. @default their default URLs */
  engineUrls?: { ollama?: string; lmstudio?: string } | undefined
  /** Saves a new identity key, taken up at the next start. */
  saveIdentity: (identity: Identity) => Promise<void>
  /** The node ID of the identity last saved, if any. */
  savedNodeId: () => string | undefined
  shutdown: () => void
  restart: () => Promise<void>
}

export function createRpcHandlers(c: MethodComponents): RpcHandlers {
  const { identity, runtime, config, providers, requestLog, admission, mesh } = c
  const uptime = () => Math.round((Date.now() - Date.parse(runtime.started_at)) / 1000)
  const load = () => loadFactor(admission.active, config.config.security.max_concurrent_requests)
  const status = (): NodeStatus => {
    const list = providers.list
    const saved = c.savedNodeId()
    return {
      node_id: identity.nodeId,
      peer_id: identity.peerId,
      version: VERSION,
      uptime_s: uptime(),
      pid: runtime.pid,
      http: runtime.http,
      control: runtime.control,
      providers: { total: list.length, healthy: list.filter((p) => p.healthy === true).length },
      active_requests: admission.active,
      restart_required: [
        ...config.restartRequired,
        ...(saved !== undefined && saved !== identity.nodeId ? ['identity'] : []),
      ],
      public: c.endpoint?.status() ?? null,
      nat: mesh.nat(),
    }
  }
  return {
    node_status: async () => status(),
    node_shutdown: async () => {
      setImmediate(c.shutdown)
      return { ok: true as const }
    },
    node_restart: async () => {
      setImmediate(
        () => void c.restart().catch((err) => c.events.emit('restart_failed', { error: String(err) })),
      )
      return { ok: true as const }
    },
    get_config: async ({ reveal_secrets }) => {
      const current = config.config
      return { config: reveal_secrets ? current : redactConfig(current), path: c.paths.config }
    },
    update_config: async (params) => {
      const result = await config.update(params.config)
      return { config: redactConfig(result.config), restart_required: result.restartRequired }
    },
    validate_config: async (params) => {
      try {
        parseConfig(params.config)
        return { valid: true, errors: [] }
      } catch (err) {
        if (err instanceof ConfigError) return { valid: false, errors: err.issues }
        throw err
      }
    },
    list_providers: async () => ({ providers: providers.status() }),
    add_provider: async (params) => {
      if (config.config.providers.some((p) => p.name === params.name)) {
        throw new InvalidRequestError(`a provider named "${params.name}" already exists`, { param: 'name' })
      }
      const entry = ProviderConfigSchema.parse(params)
      await config.update((current: Config) => ({ providers: [...current.providers, entry] }))
      const added = providers.get(entry.name)
      if (!added) throw new NotFoundError(`provider "${entry.name}" was not added`)
      await added.check()
      return { provider: added.status() }
    },
    remove_provider: async ({ name }) => {
      let found = false
      await config.update((current: Config) => {
        const kept = current.providers.filter((p) => p.name !== name)
        found = kept.length !== current.providers.length
        return found ? { providers: kept } : undefined
      })
      if (!found) throw new NotFoundError(`no provider named "${name}"`, { param: 'name' })
      return { removed: true as const }
    },
    test_provider: async (params) => {
      if (params.name === undefined)
        return probeEngine(ProviderConfigSchema.parse({ ...params, name: 'test' }))
      const provider = providers.get(params.name)
      if (!provider) throw new NotFoundError(`no provider named "${params.name}"`, { param: 'name' })
      return probe(provider)
    },
    get_metrics: async () => {
      let prompt = 0
      let completion = 0
      for (const u of requestLog.usage.values()) {
        prompt += u.prompt_tokens
        completion += u.completion_tokens
      }
      const byStatus: Record<string, number> = {}
      const byRoute: Record<string, number> = {}
      for (const { route, status, count } of requestLog.counts()) {
        byStatus[status] = (byStatus[status] ?? 0) + count
        byRoute[route] = (byRoute[route] ?? 0) + count
      }
      return {
        uptime_s: uptime(),
        requests: { total: requestLog.total, by_status: byStatus, by_route: byRoute },
        active_requests: admission.active,
        tokens: { prompt, completion },
        usage: Object.fromEntries(requestLog.usage),
        consumed: Object.fromEntries(requestLog.consumed),
      }
    },
    get_logs: async ({ lines, level, requests }) => ({
      lines: await readLogTail(c.paths.daemonLog, { lines, level }),
      ...(requests ? { requests: requestLog.recent(lines) } : {}),
    }),
    request_history: async ({ limit }) => ({ requests: requestLog.recent(limit) }),
    add_peer: async ({ node_id, address }) => {
      const nodeId = parseNodeId(node_id)
      if (nodeId === identity.nodeId) throw new InvalidRequestError('that is this node', { param: 'node_id' })
      await addTrusted(config, nodeId)
      return { peer: await mesh.peers.add(nodeId, address) }
    },
    remove_peer: async ({ node_id }) => {
      const nodeId = parseNodeId(node_id)
      let untrusted = false
      await config.update(({ network: { trusted_peers: trusted } }) => {
        const kept = trusted.filter((entry) => safeNodeId(entry) !== nodeId)
        untrusted = kept.length !== trusted.length
        return untrusted ? { network: { trusted_peers: kept } } : undefined
      })
      const tracked = await mesh.peers.remove(nodeId)
      return { removed: tracked || untrusted }
    },
    list_peers: async () => ({ peers: mesh.peers.trusted().map((id) => mesh.peers.info(id)) }),
    peer_info: async ({ node_id }) => {
      const peer = mesh.peers.info(parseNodeId(node_id))
      if (!peer.trusted && peer.status !== 'connected') {
        throw new NotFoundError(`unknown node ${peer.node_id}`, { param: 'node_id' })
      }
      return { peer }
    },
    network_state: async () => {
      const self = {
        node_id: identity.nodeId,
        peer_id: identity.peerId,
        trusted: true,
        status: 'connected' as const,
        error: null,
        addresses: mesh.addresses(),
        models: providers.models(),
        load_factor: load(),
        rtt_ms: 0,
        connection: null,
        last_seen: new Date().toISOString(),
        next_attempt: null,
      }
      return { self, nodes: mesh.peers.known(), nat: mesh.nat() }
    },
    create_invite: async ({ ttl_s }) => {
      const { code, invite } = c.invites.create(identity.nodeId, mesh.addresses(), ttl_s)
      return { code, node_id: invite.node_id, addresses: invite.addresses, expires_at: invite.expires_at }
    },
    join_invite: async ({ code }) => {
      const invite = decodeInvite(code)
      if (invite.node_id === identity.nodeId)
        throw new InvalidRequestError('this invite is from this node', { param: 'code' })
      await mesh.peers.pair(invite.node_id, invite.addresses, invite.secret)
      await addTrusted(config, invite.node_id)
      return { peer: await mesh.peers.add(invite.node_id) }
    },
    create_api_key: async ({ name }) => {
      const { key, entry } = await c.keys.create(name)
      return { name: entry.name, key, created_at: entry.created_at }
    },
    list_api_keys: async () => ({
      keys: c.keys.list().map((k) => {
        const usage = requestLog.usage.get(`key:${k.name}`)
        return {
          name: k.name,
          created_at: k.created_at,
          last_used_at: k.last_used_at,
          requests: usage?.requests ?? 0,
          prompt_tokens: usage?.prompt_tokens ?? 0,
          completion_tokens: usage?.completion_tokens ?? 0,
        }
      }),
    }),
    revoke_api_key: async ({ name }) => {
      await c.keys.revoke(name)
      return { revoked: true as const }
    },
    get_overview: async ({ recent }) => {
      const consumed = { requests: 0, prompt_tokens: 0, completion_tokens: 0 }
      for (const u of requestLog.consumed.values()) {
        consumed.requests += u.requests
        consumed.prompt_tokens += u.prompt_tokens
        consumed.completion_tokens += u.completion_tokens
      }
      const current = config.config
      return {
        status: status(),
        p2p: mesh.addresses(),
        traffic: requestLog.traffic.minutes(),
        tokens: { served: { ...requestLog.served }, consumed },
        recent: requestLog.recent(recent),
        first_run: current.providers.length === 0 && current.network.trusted_peers.length === 0,
      }
    },
    get_peers: async () => {
      const none = () => ({ requests: 0, prompt_tokens: 0, completion_tokens: 0 })
      return {
        peers: mesh.peers.trusted().map((id) => ({
          ...mesh.peers.info(id),
          served: requestLog.usage.get(`peer:${id}`) ?? none(),
          consumed: requestLog.consumed.get(id) ?? none(),
        })),
      }
    },
    detect_engines: async () => {
      const configured = config.config.providers
      const found = await findEngines(c.engineUrls)
      return {
        engines: found.map((engine) => ({
          ...engine,
          configured_as: configured.find((p) => normalizeProviderUrl(p.url) === engine.url)?.name ?? null,
        })),
      }
    },
    generate_keypair: async ({ save }) => {
      const generated = generateIdentity()
      if (save) {
        await c.saveIdentity(generated)
        return { node_id: generated.nodeId, peer_id: generated.peerId, restart_required: ['identity'] }
      }
      return {
        node_id: generated.nodeId,
        peer_id: generated.peerId,
        private_key: Buffer.from(generated.privateKey).toString('base64'),
        restart_required: [],
      }
    },
    export_identity: async () => ({ identity: exportIdentity(identity) }),
    import_identity: async ({ identity: text }) => {
      const imported = parseExportedIdentity(text)
      await c.saveIdentity(imported)
      return {
        node_id: imported.nodeId,
        restart_required: imported.nodeId === identity.nodeId ? [] : ['identity'],
      }
    },
  }
}
