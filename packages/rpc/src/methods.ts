/**
 * The control port's methods: each one's params schema (validated by the server) and result type.
 * To add a method, add its schema to `METHODS` and its result to `MethodResults`; the compiler
 * then asks every `RpcHandlers` object for a handler.
 */

import type { NatStatus, PeerConnection, PeerInfo, ProviderKind } from '@gate/core'
import { LOG_LEVELS, ProviderConfigSchema } from '@gate/core'
import { z } from 'zod'
import { MAX_HISTORY_LIMIT } from './constants.ts'

const none = z.strictObject({})
const nonEmpty = z.string({ error: 'expected a non-empty string' }).min(1)
const flag = z.boolean({ error: 'expected true or false' })
const intRange = (min: number, max: number) =>
  z
    .int({ error: `expected integer ${min}–${max}` })
    .min(min)
    .max(max)
const provider = ProviderConfigSchema.shape

/** Params schema of every method. Params may be omitted (treated as `{}`); only named params. */
export const METHODS = {
  node_status: none,
  node_shutdown: none,
  node_restart: none,

  get_config: z.strictObject({ reveal_secrets: flag.optional() }),
  update_config: z.strictObject({
    /** A partial config, deep-merged into the current one. */
    config: z.record(z.string(), z.unknown(), { error: 'expected an object (a partial config)' }),
  }),
  validate_config: z.strictObject({
    config: z
      .unknown()
      .refine((value) => value !== undefined, { error: 'expected the config object to check' }),
  }),

  list_providers: none,
  add_provider: ProviderConfigSchema,
  remove_provider: z.strictObject({ name: nonEmpty }),
  test_provider: z
    .strictObject({
      name: nonEmpty.optional(),
      kind: provider.kind.optional(),
      url: provider.url.optional(),
      api_key: provider.api_key,
    })
    .refine((p) => p.name !== undefined || (p.kind !== undefined && p.url !== undefined), {
      error: 'expected "name" of a configured provider, or "kind" and "url" of a new one',
    }),

  get_metrics: none,
  get_logs: z.strictObject({
    lines: intRange(1, 10_000).default(200),
    level: z.enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(', ')}` }).optional(),
    /** Also the latest request records, as many as `lines` at most (the dashboard's Logs page). */
    requests: flag.optional(),
  }),
  request_history: z.strictObject({ limit: intRange(1, MAX_HISTORY_LIMIT).default(100) }),

  add_peer: z.strictObject({
    node_id: nonEmpty,
    /** A multiaddr; without one the DHT finds the peer. */
    address: nonEmpty.optional(),
  }),
  remove_peer: z.strictObject({ node_id: nonEmpty }),
  list_peers: none,
  peer_info: z.strictObject({ node_id: nonEmpty }),
  network_state: none,
  create_invite: z.strictObject({ ttl_s: intRange(10, 86_400).default(600) }),
  join_invite: z.strictObject({ code: nonEmpty }),

  create_api_key: z.strictObject({ name: nonEmpty }),
  list_api_keys: none,
  revoke_api_key: z.strictObject({ name: nonEmpty }),
  get_overview: z.strictObject({ recent: intRange(0, MAX_HISTORY_LIMIT).default(50) }),
  get_peers: none,
  detect_engines: none,

  generate_keypair: z.strictObject({ save: flag.optional() }),
  export_identity: none,
  import_identity: z.strictObject({ identity: nonEmpty }),
} as const satisfies { [M in keyof MethodResults]: z.ZodType }

export type MethodName = keyof typeof METHODS
/** What a caller passes (defaults not yet applied). */
export type MethodParams<M extends MethodName> = z.input<(typeof METHODS)[M]>
/** What a handler receives: validated params with defaults applied. */
export type HandlerParams<M extends MethodName> = z.output<(typeof METHODS)[M]>
export type MethodResult<M extends MethodName> = MethodResults[M]

export interface ProviderStatus {
  name: string
  kind: ProviderKind
  url: string
  enabled: boolean
  /** `null` until the first health check has run. */
  healthy: boolean | null
  models: string[]
  /** Circuit breaker state: `closed`, `open` or `half_open`. */
  breaker: string
  last_error: string | null
  /** ISO 8601 time of the last health check. */
  last_checked: string | null
  /** How long the last health check that answered took. */
  latency_ms: number | null
}

/** One line of `requests.jsonl`. */
export interface RequestRecord {
  id: string
  /** ISO 8601. */
  time: string
  method: string
  route: string
  model: string | null
  /** Node ID that served the request. */
  node: string | null
  provider: string | null
  status: number
  latency_ms: number
  stream: boolean
  consumer: string
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null
  error: string | null
}

export interface NodeStatus {
  node_id: string
  peer_id: string
  version: string
  uptime_s: number
  pid: number
  http: { host: string; port: number }
  control: { host: string; port: number }
  providers: { total: number; healthy: number }
  active_requests: number
  restart_required: string[]
  /** The node's public HTTPS endpoint through its relays; null without `relay.addresses`. */
  public: PublicStatus | null
  /** How the node stands behind its NAT: reachability, circuit-relay reservations. */
  nat: NatStatus
}

/** One relay a node registers with. */
export interface RelayStatus {
  address: string
  state: 'connecting' | 'registered' | 'active' | 'failed'
  /** The node's name at this relay, once registered. */
  domain: string | null
  error: string | null
}

/** The certificate a node serves relayed TLS with. */
export interface CertificateStatus {
  /** Who issued it: an ACME CA's name, or the node itself. */
  issuer: string
  self_signed: boolean
  names: string[]
  expires_at: string
  /** When it is renewed (ACME only). */
  renews_at: string | null
  /** `issuing`: the first ACME order is under way; `failed`: the last attempt failed, the current certificate stays. */
  state: 'ok' | 'issuing' | 'failed'
  error: string | null
}

/** A node's public face. */
export interface PublicStatus {
  /** `https://<node-id>.<domain>`, once a relay has given the node its name. */
  url: string | null
  relays: RelayStatus[]
  certificate: CertificateStatus | null
}

/** An API key made by `gate keys create`, with what it was used for. */
export interface ApiKeyInfo {
  name: string
  created_at: string
  last_used_at: string | null
  requests: number
  prompt_tokens: number
  completion_tokens: number
}

export interface MetricsSnapshot {
  uptime_s: number
  requests: { total: number; by_status: Record<string, number>; by_route: Record<string, number> }
  active_requests: number
  tokens: { prompt: number; completion: number }
  /** Per consumer: `local`, `key:<fingerprint>`, or `peer:<node ID>` (what that peer asked of us). */
  usage: Record<string, { requests: number; prompt_tokens: number; completion_tokens: number }>
  /** Per peer node ID: what this node's clients consumed from that peer. */
  consumed: Record<string, { requests: number; prompt_tokens: number; completion_tokens: number }>
}

export type { NatStatus, PeerConnection, PeerInfo }

/** Requests and tokens, added up. */
export interface UsageTotals {
  requests: number
  prompt_tokens: number
  completion_tokens: number
}

/** One minute of finished requests, as the dashboard's charts show it. */
export interface TrafficMinute {
  /** ISO 8601 start of the minute. */
  minute: string
  requests: number
  /** Requests answered with a status of 400 or more. */
  errors: number
  /** Latency quantiles of the minute's requests (within 19%), null when it had none. */
  p50_ms: number | null
  p95_ms: number | null
  /** Prompt and completion tokens of the minute's requests. */
  tokens: number
}

/** The dashboard's Overview in one call. */
export interface Overview {
  status: NodeStatus
  /** P2P multiaddrs. */
  p2p: string[]
  /** The last 60 minutes, oldest first; the last one is the current minute. */
  traffic: TrafficMinute[]
  /** Tokens this node's engines served (to anyone), and what its clients consumed from peers. */
  tokens: { served: UsageTotals; consumed: UsageTotals }
  /** The latest request records, newest first. */
  recent: RequestRecord[]
  /** No provider and no trusted peer yet: the dashboard offers its Setup page. */
  first_run: boolean
}

/** A trusted peer and what the two nodes exchanged since this daemon started. */
export interface PeerRow extends PeerInfo {
  /** What this node served to it. */
  served: UsageTotals
  /** What this node's clients consumed from it. */
  consumed: UsageTotals
}

/** A local engine looked for by `detect_engines`. */
export interface DetectedEngine {
  name: string
  kind: ProviderKind
  url: string
  ok: boolean
  models: string[]
  latency_ms: number
  error: string | null
  /** The name of the provider that already has its URL, if any. */
  configured_as: string | null
}

/** Result type of every method. */
export interface MethodResults {
  node_status: NodeStatus
  node_shutdown: { ok: true }
  node_restart: { ok: true }
  get_config: { config: unknown; path: string }
  update_config: { config: unknown; restart_required: string[] }
  validate_config: { valid: boolean; errors: string[] }
  list_providers: { providers: ProviderStatus[] }
  add_provider: { provider: ProviderStatus }
  remove_provider: { removed: true }
  test_provider: { ok: boolean; models: string[]; latency_ms: number; error: string | null }
  get_metrics: MetricsSnapshot
  /** `requests` only when asked for: newest first, as `request_history`. */
  get_logs: { lines: Array<Record<string, unknown>>; requests?: RequestRecord[] }
  request_history: { requests: RequestRecord[] }
  add_peer: { peer: PeerInfo }
  remove_peer: { removed: boolean }
  list_peers: { peers: PeerInfo[] }
  peer_info: { peer: PeerInfo }
  /**
   * This node and every node it knows: trusted peers and others it is connected to (the DHT);
   * and how it stands behind its NAT (reachability, relay reservations).
   */
  network_state: { self: PeerInfo; nodes: PeerInfo[]; nat: NatStatus }
  /** A one-time pairing code: this node's ID, addresses and a secret. */
  create_invite: { code: string; node_id: string; addresses: string[]; expires_at: number }
  /** Redeems an invite: the inviter now trusts this node, and this node trusts the inviter. */
  join_invite: { peer: PeerInfo }
  /** The key itself is in this answer alone: only its hash is kept. */
  create_api_key: { name: string; key: string; created_at: string }
  list_api_keys: { keys: ApiKeyInfo[] }
  revoke_api_key: { revoked: true }
  get_overview: Overview
  get_peers: { peers: PeerRow[] }
  /** Ollama and LM Studio, looked for where a new config looks for them. */
  detect_engines: { engines: DetectedEngine[] }
  /** `private_key` only when the key was not saved. */
  generate_keypair: { node_id: string; peer_id: string; private_key?: string; restart_required: string[] }
  export_identity: { identity: string }
  import_identity: { node_id: string; restart_required: string[] }
}
