import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ConfigError } from '@gate/core'
import { parseRelayConfig } from '../src/index.ts'

const SERVER = { domain: 'relay.example.com', public_ip: '203.0.113.7' }

describe('relay.json', () => {
  it('gives the circuit relay limits that suit inference, not libp2p’s 2 minutes and 128 KiB', () => {
    const { circuit } = parseRelayConfig({ relay_server: SERVER }).relay_server
    assert.deepEqual(circuit, {
      enabled: true,
      max_reservations: 1024,
      untrusted_quota: 4,
      duration: 3600,
      data_limit: 256 * 1024 * 1024,
      max_circuits_per_node: 32,
    })
  })

  it('names the circuit field at fault', () => {
    assert.throws(
      () =>
        parseRelayConfig({
          relay_server: { ...SERVER, circuit: { duration: 0, untrusted_quota: -1, data_limit: 'lots' } },
        }),
      (err) =>
        err instanceof ConfigError &&
        err.issues.join('\n') ===
          [
            'relay_server.circuit.untrusted_quota: expected a whole number, 0 or more, got -1',
            'relay_server.circuit.duration: expected a positive integer, got 0',
            'relay_server.circuit.data_limit: expected a positive integer, got "lots"',
          ].join('\n'),
    )
  })
})
