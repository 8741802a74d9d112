import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { SseEvent } from '../src/sse.ts'
import { parseSse } from '../src/sse.ts'

function streamOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk)
      controller.close()
    },
  })
}

async function collect(chunks: Uint8Array[], maxEventChars?: number): Promise<SseEvent[]> {
  const events: SseEvent[] = []
  const options = maxEventChars === undefined ? {} : { maxEventChars }
  for await (const event of parseSse(streamOf(chunks), options)) events.push(event)
  return events
}

const bytes = (text: string) => new TextEncoder().encode(text)

// Every SSE feature the client must cope with, with all three line endings.
const WIRE =
  ': hello comment\n\n' +
  'event: hello\ndata: {}\n\n' +
  'event: log\r\ndata: {"msg":"héllo wörld ✓ 🚀","level":"info"}\r\n\r\n' +
  ': keepalive\n\n' +
  'id: 7\nretry: 1000\nevent: request_end\ndata: {"a":\ndata: 1}\n\n' +
  'data: not json\r\rdata\n\n' +
  'event:nospace\ndata:[1,2]\n\n' +
  'event: empty\n\n' +
  'event: cut off\ndata: {"never":true}\n'

const EXPECTED: SseEvent[] = [
  { event: 'hello', data: {} },
  { event: 'log', data: { msg: 'héllo wörld ✓ 🚀', level: 'info' } },
  { event: 'request_end', data: { a: 1 } },
  { event: 'message', data: 'not json' },
  { event: 'message', data: '' },
  { event: 'nospace', data: [1, 2] },
]

describe('parseSse', () => {
  it('parses a stream in one chunk', async () => {
    assert.deepEqual(await collect([bytes(WIRE)]), EXPECTED)
  })

  it('parses the same events however the bytes are split in two', async () => {
    const all = bytes(WIRE)
    for (let i = 1; i < all.length; i++) {
      assert.deepEqual(await collect([all.subarray(0, i), all.subarray(i)]), EXPECTED, `split at byte ${i}`)
    }
  })

  it('parses the same events fed one byte at a time', async () => {
    const all = bytes(WIRE)
    assert.deepEqual(await collect(Array.from(all, (b) => Uint8Array.of(b))), EXPECTED)
  })

  it('treats a \\r at a chunk end followed by \\n as one line ending', async () => {
    const events = await collect([bytes('data: 1\r'), bytes('\n\r'), bytes('\ndata: 2\r\n\r\n')])
    assert.deepEqual(events, [
      { event: 'message', data: 1 },
      { event: 'message', data: 2 },
    ])
  })

  it('strips a leading BOM', async () => {
    assert.deepEqual(await collect([Uint8Array.of(0xef, 0xbb), Uint8Array.of(0xbf), bytes('data: 1\n\n')]), [
      { event: 'message', data: 1 },
    ])
  })

  it('gives up on an event larger than the limit', async () => {
    await assert.rejects(collect([bytes(`data: ${'x'.repeat(100)}\n\n`)], 50), RangeError)
    await assert.rejects(collect([bytes(`data: ${'x'.repeat(100)}`)], 50), RangeError)
  })

  it('cancels the stream when the consumer stops early', async () => {
    let cancelled = false
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(bytes('data: 1\n\n'))
      },
      cancel() {
        cancelled = true
      },
    })
    for await (const event of parseSse(stream)) {
      assert.deepEqual(event, { event: 'message', data: 1 })
      break
    }
    assert.equal(cancelled, true)
  })
})
