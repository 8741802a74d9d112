/**
 * Config files (parseConfigText, packages/core/src/config.ts): valid configs with one field wrong
 * at any section, the text cut or edited, text that is not JSON, and JSON nested thousands deep.
 * Every config carries secrets (API keys, credentials in provider URLs) that must never show in a
 * message: the daemon logs validation errors and streams them on `/events`.
 *
 * Properties: only ConfigError comes out, and its message holds no secret; a config that parses
 * is one: parsing it again gives it back unchanged.
 */
import fc from 'fast-check'
import { ConfigError, parseConfig, parseConfigText } from '../packages/core/src/index.ts'
import {
  anyJson,
  applyEdit,
  awkwardString,
  byteEdit,
  deepJson,
  ensure,
  mutate,
  mutation,
  onlyThrows,
  type Target,
} from './lib.ts'

/** Marks the secrets, so a message that shows one is caught. */
const SECRET = 'S3CR3T'

const secret = fc.nat(999).map((n) => `${SECRET}${n}`)

const provider = fc.record(
  {
    name: awkwardString,
    kind: fc.constantFrom('ollama', 'lmstudio', 'openai', 'vllm'),
    url: fc.oneof(
      fc.constantFrom('http://localhost:11434/v1', 'https://api.example.com/v1', 'ftp://x', 'localhost:1234'),
      // Credentials in the URL, in a valid one or not.
      fc
        .tuple(
          fc.constantFrom('http', 'https', 'ftp', 'htp'),
          secret,
          fc.constantFrom('@', '?key=', '?access_token=', '?x=1&sig='),
        )
        .map(([scheme, s, where]) =>
          where === '@' ? `${scheme}://user:${s}@h.example/v1` : `${scheme}://h.example/v1${where}${s}`,
        ),
      awkwardString,
    ),
    api_key: fc.oneof(
      secret,
      secret.map((s) => [s]),
      secret.map((s) => ({ value: s })),
    ),
    enabled: fc.boolean(),
    models: fc.array(awkwardString, { maxLength: 3 }),
    health_check_interval: fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.nat()),
  },
  { requiredKeys: ['name', 'kind', 'url'] },
)

const config = fc.record(
  {
    node: fc.record(
      {
        log_level: fc.constantFrom('info', 'warn', 'loud'),
        shutdown_grace: fc.integer({ min: -1, max: 60 }),
      },
      { requiredKeys: [] },
    ),
    network: fc.record(
      {
        http_port: fc.integer({ min: -1, max: 65_536 }),
        control_port: fc.integer({ min: 0, max: 65_535 }),
        p2p_host: fc.oneof(fc.ipV4(), fc.ipV6(), awkwardString),
        trusted_peers: fc.array(awkwardString, { maxLength: 3 }),
        bootstrap: fc.array(awkwardString, { maxLength: 2 }),
        mdns: fc.boolean(),
        max_connections: fc.integer({ min: 0, max: 10_000 }),
      },
      { requiredKeys: [] },
    ),
    providers: fc.array(provider, { maxLength: 3 }),
    security: fc.record(
      {
        api_keys: fc.array(fc.oneof(secret, fc.constant('')), { maxLength: 3 }),
        rate_limit: fc.record({ per_peer_rps: fc.nat(100), burst: fc.nat(100) }, { requiredKeys: [] }),
        max_body_bytes: fc.integer({ min: 0, max: 2 ** 31 }),
        request_timeout: fc.double({ noNaN: true, noDefaultInfinity: true }),
      },
      { requiredKeys: [] },
    ),
    relay: fc.record(
      { addresses: fc.array(awkwardString, { maxLength: 2 }), domain: awkwardString },
      { requiredKeys: [] },
    ),
    web: fc.record({ enabled: fc.boolean() }),
  },
  { requiredKeys: [] },
)

/** A config with one field wrong, at the top or in a section. */
const mutated = fc
  .tuple(config, fc.constantFrom('config', 'node', 'network', 'providers', 'security', 'relay'), mutation)
  .map(([c, section, change]) => {
    const value = (c as Record<string, unknown>)[section]
    if (section === 'config' || typeof value !== 'object' || value === null) return mutate(c, change)
    if (Array.isArray(value))
      return {
        ...c,
        [section]: value.map((p: Record<string, unknown>, i) => (i === 0 ? mutate(p, change) : p)),
      }
    return { ...c, [section]: mutate(value as Record<string, unknown>, change) }
  })

/**
 * The text of a config file. `edited`: a byte changed or the text cut, which may leave a URL
 * that no longer parses, whose query no redaction can find: only the error type is checked then.
 */
const file: fc.Arbitrary<{ text: string; edited: boolean }> = fc.oneof(
  { weight: 60, arbitrary: mutated.map((c) => ({ text: JSON.stringify(c, null, 2), edited: false })) },
  {
    weight: 20,
    arbitrary: fc.tuple(mutated, byteEdit).map(([c, edit]) => ({
      text: Buffer.from(applyEdit(Buffer.from(JSON.stringify(c)), edit)).toString(),
      edited: true,
    })),
  },
  { weight: 10, arbitrary: anyJson.map((v) => ({ text: JSON.stringify(v) ?? '', edited: false })) },
  {
    weight: 10,
    arbitrary: fc.string({ unit: 'binary', maxLength: 64 }).map((text) => ({ text, edited: false })),
  },
  // Costly to parse (tens of ms at 20,000 deep): rare.
  { weight: 1, arbitrary: deepJson.map((text) => ({ text, edited: false })) },
)

export async function createTarget(): Promise<Target<{ text: string; edited: boolean }>> {
  return {
    arbitrary: file,
    check({ text, edited }) {
      const parsed = onlyThrows(
        () => parseConfigText(text),
        (err) => err instanceof ConfigError,
      )
      if (!parsed.ok) {
        const { message } = parsed.error as ConfigError
        ensure(edited || !message.includes(SECRET), `a secret in the message: ${message}`)
        return
      }
      ensure(
        JSON.stringify(parseConfig(parsed.value)) === JSON.stringify(parsed.value),
        'a parsed config parses to something else',
      )
    },
  }
}
