import { GateError } from '@gate/core'
import { VERSION } from '@gate/daemon'
import { RpcError, RpcTransportError } from '@gate/rpc'
import { Command, CommanderError } from 'commander'
import { registerConfigCommands } from './commands/config.ts'
import { registerDaemonCommands } from './commands/daemon.ts'
import { registerDashboardCommand } from './commands/dashboard.ts'
import { registerIdentityCommands } from './commands/identity.ts'
import { registerKeysCommands } from './commands/keys.ts'
import { registerLogsCommand } from './commands/logs.ts'
import { registerPeersCommands } from './commands/peers.ts'
import { registerRelayCommand } from './commands/relay.ts'
import { registerSetupCommand } from './commands/setup.ts'
import { CliError } from './context.ts'

/** Runs the `gate` CLI and returns its exit code; every failure is one line on stderr. */
export async function main(argv: string[]): Promise<number> {
  const program = new Command('gate')
    .description('Gate: a peer-to-peer inference daemon with an OpenAI-compatible API')
    .version(VERSION)
    .exitOverride()
    .showSuggestionAfterError()
  registerDaemonCommands(program)
  registerPeersCommands(program)
  registerConfigCommands(program)
  registerSetupCommand(program)
  registerLogsCommand(program)
  registerIdentityCommands(program)
  registerKeysCommands(program)
  registerRelayCommand(program)
  registerDashboardCommand(program)
  try {
    await program.parseAsync(argv)
    // A command that printed its own failure (e.g. `config validate --json`) sets the code itself.
    return Number(process.exitCode ?? 0)
  } catch (err) {
    // Commander has already printed its own message (or the help / version it was asked for).
    if (err instanceof CommanderError) return err.exitCode
    const message = describe(err)
    process.stderr.write(`error: ${message}\n`)
    process.send?.({ error: message })
    return 1
  }
}

function describe(err: unknown): string {
  if (err instanceof CliError || err instanceof GateError || err instanceof RpcError) return err.message
  if (err instanceof RpcTransportError) return err.message
  const message = err instanceof Error ? err.message : String(err)
  return `unexpected error: ${message.split('\n')[0]}`
}
