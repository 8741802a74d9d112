import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, it } from 'node:test'
import { ensureDir, writeFileAtomic } from '../src/fs.ts'

const isWindows = process.platform === 'win32'

describe('writeFileAtomic', () => {
  let dir: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gate-fs-'))
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('creates, then replaces the content', async () => {
    const path = join(dir, 'config.json')
    await writeFileAtomic(path, 'first')
    assert.equal(await readFile(path, 'utf8'), 'first')
    await writeFileAtomic(path, new TextEncoder().encode('second'))
    assert.equal(await readFile(path, 'utf8'), 'second')
    assert.deepEqual(await readdir(dir), ['config.json'])
  })

  it('applies the mode, defaulting to 0644', { skip: isWindows && 'no POSIX modes' }, async () => {
    const secret = join(dir, 'secret')
    await writeFileAtomic(secret, 'x', { mode: 0o600 })
    assert.equal((await stat(secret)).mode & 0o777, 0o600)
    const plain = join(dir, 'plain')
    await writeFileAtomic(plain, 'x')
    assert.equal((await stat(plain)).mode & 0o777, 0o644)
  })

  it('tightens the mode of a file it replaces', { skip: isWindows && 'no POSIX modes' }, async () => {
    const path = join(dir, 'key')
    await writeFile(path, 'old', { mode: 0o666 })
    await writeFileAtomic(path, 'new', { mode: 0o600 })
    assert.equal((await stat(path)).mode & 0o777, 0o600)
  })

  it('ends concurrent writes with one complete content and no temp files', async () => {
    const path = join(dir, 'peers.json')
    const contents = Array.from({ length: 20 }, (_, i) => String(i).repeat(64 * 1024))
    await Promise.all(contents.map((c) => writeFileAtomic(path, c)))
    assert.ok(contents.includes(await readFile(path, 'utf8')))
    assert.deepEqual(await readdir(dir), ['peers.json'])
  })

  it('removes its temp file when the rename fails', async () => {
    const path = join(dir, 'taken')
    await mkdir(path)
    await writeFile(join(path, 'inside'), 'x')
    await assert.rejects(writeFileAtomic(path, 'data'))
    assert.deepEqual(await readdir(dir), ['taken'])
  })

  it('fails when the directory does not exist', async () => {
    await assert.rejects(writeFileAtomic(join(dir, 'missing', 'file'), 'x'), { code: 'ENOENT' })
  })
})

describe('ensureDir', () => {
  it('creates nested dirs with the mode and accepts existing ones', async () => {
    const root = await mkdtemp(join(tmpdir(), 'gate-fs-'))
    try {
      const nested = join(root, 'a', 'b')
      await ensureDir(nested)
      await ensureDir(nested)
      assert.ok((await stat(nested)).isDirectory())
      if (!isWindows) assert.equal((await stat(nested)).mode & 0o777, 0o700)
    } finally {
      await rm(root, { recursive: true, force: true })
    }
  })
})
