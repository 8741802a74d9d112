import { type FileHandle, open, stat } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import type { LogLevel } from '@gate/core'

/** How much of the end of the log file is read to find the last lines. @default 4 MiB */
const TAIL_BYTES = 4 * 1024 * 1024

/** pino's numeric level for each name. */
const LEVEL_NUMBERS: Record<LogLevel, number> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
}

export interface TailOptions {
  lines: number
  level?: LogLevel | undefined
}

/** The last `lines` JSON log lines of `daemon.log` at `level` or above, oldest first. */
export async function readLogTail(
  path: string,
  options: TailOptions,
): Promise<Array<Record<string, unknown>>> {
  return (await tail(path, options)).lines
}

/** How often `followLog` looks for new lines. */
const FOLLOW_INTERVAL_MS = 200

/**
 * Like `tail -n lines -f`: yields the last `lines` lines at `level` or above, then every line
 * appended after them until `signal` aborts. A file that does not exist yet is waited for; a file
 * that shrank (replaced) is read again from its start.
 */
export async function* followLog(
  path: string,
  options: TailOptions & { signal: AbortSignal },
): AsyncGenerator<Record<string, unknown>> {
  const { signal, level } = options
  const first = await tail(path, options)
  yield* first.lines
  let offset = first.end
  while (!signal.aborted) {
    await sleep(FOLLOW_INTERVAL_MS, undefined, { signal }).catch(() => {})
    const size = await fileSize(path)
    if (size < offset) offset = 0
    if (size <= offset || signal.aborted) continue
    const bytes = await readRange(path, offset, size)
    const end = bytes.lastIndexOf(NEWLINE) + 1
    offset += end
    yield* parseLines(bytes.subarray(0, end).toString('utf8'), level)
  }
}

const NEWLINE = 0x0a

/** The last complete lines within TAIL_BYTES of the end, and the offset just after them. */
async function tail(
  path: string,
  options: TailOptions,
): Promise<{ lines: Array<Record<string, unknown>>; end: number }> {
  const size = await fileSize(path)
  const start = Math.max(0, size - TAIL_BYTES)
  const bytes = await readRange(path, start, size)
  const end = bytes.lastIndexOf(NEWLINE) + 1
  let text = bytes.subarray(0, end).toString('utf8')
  if (start > 0) text = text.slice(text.indexOf('\n') + 1)
  return { lines: parseLines(text, options.level).slice(-options.lines), end: start + end }
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0
    throw err
  }
}

/** Bytes [start, end) of the file; empty when it does not exist. */
async function readRange(path: string, start: number, end: number): Promise<Buffer> {
  if (end <= start) return Buffer.alloc(0)
  let file: FileHandle
  try {
    file = await open(path, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return Buffer.alloc(0)
    throw err
  }
  try {
    const buffer = Buffer.alloc(end - start)
    const { bytesRead } = await file.read(buffer, 0, buffer.length, start)
    return buffer.subarray(0, bytesRead)
  } finally {
    await file.close()
  }
}

/** The JSON lines of `text` at `level` or above; lines that are not JSON are skipped. */
function parseLines(text: string, level: LogLevel | undefined): Array<Record<string, unknown>> {
  const min = LEVEL_NUMBERS[level ?? 'trace']
  const out: Array<Record<string, unknown>> = []
  for (const line of text.split('\n')) {
    if (!line) continue
    try {
      const entry = JSON.parse(line) as Record<string, unknown>
      if (typeof entry.level === 'number' && entry.level >= min) out.push(entry)
    } catch {}
  }
  return out
}
