import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  DEFAULT_CONTROL_PORT,
  DEFAULT_HTTP_PORT,
  DEFAULT_P2P_PORT,
  defaultConfig,
  parseConfig,
  parseConfigText,
  redactConfig,
  restartRequiredChanges,
} from '../src/config.ts'
import { ConfigError } from '../src/errors.ts'

function issuesOf(value: unknown): string[] {
  try {
    parseConfig(value)
  } catch (err) {
    assert.ok(err instanceof ConfigError)
    assert.equal(err.message, err.issues.join('; '))
    return err.issues
  }
  assert.fail('expected a ConfigError')
}

describe('config', () => {
  it('fills every default from an empty object', () => {
    const config = defaultConfig()
    assert.equal(config.network.http_port, DEFAULT_HTTP_PORT)
    assert.equal(config.network.control_port, DEFAULT_CONTROL_PORT)
    assert.equal(config.network.p2p_port, DEFAULT_P2P_PORT)
    assert.equal(config.network.p2p_host, '0.0.0.0')
    assert.equal(config.node.log_level, 'info')
    assert.deepEqual(config.providers, [])
    assert.deepEqual(config.security.api_keys, [])
    assert.equal(config.web.enabled, true)
  })

  it('fills provider defaults and keeps what is given', () => {
    const config = parseConfig({
      providers: [{ name: 'o', kind: 'ollama', url: 'http://localhost:11434', models: ['a'] }],
    })
    assert.deepEqual(config.providers[0], {
      name: 'o',
      kind: 'ollama',
      url: 'http://localhost:11434',
      models: ['a'],
      enabled: true,
      health_check_interval: 30,
    })
  })

  it('names the exact field of every problem, with what it got', () => {
    assert.deepEqual(issuesOf({ network: { http_port: 'abc' } }), [
      'network.http_port: expected integer 0–65535, got "abc"',
    ])
    assert.deepEqual(
      issuesOf({ network: { control_port: 70000, max_connections: 0, p2p_host: 'localhost' } }),
      [
        'network.control_port: expected integer 0–65535, got 70000',
        'network.p2p_host: expected an IPv4 or IPv6 address, got "localhost"',
        'network.max_connections: expected a positive integer, got 0',
      ],
    )
    assert.equal(parseConfig({ network: { p2p_host: '::' } }).network.p2p_host, '::')
    assert.deepEqual(issuesOf({ providers: [{ name: '', kind: 'ollama', url: 'ftp://x' }] }), [
      'providers[0].name: expected a non-empty string, got ""',
      'providers[0].url: expected an http(s) URL, got "ftp://x"',
    ])
    assert.deepEqual(issuesOf({ node: { log_level: 'loud' }, extra: 1 }), [
      'node.log_level: expected one of trace, debug, info, warn, error, fatal, got "loud"',
      'config: unknown field "extra"',
    ])
    assert.deepEqual(issuesOf({ security: { api_keys: ['ok', 5] } }), [
      'security.api_keys[1]: expected a non-empty string, got [redacted number]',
    ])
  })

  it('refuses two providers with one name, naming the duplicate', () => {
    const provider = { name: 'same', kind: 'openai', url: 'http://127.0.0.1:1' }
    assert.deepEqual(issuesOf({ providers: [provider, { ...provider, name: 'other' }, provider] }), [
      'providers[2].name: expected a unique provider name, got "same"',
    ])
  })

  it('never echoes a secret in a validation message', () => {
    const provider = { name: 'a', kind: 'openai', url: 'http://127.0.0.1:1' }
    const duplicate = issuesOf({
      providers: [
        { ...provider, api_key: 'sk-secret-1' },
        { ...provider, api_key: 'sk-secret-2' },
      ],
    })
    assert.deepEqual(duplicate, ['providers[1].name: expected a unique provider name, got "a"'])
    const cases: Array<[unknown, RegExp]> = [
      [
        { providers: [{ ...provider, api_key: 12345 }] },
        /^providers\[0\]\.api_key: expected a string, got \[redacted number\]$/,
      ],
      [
        { providers: [{ ...provider, api_key: { value: 'sk-secret-3' } }] },
        /^providers\[0\]\.api_key: expected a string, got \[redacted object\]$/,
      ],
      [{ security: { api_keys: 'sk-secret-4' } }, /^security\.api_keys: .*, got \[redacted string\]$/],
      [
        { security: { api_keys: ['sk-secret-5', ''] } },
        /^security\.api_keys\[1\]: expected a non-empty string, got \[redacted string\]$/,
      ],
      [{ providers: { name: 'a', api_key: 'sk-secret-6' } }, /^providers: .*, got an object$/],
      [{ security: ['sk-secret-7'] }, /^security: .*, got an array$/],
      [
        { providers: [{ ...provider, url: 'ftp://h/v1?api_key=sk-secret-8' }] },
        /^providers\[0\]\.url: expected an http\(s\) URL, got "ftp:\/\/h\/v1\?api_key=%5Bredacted%5D"$/,
      ],
    ]
    for (const [config, expected] of cases) {
      const issues = issuesOf(config)
      assert.equal(issues.length, 1, issues.join('; '))
      assert.match(issues[0] ?? '', expected)
      assert.doesNotMatch(issues[0] ?? '', /sk-secret/)
    }
  })

  it('reports a file that is not JSON as a config error, quoting none of it', () => {
    assert.throws(
      () => parseConfigText('{"network": {'),
      (err) => err instanceof ConfigError && /^config is not valid JSON/.test(err.message),
    )
    for (const text of ['{"security": {"api_keys": [gk-SECRET-abc]}}', '{"a": 1,\n "key": sk-SECRET\n}']) {
      assert.throws(
        () => parseConfigText(text),
        (err) => err instanceof ConfigError && !/SECRET/.test(err.message) && err.cause === undefined,
      )
    }
    assert.throws(() => parseConfigText('{"a"'), /config is not valid JSON at line 1, column 5$/)
    assert.equal(parseConfigText('{"node":{"log_level":"warn"}}').node.log_level, 'warn')
  })

  it('network.nat: on by default, UPnP and private addresses off, relays checked for their PeerId', () => {
    assert.deepEqual(defaultConfig().network.nat, {
      enabled: true,
      upnp: false,
      allow_private_addresses: false,
      relays: [],
    })
    const relay =
      '/ip4/203.0.113.7/udp/41145/quic-v1/p2p/12D3KooWLipR2ojgX98u2p2AEBujRaukziTHzKV8VZkrafNrjF1v'
    assert.deepEqual(parseConfig({ network: { nat: { relays: [relay] } } }).network.nat.relays, [relay])
    assert.deepEqual(
      issuesOf({ network: { nat: { enabled: 'yes', relays: ['/ip4/203.0.113.7/tcp/41145'], upnp: 1 } } }),
      [
        'network.nat.enabled: Invalid input: expected boolean, received string, got "yes"',
        'network.nat.upnp: Invalid input: expected boolean, received number, got 1',
        'network.nat.relays[0]: expected a multiaddr ending in /p2p/<PeerId>, got "/ip4/203.0.113.7/tcp/41145"',
      ],
    )
    assert.deepEqual(issuesOf({ network: { nat: { stun: true } } }), ['network.nat: unknown field "stun"'])
    const after = parseConfig({ network: { nat: { allow_private_addresses: true } } })
    assert.deepEqual(restartRequiredChanges(defaultConfig(), after), ['network.nat'])
  })

  it('says which changes need a restart', () => {
    const before = defaultConfig()
    const after = parseConfig({
      network: { http_port: 1, p2p_host: '127.0.0.1', mdns: true, trusted_peers: ['x'] },
      security: { max_concurrent_requests: 2 },
    })
    assert.equal(before.network.mdns, false, 'mDNS is off unless asked for')
    assert.deepEqual(restartRequiredChanges(before, after), [
      'network.http_port',
      'network.p2p_host',
      'network.mdns',
    ])
    assert.deepEqual(restartRequiredChanges(before, defaultConfig()), [])
  })

  it('redacts API keys and credentials in provider URLs, and nothing else', () => {
    const config = parseConfig({
      providers: [
        {
          name: 'a',
          kind: 'openai',
          url: 'https://user:pass@api.example.com/v1?key=s3cret&api-version=2024',
          api_key: 'sk-1',
        },
        { name: 'b', kind: 'openai', url: 'https://api.example.com/v1?access_token=t0k' },
        { name: 'c', kind: 'ollama', url: 'http://localhost:11434/v1' },
      ],
      security: { api_keys: ['sk-relay'] },
    })
    const shown = JSON.stringify(redactConfig(config))
    for (const secret of ['user', 'pass@', 's3cret', 't0k', 'sk-1', 'sk-relay'])
      assert.ok(!shown.includes(secret), secret)
    const [a, b, c] = redactConfig(config).providers
    assert.equal(a?.url, 'https://%5Bredacted%5D@api.example.com/v1?key=%5Bredacted%5D&api-version=2024')
    assert.equal(b?.url, 'https://api.example.com/v1?access_token=%5Bredacted%5D')
    assert.equal(c?.url, 'http://localhost:11434/v1')
    assert.equal(a?.api_key, '[redacted]')
    assert.equal(c?.api_key, undefined)
  })
})
