/**
 * `identity.key`: the node's private key at rest. Encrypted (AES-256-GCM) with a random data key
 * held in the OS keyring where one answers, else with a key derived from `GATE_PASSPHRASE`
 * (scrypt), else stored in the clear with a warning. The node ID stays in the clear so tools can
 * show it without unlocking, and is authenticated as the AEAD's additional data.
 *
 * A key file that exists is never replaced because it cannot be opened: every failure to open
 * one is an IdentityError, and no error message carries key material.
 *
 * @example
 * ```ts
 * const { identity, protection } = await loadOrCreateIdentity({
 *   path: paths.identity,
 *   keyring: createOsKeyring(),
 *   passphrase: process.env.GATE_PASSPHRASE,
 *   onWarning: (msg) => log.warn(msg),
 * })
 * ```
 */
import { createCipheriv, createDecipheriv, randomBytes, scrypt, timingSafeEqual } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { AsyncEntry } from '@napi-rs/keyring'
import { z } from 'zod'
import { IdentityError, KeyringUnavailableError } from './errors.ts'
import { ensureDir, writeFileAtomic } from './fs.ts'
import { generateIdentity, type Identity, identityFromSeed } from './identity.ts'
import { isNodeId, parseNodeId } from './node-id.ts'

/** @default 'gate' */
export const DEFAULT_KEYRING_SERVICE = 'gate'
/** scrypt cost for new passphrase-protected files (N=2^15, r=8, p=1: ~32 MiB, ~100 ms). */
export const SCRYPT_PARAMS = { N: 2 ** 15, r: 8, p: 1 } as const

export const PLAINTEXT_WARNING =
  'identity.key is stored unencrypted: set GATE_PASSPHRASE or use a system keyring'

export type KeyProtection = 'keyring' | 'passphrase' | 'plaintext'

/** A secret store keyed by account name. Rejects with KeyringUnavailableError when none answers. */
export interface Keyring {
  get(account: string, options?: { signal?: AbortSignal }): Promise<string | null>
  set(account: string, secret: string, options?: { signal?: AbortSignal }): Promise<void>
}

export interface KeyStoreInit {
  /** The key file, e.g. `~/.config/gate/identity.key`. */
  path: string
  /** Tried first when creating a key file; `null`/absent means no keyring. */
  keyring?: Keyring | null | undefined
  /** Used when no keyring answers; an empty string counts as none. */
  passphrase?: string | undefined
  onWarning?: ((msg: string) => void) | undefined
  signal?: AbortSignal | undefined
}

export interface LoadedIdentity {
  identity: Identity
  protection: KeyProtection
  /** True when no key file existed and a new identity was generated and saved. */
  created: boolean
}

const KEY_LENGTH = 32
const NONCE_LENGTH = 12
const SALT_LENGTH = 16
const TAG_LENGTH = 16

/**
 * The OS keyring (macOS Keychain, Windows Credential Manager, Secret Service on Linux). On Linux
 * the entry is pinned to the Secret Service: the binding would otherwise fall back silently to the
 * kernel keyring, which forgets everything at reboot and would lock the identity out for good.
 */
export function createOsKeyring(service: string = DEFAULT_KEYRING_SERVICE): Keyring {
  const call = async <T>(
    account: string,
    signal: AbortSignal | undefined,
    fn: (entry: AsyncEntry) => Promise<T>,
  ): Promise<T> => {
    try {
      // Loaded lazily so a missing native binary is just another unavailable keyring.
      const { AsyncEntry } = await import('@napi-rs/keyring')
      return await fn(new AsyncEntry(service, account, { linux: { store: 'secret-service' } }))
    } catch (err) {
      if (signal?.aborted) throw signal.reason
      throw new KeyringUnavailableError(`system keyring unavailable: ${(err as Error).message}`, {
        cause: err,
      })
    }
  }
  return {
    get: (account, options) => call(account, options?.signal, (entry) => entry.getPassword(options?.signal)),
    set: (account, secret, options) =>
      call(account, options?.signal, (entry) => entry.setPassword(secret, options?.signal)),
  }
}

/** Loads the identity at `init.path`, or generates and saves one if no file exists there. */
export async function loadOrCreateIdentity(init: KeyStoreInit): Promise<LoadedIdentity> {
  const text = await readKeyFile(init.path)
  if (text === null) {
    const identity = generateIdentity()
    const { protection } = await saveIdentity({ ...init, identity })
    return { identity, protection, created: true }
  }
  const file = parseKeyFile(text)
  return { identity: await openKeyFile(file, init), protection: file.protection, created: false }
}

/** Writes `identity` to `init.path` (replacing any file there) with the best protection available. */
export async function saveIdentity(
  init: KeyStoreInit & { identity: Identity },
): Promise<{ protection: KeyProtection }> {
  const file = await sealKeyFile(init)
  await ensureDir(dirname(init.path))
  await writeFileAtomic(init.path, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 })
  return { protection: file.protection }
}

/** The node ID in a key file, read without decrypting; null when there is no file. */
export async function readNodeIdFromKeyFile(path: string): Promise<string | null> {
  const text = await readKeyFile(path)
  return text === null ? null : parseKeyFile(text).node_id
}

/** `gate identity export`: the private key in the clear, as `{"node_id", "private_key"}` JSON. */
export function exportIdentity(identity: Identity): string {
  return JSON.stringify({ node_id: identity.nodeId, private_key: toBase64(identity.privateKey) })
}

const ExportedIdentitySchema = z.object({
  node_id: z.string().optional(),
  private_key: z.base64(),
})

/** Reads what exportIdentity wrote; a node_id, when present, must match the private key. */
export function parseExportedIdentity(text: string): Identity {
  const value = parseJson(text, 'not an exported Gate identity: not valid JSON')
  const result = ExportedIdentitySchema.safeParse(value)
  if (!result.success) throw new IdentityError(`not an exported Gate identity: ${formatIssues(result.error)}`)
  const seed = fromBase64(result.data.private_key)
  if (seed.length !== KEY_LENGTH) {
    throw new IdentityError(`not an exported Gate identity: private_key must be ${KEY_LENGTH} bytes`)
  }
  const identity = identityFromSeed(seed)
  if (result.data.node_id !== undefined && parseNodeId(result.data.node_id) !== identity.nodeId) {
    throw new IdentityError('exported identity is inconsistent: node_id does not match private_key')
  }
  return identity
}

// --- key file format -------------------------------------------------------------------------

const bytes = (length: number) =>
  z.base64({ abort: true }).refine((s) => fromBase64(s).length === length, `expected ${length} bytes`)

const header = {
  version: z.literal(1, 'unsupported version (expected 1)'),
  node_id: z.string().refine(isNodeId, 'not a node ID'),
}
const sealed = { nonce: bytes(NONCE_LENGTH), ciphertext: bytes(KEY_LENGTH + TAG_LENGTH) }

const KdfSchema = z
  .object({
    name: z.literal('scrypt'),
    salt: bytes(SALT_LENGTH),
    N: z
      .int()
      .min(2 ** 10)
      .refine((n) => (n & (n - 1)) === 0, 'must be a power of 2'),
    r: z.int().min(1),
    p: z.int().min(1).max(16),
  })
  // Bounds the memory a tampered file could make us allocate.
  .refine((k) => 128 * k.N * k.r <= 2 ** 30, 'scrypt parameters need more than 1 GiB')

const KeyFileSchema = z.discriminatedUnion('protection', [
  z.object({ ...header, protection: z.literal('plaintext'), private_key: bytes(KEY_LENGTH) }),
  z.object({ ...header, protection: z.literal('keyring'), ...sealed }),
  z.object({ ...header, protection: z.literal('passphrase'), kdf: KdfSchema, ...sealed }),
])

type KeyFile = z.output<typeof KeyFileSchema>
type Kdf = z.output<typeof KdfSchema>

async function readKeyFile(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return null
    throw new IdentityError(`cannot read identity.key at ${path}: ${code ?? (err as Error).message}`, {
      cause: err,
    })
  }
}

function parseKeyFile(text: string): KeyFile {
  const value = parseJson(text, 'identity.key is corrupt: not valid JSON')
  const version = (value as { version?: unknown } | null)?.version
  if (Number.isInteger(version) && version !== 1) {
    throw new IdentityError(`identity.key has version ${version}, which this version of Gate cannot read`)
  }
  const result = KeyFileSchema.safeParse(value)
  if (!result.success) throw new IdentityError(`identity.key is corrupt: ${formatIssues(result.error)}`)
  return result.data
}

async function sealKeyFile(init: KeyStoreInit & { identity: Identity }): Promise<KeyFile> {
  const { identity } = init
  const head = { version: 1, node_id: identity.nodeId } as const
  const dataKey = init.keyring ? await keyringDataKey(init.keyring, identity.nodeId, init.signal) : null
  if (dataKey) return { ...head, protection: 'keyring', ...seal(dataKey, identity) }
  if (init.passphrase) {
    const kdf = { name: 'scrypt', salt: toBase64(randomBytes(SALT_LENGTH)), ...SCRYPT_PARAMS } as const
    const key = await deriveKey(init.passphrase, kdf)
    return { ...head, protection: 'passphrase', kdf, ...seal(key, identity) }
  }
  init.onWarning?.(PLAINTEXT_WARNING)
  return { ...head, protection: 'plaintext', private_key: toBase64(identity.privateKey) }
}

async function openKeyFile(file: KeyFile, init: KeyStoreInit): Promise<Identity> {
  let seed: Uint8Array
  switch (file.protection) {
    case 'plaintext':
      init.onWarning?.(PLAINTEXT_WARNING)
      seed = fromBase64(file.private_key)
      break
    case 'passphrase': {
      if (!init.passphrase)
        throw new IdentityError('identity.key is encrypted with a passphrase: set GATE_PASSPHRASE')
      const opened = unseal(await deriveKey(init.passphrase, file.kdf), file)
      if (opened === null) throw new IdentityError('wrong passphrase for identity.key')
      seed = opened
      break
    }
    case 'keyring': {
      const account = keyringAccount(file.node_id)
      if (!init.keyring) {
        throw new IdentityError(
          'identity.key is encrypted with a key in the system keyring, but no keyring is available',
        )
      }
      let stored: string | null
      try {
        stored = await init.keyring.get(account, signalOption(init.signal))
      } catch (err) {
        if (init.signal?.aborted) throw err
        throw new IdentityError(
          `identity.key is encrypted with a key in the system keyring, which is unavailable: ${(err as Error).message}`,
          { cause: err },
        )
      }
      const dataKey = decodeDataKey(stored)
      if (dataKey === null) {
        throw new IdentityError(
          `the system keyring has no key for identity.key (service "${DEFAULT_KEYRING_SERVICE}", account "${account}")`,
        )
      }
      const opened = unseal(dataKey, file)
      if (opened === null)
        throw new IdentityError('identity.key cannot be decrypted with the key in the system keyring')
      seed = opened
      break
    }
  }
  const identity = identityFromSeed(seed)
  seed.fill(0)
  if (identity.nodeId !== file.node_id) {
    throw new IdentityError('identity.key is corrupt: its private key does not match its node_id')
  }
  return identity
}

// --- keyring ---------------------------------------------------------------------------------

/**
 * Keyed by node ID (public) rather than by file path, so a moved data dir still unlocks and a
 * new identity never overwrites the key another file depends on.
 */
function keyringAccount(nodeId: string): string {
  return `identity:${nodeId}`
}

/** The keyring's data key for this identity, created on first use; null when no keyring answers. */
async function keyringDataKey(
  keyring: Keyring,
  nodeId: string,
  signal: AbortSignal | undefined,
): Promise<Uint8Array | null> {
  const account = keyringAccount(nodeId)
  const options = signalOption(signal)
  try {
    // Reused if present: another copy of this identity (another data dir) may depend on it.
    const existing = decodeDataKey(await keyring.get(account, options))
    if (existing !== null) return existing
    const key = randomBytes(KEY_LENGTH)
    await keyring.set(account, toBase64(key), options)
    // A store that accepts a write but cannot return it would lock the identity out.
    const readBack = decodeDataKey(await keyring.get(account, options))
    return readBack !== null && timingSafeEqual(readBack, key) ? key : null
  } catch (err) {
    if (signal?.aborted) throw err
    return null
  }
}

function decodeDataKey(stored: string | null): Uint8Array | null {
  if (stored === null || !z.base64().safeParse(stored).success) return null
  const key = fromBase64(stored)
  return key.length === KEY_LENGTH ? key : null
}

// --- crypto ----------------------------------------------------------------------------------

function seal(key: Uint8Array, identity: Identity): { nonce: string; ciphertext: string } {
  const nonce = randomBytes(NONCE_LENGTH)
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_LENGTH })
  cipher.setAAD(Buffer.from(identity.nodeId, 'utf8'))
  const ciphertext = Buffer.concat([cipher.update(identity.privateKey), cipher.final(), cipher.getAuthTag()])
  return { nonce: toBase64(nonce), ciphertext: toBase64(ciphertext) }
}

/** The seed, or null when authentication fails (wrong key, or file tampered with). */
function unseal(
  key: Uint8Array,
  file: { node_id: string; nonce: string; ciphertext: string },
): Uint8Array | null {
  const data = fromBase64(file.ciphertext)
  const decipher = createDecipheriv('aes-256-gcm', key, fromBase64(file.nonce), { authTagLength: TAG_LENGTH })
  decipher.setAAD(Buffer.from(file.node_id, 'utf8'))
  decipher.setAuthTag(data.subarray(data.length - TAG_LENGTH))
  try {
    return Buffer.concat([decipher.update(data.subarray(0, data.length - TAG_LENGTH)), decipher.final()])
  } catch {
    return null
  }
}

function deriveKey(passphrase: string, kdf: Kdf): Promise<Uint8Array> {
  const { N, r, p } = kdf
  return new Promise((resolve, reject) => {
    // NFC so the same passphrase typed on different systems derives the same key. Node's default
    // maxmem (32 MiB) is just below what N=2^15, r=8 needs.
    scrypt(
      passphrase.normalize('NFC'),
      fromBase64(kdf.salt),
      KEY_LENGTH,
      { N, r, p, maxmem: 256 * N * r },
      (err, key) =>
        err
          ? reject(new IdentityError(`cannot derive the identity.key encryption key: ${err.message}`))
          : resolve(key),
    )
  })
}

// --- helpers ---------------------------------------------------------------------------------

/** JSON.parse's own message quotes the input, which may be a private key, so it is dropped. */
function parseJson(text: string, message: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw new IdentityError(message)
  }
}

/** Field paths and messages only: zod issues here never quote the (secret) input. */
function formatIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : 'file'}: ${i.message}`).join('; ')
}

function signalOption(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal === undefined ? {} : { signal }
}

function toBase64(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64')
}

function fromBase64(s: string): Buffer {
  return Buffer.from(s, 'base64')
}
