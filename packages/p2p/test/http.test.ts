import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  FrameStream,
  HTTP_PROTOCOL,
  httpStreamHandler,
  type IncomingRequest,
  MAX_FRAME_BYTES,
  PeerStreamError,
  RECEIVE_WINDOW,
  sendRequest,
} from '../src/index.ts'
import { connect, startPair, TRANSPORTS, waitUntil } from './utils/nodes.ts'

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const HEAD = { method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' } }

/** Echoes the request, then streams `chunks` SSE events `delayMs` apart. */
function streamingServer(seen: IncomingRequest[], chunks = 5, delayMs = 30) {
  return httpStreamHandler(
    async (request, response) => {
      seen.push(request)
      await response.head({ status: 200, headers: { 'content-type': 'text/event-stream' } })
      await response.data(request.body)
      for (let i = 0; i < chunks; i++) {
        if (request.signal.aborted) return
        await sleep(delayMs)
        await response.data(encoder.encode(`data: ${i}\n\n`))
      }
      await response.end()
    },
    { maxBodyBytes: 1024 * 1024 },
  )
}

function timeout(ms = 10_000): AbortSignal {
  return AbortSignal.timeout(ms)
}

for (const transport of TRANSPORTS) {
  describe(`/gate/http over ${transport}`, () => {
    it('carries one exchange with the body streamed chunk by chunk', async () => {
      await using pair = await startPair()
      const { a, b } = pair
      const seen: IncomingRequest[] = []
      await b.handle(HTTP_PROTOCOL, streamingServer(seen))
      const connection = await connect(a, b, transport)
      const stream = await connection.newStream(HTTP_PROTOCOL, { signal: timeout() })
      const response = await sendRequest(
        stream,
        { head: HEAD, body: encoder.encode('{"model":"m"}') },
        timeout(),
      )
      assert.equal(response.head.status, 200)
      assert.equal(response.head.headers['content-type'], 'text/event-stream')
      const arrivals: Array<{ at: number; text: string }> = []
      for await (const chunk of response.body)
        arrivals.push({ at: performance.now(), text: decoder.decode(chunk) })
      assert.deepEqual(
        arrivals.map((a) => a.text),
        ['{"model":"m"}', 'data: 0\n\n', 'data: 1\n\n', 'data: 2\n\n', 'data: 3\n\n', 'data: 4\n\n'],
      )
      // Chunks 30 ms apart at the server arrive apart, not all at the end.
      const spread = (arrivals.at(-1)?.at ?? 0) - (arrivals[1]?.at ?? 0)
      assert.ok(spread > 80, `chunks arrived within ${spread.toFixed(1)} ms`)
      assert.equal(seen.length, 1)
      assert.deepEqual(seen[0]?.head, HEAD)
      assert.equal(seen[0]?.connection.remotePeer.toString(), a.peerId.toString())
    })

    it('carries bodies larger than a frame and than the flow-control window, both ways', async () => {
      await using pair = await startPair()
      const { a, b } = pair
      await b.handle(
        HTTP_PROTOCOL,
        httpStreamHandler(
          async (request, response) => {
            if (request.head.path === '/whole')
              return response.whole({ status: 200, headers: {} }, request.body)
            await response.head({ status: 200, headers: {} })
            await response.data(request.body)
            await response.end()
          },
          { maxBodyBytes: 8 * RECEIVE_WINDOW },
        ),
      )
      const connection = await connect(a, b, transport)
      for (const [path, size] of [
        ['/', 3 * MAX_FRAME_BYTES + 17],
        ['/whole', 5 * RECEIVE_WINDOW + 3],
      ] as const) {
        const body = new Uint8Array(size).map((_, i) => i % 251)
        const stream = await connection.newStream(HTTP_PROTOCOL, { signal: timeout() })
        const response = await sendRequest(stream, { head: { ...HEAD, path }, body }, timeout())
        const parts: Uint8Array[] = []
        for await (const chunk of response.body) parts.push(chunk)
        assert.ok(parts.length >= 4, 'the body came back in several frames')
        assert.deepEqual(Buffer.concat(parts), Buffer.from(body))
      }
    })

    it('cancels the exchange at the server when the client stops reading', async () => {
      await using pair = await startPair()
      const { a, b } = pair
      const seen: IncomingRequest[] = []
      await b.handle(HTTP_PROTOCOL, streamingServer(seen, 100, 20))
      const stream = await (await connect(a, b, transport)).newStream(HTTP_PROTOCOL, { signal: timeout() })
      const response = await sendRequest(stream, { head: HEAD, body: encoder.encode('{}') }, timeout())
      let n = 0
      for await (const _ of response.body) if (++n === 3) break
      const started = Date.now()
      while (!seen[0]?.signal.aborted && Date.now() - started < 5000) await sleep(10)
      assert.ok(seen[0]?.signal.aborted, 'the server saw the client go away')
    })

    it('cancels the exchange at the server when the client ends its side before the response', async () => {
      await using pair = await startPair()
      const { a, b } = pair
      const seen: IncomingRequest[] = []
      await b.handle(HTTP_PROTOCOL, streamingServer(seen, 100, 20))
      const stream = await (await connect(a, b, transport)).newStream(HTTP_PROTOCOL, { signal: timeout() })
      const frames = new FrameStream(stream)
      await frames.writeAll([
        { type: 'head', value: { ...HEAD } },
        { type: 'data', bytes: encoder.encode('{}') },
        { type: 'end' },
      ])
      assert.equal((await frames.read(timeout())).type, 'head')
      await stream.close() // a clean end of our side, where a reset would be usual
      await waitUntil(() => seen[0]?.signal.aborted === true, 'the server to see the client go away')
      assert.match(String(seen[0]?.signal.reason), /the requester closed the stream/)
    })

    it('reports an error frame and a server that dies mid-stream as PeerStreamError', async () => {
      await using pair = await startPair()
      const { a, b } = pair
      await b.handle(
        HTTP_PROTOCOL,
        httpStreamHandler(
          async (request, response) => {
            await response.head({ status: 200, headers: {} })
            await response.data(encoder.encode('partial'))
            if (decoder.decode(request.body) === 'error') await response.error('engine failed')
            else throw new Error('handler crashed')
          },
          { maxBodyBytes: 1024 },
        ),
      )
      for (const [body, pattern] of [
        ['error', /engine failed/],
        ['crash', /./],
      ] as const) {
        const stream = await (await connect(a, b, transport)).newStream(HTTP_PROTOCOL, { signal: timeout() })
        const response = await sendRequest(stream, { head: HEAD, body: encoder.encode(body) }, timeout())
        const got: string[] = []
        await assert.rejects(
          (async () => {
            for await (const chunk of response.body) got.push(decoder.decode(chunk))
          })(),
          (err: unknown) =>
            (body === 'error' ? err instanceof PeerStreamError : err instanceof Error) &&
            pattern.test(String(err)),
        )
        // An error frame follows the data sent before it; a crash resets the stream, which may
        // drop what was still in flight.
        if (body === 'error') assert.deepEqual(got, ['partial'])
        else assert.ok(got.length === 0 || got[0] === 'partial', String(got))
      }
    })

    it('resets only the stream that breaks the protocol and keeps serving', async () => {
      await using pair = await startPair()
      const { a, b } = pair
      const seen: IncomingRequest[] = []
      const broken: string[] = []
      await b.handle(
        HTTP_PROTOCOL,
        httpStreamHandler(
          async (request, response) => {
            seen.push(request)
            await response.head({ status: 200, headers: {} })
            await response.end()
          },
          { maxBodyBytes: 1024, requestTimeoutMs: 500, onProtocolError: (err) => broken.push(err.message) },
        ),
      )
      const connection = await connect(a, b, transport)
      const cases: Array<[string, Uint8Array[]]> = [
        ['garbage', [encoder.encode('GET / HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(10))]],
        ['stalled mid-frame', [Uint8Array.of(50, 1, 0x7b)]],
        ['oversized', [Uint8Array.of(0xff, 0xff, 0xff, 0x7f, 1), new Uint8Array(1000)]],
        ['unknown type', [Uint8Array.of(2, 9, 0)]],
        ['head not JSON', [Uint8Array.of(4, 1, 0x7b, 0x7b, 0x7b)]],
        ['body before head', [Uint8Array.of(3, 2, 0x41, 0x41)]],
        ['truncated', [Uint8Array.of(50, 1, 0x7b)]],
        ['body over the limit', [frame(1, JSON.stringify(HEAD)), frame(2, 'x'.repeat(2000))]],
      ]
      for (const [i, [name, bytes]] of cases.entries()) {
        const stream = await connection.newStream(HTTP_PROTOCOL, { signal: timeout() })
        for (const b of bytes) stream.send(b)
        if (name === 'truncated') await stream.close()
        await waitUntil(() => broken.length > i, `the server to reset the "${name}" stream`)
        stream.abort(new Error('done'))
      }
      assert.equal(connection.status, 'open', 'the connection survives its broken streams')
      assert.equal(seen.length, 0, 'no broken request reached the handler')
      assert.equal(broken.length, cases.length, broken.join('; '))
      assert.ok(broken.some((m) => /over the .*cap/.test(m)))
      assert.ok(broken.some((m) => /unknown frame type 9/.test(m)))
      assert.ok(
        broken.some((m) => /did not arrive within 500 ms/.test(m)),
        'the stalled ones time out',
      )
      // The same connection still carries a good exchange.
      const stream = await connection.newStream(HTTP_PROTOCOL, { signal: timeout() })
      const response = await sendRequest(stream, { head: HEAD, body: encoder.encode('{}') }, timeout())
      assert.equal(response.head.status, 200)
      for await (const _ of response.body) assert.fail('no body expected')
      assert.equal(seen.length, 1)
    })

    it('answers a refused requester at once, drops what it sends up to a bound, and is read whole', async () => {
      await using pair = await startPair()
      const { a, b } = pair
      const seen: IncomingRequest[] = []
      const refused: string[] = []
      const answer = encoder.encode('{"error":{"message":"not trusted"}}')
      await b.handle(
        HTTP_PROTOCOL,
        httpStreamHandler(
          async (request, response) => {
            seen.push(request)
            await response.whole({ status: 200, headers: {} }, new Uint8Array())
          },
          {
            maxBodyBytes: 8 * RECEIVE_WINDOW,
            refuse: (connection) => {
              refused.push(connection.remotePeer.toString())
              return { head: { status: 403, headers: { 'content-type': 'application/json' } }, body: answer }
            },
          },
        ),
      )
      const connection = await connect(a, b, transport)
      // The answer comes with no body sent at all.
      const frames = new FrameStream(await connection.newStream(HTTP_PROTOCOL, { signal: timeout() }))
      await frames.write({ type: 'head', value: { ...HEAD } })
      const head = await frames.read(timeout())
      assert.equal(head.type === 'head' && head.value.status, 403)
      const data = await frames.read(timeout())
      assert.equal(data.type === 'data' && decoder.decode(data.bytes), decoder.decode(answer))
      assert.equal((await frames.read(timeout())).type, 'end')
      frames.stream.abort(new Error('done'))
      // A body several flow-control windows long: the node stops reading it past a bound and
      // resets the stream, and the requester still reads the refusal that came first.
      const response = await sendRequest(
        connection,
        { head: HEAD, body: new Uint8Array(4 * RECEIVE_WINDOW) },
        timeout(),
      )
      assert.equal(response.head.status, 403)
      for await (const chunk of response.body) assert.equal(decoder.decode(chunk), decoder.decode(answer))
      assert.equal(seen.length, 0, 'no refused request reached the handler')
      assert.deepEqual(refused, [a.peerId.toString(), a.peerId.toString()])
    })

    it('answers a body over the limit with its tooLarge answer once the body is in, and keeps serving', async () => {
      await using pair = await startPair()
      const { a, b } = pair
      const seen: number[] = []
      const limits: number[] = []
      const answer = encoder.encode('{"error":{"message":"too large"}}')
      await b.handle(
        HTTP_PROTOCOL,
        httpStreamHandler(
          async (request, response) => {
            seen.push(request.body.length)
            await response.whole({ status: 200, headers: {} }, new Uint8Array())
          },
          {
            maxBodyBytes: 1024,
            tooLarge: (limit) => {
              limits.push(limit)
              return { head: { status: 413, headers: { 'content-type': 'application/json' } }, body: answer }
            },
          },
        ),
      )
      const connection = await connect(a, b, transport)
      // Several flow-control windows: all of it is read (and dropped), so the sender is not left
      // waiting for credit.
      const over = await sendRequest(
        connection,
        { head: HEAD, body: new Uint8Array(3 * RECEIVE_WINDOW) },
        timeout(),
      )
      assert.equal(over.head.status, 413)
      const got: string[] = []
      for await (const chunk of over.body) got.push(decoder.decode(chunk))
      assert.equal(got.join(''), decoder.decode(answer))
      assert.deepEqual(limits, [1024])
      const ok = await sendRequest(connection, { head: HEAD, body: new Uint8Array(1024) }, timeout())
      assert.equal(ok.head.status, 200)
      for await (const _ of ok.body) assert.fail('no body expected')
      assert.deepEqual(seen, [1024], 'only the request within the limit reached the handler')
    })

    it('holds a fast writer back while the reader is slow', async () => {
      await using pair = await startPair()
      const { a, b } = pair
      const total = 64 * 1024 * 1024
      const chunk = new Uint8Array(64 * 1024)
      let sent = 0
      await b.handle(
        HTTP_PROTOCOL,
        httpStreamHandler(
          async (request, response) => {
            await response.head({ status: 200, headers: {} })
            while (sent < total && !request.signal.aborted) {
              await response.data(chunk)
              sent += chunk.length
            }
            await response.end()
          },
          { maxBodyBytes: 1024 },
        ),
      )
      const stream = await (await connect(a, b, transport)).newStream(HTTP_PROTOCOL, {
        signal: timeout(60_000),
      })
      const response = await sendRequest(stream, { head: HEAD, body: encoder.encode('{}') }, timeout(60_000))
      const iterator = response.body[Symbol.asyncIterator]()
      let received = (await iterator.next()).value?.length ?? 0
      await sleep(1000) // the reader stalls
      const aheadWhileStalled = sent - received
      assert.ok(
        aheadWhileStalled < 16 * 1024 * 1024,
        `the writer ran ${aheadWhileStalled} bytes ahead of a stalled reader`,
      )
      for (let r = await iterator.next(); !r.done; r = await iterator.next()) received += r.value.length
      assert.equal(received, total)
    })
  })
}

/** A frame: varint length, type, payload (lengths under 128 only). */
function frame(type: number, payload: string): Uint8Array {
  const bytes = encoder.encode(payload)
  const length = bytes.length + 1
  const prefix = length < 128 ? [length] : [(length & 0x7f) | 0x80, length >> 7]
  return Uint8Array.from([...prefix, type, ...bytes])
}
