import { type FSWatcher, watch } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { basename, dirname } from 'node:path'
import {
  type Config,
  ConfigError,
  defaultConfig,
  ensureDir,
  type ProviderConfig,
  parseConfig,
  parseConfigFile,
  parseConfigText,
  restartRequiredChanges,
  writeFileAtomic,
} from '@gate/core'
import { safeNodeId } from '@gate/p2p'

export type ConfigPatch = Record<string, unknown>
export interface UpdateResult {
  config: Config
  restartRequired: string[]
}

/** How long file events are gathered before the file is read again. @default 100 ms */
const WATCH_DEBOUNCE_MS = 100

export interface ConfigManagerInit {
  path: string
  /** The providers a new config starts with (the engines found on this machine). @default none */
  detect?: () => Promise<ProviderConfig[]>
  /** Called after a valid new config took effect, from the file or from `update`. */
  onChange: (next: Config, previous: Config, restartRequired: string[]) => void | Promise<void>
  /** Called when the file changed but does not validate, or could not be applied. */
  onInvalid: (error: ConfigError) => void
}

/**
 * Owns `config.json`: creates it with defaults, validates it, writes it atomically and reloads it
 * when it changes on disk.
 */
export class ConfigManager {
  readonly path: string
  #config: Config = defaultConfig()
  #text = ''
  #watcher: FSWatcher | undefined
  #timer: NodeJS.Timeout | undefined
  /** Updates and reloads, one at a time. */
  #queue: Promise<unknown> = Promise.resolve()
  readonly #init: ConfigManagerInit
  /** Fields changed since start that only a restart applies. */
  readonly restartRequired = new Set<string>()
  #startConfig: Config = this.#config

  constructor(init: ConfigManagerInit) {
    this.#init = init
    this.path = init.path
  }

  get config(): Config {
    return this.#config
  }

  /**
   * Reads the file, creating it when missing: with defaults, and the providers `detect` finds
   * (`created` lists them; null when the file was there). Throws ConfigError when invalid.
   */
  async load(): Promise<{ config: Config; created: { providers: ProviderConfig[] } | null }> {
    const text = await readConfigFile(this.path)
    let created: { providers: ProviderConfig[] } | null = null
    if (text === undefined) {
      created = { providers: (await this.#init.detect?.()) ?? [] }
      await ensureDir(dirname(this.path))
      this.#text = `${JSON.stringify({ ...defaultConfig(), providers: created.providers }, null, 2)}\n`
      await writeFileAtomic(this.path, this.#text, { mode: 0o600 })
    } else this.#text = text
    try {
      this.#config = parseConfigText(this.#text)
    } catch (err) {
      // Which file: with `--config` it may not be the one in the data dir.
      if (err instanceof ConfigError) throw new ConfigError([`${this.path}: ${err.message}`])
      throw err
    }
    this.#startConfig = this.#config
    return { config: this.#config, created }
  }

  start(): void {
    this.#watcher = watch(dirname(this.path), (_event, name) => {
      if (name !== null && name !== basename(this.path)) return
      clearTimeout(this.#timer)
      this.#timer = setTimeout(() => {
        this.#serially(() => this.#reload()).catch((err: unknown) =>
          this.#init.onInvalid(
            new ConfigError([`cannot apply the changed config: ${(err as Error).message}`]),
          ),
        )
      }, WATCH_DEBOUNCE_MS)
    })
  }

  stop(): void {
    clearTimeout(this.#timer)
    this.#watcher?.close()
  }

  async #reload(): Promise<void> {
    const text = await readConfigFile(this.path).catch(() => undefined)
    if (text === undefined || text === this.#text) return
    this.#text = text
    try {
      await this.#apply(parseConfigText(text))
    } catch (err) {
      if (err instanceof ConfigError) this.#init.onInvalid(err)
      else throw err
    }
  }

  /**
   * Deep-merges a patch into the file's config, validates, writes atomically and applies it.
   * Updates run one at a time, and a patch given as a function is made from the config as it is
   * when its turn comes (`undefined`: nothing to change), so that concurrent read-modify-write
   * updates, such as two peers added at once, do not undo each other.
   */
  update(patch: ConfigPatch | ((config: Config) => ConfigPatch | undefined)): Promise<UpdateResult> {
    return this.#serially(() => this.#update(typeof patch === 'function' ? patch(this.#config) : patch))
  }

  #serially<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task)
    this.#queue = run.catch(() => {})
    return run
  }

  async #update(patch: ConfigPatch | undefined): Promise<UpdateResult> {
    if (patch === undefined) return { config: this.#config, restartRequired: [...this.restartRequired] }
    // A file edited into an invalid state is not overwritten: its author is told to fix it first.
    const merged = mergeConfig(parseConfigFile(this.#text).json, patch)
    const next = parseConfig(merged)
    const text = `${JSON.stringify(merged, null, 2)}\n`
    await writeFileAtomic(this.path, text, { mode: 0o600 })
    this.#text = text
    await this.#apply(next)
    return { config: next, restartRequired: [...this.restartRequired] }
  }

  async #apply(next: Config): Promise<void> {
    const previous = this.#config
    this.#config = next
    this.restartRequired.clear()
    for (const field of restartRequiredChanges(this.#startConfig, next)) this.restartRequired.add(field)
    await this.#init.onChange(next, previous, [...this.restartRequired])
  }
}

async function readConfigFile(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/** Objects merge key by key; anything else (arrays included) replaces. */
export function mergeConfig(
  base: Record<string, unknown>,
  patch: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base }
  for (const [key, value] of Object.entries(patch)) {
    const current = out[key]
    out[key] = isPlainObject(value) && isPlainObject(current) ? mergeConfig(current, value) : value
  }
  return out
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Adds a node to `network.trusted_peers` (saved, applied live) unless it is there already. */
export async function addTrusted(config: ConfigManager, nodeId: string): Promise<void> {
  await config.update(({ network: { trusted_peers: trusted } }) =>
    trusted.some((entry) => safeNodeId(entry) === nodeId)
      ? undefined
      : { network: { trusted_peers: [...trusted, nodeId] } },
  )
}
