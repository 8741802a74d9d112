import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { pino } from 'pino'
import { type Activity, MemoryTrimmer } from '../src/memory.ts'

const logger = pino({ level: 'silent' })

function trimmer(activity: Activity) {
  let collections = 0
  const t = new MemoryTrimmer({
    activity: () => activity,
    intervalMs: 1000,
    logger,
    collect: () => {
      collections++
    },
  })
  return { t, collections: () => collections }
}

const MEMORY = fileURLToPath(new URL('../src/memory.ts', import.meta.url))

/**
 * Runs `script` (an ES module that imports from `MEMORY`) in a node with `--expose-gc`, whose
 * memory is its own to measure, and returns the JSON it prints.
 */
async function inChild<T>(script: string): Promise<T> {
  const { stdout } = await promisify(execFile)(process.execPath, [
    '--expose-gc',
    '--input-type=module',
    '-e',
    script,
  ])
  return JSON.parse(stdout) as T
}

describe('memory trimmer', () => {
  it('collects once after start, then only after requests were served and the API went quiet', () => {
    const activity = { finished: 0, active: 0 }
    const { t, collections } = trimmer(activity)
    assert.equal(t.tick(), true, 'the start-up garbage')
    assert.equal(t.tick(), false, 'nothing served since')
    activity.finished = 5
    assert.equal(t.tick(), false, 'requests finished during this interval')
    assert.equal(t.tick(), true, 'a whole quiet interval after them')
    assert.equal(t.tick(), false)
    assert.equal(collections(), 2)
  })

  it('waits while a request is in flight, however long it runs', () => {
    const activity = { finished: 0, active: 0 }
    const { t, collections } = trimmer(activity)
    activity.active = 1
    for (let i = 0; i < 3; i++) assert.equal(t.tick(), false)
    activity.active = 0
    activity.finished = 1
    assert.equal(t.tick(), false, 'it finished during this interval')
    assert.equal(t.tick(), true)
    assert.equal(collections(), 1)
  })

  it("V8's collection hands a grown heap back (node --expose-gc)", async () => {
    // In a child process: this runner has no --expose-gc, and its heap is not ours to measure.
    const { trimmed, before, after } = await inChild<{ trimmed: boolean; before: number; after: number }>(`
      import { MemoryTrimmer } from ${JSON.stringify(MEMORY)}
      const activity = { finished: 0, active: 0 }
      const t = new MemoryTrimmer({ activity: () => activity, intervalMs: 1000, logger: { debug() {} } })
      let garbage = Array.from({ length: 400 }, () => Array.from({ length: 20_000 }, (_, i) => ({ i })))
      garbage = null
      const before = process.memoryUsage().heapTotal
      const trimmed = t.tick()
      console.log(JSON.stringify({ trimmed, before, after: process.memoryUsage().heapTotal }))
    `)
    assert.equal(trimmed, true)
    assert.ok(before > 200 * 2 ** 20, `the heap grew (${before} bytes)`)
    assert.ok(after < before / 4, `heap ${before} → ${after} bytes`)
  })

  it("glibc's malloc_trim hands back the free pages inside malloc's heap", {
    skip: process.platform !== 'linux' && 'glibc only',
  }, async () => {
    // Native buffers come from malloc; one in 64 stays alive, so what the others freed is in the
    // middle of the heap, where free() leaves it resident.
    const { released, before, after } = await inChild<{ released: boolean; before: number; after: number }>(`
      import { mallocTrim } from ${JSON.stringify(MEMORY)}
      let buffers = Array.from({ length: 100_000 }, () => Buffer.allocUnsafeSlow(400))
      const kept = buffers.filter((_, i) => i % 64 === 0)
      buffers = null
      // Their memory is freed once the collection has swept them, on a helper thread.
      gc()
      gc()
      await new Promise((resolve) => setTimeout(resolve, 200))
      const before = process.memoryUsage.rss()
      const released = mallocTrim()
      console.log(JSON.stringify({ released, before, after: process.memoryUsage.rss(), kept: kept.length }))
    `)
    assert.equal(released, true)
    assert.ok(before - after > 20 * 2 ** 20, `resident ${before} → ${after} bytes`)
  })

  it('does nothing without --expose-gc', () => {
    const t = new MemoryTrimmer({ activity: () => ({ finished: 0, active: 0 }), intervalMs: 1000, logger })
    assert.equal(globalThis.gc, undefined, 'the test runner has no --expose-gc')
    assert.equal(t.tick(), false)
  })
})
