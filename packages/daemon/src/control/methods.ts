import {
  type Config,
  ConfigError,
  exportIdentity,
  generateIdentity,
  InvalidRequestError,
  NotFoundError,
  ProviderConfigSchema,
  parseConfig,
  parseExportedIdentity,
  parseNodeId,
  saveIdentity,
} from '@gate/core'
import type { RpcHandlers } from '@gate/rpc'
import type { ApiServer } from '../api/server.ts'
import type { ConfigManager } from '../config-manager.ts'
import type { Daemon } from '../daemon.ts'
import { decodeInvite } from '../invites.ts'
import { readLogTail } from '../log-file.ts'
import type { Mesh } from '../mesh.ts'
import { addTrusted, safeNodeId } from '../peers.ts'
import { probe, probeEngine } from '../providers/provider.ts'
import type { ProviderRegistry } from '../providers/registry.ts'
import type { RequestLog } from '../request-log.ts'

const VERSION = '0.1.0'
const REDACTED = '[redacted]'

export interface MethodComponents {
  daemon: Daemon
  running: () => {
    config: ConfigManager
    providers: ProviderRegistry
    requestLog: RequestLog
    api: ApiServer
    mesh: Mesh
  }
}

/** Secrets in a config (API keys) replaced by a marker: get_config never returns them unasked. */
export function redactConfig(config: Config): Config {
  return {
    ...config,
    providers: config.providers.map((p) => (p.api_key === undefined ? p : { ...p, api_key: REDACTED })),
    security: { ...config.security, api_keys: config.security.api_keys.map(() => REDACTED) },
  }
}

export function createRpcHandlers({ daemon, running }: MethodComponents): RpcHandlers {
  return {
    node_status: async () => {
      const { providers, api, config } = running()
      const list = providers.list
      return {
        node_id: daemon.nodeId,
        peer_id: daemon.identity.peerId,
        version: VERSION,
        uptime_s: Math.round(daemon.uptimeSeconds),
        pid: process.pid,
        http: daemon.runtime.http,
        control: daemon.runtime.control,
        providers: { total: list.length, healthy: list.filter((p) => p.healthy === true).length },
        active_requests: api.active,
        restart_required: [
          ...config.restartRequired,
          ...(daemon.savedNodeId !== undefined && daemon.savedNodeId !== daemon.nodeId ? ['identity'] : []),
        ],
      }
    },
    node_shutdown: async () => {
      setImmediate(() => daemon.requestShutdown())
      return { ok: true as const }
    },
    node_restart: async () => {
      setImmediate(
        () =>
          void daemon.restart().catch((err) => daemon.events.emit('restart_failed', { error: String(err) })),
      )
      return { ok: true as const }
    },
    get_config: async ({ reveal_secrets }) => {
      const config = running().config.config
      return { config: reveal_secrets ? config : redactConfig(config), path: daemon.paths.config }
    },
    update_config: async ({ config }) => {
      const result = await running().config.update(config)
      return { config: redactConfig(result.config), restart_required: result.restartRequired }
    },
    validate_config: async ({ config }) => {
      try {
        parseConfig(config)
        return { valid: true, errors: [] }
      } catch (err) {
        if (err instanceof ConfigError) return { valid: false, errors: err.issues }
        throw err
      }
    },
    list_providers: async () => ({ providers: running().providers.status() }),
    add_provider: async (params) => {
      const { config, providers } = running()
      if (config.config.providers.some((p) => p.name === params.name)) {
        throw new InvalidRequestError(`a provider named "${params.name}" already exists`, { param: 'name' })
      }
      const entry = ProviderConfigSchema.parse(params)
      await config.update(({ providers }) => ({ providers: [...providers, entry] }))
      const added = providers.get(entry.name)
      if (!added) throw new NotFoundError(`provider "${entry.name}" was not added`)
      await added.check()
      return { provider: added.status() }
    },
    test_provider: async (params) => {
      if (params.name === undefined)
        return probeEngine(ProviderConfigSchema.parse({ ...params, name: 'test' }))
      const provider = running().providers.get(params.name)
      if (!provider) throw new NotFoundError(`no provider named "${params.name}"`, { param: 'name' })
      return probe(provider)
    },
    get_metrics: async () => {
      const { requestLog, api } = running()
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
        uptime_s: Math.round(daemon.uptimeSeconds),
        requests: { total: requestLog.total, by_status: byStatus, by_route: byRoute },
        active_requests: api.active,
        tokens: { prompt, completion },
        usage: Object.fromEntries(requestLog.usage),
        consumed: Object.fromEntries(requestLog.consumed),
      }
    },
    get_logs: async ({ lines, level }) => ({
      lines: await readLogTail(daemon.paths.daemonLog, { lines, level }),
    }),
    request_history: async ({ limit }) => ({ requests: running().requestLog.recent(limit) }),
    add_peer: async ({ node_id, address }) => {
      const { config, mesh } = running()
      const nodeId = parseNodeId(node_id)
      if (nodeId === daemon.nodeId) throw new InvalidRequestError('that is this node', { param: 'node_id' })
      await addTrusted(config, nodeId)
      return { peer: await mesh.peers.add(nodeId, address) }
    },
    remove_peer: async ({ node_id }) => {
      const { config, mesh } = running()
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
    list_peers: async () => {
      const { mesh } = running()
      return { peers: mesh.peers.trusted().map((id) => mesh.peers.info(id)) }
    },
    peer_info: async ({ node_id }) => {
      const { mesh } = running()
      const peer = mesh.peers.info(parseNodeId(node_id))
      if (!peer.trusted && peer.status !== 'connected') {
        throw new NotFoundError(`unknown node ${peer.node_id}`, { param: 'node_id' })
      }
      return { peer }
    },
    network_state: async () => {
      const { mesh, providers, api, config } = running()
      const self = {
        node_id: daemon.nodeId,
        peer_id: daemon.identity.peerId,
        trusted: true,
        status: 'connected' as const,
        error: null,
        addresses: mesh.addresses(),
        models: providers.models(),
        load_factor: Math.min(1, api.active / config.config.security.max_concurrent_requests),
        rtt_ms: 0,
        last_seen: new Date().toISOString(),
        next_attempt: null,
      }
      return { self, nodes: mesh.peers.known() }
    },
    create_invite: async ({ ttl_s }) => {
      const { code, invite } = daemon.invites.create(daemon.nodeId, running().mesh.addresses(), ttl_s)
      return { code, node_id: invite.node_id, addresses: invite.addresses, expires_at: invite.expires_at }
    },
    join_invite: async ({ code }) => {
      const { config, mesh } = running()
      const invite = decodeInvite(code)
      if (invite.node_id === daemon.nodeId)
        throw new InvalidRequestError('this invite is from this node', { param: 'code' })
      await mesh.peers.pair(invite.node_id, invite.addresses, invite.secret)
      await addTrusted(config, invite.node_id)
      return { peer: await mesh.peers.add(invite.node_id) }
    },
    generate_keypair: async ({ save }) => {
      const identity = generateIdentity()
      if (save) {
        await saveIdentity({ ...daemon.keyStore, identity })
        daemon.savedNodeId = identity.nodeId
        return { node_id: identity.nodeId, peer_id: identity.peerId, restart_required: ['identity'] }
      }
      return {
        node_id: identity.nodeId,
        peer_id: identity.peerId,
        private_key: Buffer.from(identity.privateKey).toString('base64'),
        restart_required: [],
      }
    },
    export_identity: async () => ({ identity: exportIdentity(daemon.identity) }),
    import_identity: async ({ identity: text }) => {
      const identity = parseExportedIdentity(text)
      await saveIdentity({ ...daemon.keyStore, identity })
      daemon.savedNodeId = identity.nodeId
      return {
        node_id: identity.nodeId,
        restart_required: identity.nodeId === daemon.nodeId ? [] : ['identity'],
      }
    },
  }
}
