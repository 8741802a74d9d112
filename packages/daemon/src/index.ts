/**
 * @gate/daemon — the embeddable Gate daemon: the OpenAI-compatible API on 127.0.0.1:31145, its
 * providers (Ollama, LM Studio, any OpenAI-compatible server), the mesh of trusted peers and the
 * control port.
 *
 * @example
 * ```ts
 * import { createDaemon } from '@gate/daemon'
 * const daemon = createDaemon({ home: '/tmp/gate' })
 * await daemon.start()
 * console.log(daemon.runtime.http.port, daemon.nodeId)
 * await daemon.stop()
 * ```
 */
import { Daemon, type DaemonInit } from './daemon.ts'

export type { Daemon, DaemonInit } from './daemon.ts'
export { followLog, readLogTail } from './log-file.ts'
export { normalizeProviderUrl } from './providers/provider.ts'
export type { FoundEngine } from './providers/registry.ts'
export { findEngines } from './providers/registry.ts'
export type { RuntimeInfo } from './runtime-info.ts'
export { VERSION } from './version.ts'

export function createDaemon(init: DaemonInit = {}): Daemon {
  return new Daemon(init)
}
