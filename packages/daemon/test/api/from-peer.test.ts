import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ResponseHead, ResponseWriter } from '@gate/p2p'
import { PeerResponse } from '../../src/api/from-peer.ts'

/** A ResponseWriter that records calls and takes `delayMs` over each write, like a slow stream. */
function slowWriter(delayMs: number) {
  const calls: Array<[string, ResponseHead | number | undefined]> = []
  const writer: ResponseWriter = {
    head: async (head) => {
      calls.push(['head', head])
      await sleep(delayMs)
    },
    data: async (bytes) => {
      calls.push(['data', bytes.length])
      await sleep(delayMs)
    },
    end: async () => {
      calls.push(['end', undefined])
    },
    whole: async (head, body) => {
      calls.push(['whole', head], ['data', body.length])
    },
    error: async () => {
      calls.push(['error', undefined])
    },
  }
  return { writer, calls }
}

describe('PeerResponse', () => {
  it('sends a complete response in one write, without hop-by-hop headers', async () => {
    const { writer, calls } = slowWriter(0)
    const res = new PeerResponse(writer, new AbortController().signal)
    res.setHeader('x-request-id', 'abc')
    res.writeHead(404, { 'content-type': 'application/json', 'content-length': 2 }).end('{}')
    await res.done
    assert.deepEqual(calls, [
      ['whole', { status: 404, headers: { 'x-request-id': 'abc', 'content-type': 'application/json' } }],
      ['data', 2],
    ])
    assert.equal(res.writableFinished, true)
  })

  it('asks a fast writer to wait while the stream is behind, then says drain', async () => {
    const { writer, calls } = slowWriter(20)
    const res = new PeerResponse(writer, new AbortController().signal)
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    const chunk = new Uint8Array(40 * 1024)
    assert.equal(res.write(chunk), true)
    assert.equal(res.write(chunk), false, 'over 64 KiB queued')
    await once(res, 'drain')
    assert.equal(res.write(new Uint8Array(1024)), true)
    res.end()
    await res.done
    assert.deepEqual(
      calls.map(([kind]) => kind),
      ['head', 'data', 'data', 'data', 'end'],
    )
  })

  it('is abandoned, once, when the requester goes away, and writes nothing more', async () => {
    const { writer, calls } = slowWriter(20)
    const gone = new AbortController()
    const res = new PeerResponse(writer, gone.signal)
    let closes = 0
    res.once('close', () => closes++)
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write(new Uint8Array(10))
    res.write(new Uint8Array(10))
    await sleep(5) // the first write is under way
    gone.abort()
    res.end()
    await assert.rejects(res.done, /abandoned/)
    await sleep(60)
    assert.equal(res.destroyed, true)
    assert.equal(res.writableFinished, false)
    assert.equal(closes, 1)
    assert.deepEqual(
      calls.map(([kind]) => kind),
      ['head', 'data'],
      'the write in progress finished; the queued ones were dropped',
    )
  })
})
