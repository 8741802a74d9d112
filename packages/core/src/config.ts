/**
 * The daemon's `config.json`: its schema, its defaults and validation whose messages name the
 * exact field at fault (`network.http_port: expected integer 0–65535, got "abc"`).
 */
import { isIP } from 'node:net'
import { z } from 'zod'
import { ConfigError } from './errors.ts'

/** @default 31145 */
export const DEFAULT_HTTP_PORT = 31145
/** @default 8145 */
export const DEFAULT_CONTROL_PORT = 8145
/** @default 41145 */
export const DEFAULT_P2P_PORT = 41145
/** @default 30 seconds */
export const DEFAULT_HEALTH_CHECK_INTERVAL = 30
/** Days before expiry an ACME certificate is renewed. @default 30 */
export const DEFAULT_RENEW_BEFORE_DAYS = 30
/** libp2p connections kept; beyond it the ones valued least are pruned. @default 256 */
export const DEFAULT_MAX_CONNECTIONS = 256
/** @default 16 MiB */
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
/** @default 64 */
export const DEFAULT_MAX_CONCURRENT_REQUESTS = 64
/** Seconds an upstream may be silent (before its answer, and between two chunks) before the request fails with 504. @default 300 */
export const DEFAULT_REQUEST_TIMEOUT = 300
/** Seconds a client may leave its request body stalled before the request fails with 408. @default 30 */
export const DEFAULT_BODY_TIMEOUT = 30
/** Seconds requests in flight may run on after a stop is asked for, before they are cancelled. @default 10 */
export const DEFAULT_SHUTDOWN_GRACE = 10

export const PROVIDER_KINDS = ['ollama', 'lmstudio', 'openai'] as const
export type ProviderKind = (typeof PROVIDER_KINDS)[number]

/** Where each kind of engine listens by default (the base URL an OpenAI SDK would take). */
export const DEFAULT_PROVIDER_URLS: Record<ProviderKind, string> = {
  ollama: 'http://localhost:11434/v1',
  lmstudio: 'http://localhost:1234/v1',
  openai: 'https://api.openai.com/v1',
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

const port = z.int({ error: 'expected integer 0–65535' }).min(0).max(65535)
const positiveInt = z.int({ error: 'expected a positive integer' }).min(1)
const positiveNumber = z.number({ error: 'expected a positive number' }).positive()
const nonEmpty = z.string({ error: 'expected a non-empty string' }).min(1)
const ipAddress = z
  .string({ error: 'expected an IPv4 or IPv6 address' })
  .refine((s) => isIP(s) !== 0, 'expected an IPv4 or IPv6 address')
/** A peer's multiaddr that names it: `…/p2p/<PeerId>` (base58btc or a CID). */
const peerMultiaddr = z
  .string({ error: 'expected a multiaddr ending in /p2p/<PeerId>' })
  .refine((s) => /^\/.+\/p2p\/[A-Za-z0-9]{40,}$/.test(s), 'expected a multiaddr ending in /p2p/<PeerId>')
const url = z
  .string({ error: 'expected an http(s) URL' })
  .refine((s) => URL.canParse(s) && /^https?:$/.test(new URL(s).protocol), 'expected an http(s) URL')

export const ProviderConfigSchema = z.strictObject({
  name: nonEmpty,
  kind: z.enum(PROVIDER_KINDS, { error: `expected one of ${PROVIDER_KINDS.join(', ')}` }),
  url,
  api_key: z.string({ error: 'expected a string' }).optional(),
  enabled: z.boolean().default(true),
  models: z.array(nonEmpty).optional(),
  health_check_interval: positiveNumber.default(DEFAULT_HEALTH_CHECK_INTERVAL),
})

export const ConfigSchema = z.strictObject({
  node: z
    .strictObject({
      log_level: z.enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(', ')}` }).default('info'),
      shutdown_grace: z
        .number({ error: 'expected a number of seconds' })
        .min(0)
        .default(DEFAULT_SHUTDOWN_GRACE),
    })
    .prefault({}),
  network: z
    .strictObject({
      http_port: port.default(DEFAULT_HTTP_PORT),
      control_port: port.default(DEFAULT_CONTROL_PORT),
      p2p_port: port.default(DEFAULT_P2P_PORT),
      p2p_host: ipAddress.default('0.0.0.0'),
      trusted_peers: z.array(nonEmpty).default([]),
      bootstrap: z.array(nonEmpty).default([]),
      mdns: z.boolean().default(false),
      max_connections: positiveInt.default(DEFAULT_MAX_CONNECTIONS),
      /** Reaching and being reached from behind a NAT (see the README's "NAT traversal"). */
      nat: z
        .strictObject({
          /**
           * Learn whether this node is publicly reachable (AutoNAT); when it is not, keep a
           * circuit-relay reservation on each relay (`relay.addresses` and `relays`) and advertise
           * the relayed addresses; upgrade relayed connections with trusted peers by hole punching.
           */
          enabled: z.boolean().default(true),
          /** Ask the router for port mappings (UPnP IGD). */
          upnp: z.boolean().default(false),
          /**
           * Let private addresses (RFC 1918, CGNAT's 100.64/10, …) that a relay observes take part in
           * hole punching. libp2p ignores them, which leaves nodes behind carrier-grade or nested NATs
           * relayed for good.
           */
          allow_private_addresses: z.boolean().default(false),
          /** Circuit relays besides those of `relay.addresses`: multiaddrs ending in `/p2p/<PeerId>`. */
          relays: z.array(peerMultiaddr).default([]),
        })
        .prefault({}),
    })
    .prefault({}),
  providers: z
    .array(ProviderConfigSchema)
    .default([])
    .superRefine((list, ctx) => {
      // Names the later duplicate alone: the list itself holds api keys.
      const seen = new Set<string>()
      list.forEach((provider, i) => {
        if (seen.has(provider.name))
          ctx.addIssue({
            code: 'custom',
            message: 'expected a unique provider name',
            path: [i, 'name'],
            input: provider.name,
          })
        seen.add(provider.name)
      })
    }),
  security: z
    .strictObject({
      api_keys: z.array(nonEmpty).default([]),
      rate_limit: z
        .strictObject({ per_peer_rps: positiveNumber.default(20), burst: positiveInt.default(40) })
        .prefault({}),
      max_concurrent_requests: positiveInt.default(DEFAULT_MAX_CONCURRENT_REQUESTS),
      max_body_bytes: positiveInt.default(DEFAULT_MAX_BODY_BYTES),
      request_timeout: positiveNumber.default(DEFAULT_REQUEST_TIMEOUT),
      body_timeout: positiveNumber.default(DEFAULT_BODY_TIMEOUT),
    })
    .prefault({}),
  relay: z
    .strictObject({
      /** Relays to register with: multiaddrs ending in `/p2p/<relay PeerId>`. */
      addresses: z.array(peerMultiaddr).default([]),
      /** The relay domain this node expects its name under; the relay's is taken when absent. */
      domain: nonEmpty.optional(),
      /** A CA to get a certificate from by DNS-01; a self-signed one in `certs/` without. */
      acme: z
        .strictObject({
          directory_url: url,
          email: nonEmpty.optional(),
          /** PEM file of a CA trusted for the ACME API only (a test CA such as pebble's). */
          ca_file: nonEmpty.optional(),
          renew_before_days: positiveNumber.default(DEFAULT_RENEW_BEFORE_DAYS),
        })
        .optional(),
      /** Relayed requests need one of the API keys (`security.api_keys` or `gate keys`). */
      api_keys_required: z.boolean().default(true),
    })
    .prefault({}),
  web: z.strictObject({ enabled: z.boolean().default(true) }).prefault({}),
})

export type Config = z.output<typeof ConfigSchema>
export type ConfigInput = z.input<typeof ConfigSchema>
export type ProviderConfig = z.output<typeof ProviderConfigSchema>
export type SecurityConfig = Config['security']

/** Validates a parsed config object, filling defaults; throws ConfigError naming every bad field. */
export function parseConfig(value: unknown): Config {
  return parseWith(ConfigSchema, value)
}

/** Validates `value` against a config schema (the daemon's, the relay's) with messages that name each bad field. */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value, { reportInput: true })
  if (result.success) return result.data
  throw new ConfigError(result.error.issues.map(formatIssue))
}

/** Parses and validates the text of a config file. */
export function parseConfigText(text: string): Config {
  return parseConfigFile(text).config
}

/**
 * Parses and validates the text of a config file, returning also the file's own JSON (no defaults
 * filled in): what edits merge into, so that the rest of the file stays as it was written.
 */
export function parseConfigFile(text: string): { config: Config; json: Record<string, unknown> } {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    // JSON.parse's own message quotes the text around the fault, which may be a secret: only
    // where the fault is is kept.
    const where = /line (\d+) column (\d+)/.exec((err as Error).message)
    const at = where ? ` at line ${where[1]}, column ${where[2]}` : ''
    throw new ConfigError([`config is not valid JSON${at}`])
  }
  // Validated first: a config is a JSON object.
  return { config: parseConfig(value), json: value as Record<string, unknown> }
}

export function defaultConfig(): Config {
  return parseConfig({})
}

function formatIssue(issue: z.core.$ZodIssue): string {
  const field =
    issue.path.length > 0
      ? issue.path
          .map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`))
          .join('')
      : 'config'
  if (issue.code === 'unrecognized_keys')
    return `${field}: unknown field ${issue.keys.map((k) => `"${k}"`).join(', ')}`
  return `${field}: ${issue.message}, got ${describeInput(issue.path, 'input' in issue ? issue.input : undefined)}`
}

/** Fields whose values are secrets, at any depth: never shown in messages, redacted in the daemon's log. */
export const SECRET_FIELDS: ReadonlySet<string> = new Set([
  'api_key',
  'api_keys',
  'token',
  'private_key',
  'passphrase',
  'authorization',
])

/** Longest `got …` value shown. */
const MAX_INPUT_CHARS = 60

/**
 * The `got …` part of a validation message (config here, RPC params in @gate/rpc), which the
 * daemon logs and streams on `/events`, so it never holds a secret: a value in or under a secret
 * field shows only its type (`[redacted number]`), an object or array only its kind, as it may
 * hold secrets under any name, and a URL no user name, password or credential-like query value.
 */
export function describeInput(path: readonly PropertyKey[], input: unknown): string {
  if (input === undefined) return 'nothing'
  const type = input === null ? 'null' : Array.isArray(input) ? 'array' : typeof input
  if (path.some((k) => typeof k === 'string' && SECRET_FIELDS.has(k.toLowerCase())))
    return `[redacted ${type}]`
  if (type === 'array') return 'an array'
  if (type === 'object') return 'an object'
  const text = JSON.stringify(typeof input === 'string' ? withoutCredentials(input) : input) ?? String(input)
  return text.length > MAX_INPUT_CHARS ? `${text.slice(0, MAX_INPUT_CHARS)}…` : text
}

function withoutCredentials(text: string): string {
  const url = URL.parse(text)
  if (!url || (url.username === '' && url.password === '')) return redactUrl(text)
  url.username = ''
  url.password = ''
  return redactUrl(url.href)
}

/** What replaces a secret in a config shown to a user. */
const REDACTED = '[redacted]'

/** Query parameters that carry credentials (`?key=…`, `?api_key=…`, `?token=…`, a signature). */
const SECRET_QUERY = /key|token|secret|pass|auth|sig/i

/** A URL with its user name, password and credential-like query values replaced by a marker. */
export function redactUrl(text: string): string {
  const url = URL.parse(text)
  if (!url) return text
  let changed = false
  if (url.username !== '' || url.password !== '') {
    url.username = REDACTED
    url.password = ''
    changed = true
  }
  for (const [name] of url.searchParams) {
    if (SECRET_QUERY.test(name)) {
      url.searchParams.set(name, REDACTED)
      changed = true
    }
  }
  return changed ? url.href : text
}

/**
 * A config with its secrets replaced by a marker: API keys, and credentials in provider URLs.
 * What `get_config` and `gate config show` return unless secrets are asked for.
 */
export function redactConfig(config: Config): Config {
  return {
    ...config,
    providers: config.providers.map((p) => ({
      ...p,
      url: redactUrl(p.url),
      ...(p.api_key === undefined ? {} : { api_key: REDACTED }),
    })),
    security: { ...config.security, api_keys: config.security.api_keys.map(() => REDACTED) },
  }
}

/** Which top-level changes need a restart to apply; all others apply live. */
export function restartRequiredChanges(before: Config, after: Config): string[] {
  const changed: string[] = []
  for (const key of [
    'http_port',
    'control_port',
    'p2p_port',
    'p2p_host',
    'mdns',
    'max_connections',
  ] as const) {
    if (before.network[key] !== after.network[key]) changed.push(`network.${key}`)
  }
  if (JSON.stringify(before.network.nat) !== JSON.stringify(after.network.nat)) changed.push('network.nat')
  for (const key of ['addresses', 'domain', 'acme'] as const) {
    if (JSON.stringify(before.relay[key]) !== JSON.stringify(after.relay[key])) changed.push(`relay.${key}`)
  }
  return changed
}
