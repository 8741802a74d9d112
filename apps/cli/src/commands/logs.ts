import { formatLogLine, LOG_LEVELS, type LogLevel } from '@gate/core'
import { followLog, readLogTail } from '@gate/daemon'
import { type Command, InvalidArgumentError, Option } from 'commander'
import { cliPaths } from '../context.ts'

const MAX_LINES = 10_000

export function registerLogsCommand(program: Command): void {
  program
    .command('logs')
    .description("print the daemon's log (logs/daemon.log)")
    .option('-f, --follow', 'keep printing new lines until interrupted')
    .addOption(new Option('--level <level>', 'only this level and above').choices(LOG_LEVELS))
    .option('-n, --lines <n>', `how many of the last lines (1–${MAX_LINES})`, parseLines, 100)
    .option('--json', 'print the JSON lines as they are')
    .action(async (options: { follow?: boolean; level?: LogLevel; lines: number; json?: boolean }) => {
      const { daemonLog } = cliPaths()
      const format = options.json
        ? (line: Record<string, unknown>) => `${JSON.stringify(line)}\n`
        : formatLogLine(process.stdout.isTTY === true)
      const tail = { lines: options.lines, level: options.level }
      if (!options.follow) {
        for (const line of await readLogTail(daemonLog, tail)) process.stdout.write(format(line))
        return
      }
      const stop = new AbortController()
      const onSignal = () => stop.abort()
      process.once('SIGINT', onSignal)
      process.once('SIGTERM', onSignal)
      try {
        for await (const line of followLog(daemonLog, { ...tail, signal: stop.signal })) {
          process.stdout.write(format(line))
        }
      } finally {
        process.off('SIGINT', onSignal)
        process.off('SIGTERM', onSignal)
      }
    })
}

function parseLines(text: string): number {
  const n = Number(text)
  if (!Number.isInteger(n) || n < 1 || n > MAX_LINES) {
    throw new InvalidArgumentError(`expected an integer 1–${MAX_LINES}`)
  }
  return n
}
