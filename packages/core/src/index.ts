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

export type { BreakerState } from './breaker.ts'
export { BREAKER_COOLDOWN_MS, BREAKER_FAILURE_THRESHOLD, Breaker } from './breaker.ts'
export type { Config, ConfigInput, LogLevel, ProviderConfig, ProviderKind, SecurityConfig } from './config.ts'
export {
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_PROVIDER_URLS,
  defaultConfig,
  describeInput,
  LOG_LEVELS,
  ProviderConfigSchema,
  parseConfig,
  parseConfigFile,
  parseConfigText,
  parseWith,
  redactConfig,
  restartRequiredChanges,
  SECRET_FIELDS,
} from './config.ts'
export type { ErrorCode } from './errors.ts'
export {
  ConfigError,
  describeError,
  ForbiddenError,
  GateError,
  IdentityError,
  InvalidNodeIdError,
  InvalidRequestError,
  isOutOfDescriptors,
  KeyringUnavailableError,
  NotFoundError,
  PayloadTooLargeError,
  RateLimitedError,
  RequestTimeoutError,
  TimeoutError,
  UnauthorizedError,
  UnavailableError,
  UpstreamError,
} from './errors.ts'
export { ensureDir, writeFileAtomic } from './fs.ts'
export type { Identity } from './identity.ts'
export { generateIdentity, libp2pPrivateKey, verifySignature } from './identity.ts'
export type { Keyring, KeyStoreInit, LoadedIdentity } from './key-store.ts'
export {
  createOsKeyring,
  exportIdentity,
  loadOrCreateIdentity,
  parseExportedIdentity,
  readNodeIdFromKeyFile,
  saveIdentity,
} from './key-store.ts'
export type { LoggerInit } from './log.ts'
export { createLogger, formatLogLine, LOG_FILE_BYTES, LOG_FILES_KEPT, rotatingFile } from './log.ts'
export { LOG_THROTTLE_MS, LogThrottle } from './log-throttle.ts'
export type { Logger } from './logger.ts'
export { nodeIdToPeerId, parseNodeId, peerIdToNodeId } from './node-id.ts'
export type { GatePaths } from './paths.ts'
export { gatePaths, resolveHome } from './paths.ts'
export type {
  Capabilities,
  ConnectionType,
  NatRelayStatus,
  NatStatus,
  PeerConnection,
  PeerInfo,
  PeerStatus,
} from './peers.ts'
export { loadFactor } from './peers.ts'
