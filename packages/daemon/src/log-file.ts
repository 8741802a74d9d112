import { open } from 'node:fs/promises'
import { LOG_LEVELS, type LogLevel } from '@gate/core'

/** How much of the end of the log file is read to find the last lines. @default 4 MiB */
const TAIL_BYTES = 4 * 1024 * 1024

/** pino's numeric level for each name. */
export const LEVEL_NUMBERS: Record<LogLevel, number> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
}

export function levelName(n: unknown): LogLevel {
  return LOG_LEVELS.find((l) => LEVEL_NUMBERS[l] === n) ?? 'info'
}

/** The last `lines` JSON log lines of `daemon.log` at `level` or above, oldest first. */
export async function readLogTail(
  path: string,
  options: { lines: number; level?: LogLevel | undefined },
): Promise<Array<Record<string, unknown>>> {
  let text: string
  try {
    const file = await open(path, 'r')
    try {
      const { size } = await file.stat()
      const start = Math.max(0, size - TAIL_BYTES)
      const buffer = Buffer.alloc(size - start)
      await file.read(buffer, 0, buffer.length, start)
      text = buffer.toString('utf8')
      if (start > 0) text = text.slice(text.indexOf('\n') + 1)
    } finally {
      await file.close()
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
  const min = LEVEL_NUMBERS[options.level ?? 'trace']
  const out: Array<Record<string, unknown>> = []
  for (const line of text.split('\n')) {
    if (!line) continue
    try {
      const entry = JSON.parse(line) as Record<string, unknown>
      if (typeof entry.level === 'number' && entry.level >= min) out.push(entry)
    } catch {}
  }
  return out.slice(-options.lines)
}
