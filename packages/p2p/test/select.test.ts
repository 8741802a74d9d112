import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  FrameStream,
  HTTP_PROTOCOL,
  httpStreamHandler,
  openStream,
  ProtocolError,
  sendRequest,
} from '../src/index.ts'
import { connect, startPair, TRANSPORTS, type Transport, waitUntil } from './utils/nodes.ts'

const HEAD = { method: 'POST', path: '/echo', headers: {} }
const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** A `/gate/http` server that echoes each request body and counts what it served. */
function echoServer(served: string[]) {
  return httpStreamHandler(
    async (request, response) => {
      served.push(decoder.decode(request.body))
      await response.whole({ status: 200, headers: {} }, request.body)
    },
    { maxBodyBytes: 1024 },
  )
}

async function exchange(target: Parameters<typeof sendRequest>[0], text: string): Promise<string> {
  const response = await sendRequest(
    target,
    { head: HEAD, body: encoder.encode(text) },
    AbortSignal.timeout(5000),
  )
  let body = ''
  for await (const chunk of response.body) body += decoder.decode(chunk)
  return body
}

/** Nodes A and B, B echoing `/gate/http`, A connected to it over `transport`: one exchange done. */
async function echoPair(transport: Transport) {
  const pair = await startPair()
  const served: string[] = []
  await pair.b.handle(HTTP_PROTOCOL, echoServer(served))
  const connection = await connect(pair.a, pair.b, transport)
  assert.equal(await exchange(connection, 'before'), 'before')
  return {
    ...pair,
    connection,
    /** The connection carries another exchange, and B served only the two good ones. */
    async servesStill(): Promise<void> {
      assert.equal(await exchange(connection, 'after'), 'after')
      assert.deepEqual(served, ['before', 'after'])
    },
  }
}

for (const transport of TRANSPORTS) {
  describe(`optimistic protocol selection over ${transport}`, () => {
    it('selects with the request from the first stream of a fresh connection on', async () => {
      await using pair = await startPair()
      const { a, b } = pair
      const served: string[] = []
      await b.handle(HTTP_PROTOCOL, echoServer(served))
      // Fresh connections, used at once: the first request may reach the listener while it is
      // still setting up its side of the connection.
      for (let i = 0; i < 3; i++) {
        const connection = await connect(a, b, transport)
        assert.equal(await exchange(connection, `first ${i}`), `first ${i}`)
        const { stream, negotiated } = await openStream(connection, HTTP_PROTOCOL)
        assert.equal(negotiated, false, 'the stream is not negotiated before the request goes out')
        stream.abort(new Error('not needed'))
        const texts = Array.from({ length: 20 }, (_, n) => `${i}-${n}`)
        assert.deepEqual(await Promise.all(texts.map((t) => exchange(connection, t))), texts)
      }
      assert.equal(served.length, 63)
    })

    it('fails the exchange clearly when the listener does not speak the protocol, and keeps serving', async () => {
      await using pair = await echoPair(transport)
      const { connection } = pair

      const missing = '/gate/missing/1.0.0'
      const { stream, negotiated } = await openStream(connection, missing)
      assert.equal(negotiated, false)
      const frames = new FrameStream(stream, { select: missing })
      await frames.write({ type: 'head', value: HEAD })
      await assert.rejects(frames.read(AbortSignal.timeout(5000)), (err: Error) => {
        assert.ok(err instanceof ProtocolError, String(err))
        assert.match(err.message, /the peer does not speak \/gate\/missing\/1\.0\.0/)
        return true
      })
      await pair.servesStill()
    })

    it('resets a stream that does not finish naming its protocol in time, and keeps serving', async () => {
      await using pair = await echoPair(transport)
      const { a, b, connection } = pair
      // libp2p's deadline for an inbound stream to name its protocol is 10 s, a field of each
      // connection (our patch times it with a timer of its own): shortened here for the test.
      const inbound = b.getConnections(a.peerId).find((c) => c.direction === 'inbound')
      assert.ok(inbound)
      Object.assign(inbound, { inboundStreamProtocolNegotiationTimeout: 300 })

      const { stream } = await openStream(connection, HTTP_PROTOCOL)
      // Half of multistream-select's first line: a 19-byte length, then one byte of it.
      stream.send(Uint8Array.of(19, 0x2f))
      const start = performance.now()
      // Streams still negotiating have no protocol yet (identify, ping and the DHT have theirs).
      const bStreams = () => inbound.streams.filter((s) => !s.protocol).length
      await waitUntil(() => bStreams() === 1, 'the listener to hold the stream')
      // The listener resets it: over yamux the dialer's stream closes with an error; over QUIC
      // its read side ends.
      const ended = new Promise((resolve) => {
        stream.addEventListener('close', resolve, { once: true })
        stream.addEventListener('remoteCloseWrite', resolve, { once: true })
      })
      await Promise.race([ended, sleep(5000).then(() => assert.fail('the stream was not reset'))])
      assert.ok(performance.now() - start >= 250, 'not before the deadline')
      assert.equal(bStreams(), 0, 'the listener let the stream go')
      assert.equal(connection.status, 'open', 'the connection survives')
      await pair.servesStill()
    })
  })
}
