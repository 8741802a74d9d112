import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Capabilities } from '@gate/core'
import { CONTROL_PROTOCOL, type ControlPayload, controlRequest, controlStreamHandler } from '../src/index.ts'
import { connect, startPair, TRANSPORTS, waitUntil } from './utils/nodes.ts'

const CAPABILITIES: Capabilities = {
  node_id: 'x',
  supported_models: ['m'],
  max_context_length: null,
  supports_streaming: true,
  load_factor: 0.25,
}

for (const transport of TRANSPORTS) {
  describe(`/gate/control over ${transport}`, () => {
    it('answers each request, and resets only the streams that break the protocol', async () => {
      await using pair = await startPair()
      const { a, b } = pair
      const seen: ControlPayload[] = []
      const broken: string[] = []
      await b.handle(
        CONTROL_PROTOCOL,
        controlStreamHandler(
          async (payload) => {
            seen.push(payload)
            if (payload.type === 'ping') return { type: 'pong' }
            return { type: 'handshake_response', capabilities: CAPABILITIES }
          },
          { onProtocolError: (err) => broken.push(err.message) },
        ),
      )
      const connection = await connect(a, b, transport)
      const ask = async (payload: ControlPayload) =>
        controlRequest(await connection.newStream(CONTROL_PROTOCOL), payload, AbortSignal.timeout(5000))
      assert.deepEqual(await ask({ type: 'ping' }), { type: 'pong' })
      assert.deepEqual(await ask({ type: 'handshake', capabilities: { ...CAPABILITIES, node_id: 'a' } }), {
        type: 'handshake_response',
        capabilities: CAPABILITIES,
      })

      const frame = (json: string) => {
        const bytes = new TextEncoder().encode(json)
        return Uint8Array.from([bytes.length + 1, 1, ...bytes])
      }
      const bad: Array<[string, Uint8Array]> = [
        ['garbage', new TextEncoder().encode('x'.repeat(300))],
        ['oversized', Uint8Array.of(0xff, 0xff, 0xff, 0x7f, 1)],
        ['wrong version', frame('{"version":2,"id":"i","timestamp":1,"payload":{"type":"ping"}}')],
        [
          'version that cannot be made a string',
          frame('{"version":{"toString":0},"id":"i","timestamp":1,"payload":{"type":"ping"}}'),
        ],
        ['unknown payload', frame('{"version":1,"id":"i","timestamp":1,"payload":{"type":"launch"}}')],
        [
          'bad capabilities',
          frame(
            '{"version":1,"id":"i","timestamp":1,"payload":{"type":"handshake","capabilities":{"load_factor":7}}}',
          ),
        ],
        [
          'capabilities missing',
          frame('{"version":1,"id":"i","timestamp":1,"payload":{"type":"handshake_response"}}'),
        ],
        ['data frame', Uint8Array.of(2, 2, 0x41)],
        [
          'pair secret not a string',
          frame('{"version":1,"id":"i","timestamp":1,"payload":{"type":"pair","secret":{"length":1e9}}}'),
        ],
      ]
      for (const [i, [name, bytes]] of bad.entries()) {
        const stream = await connection.newStream(CONTROL_PROTOCOL)
        stream.send(bytes)
        const deadline = Date.now() + 5000
        while (broken.length <= i && Date.now() < deadline) await sleep(10)
        assert.equal(broken.length, i + 1, `the "${name}" stream was reset`)
        stream.abort(new Error('done'))
      }
      assert.equal(seen.length, 2, 'no broken request reached the handler')
      assert.equal(connection.status, 'open')
      assert.deepEqual(await ask({ type: 'ping' }), { type: 'pong' })

      // Frames past the one request (here a flood of end frames) are not queued for nobody to
      // read: the stream is reset.
      const ping = frame('{"version":1,"id":"i","timestamp":1,"payload":{"type":"ping"}}')
      const flooded = await connection.newStream(CONTROL_PROTOCOL)
      flooded.send(Uint8Array.from([...ping, ...Array.from({ length: 500 }, () => [1, 3]).flat()]))
      const open = () =>
        b
          .getConnections(a.peerId)
          .flatMap((c) => c.streams)
          .filter((s) => s.protocol === CONTROL_PROTOCOL).length
      const deadline = Date.now() + 5000
      while (open() > 0 && Date.now() < deadline) await sleep(10)
      assert.equal(open(), 0, 'the server reset the flooded stream')
      flooded.abort(new Error('done'))
      assert.deepEqual(await ask({ type: 'ping' }), { type: 'pong' })
    })

    it('resets a stream whose frame is cut short by its writer closing, and only that one', async () => {
      await using pair = await startPair()
      const { a, b } = pair
      const seen: ControlPayload[] = []
      const broken: string[] = []
      const held = Promise.withResolvers<void>()
      await b.handle(
        CONTROL_PROTOCOL,
        controlStreamHandler(
          async (payload) => {
            seen.push(payload)
            if (payload.type !== 'capability_request') return { type: 'pong' }
            await held.promise
            return { type: 'capability_response', capabilities: CAPABILITIES }
          },
          { onProtocolError: (err) => broken.push(err.message) },
        ),
      )
      const connection = await connect(a, b, transport)
      const ask = async (payload: ControlPayload) =>
        controlRequest(await connection.newStream(CONTROL_PROTOCOL), payload, AbortSignal.timeout(5000))
      const open = () =>
        b
          .getConnections(a.peerId)
          .flatMap((c) => c.streams)
          .filter((s) => s.protocol === CONTROL_PROTOCOL)
      // A request held by the handler, on a stream of its own, while another stream breaks.
      const pending = controlRequest(
        await connection.newStream(CONTROL_PROTOCOL),
        { type: 'capability_request' },
        AbortSignal.timeout(15_000),
      )
      pending.catch(() => {}) // a failure is reported where it is awaited, below
      await waitUntil(() => seen.length === 1, 'the held request to reach the handler')

      // The length prefix announces 50 bytes; two come, then the writer closes.
      const truncated = await connection.newStream(CONTROL_PROTOCOL)
      truncated.send(Uint8Array.of(50, 1, 0x7b))
      await truncated.close()
      await waitUntil(() => broken.length > 0, 'the server to reset the truncated stream')
      assert.deepEqual(broken, ['the stream ended before the exchange did'])
      await waitUntil(() => open().length === 1, 'the server to drop the truncated stream')
      assert.equal(seen.length, 1, 'the truncated request did not reach the handler')

      held.resolve()
      assert.deepEqual(await pending, { type: 'capability_response', capabilities: CAPABILITIES })
      assert.equal(connection.status, 'open')
      assert.deepEqual(await ask({ type: 'ping' }), { type: 'pong' })
      assert.equal(broken.length, 1)
    })
  })
}
