import assert from 'node:assert/strict'
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { waitFor } from '../../daemon/test/utils/wait.ts'
import { createLogger, LOG_FILE_BYTES, LOG_FILES_KEPT, rotatingFile } from '../src/log.ts'

describe('logs', () => {
  it('redacts secret fields at the top level, one level down and in headers', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gate-logger-'))
    try {
      const file = join(dir, 'daemon.log')
      const lines: Array<Record<string, unknown>> = []
      const { logger, close } = createLogger({
        file,
        level: 'info',
        terminal: false,
        onLine: (l) => lines.push(l),
      })
      logger.info(
        {
          token: 'SECRET-1',
          provider: { name: 'engine', api_key: 'SECRET-2' },
          security: { api_keys: ['SECRET-3'] },
          headers: { authorization: 'Bearer SECRET-4', accept: 'application/json' },
          request: { headers: { authorization: 'Bearer SECRET-5' } },
          identity: { private_key: 'SECRET-6', passphrase: 'SECRET-7' },
        },
        'with secrets',
      )
      const written = () => readFile(file, 'utf8').catch(() => '')
      await waitFor(async () => (await written()).includes('with secrets'))
      await close()
      const text = await written()
      assert.doesNotMatch(text, /SECRET/)
      assert.doesNotMatch(JSON.stringify(lines), /SECRET/)
      const line = JSON.parse(text.trim()) as {
        provider: Record<string, string>
        headers: Record<string, string>
        request: { headers: Record<string, string> }
      }
      assert.equal(line.provider.api_key, '[redacted]')
      assert.equal(line.request.headers.authorization, '[redacted]')
      // What is not a secret stays.
      assert.equal(line.provider.name, 'engine')
      assert.equal(line.headers.accept, 'application/json')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('rotates a log file by size, keeping a bounded number of old ones, owner-only', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gate-rotate-'))
    try {
      const file = rotatingFile(join(dir, 'requests.jsonl'))
      const line = `${'x'.repeat(1024 * 1024 - 1)}\n`
      for (let i = 0; i < (LOG_FILES_KEPT + 3) * (LOG_FILE_BYTES / line.length); i++) file.write(line)
      await new Promise<void>((resolve) => file.end(resolve))
      const files = (await readdir(dir)).sort()
      assert.deepEqual(files, [
        'requests.jsonl',
        ...Array.from({ length: LOG_FILES_KEPT }, (_, i) => `requests.jsonl.${i + 1}`),
      ])
      for (const name of files) {
        const { size, mode } = await stat(join(dir, name))
        assert.ok(size <= LOG_FILE_BYTES, `${name}: ${size} bytes`)
        assert.equal(mode & 0o777, 0o600)
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
