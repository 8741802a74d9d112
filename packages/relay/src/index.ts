/**
 * @gate/relay — `gate relay`: a public HTTPS endpoint for every Gate node, end to end encrypted.
 * Browsers reach `https://<node-id>.<domain>`; the relay reads only the TLS ClientHello's server
 * name and pipes the connection to that node, which terminates TLS with its own certificate.
 *
 * @example
 * ```ts
 * import { createRelay } from '@gate/relay'
 * const relay = createRelay({ home: '/var/lib/gate-relay' }) // reads relay.json there
 * await relay.start()
 * console.log(relay.runtime.node_id, relay.runtime.p2p)
 * await relay.stop()
 * ```
 */
import { Relay, type RelayInit } from './relay.ts'

export type { HelloResult } from './client-hello.ts'
export { MAX_HELLO_BYTES, normalizeServerName, parseClientHello } from './client-hello.ts'
export type { RelayConfig, RelayConfigInput } from './config.ts'
export { parseRelayConfig } from './config.ts'
export type { ZoneBackend } from './dns/zone.ts'
export type { Relay, RelayInit, RelayRuntime } from './relay.ts'

export function createRelay(init: RelayInit = {}): Relay {
  return new Relay(init)
}
