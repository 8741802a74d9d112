import { KeyringUnavailableError } from '../../src/errors.ts'
import type { Keyring } from '../../src/key-store.ts'

/** A Keyring kept in a Map, for tests. */
export function createMemoryKeyring(): Keyring & { entries: Map<string, string> } {
  const entries = new Map<string, string>()
  return {
    entries,
    get: async (account) => entries.get(account) ?? null,
    set: async (account, secret) => {
      entries.set(account, secret)
    },
  }
}

/** A Keyring that behaves like a headless machine: nothing answers. */
export function createUnavailableKeyring(): Keyring {
  const fail = async (): Promise<never> => {
    throw new KeyringUnavailableError('system keyring unavailable: no Secret Service')
  }
  return { get: fail, set: fail }
}
