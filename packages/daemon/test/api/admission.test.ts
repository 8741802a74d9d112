import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ForbiddenError, parseConfig, RateLimitedError, UnauthorizedError } from '@gate/core'
import { Admission, bearerToken, checkSource, consumerOf } from '../../src/api/admission.ts'
import type { ApiRequest } from '../../src/api/types.ts'

const config = parseConfig({ security: { api_keys: ['sk-relay-1'], max_concurrent_requests: 2 } })
const { security } = config
/** A key ring with one key made by `gate keys`. */
const keys = { use: (key: string) => (key === 'gate_made' ? 'laptop' : undefined) }
const request = (headers: ApiRequest['headers']): ApiRequest => ({
  headers,
  method: 'POST',
  url: '/v1/chat/completions',
})
const RELAY = { kind: 'relay', client: '203.0.113.7:5000', name: 'node.relay.example' } as const
const PEER = { kind: 'peer', node: 'b'.repeat(52) } as const

describe('admission', () => {
  it('reads a Bearer token in any case, and nothing else', () => {
    assert.equal(bearerToken('Bearer abc'), 'abc')
    assert.equal(bearerToken('bearer  abc '), 'abc')
    assert.equal(bearerToken('Basic abc'), undefined)
    assert.equal(bearerToken('Bearer '), undefined)
    assert.equal(bearerToken(undefined), undefined)
  })

  it('requires one of the API keys for a relayed request, and names it by a fingerprint', () => {
    assert.throws(() => consumerOf(request({}), RELAY, config, keys), UnauthorizedError)
    assert.throws(
      () => consumerOf(request({ authorization: 'Bearer wrong' }), RELAY, config, keys),
      UnauthorizedError,
    )
    const consumer = consumerOf(request({ authorization: 'Bearer sk-relay-1' }), RELAY, config, keys)
    assert.match(consumer, /^key:[0-9a-f]{12}$/)
    assert.ok(!consumer.includes('sk-relay-1'))
    // Local clients always send some key (SDKs do): it is not checked.
    assert.equal(
      consumerOf(request({ authorization: 'Bearer whatever' }), { kind: 'local' }, config, keys),
      'local',
    )
    assert.equal(consumerOf(request({}), PEER, config, keys), `peer:${PEER.node}`)
    assert.equal(
      consumerOf(request({ authorization: 'Bearer gate_made' }), RELAY, config, keys),
      'key:laptop',
    )
    const open = parseConfig({ relay: { api_keys_required: false } })
    assert.equal(consumerOf(request({}), RELAY, open, keys), 'relay')
  })

  it('serves loopback Hosts and Origins locally, and gives a relayed browser CORS headers', () => {
    assert.throws(() => checkSource(request({ host: 'evil.example' }), { kind: 'local' }), ForbiddenError)
    assert.throws(
      () =>
        checkSource(request({ host: '127.0.0.1:31145', origin: 'https://evil.example' }), { kind: 'local' }),
      ForbiddenError,
    )
    assert.deepEqual(checkSource(request({ host: 'localhost:31145' }), { kind: 'local' }), {})
    const cors = checkSource(
      request({ host: 'Node.Relay.Example:443', origin: 'https://app.example' }),
      RELAY,
    )
    assert.equal(cors['access-control-allow-origin'], 'https://app.example')
    assert.throws(() => checkSource(request({ host: 'other.relay.example' }), RELAY), ForbiddenError)
  })

  it('holds peers to their rate limit and everyone to the concurrency cap', () => {
    const admission = new Admission()
    const tight = { ...security, rate_limit: { per_peer_rps: 1, burst: 2 } }
    admission.limitRate(PEER, 'peer', tight)
    admission.limitRate(PEER, 'peer', tight)
    assert.throws(() => admission.limitRate(PEER, 'peer', tight), RateLimitedError)
    admission.limitRate({ kind: 'local' }, 'local', tight)
    // A relayed client is held to its address's limit and its key's.
    const other = { ...RELAY, client: '198.51.100.1:7' }
    admission.limitRate(RELAY, 'key:a', tight)
    admission.limitRate(other, 'key:a', tight)
    assert.throws(
      () => admission.limitRate({ ...RELAY, client: '192.0.2.9:1' }, 'key:a', tight),
      /key:a is over/,
    )
    const leave = admission.enter(security)
    admission.enter(security)
    assert.throws(() => admission.enter(security), RateLimitedError)
    leave()
    leave()
    assert.equal(admission.active, 1, 'leaving twice gives back one place')
  })
})
