import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { ConfigManager } from '../src/config-manager.ts'
import { detectEngines } from '../src/providers/registry.ts'
import { startFakeEngine } from './utils/fake-engine.ts'
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

  it('creates a missing config with the local engines that answer, and leaves an existing one alone', async () => {
    await using ollama = await startFakeEngine({ kind: 'ollama', models: ['llama3.2:1b'] })
    const dir = await mkdtemp(join(tmpdir(), 'gate-config-'))
    const path = join(dir, 'config.json')
    // Ollama answers where it is looked for; nothing listens where LM Studio is looked for.
    const detect = () => detectEngines({ ollama: ollama.url, lmstudio: 'http://127.0.0.1:9' })
    try {
      const first = new ConfigManager({ path, detect, onChange: () => {}, onInvalid: () => {} })
      const { config, created } = await first.load()
      assert.deepEqual(
        created?.providers.map((p) => [p.name, p.kind, p.url]),
        [['ollama', 'ollama', `${ollama.url}/v1`]],
      )
      assert.deepEqual(config.providers, created?.providers)
      const saved = JSON.parse(await readFile(path, 'utf8'))
      assert.equal(saved.providers[0].url, `${ollama.url}/v1`)
      assert.equal((await stat(path)).mode & 0o777, 0o600)

      await writeFile(path, JSON.stringify({ providers: [] }))
      const again = new ConfigManager({ path, detect, onChange: () => {}, onInvalid: () => {} })
      const loaded = await again.load()
      assert.equal(loaded.created, null)
      assert.deepEqual(loaded.config.providers, [], 'an existing config is not changed by detection')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
