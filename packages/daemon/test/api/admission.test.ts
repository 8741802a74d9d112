import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ForbiddenError, parseConfig, RateLimitedError, UnauthorizedError } from '@gate/core'
import { Admission, bearerToken, checkSource, consumerOf } from '../../src/api/admission.ts'
import type { ApiRequest } from '../../src/api/types.ts'

const security = parseConfig({ security: { api_keys: ['sk-relay-1'], max_concurrent_requests: 2 } }).security
const request = (headers: ApiRequest['headers']): ApiRequest => ({
  headers,
  method: 'POST',
  url: '/v1/chat/completions',
})
const RELAY = { kind: 'relay', client: '203.0.113.7:5000' } as const
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
    assert.throws(() => consumerOf(request({}), RELAY, security), UnauthorizedError)
    assert.throws(
      () => consumerOf(request({ authorization: 'Bearer wrong' }), RELAY, security),
      UnauthorizedError,
    )
    const consumer = consumerOf(request({ authorization: 'Bearer sk-relay-1' }), RELAY, security)
    assert.match(consumer, /^key:[0-9a-f]{12}$/)
    assert.ok(!consumer.includes('sk-relay-1'))
    // Local clients always send some key (SDKs do): it is not checked.
    assert.equal(
      consumerOf(request({ authorization: 'Bearer whatever' }), { kind: 'local' }, security),
      'local',
    )
    assert.equal(consumerOf(request({}), PEER, security), `peer:${PEER.node}`)
  })

  it('serves loopback Hosts and Origins locally, and gives a relayed browser CORS headers', () => {
    assert.throws(() => checkSource(request({ host: 'evil.example' }), { kind: 'local' }), ForbiddenError)
    assert.throws(
      () =>
        checkSource(request({ host: '127.0.0.1:31145', origin: 'https://evil.example' }), { kind: 'local' }),
      ForbiddenError,
    )
    assert.deepEqual(checkSource(request({ host: 'localhost:31145' }), { kind: 'local' }), {})
    const cors = checkSource(request({ host: 'x', origin: 'https://app.example' }), RELAY)
    assert.equal(cors['access-control-allow-origin'], 'https://app.example')
  })

  it('holds peers to their rate limit and everyone to the concurrency cap', () => {
    const admission = new Admission()
    const tight = { ...security, rate_limit: { per_peer_rps: 1, burst: 2 } }
    admission.limitRate(PEER, tight)
    admission.limitRate(PEER, tight)
    assert.throws(() => admission.limitRate(PEER, tight), RateLimitedError)
    admission.limitRate({ kind: 'local' }, tight)
    const leave = admission.enter(security)
    admission.enter(security)
    assert.throws(() => admission.enter(security), RateLimitedError)
    leave()
    leave()
    assert.equal(admission.active, 1, 'leaving twice gives back one place')
  })
})
