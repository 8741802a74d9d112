import { createHash, randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { InvalidRequestError, NotFoundError, writeFileAtomic } from '@gate/core'

/** One key made by `gate keys create`: its hash, never the key. */
export interface ApiKeyEntry {
  name: string
  /** SHA-256 of the key, hex. */
  hash: string
  created_at: string
  last_used_at: string | null
}

/** How long a key's last use may wait to be written to `keys.json`. @default 10 s */
const LAST_USED_FLUSH_MS = 10_000
/** What a key name may be. */
const NAME = /^[\w.-]{1,64}$/
/** The prefix of the keys Gate makes, so they are recognised in a config or a leak scan. */
const KEY_PREFIX = 'gate_'

/**
 * The API keys relayed requests may carry, kept as hashes in `keys.json` (0600, written
 * atomically): `create` returns a new key once, `revoke` drops it. Plain keys in
 * `security.api_keys` keep working beside these.
 */
export class ApiKeys {
  readonly #path: string
  #keys: ApiKeyEntry[] = []
  #byHash = new Map<string, ApiKeyEntry>()
  #timer: NodeJS.Timeout | undefined
  #writing: Promise<void> = Promise.resolve()

  constructor(path: string) {
    this.#path = path
  }

  async load(): Promise<void> {
    try {
      const value = JSON.parse(await readFile(this.#path, 'utf8')) as { keys?: ApiKeyEntry[] }
      this.#keys = Array.isArray(value.keys)
        ? value.keys.filter((k) => typeof k.hash === 'string' && NAME.test(k.name))
        : []
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    this.#index()
  }

  list(): ApiKeyEntry[] {
    return this.#keys.map((k) => ({ ...k }))
  }

  /** Makes a key named `name`; the key itself is returned this once and kept nowhere. */
  async create(name: string): Promise<{ key: string; entry: ApiKeyEntry }> {
    if (!NAME.test(name))
      throw new InvalidRequestError('name: 1–64 letters, digits, dots, dashes or underscores', {
        param: 'name',
      })
    if (this.#keys.some((k) => k.name === name))
      throw new InvalidRequestError(`a key named "${name}" exists`, { param: 'name' })
    const key = `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`
    const entry: ApiKeyEntry = {
      name,
      hash: hashKey(key),
      created_at: new Date().toISOString(),
      last_used_at: null,
    }
    this.#keys.push(entry)
    this.#index()
    await this.#save()
    return { key, entry: { ...entry } }
  }

  async revoke(name: string): Promise<void> {
    const kept = this.#keys.filter((k) => k.name !== name)
    if (kept.length === this.#keys.length)
      throw new NotFoundError(`no key named "${name}"`, { param: 'name' })
    this.#keys = kept
    this.#index()
    await this.#save()
  }

  /** The name of the key `key` is, noting its use; undefined when it is none of them. */
  use(key: string): string | undefined {
    const entry = this.#byHash.get(hashKey(key))
    if (!entry) return undefined
    entry.last_used_at = new Date().toISOString()
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined
      void this.#save()
    }, LAST_USED_FLUSH_MS).unref()
    return entry.name
  }

  /** Writes what is pending. */
  async flush(): Promise<void> {
    if (this.#timer) {
      clearTimeout(this.#timer)
      this.#timer = undefined
      await this.#save()
    }
    await this.#writing
  }

  #index(): void {
    this.#byHash = new Map(this.#keys.map((k) => [k.hash, k]))
  }

  #save(): Promise<void> {
    const text = `${JSON.stringify({ version: 1, keys: this.#keys }, null, 2)}\n`
    this.#writing = this.#writing.then(() => writeFileAtomic(this.#path, text, { mode: 0o600 }))
    return this.#writing
  }
}

function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex')
}
