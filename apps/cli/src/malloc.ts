/**
 * glibc's malloc settings for the daemon. By default each thread that allocates gets an arena of
 * its own and keeps what it freed: under load V8's compiler threads, libuv's pool and the QUIC
 * runtime each grow one, about 19 MB that the daemon never hands back. Two arenas shared by all
 * threads, and a fixed trim threshold (freed memory at an arena's top goes back to the system),
 * cost no measurable throughput.
 */
export const MALLOC_TUNABLES = 'glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=65536'

/** `env` with `MALLOC_TUNABLES`, unless it has a `GLIBC_TUNABLES` of its own. */
export function withMallocTunables(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...env, GLIBC_TUNABLES: env.GLIBC_TUNABLES ?? MALLOC_TUNABLES }
}

/**
 * Starts this process over with `MALLOC_TUNABLES`, in place (same PID, same open files), unless
 * `GLIBC_TUNABLES` is set already, by the user or by this: glibc reads it only as a process
 * starts. Does nothing off Linux.
 */
export function restartWithMallocTunables(): void {
  if (process.platform !== 'linux' || process.env.GLIBC_TUNABLES !== undefined || !process.execve) return
  const args = [process.execPath, ...process.execArgv, ...process.argv.slice(1)]
  process.execve(process.execPath, args, withMallocTunables(process.env))
}
