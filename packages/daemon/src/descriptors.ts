import { readFileSync } from 'node:fs'

/** The descriptor budget assumed where the platform does not say. @default 1024 */
const ASSUMED_LIMIT = 1024
/** Connections the control port takes at once: a CLI, a dashboard or two, scripts. @default 64 */
export const CONTROL_MAX_CONNECTIONS = 64

/**
 * The limit on this process's open descriptors. Node raises the soft limit to the hard one as it
 * starts, so this is the most the process can have; read from `/proc/self/limits` on Linux.
 */
export function descriptorLimit(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'))
    const soft = Number(line?.split(/\s{2,}/)[1])
    return Number.isFinite(soft) && soft > 0 ? soft : ASSUMED_LIMIT
  } catch {
    return ASSUMED_LIMIT
  }
}

/**
 * How many connections the local API takes at once: half the descriptors, so that peers, engines,
 * the control port and files keep theirs when local clients pile up.
 */
export function apiConnectionCap(limit = descriptorLimit()): number {
  return Math.max(CONTROL_MAX_CONNECTIONS, Math.floor(limit / 2))
}
