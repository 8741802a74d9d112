import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, it } from 'node:test'
import { base32 } from 'multiformats/bases/base32'
import { IdentityError, KeyringUnavailableError } from '../src/errors.ts'
import { generateIdentity, type Identity } from '../src/identity.ts'
import {
  createOsKeyring,
  exportIdentity,
  type KeyStoreInit,
  loadOrCreateIdentity,
  PLAINTEXT_WARNING,
  parseExportedIdentity,
  readNodeIdFromKeyFile,
  saveIdentity,
} from '../src/key-store.ts'
import { createMemoryKeyring, createUnavailableKeyring } from './utils/memory-keyring.ts'

const PASSPHRASE = 'correct horse battery staple'
const isWindows = process.platform === 'win32'

/** Every encoding of the seed that could plausibly end up in a file or message. */
function seedEncodings(identity: Identity): string[] {
  const seed = Buffer.from(identity.privateKey)
  return [
    seed.toString('hex'),
    seed.toString('hex').toUpperCase(),
    seed.toString('base64'),
    seed.toString('base64url'),
    base32.baseEncode(seed),
  ]
}

function assertNoSeed(text: string, identity: Identity): void {
  for (const encoded of seedEncodings(identity)) assert.ok(!text.includes(encoded), 'seed found')
}

async function rejectsWith(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: Error) => {
    assert.ok(err instanceof IdentityError, `expected IdentityError, got ${err.name}: ${err.message}`)
    assert.match(err.message, pattern)
    return true
  })
}

describe('key store', () => {
  let dir: string
  let path: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gate-key-'))
    path = join(dir, 'identity.key')
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  for (const protection of ['plaintext', 'passphrase', 'keyring'] as const) {
    it(`creates a 0600 ${protection} file`, { skip: isWindows && 'no POSIX modes' }, async () => {
      const init: KeyStoreInit = { path, onWarning: () => {} }
      if (protection === 'passphrase') init.passphrase = PASSPHRASE
      if (protection === 'keyring') init.keyring = createMemoryKeyring()
      const created = await loadOrCreateIdentity(init)
      assert.equal(created.created, true)
      assert.equal(created.protection, protection)
      assert.equal((await stat(path)).mode & 0o777, 0o600)
    })
  }

  it('creates the data dir when missing', async () => {
    const nested = join(dir, 'home', 'identity.key')
    const { identity } = await loadOrCreateIdentity({ path: nested, onWarning: () => {} })
    assert.equal(await readNodeIdFromKeyFile(nested), identity.nodeId)
  })

  describe('passphrase', () => {
    it('encrypts the seed and reloads with the passphrase', async () => {
      const created = await loadOrCreateIdentity({ path, passphrase: PASSPHRASE })
      assert.equal(created.protection, 'passphrase')
      const text = await readFile(path, 'utf8')
      assertNoSeed(text, created.identity)
      const file = JSON.parse(text)
      assert.equal(file.version, 1)
      assert.equal(file.node_id, created.identity.nodeId)
      assert.equal(file.private_key, undefined)
      assert.deepEqual(file.kdf.N, 2 ** 15)

      const loaded = await loadOrCreateIdentity({ path, passphrase: PASSPHRASE })
      assert.equal(loaded.created, false)
      assert.equal(loaded.protection, 'passphrase')
      assert.equal(loaded.identity.nodeId, created.identity.nodeId)
      assert.deepEqual(loaded.identity.privateKey, created.identity.privateKey)
    })

    it('rejects a wrong passphrase and leaves the file alone', async () => {
      await loadOrCreateIdentity({ path, passphrase: PASSPHRASE })
      const before = await readFile(path)
      await rejectsWith(
        loadOrCreateIdentity({ path, passphrase: 'wrong' }),
        /^wrong passphrase for identity\.key$/,
      )
      assert.deepEqual(await readFile(path), before)
    })

    it('rejects a missing passphrase and leaves the file alone', async () => {
      await loadOrCreateIdentity({ path, passphrase: PASSPHRASE })
      const before = await readFile(path)
      const message = /^identity\.key is encrypted with a passphrase: set GATE_PASSPHRASE$/
      await rejectsWith(loadOrCreateIdentity({ path }), message)
      await rejectsWith(loadOrCreateIdentity({ path, passphrase: '' }), message)
      assert.deepEqual(await readFile(path), before)
    })

    it('rejects a tampered ciphertext or node_id', async () => {
      await loadOrCreateIdentity({ path, passphrase: PASSPHRASE })
      const file = JSON.parse(await readFile(path, 'utf8'))
      const ciphertext = Buffer.from(file.ciphertext, 'base64')
      ciphertext[3] = (ciphertext[3] ?? 0) ^ 0x01
      await writeFile(path, JSON.stringify({ ...file, ciphertext: ciphertext.toString('base64') }))
      await rejectsWith(loadOrCreateIdentity({ path, passphrase: PASSPHRASE }), /wrong passphrase/)

      // node_id is the AEAD's additional data: swapping in another ID breaks authentication.
      await writeFile(path, JSON.stringify({ ...file, node_id: generateIdentity().nodeId }))
      await rejectsWith(loadOrCreateIdentity({ path, passphrase: PASSPHRASE }), /wrong passphrase/)
    })
  })

  describe('plaintext', () => {
    it('warns on create and on load', async () => {
      const warnings: string[] = []
      const init: KeyStoreInit = { path, onWarning: (msg) => warnings.push(msg) }
      const created = await loadOrCreateIdentity(init)
      assert.equal(created.protection, 'plaintext')
      assert.deepEqual(warnings, [PLAINTEXT_WARNING])
      const loaded = await loadOrCreateIdentity(init)
      assert.equal(loaded.identity.nodeId, created.identity.nodeId)
      assert.equal(loaded.protection, 'plaintext')
      assert.deepEqual(warnings, [PLAINTEXT_WARNING, PLAINTEXT_WARNING])
    })

    it('rejects a private key that does not match node_id', async () => {
      await loadOrCreateIdentity({ path })
      const file = JSON.parse(await readFile(path, 'utf8'))
      await writeFile(path, JSON.stringify({ ...file, node_id: generateIdentity().nodeId }))
      await rejectsWith(loadOrCreateIdentity({ path }), /does not match its node_id/)
    })
  })

  describe('keyring', () => {
    it('keeps the data key in the keyring and no seed in the file', async () => {
      const keyring = createMemoryKeyring()
      const created = await loadOrCreateIdentity({ path, keyring, passphrase: PASSPHRASE })
      assert.equal(created.protection, 'keyring')
      assert.deepEqual([...keyring.entries.keys()], [`identity:${created.identity.nodeId}`])
      assertNoSeed(await readFile(path, 'utf8'), created.identity)

      const loaded = await loadOrCreateIdentity({ path, keyring })
      assert.equal(loaded.protection, 'keyring')
      assert.equal(loaded.identity.nodeId, created.identity.nodeId)
    })

    it('refuses to open without the keyring entry, leaving the file alone', async () => {
      await loadOrCreateIdentity({ path, keyring: createMemoryKeyring() })
      const before = await readFile(path)
      await rejectsWith(
        loadOrCreateIdentity({ path, keyring: createMemoryKeyring() }),
        /system keyring has no key/,
      )
      await rejectsWith(loadOrCreateIdentity({ path, keyring: null }), /no keyring is available/)
      await rejectsWith(
        loadOrCreateIdentity({ path, keyring: createUnavailableKeyring(), passphrase: PASSPHRASE }),
        /keyring, which is unavailable/,
      )
      assert.deepEqual(await readFile(path), before)
    })

    it('rejects a keyring key that does not open the file', async () => {
      const keyring = createMemoryKeyring()
      const { identity } = await loadOrCreateIdentity({ path, keyring })
      keyring.entries.set(`identity:${identity.nodeId}`, Buffer.alloc(32, 7).toString('base64'))
      await rejectsWith(loadOrCreateIdentity({ path, keyring }), /cannot be decrypted/)
    })

    it('falls back to the passphrase when no keyring answers', async () => {
      const created = await loadOrCreateIdentity({
        path,
        keyring: createUnavailableKeyring(),
        passphrase: PASSPHRASE,
      })
      assert.equal(created.protection, 'passphrase')
    })

    it('reuses the data key already stored for the same identity', async () => {
      const keyring = createMemoryKeyring()
      const identity = generateIdentity()
      await saveIdentity({ path, keyring, identity })
      const otherPath = join(dir, 'other.key')
      await saveIdentity({ path: otherPath, keyring, identity })
      assert.equal(keyring.entries.size, 1)
      for (const p of [path, otherPath]) {
        assert.equal((await loadOrCreateIdentity({ path: p, keyring })).identity.nodeId, identity.nodeId)
      }
    })

    it('falls back cleanly with the OS keyring on a headless machine', {
      skip:
        (process.platform !== 'linux' || process.env.DBUS_SESSION_BUS_ADDRESS) && 'needs Linux without D-Bus',
    }, async () => {
      const keyring = createOsKeyring()
      await assert.rejects(keyring.get('gate-test'), KeyringUnavailableError)
      const warnings: string[] = []
      const created = await loadOrCreateIdentity({ path, keyring, onWarning: (msg) => warnings.push(msg) })
      assert.equal(created.protection, 'plaintext')
      assert.deepEqual(warnings, [PLAINTEXT_WARNING])
    })
  })

  describe('corrupt files', () => {
    const corrupt: Record<string, string> = {
      empty: '',
      'not JSON': '{"version":1,',
      'not an object': '[]',
      'unknown protection': '{"version":1,"node_id":"x","protection":"rot13"}',
    }
    for (const [name, text] of Object.entries(corrupt)) {
      it(`rejects ${name} and never replaces it`, async () => {
        await writeFile(path, text)
        await rejectsWith(
          loadOrCreateIdentity({ path, passphrase: PASSPHRASE }),
          /^identity\.key is corrupt: /,
        )
        assert.equal(await readFile(path, 'utf8'), text)
      })
    }

    it('names an unsupported version', async () => {
      await writeFile(path, '{"version":2,"node_id":"x","protection":"quantum"}')
      await rejectsWith(
        loadOrCreateIdentity({ path }),
        /^identity\.key has version 2, which this version of Gate/,
      )
    })

    it('keeps key material out of the message', async () => {
      const identity = generateIdentity()
      const seed = Buffer.from(identity.privateKey).toString('base64')
      const text = `{"version":1,"node_id":"${identity.nodeId}","protection":"plaintext","private_key":"${seed}" oops`
      await writeFile(path, text)
      await assert.rejects(loadOrCreateIdentity({ path }), (err: Error) => {
        assert.ok(err instanceof IdentityError)
        assertNoSeed(`${err.message} ${String(err.cause)}`, identity)
        return true
      })
    })

    it('reads node_id without decrypting, or null without a file', async () => {
      assert.equal(await readNodeIdFromKeyFile(path), null)
      const { identity } = await loadOrCreateIdentity({ path, passphrase: PASSPHRASE })
      assert.equal(await readNodeIdFromKeyFile(path), identity.nodeId)
      await writeFile(path, 'junk')
      await assert.rejects(readNodeIdFromKeyFile(path), IdentityError)
    })
  })

  describe('export and import', () => {
    it('round-trips and saves under the imported identity', async () => {
      const identity = generateIdentity()
      const text = exportIdentity(identity)
      assert.deepEqual(Object.keys(JSON.parse(text)), ['node_id', 'private_key'])
      const imported = parseExportedIdentity(text)
      assert.equal(imported.nodeId, identity.nodeId)
      assert.deepEqual(imported.privateKey, identity.privateKey)

      await saveIdentity({ path, identity: imported, passphrase: PASSPHRASE })
      const loaded = await loadOrCreateIdentity({ path, passphrase: PASSPHRASE })
      assert.equal(loaded.identity.nodeId, identity.nodeId)
      assert.equal(loaded.created, false)
    })

    it('accepts an export without node_id, or with it as a PeerId', () => {
      const identity = generateIdentity()
      const privateKey = Buffer.from(identity.privateKey).toString('base64')
      assert.equal(parseExportedIdentity(JSON.stringify({ private_key: privateKey })).nodeId, identity.nodeId)
      const withPeerId = JSON.stringify({ node_id: identity.peerId, private_key: privateKey })
      assert.equal(parseExportedIdentity(withPeerId).nodeId, identity.nodeId)
    })

    it('rejects inconsistent or malformed exports without echoing them', () => {
      const identity = generateIdentity()
      const privateKey = Buffer.from(identity.privateKey).toString('base64')
      const bad = [
        JSON.stringify({ node_id: generateIdentity().nodeId, private_key: privateKey }),
        JSON.stringify({ node_id: identity.nodeId, private_key: privateKey.slice(0, -4) }),
        JSON.stringify({ node_id: identity.nodeId, private_key: `${privateKey}!` }),
        JSON.stringify({ node_id: identity.nodeId }),
        `${exportIdentity(identity)} trailing`,
      ]
      for (const text of bad) {
        assert.throws(
          () => parseExportedIdentity(text),
          (err: Error) => {
            assert.ok(err instanceof IdentityError, `${err.name}: ${err.message}`)
            assertNoSeed(err.message, identity)
            return true
          },
        )
      }
    })
  })
})
