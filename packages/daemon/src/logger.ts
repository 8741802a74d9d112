import { Writable } from 'node:stream'
import { type LogLevel, SECRET_FIELDS } from '@gate/core'
import { type DestinationStream, type Logger, multistream, pino } from 'pino'
import pretty, { prettyFactory } from 'pino-pretty'
import { rotatingFile } from './log-file.ts'

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
