/**
 * @gate/daemon — the embeddable Gate daemon: the OpenAI-compatible API on 127.0.0.1:31145, its
 * providers (Ollama, LM Studio, any OpenAI-compatible server) and the control port.
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

export { SHUTDOWN_GRACE_MS } from './constants.ts'
export { redactConfig } from './control/methods.ts'
export type { Daemon, DaemonInit, RuntimeInfo } from './daemon.ts'
export { followLog, LEVEL_NUMBERS, levelName, readLogTail } from './log-file.ts'
export { formatLogLine } from './logger.ts'
export type { ProbeResult } from './providers/provider.ts'
export { normalizeProviderUrl, probeEngine } from './providers/provider.ts'

export function createDaemon(init: DaemonInit = {}): Daemon {
  return new Daemon(init)
}
