import { readFile } from 'node:fs/promises'
import { type GatePaths, gatePaths, resolveHome } from '@gate/core'
import type { RuntimeInfo } from '@gate/daemon'
import { createRpcClient, type RpcClient } from '@gate/rpc'

/** An error the CLI reports as it is: one line, exit code 1. */
export class CliError extends Error {
  override name = 'CliError'
}

export const NOT_RUNNING = 'gate daemon is not running (start it with: gate daemon)'

/** The data dir's files; `--config` moves only the config file. */
export function cliPaths(configPath?: string): GatePaths {
  return gatePaths(resolveHome(), configPath)
}

/** The daemon that `daemon.json` names, if its process is still alive. */
export async function findDaemon(paths: GatePaths): Promise<RuntimeInfo | null> {
  let runtime: RuntimeInfo
  try {
    runtime = JSON.parse(await readFile(paths.runtime, 'utf8')) as RuntimeInfo
  } catch {
    return null
  }
  return isAlive(runtime.pid) ? runtime : null
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export interface Connection {
  rpc: RpcClient
  runtime: RuntimeInfo
}

/** A control-port client for the running daemon, or null when none runs. */
export async function tryConnect(paths: GatePaths): Promise<Connection | null> {
  const runtime = await findDaemon(paths)
  if (!runtime) return null
  let token: string
  try {
    token = await readFile(paths.controlToken, 'utf8')
  } catch {
    throw new CliError(`cannot read the control token at ${paths.controlToken}`)
  }
  const url = `http://${runtime.control.host}:${runtime.control.port}`
  return { rpc: createRpcClient({ url, token }), runtime }
}

export async function connect(paths: GatePaths): Promise<Connection> {
  const connection = await tryConnect(paths)
  if (!connection) throw new CliError(NOT_RUNNING)
  return connection
}

/** Prints `value` as JSON with `--json`, else the readable form. */
export function output(json: boolean | undefined, value: unknown, readable: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${readable()}\n`)
}

/** Lines of `label  value`, labels padded to one column. */
export function table(rows: Array<[string, string]>): string {
  const width = Math.max(...rows.map(([label]) => label.length))
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join('\n')
}

/** A file's text; a missing or unreadable file is a one-line CliError naming it. */
export async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`)
  }
}

/** A progress line for a person at a terminal; scripts and pipes do not get it. */
export function progress(message: string): void {
  if (process.stderr.isTTY) process.stderr.write(`${message}\n`)
}
