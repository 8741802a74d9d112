import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { ConfigManager } from '../src/config-manager.ts'
import { waitFor } from './utils/wait.ts'

describe('ConfigManager', () => {
  it('reports a changed file it cannot apply, and goes on watching', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gate-config-'))
    const path = join(dir, 'config.json')
    const errors: string[] = []
    const applied: number[] = []
    let failing = true
    const manager = new ConfigManager({
      path,
      onChange: (next) => {
        if (failing) throw new Error('the providers could not be rebuilt')
        applied.push(next.security.max_concurrent_requests)
      },
      onInvalid: (err) => errors.push(err.message),
    })
    await manager.load()
    manager.start()
    try {
      await writeFile(path, JSON.stringify({ security: { max_concurrent_requests: 5 } }))
      await waitFor(() => errors.length === 1)
      assert.match(errors[0] ?? '', /cannot apply the changed config: the providers could not be rebuilt/)
      failing = false
      await writeFile(path, JSON.stringify({ security: { max_concurrent_requests: 6 } }))
      await waitFor(() => applied.includes(6))
    } finally {
      manager.stop()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
