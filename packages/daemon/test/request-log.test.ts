import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import type { RequestRecord } from '@gate/rpc'
import { REQUEST_HISTORY_SIZE } from '../src/constants.ts'
import { RequestLog } from '../src/request-log.ts'

function record(n: number): RequestRecord {
  return {
    id: `req-${n}`,
    time: new Date(n).toISOString(),
    method: 'POST',
    route: '/v1/chat/completions',
    model: 'm',
    node: 'self',
    provider: 'engine',
    status: 200,
    latency_ms: 1,
    stream: false,
    consumer: 'local',
    usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 },
    error: null,
  }
}

describe('RequestLog', () => {
  it('keeps the latest REQUEST_HISTORY_SIZE records, newest first, and writes every one to its file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gate-request-log-'))
    try {
      const log = new RequestLog(join(dir, 'requests.jsonl'), 'self')
      const total = REQUEST_HISTORY_SIZE + 5
      for (let n = 0; n < total; n++) log.add(record(n))
      assert.deepEqual(
        log.recent(3).map((r) => r.id),
        [total - 1, total - 2, total - 3].map((n) => `req-${n}`),
      )
      const all = log.recent(REQUEST_HISTORY_SIZE + 100)
      assert.equal(all.length, REQUEST_HISTORY_SIZE)
      assert.equal(all.at(0)?.id, `req-${total - 1}`)
      assert.equal(all.at(-1)?.id, `req-${total - REQUEST_HISTORY_SIZE}`)
      await log.close()
      const lines = (await readFile(join(dir, 'requests.jsonl'), 'utf8')).trim().split('\n')
      assert.equal(lines.length, total)
      assert.deepEqual(JSON.parse(lines[0] as string), record(0))
      assert.equal(log.usage.get('local')?.completion_tokens, 3 * total)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
