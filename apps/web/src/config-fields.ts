/**
 * The fields of `config.json` the Configuration page edits, by section. Providers have their own
 * page, and API keys are never sent to the browser (the daemon redacts them), so neither is here.
 * Which fields need a restart is the daemon's to say when saving; `restart` only marks them ahead.
 */
export interface ConfigField {
  /** Dotted path in the config, as validation messages name it (`network.http_port`). */
  path: string
  label: string
  kind: 'text' | 'number' | 'boolean' | 'list' | 'choice'
  choices?: readonly string[]
  help?: string
  restart?: boolean
}

export interface ConfigSection {
  title: string
  fields: ConfigField[]
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const

export const CONFIG_SECTIONS: ConfigSection[] = [
  {
    title: 'Node',
    fields: [
      { path: 'node.log_level', label: 'Log level', kind: 'choice', choices: LOG_LEVELS },
      {
        path: 'node.shutdown_grace',
        label: 'Shutdown grace (s)',
        kind: 'number',
        help: 'How long requests in flight may finish when the daemon stops',
      },
    ],
  },
  {
    title: 'Network',
    fields: [
      { path: 'network.http_port', label: 'API port', kind: 'number', restart: true },
      { path: 'network.control_port', label: 'Control port', kind: 'number', restart: true },
      { path: 'network.p2p_port', label: 'P2P port', kind: 'number', restart: true },
      { path: 'network.p2p_host', label: 'P2P listen address', kind: 'text', restart: true },
      { path: 'network.mdns', label: 'Find peers on the LAN (mDNS)', kind: 'boolean', restart: true },
      { path: 'network.max_connections', label: 'Max connections', kind: 'number', restart: true },
      { path: 'network.trusted_peers', label: 'Trusted peers', kind: 'list', help: 'One node ID per line' },
      {
        path: 'network.bootstrap',
        label: 'Bootstrap addresses',
        kind: 'list',
        help: 'One multiaddr per line',
      },
    ],
  },
  {
    title: 'Limits',
    fields: [
      { path: 'security.max_concurrent_requests', label: 'Max concurrent requests', kind: 'number' },
      { path: 'security.rate_limit.per_peer_rps', label: 'Per-peer requests per second', kind: 'number' },
      { path: 'security.rate_limit.burst', label: 'Per-peer burst', kind: 'number' },
      { path: 'security.max_body_bytes', label: 'Max body (bytes)', kind: 'number' },
      { path: 'security.request_timeout', label: 'Upstream timeout (s)', kind: 'number' },
      { path: 'security.body_timeout', label: 'Body timeout (s)', kind: 'number' },
    ],
  },
  {
    title: 'Relay',
    fields: [
      { path: 'relay.addresses', label: 'Relay addresses', kind: 'list', help: 'One multiaddr per line' },
      { path: 'relay.domain', label: 'Relay domain', kind: 'text' },
    ],
  },
  {
    title: 'Dashboard',
    fields: [
      {
        path: 'web.enabled',
        label: 'Serve this dashboard',
        kind: 'boolean',
        help: 'Turning it off takes effect at once: this page stops loading',
      },
    ],
  },
]

export const CONFIG_FIELDS: ConfigField[] = CONFIG_SECTIONS.flatMap((s) => s.fields)

/** What an input shows: text for text, numbers and lists (one item a line), a flag for checkboxes. */
export type InputValue = string | boolean

export function get(config: unknown, path: string): unknown {
  let value = config
  for (const key of path.split('.')) {
    value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined
  }
  return value
}

/** A copy of `config` with `value` at `path` (objects on the way copied, not changed). */
export function set(config: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const [key, ...rest] = path.split('.') as [string, ...string[]]
  if (rest.length === 0) return { ...config, [key]: value }
  const inner = config[key]
  const object = typeof inner === 'object' && inner !== null ? (inner as Record<string, unknown>) : {}
  return { ...config, [key]: set(object, rest.join('.'), value) }
}

export function toInput(field: ConfigField, value: unknown): InputValue {
  if (field.kind === 'boolean') return value === true
  if (field.kind === 'list') return Array.isArray(value) ? value.join('\n') : ''
  return value === undefined || value === null ? '' : String(value)
}

/**
 * The JSON value an input stands for. Text that is not a number stays text, so that validation
 * names it as typed (`expected integer 0–65535, got "abc"`) instead of an empty field.
 */
export function fromInput(field: ConfigField, input: InputValue): unknown {
  if (field.kind === 'boolean') return input === true
  const text = String(input)
  if (field.kind === 'list')
    return text
      .split('\n')
      .map((line) => line.trim())
      .filter(Boolean)
  if (field.kind === 'number') return /^-?\d+(?:\.\d+)?$/.test(text.trim()) ? Number(text) : text
  if (field.kind === 'text' && text.trim() === '') return undefined
  return text.trim()
}
