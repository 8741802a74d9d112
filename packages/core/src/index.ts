/**
 * @gate/core — what every Gate package shares: config schema and validation, node identity
 * (Ed25519 keys, node IDs, PeerIds), key storage, atomic file writes, errors.
 *
 * @example
 * ```ts
 * import { gatePaths, loadOrCreateIdentity, resolveHome } from '@gate/core'
 * const paths = gatePaths(resolveHome())
 * const { identity } = await loadOrCreateIdentity({ path: paths.identity, passphrase: process.env.GATE_PASSPHRASE })
 * console.log(identity.nodeId)
 * ```
 */

export * from './breaker.ts'
export * from './config.ts'
export * from './errors.ts'
export * from './fs.ts'
export * from './identity.ts'
export * from './key-store.ts'
export type * from './logger.ts'
export * from './node-id.ts'
export * from './paths.ts'
export * from './peers.ts'
