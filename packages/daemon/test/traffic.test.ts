import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { RequestRecord } from '@gate/rpc'
import { TRAFFIC_MINUTES, TrafficWindow } from '../src/traffic.ts'

const MINUTE = 60_000

function record(latency_ms: number, status = 200, tokens = 0): RequestRecord {
  return {
    id: 'r',
    time: new Date(0).toISOString(),
    method: 'POST',
    route: '/v1/chat/completions',
    model: 'm',
    node: 'self',
    provider: 'p',
    status,
    latency_ms,
    stream: false,
    consumer: 'local',
    usage: tokens ? { prompt_tokens: tokens, completion_tokens: 1, total_tokens: tokens + 1 } : null,
    error: null,
  }
}

describe('TrafficWindow', () => {
  it('counts requests, errors and tokens per minute, and gives p50 and p95 within 19%', () => {
    const window = new TrafficWindow()
    const now = 100 * MINUTE + 30_000
    for (let ms = 1; ms <= 100; ms++) window.add(record(ms, ms > 90 ? 502 : 200, 2), now)
    window.add(record(5000), now - MINUTE)
    const minutes = window.minutes(now)
    assert.equal(minutes.length, TRAFFIC_MINUTES)
    const current = minutes.at(-1)
    assert.equal(current?.minute, new Date(100 * MINUTE).toISOString())
    assert.equal(current?.requests, 100)
    assert.equal(current?.errors, 10)
    assert.equal(current?.tokens, 300)
    for (const [got, truth] of [
      [current?.p50_ms, 50],
      [current?.p95_ms, 95],
    ] as const) {
      assert.ok(
        got !== undefined && got !== null && got >= truth && got <= truth * 1.19,
        `${got} for ${truth}`,
      )
    }
    assert.equal(minutes.at(-2)?.requests, 1)
    assert.ok((minutes.at(-2)?.p50_ms ?? 0) >= 5000)
    assert.deepEqual(minutes.at(-3), {
      minute: new Date(98 * MINUTE).toISOString(),
      requests: 0,
      errors: 0,
      p50_ms: null,
      p95_ms: null,
      tokens: 0,
    })
  })

  it('forgets minutes older than the window, in memory that does not grow', () => {
    const window = new TrafficWindow()
    window.add(record(10), 0)
    window.add(record(10), TRAFFIC_MINUTES * MINUTE)
    const minutes = window.minutes(TRAFFIC_MINUTES * MINUTE)
    assert.equal(
      minutes.reduce((n, m) => n + m.requests, 0),
      1,
      'the minute a full window ago is gone, though its bucket was reused',
    )
    assert.equal(
      window.minutes(3 * TRAFFIC_MINUTES * MINUTE).reduce((n, m) => n + m.requests, 0),
      0,
    )
  })
})
