/**
 * Gate's logs: pino JSON lines to a file that rotates by size, and optionally the same lines,
 * readable, on a terminal. The daemon and the relay both log this way.
 */
import { basename, dirname } from 'node:path'
import { Writable } from 'node:stream'
import { type DestinationStream, type Logger, multistream, pino } from 'pino'
import pretty, { prettyFactory } from 'pino-pretty'
import { createStream, type RotatingFileStream } from 'rotating-file-stream'
import { type LogLevel, SECRET_FIELDS } from './config.ts'

/** Size at which a log file (`daemon.log`, `requests.jsonl`, `relay.log`) is rotated. @default 10 MiB */
export const LOG_FILE_BYTES = 10 * 1024 * 1024
/** Rotated files kept of each log (`daemon.log.1` … `.5`). @default 5 */
export const LOG_FILES_KEPT = 5

/**
 * A log file (`daemon.log`, `requests.jsonl`, `relay.log`) that never outgrows LOG_FILE_BYTES: past it, the file
 * is renamed `<name>.1` (the older ones shifted to `.2` … up to LOG_FILES_KEPT) and a new one
 * begun, owner-only. rotating-file-stream does the renaming, as logrotate would.
 */
export function rotatingFile(path: string): RotatingFileStream {
  const stream = createStream(basename(path), {
    path: `${dirname(path)}/`,
    size: `${LOG_FILE_BYTES}B`,
    rotate: LOG_FILES_KEPT,
    mode: 0o600,
  })
  // A log that cannot be written must not take the process down.
  ;(stream as Writable).on('error', () => {})
  return stream
}

export interface LoggerInit {
  /** JSON lines go here (`logs/daemon.log`). */
  file: string
  level: LogLevel
  /** Also print readable lines to stdout. */
  terminal: boolean
  /** Called with every log line as an object (for `/events`). */
  onLine?: (line: Record<string, unknown>) => void
}

/** Anything that could carry a secret, wherever it appears in a log object. */
const REDACT = [
  ...[...SECRET_FIELDS].flatMap((field) => [field, `*.${field}`]),
  'headers.authorization',
  '*.headers.authorization',
]

/** The options of the readable form, shared by the daemon's terminal output and `gate logs`. */
const PRETTY = { ignore: 'pid,hostname', translateTime: 'SYS:HH:MM:ss.l', singleLine: true }

/** One `daemon.log` line in the same readable form the daemon prints on a terminal. */
export function formatLogLine(colorize: boolean): (line: Record<string, unknown>) => string {
  return prettyFactory({ ...PRETTY, colorize })
}

export function createLogger(init: LoggerInit): { logger: Logger; close(): Promise<void> } {
  const file = rotatingFile(init.file)
  const streams: Array<{ stream: DestinationStream; level: LogLevel }> = [{ stream: file, level: 'trace' }]
  if (init.terminal) {
    streams.push({
      stream: pretty({ ...PRETTY, destination: 1, colorize: process.stdout.isTTY, sync: true }),
      level: 'trace',
    })
  }
  const { onLine } = init
  if (onLine) {
    const stream = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        try {
          onLine(JSON.parse(chunk.toString()))
        } catch {}
        callback()
      },
    })
    streams.push({ stream, level: 'trace' })
  }
  const logger = pino(
    { level: init.level, redact: { paths: REDACT, censor: '[redacted]' }, base: { pid: process.pid } },
    multistream(streams),
  )
  return {
    logger,
    close: () => new Promise((resolve) => file.end(resolve)),
  }
}
