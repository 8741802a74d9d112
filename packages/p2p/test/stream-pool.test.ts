import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { HTTP_PROTOCOL, httpStreamHandler, StreamPool, sendRequest } from '../src/index.ts'
import { connect, startPair, TRANSPORTS } from './utils/nodes.ts'

const HEAD = { method: 'POST', path: '/echo', headers: {} }

for (const transport of TRANSPORTS) {
  describe(`StreamPool over ${transport}`, () => {
    it('hands out streams negotiated ahead of need, one exchange each, and closes unused ones quietly', async () => {
      await using pair = await startPair()
      const { a, b } = pair
      let opened = 0
      let served = 0
      const protocolErrors: Error[] = []
      const handler = httpStreamHandler(
        async (request, response) => {
          served++
          await response.head({ status: 200, headers: {} })
          await response.data(request.body)
          await response.end()
        },
        { maxBodyBytes: 1024, onProtocolError: (err) => protocolErrors.push(err) },
      )
      await b.handle(HTTP_PROTOCOL, (stream, connection) => {
        opened++
        return handler(stream, connection)
      })
      const connection = await connect(a, b, transport)
      const pool = new StreamPool(HTTP_PROTOCOL, { spare: 3, idleMs: 1000 })
      const exchange = async (text: string) => {
        const stream = await pool.take(connection, AbortSignal.timeout(5000))
        const response = await sendRequest(
          stream,
          { head: HEAD, body: new TextEncoder().encode(text) },
          AbortSignal.timeout(5000),
        )
        let body = ''
        for await (const chunk of response.body) body += new TextDecoder().decode(chunk)
        return body
      }

      // The first take has nothing ready: it opens its own stream, and three more get ready.
      assert.equal(await exchange('one'), 'one')
      await sleep(200)
      assert.equal(opened, 4, 'one in use and three spares, negotiated at the receiver')
      // The next exchanges use the spares; each take opens one to replace it.
      assert.deepEqual(await Promise.all(['two', 'three', 'four'].map(exchange)), ['two', 'three', 'four'])
      await sleep(200)
      assert.equal(opened, 7)
      assert.equal(served, 4)

      // Unused spares are closed after idleMs; the receiver sees no protocol error.
      await sleep(1300)
      assert.deepEqual(protocolErrors, [])
      const open = connection.streams.filter((s) => s.protocol === HTTP_PROTOCOL && s.status === 'open')
      assert.equal(open.length, 0, 'expired spares are closed at the sender')
      assert.equal(await exchange('after expiry'), 'after expiry')
      assert.equal(served, 5)
    })
  })
}
