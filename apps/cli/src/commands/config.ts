import { readFile } from 'node:fs/promises'
import {
  ConfigError,
  parseConfig,
  parseConfigFile,
  parseConfigText,
  redactConfig,
  writeFileAtomic,
} from '@gate/core'
import type { Command } from 'commander'
import { CliError, cliPaths, output, readText, tryConnect } from '../context.ts'

type Json = Record<string, unknown>

export function registerConfigCommands(program: Command): void {
  const config = program
    .command('config')
    .description('show, check and change config.json')
    .option('--config <path>', 'config file (default: config.json in the data dir)')

  config
    .command('show')
    .description("print the config (the running daemon's, else the file's), API keys redacted")
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const path = config.opts<{ config?: string }>().config
      const connection = await tryConnect(cliPaths(path))
      const shown = connection
        ? (await connection.rpc.call('get_config')).config
        : redactConfig(parseConfig(await readConfigFile(cliPaths(path).config)))
      output(options.json, shown, () => JSON.stringify(shown, null, 2))
    })

  config
    .command('validate')
    .description('check a config file without starting anything')
    .argument('[file]', 'the file to check (default: the config file)')
    .option('--json', 'print JSON')
    .action(async (file: string | undefined, options: { json?: boolean }) => {
      const path = file ?? cliPaths(config.opts<{ config?: string }>().config).config
      const text = await readText(path)
      let errors: string[] = []
      try {
        parseConfigText(text)
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err
        errors = err.issues
      }
      if (options.json) {
        output(true, { path, valid: errors.length === 0, errors }, () => '')
        if (errors.length > 0) process.exitCode = 1
      } else if (errors.length > 0) {
        throw new CliError(`${path}: ${errors.join('; ')}`)
      } else {
        process.stdout.write(`${path} is valid\n`)
      }
    })

  config
    .command('set')
    .description('set one field, e.g. `gate config set network.http_port 31146` (JSON values allowed)')
    .argument('<key>', 'dotted path: node.log_level, security.api_keys, providers.0.url, …')
    .argument('<value>', 'a JSON value, or else the text itself')
    .action(async (key: string, value: string) => {
      const path = config.opts<{ config?: string }>().config
      const restart = await changeConfig(path, (raw) => setPath(raw, key, parseValue(value)))
      const applied =
        restart === null
          ? 'the daemon is not running; it applies at next start'
          : restart.length > 0
            ? `restart the daemon to apply: ${restart.join(', ')}`
            : 'applied'
      process.stdout.write(`set ${key} = ${value} (${applied})\n`)
    })
}

/**
 * Changes the config: the running daemon's through `update_config` (it validates, saves and
 * applies), else the file, validated and written atomically. Returns the fields that need a
 * restart, or null when no daemon runs.
 */
export async function changeConfig(
  configPath: string | undefined,
  change: (raw: Json) => void,
): Promise<string[] | null> {
  const paths = cliPaths(configPath)
  const connection = await tryConnect(paths)
  const raw = connection
    ? ((await connection.rpc.call('get_config', { reveal_secrets: true })).config as Json)
    : await readConfigFile(paths.config)
  const before = structuredClone(raw)
  change(raw)
  parseConfig(raw)
  if (!connection) {
    await writeFileAtomic(paths.config, `${JSON.stringify(raw, null, 2)}\n`, { mode: 0o600 })
    return null
  }
  // Send only the top-level sections that changed: update_config merges them into the rest.
  const partial: Json = {}
  for (const [section, value] of Object.entries(raw)) {
    if (JSON.stringify(value) !== JSON.stringify(before[section])) partial[section] = value
  }
  const { restart_required } = await connection.rpc.call('update_config', { config: partial })
  return restart_required
}

/** The config file as JSON, `{}` when there is none yet; a broken file is an error naming it. */
async function readConfigFile(path: string): Promise<Json> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw err
  }
  return parseConfigFile(text).json
}

function parseValue(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/** Sets `key` (dots between parts; numbers index arrays) in `target`, creating objects on the way. */
function setPath(target: Json, key: string, value: unknown): void {
  const parts = key.split('.')
  if (parts.some((p) => p === ''))
    throw new CliError(`"${key}" is not a config key (write it like network.http_port)`)
  let node: Json | unknown[] = target
  for (const [i, part] of parts.entries()) {
    const last = i === parts.length - 1
    const index = Array.isArray(node) ? Number(part) : undefined
    if (
      index !== undefined &&
      !(Number.isInteger(index) && index >= 0 && index <= (node as unknown[]).length)
    ) {
      throw new CliError(`${parts.slice(0, i).join('.')} has no item ${part}`)
    }
    const slot = index ?? part
    const record = node as Record<string | number, unknown>
    if (last) {
      record[slot] = value
      return
    }
    const next = record[slot]
    if (typeof next !== 'object' || next === null) record[slot] = {}
    node = record[slot] as Json | unknown[]
  }
}
