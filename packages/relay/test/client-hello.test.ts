import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { MAX_HELLO_BYTES, normalizeServerName, parseClientHello } from '../src/client-hello.ts'
import { clientHello, reframe } from './utils/hello.ts'

describe('ClientHello', () => {
  it("reads the server name and ALPN of a real client's hello, whole, in pieces and in many records", async () => {
    const hello = await clientHello('Node-ID.Gate.Test', ['h2', 'http/1.1'])
    const whole = parseClientHello(hello)
    assert.equal(whole.kind, 'hello')
    assert.ok(whole.kind === 'hello')
    assert.equal(whole.serverName, 'Node-ID.Gate.Test')
    assert.deepEqual(whole.alpn, ['h2', 'http/1.1'])
    assert.equal(normalizeServerName(whole.serverName ?? ''), 'node-id.gate.test')
    // Every proper prefix of it is "need more", as its bytes come a segment at a time.
    for (let n = 0; n < hello.length; n++)
      assert.equal(parseClientHello(hello.subarray(0, n)).kind, 'need-more', `${n}`)
    const records = reframe(hello, 17)
    const split = parseClientHello(records)
    assert.ok(split.kind === 'hello' && split.serverName === 'Node-ID.Gate.Test')
  })

  it('tells a hello without a server name, plain HTTP, garbage, and one over the size cap apart', async () => {
    const noName = parseClientHello(await clientHello())
    assert.ok(noName.kind === 'hello' && noName.serverName === null)
    assert.equal(parseClientHello(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')).kind, 'not-tls')
    assert.equal(parseClientHello(Buffer.from([22, 9, 9, 0, 5, 1, 2, 3, 4, 5])).kind, 'invalid')
    // A handshake that says it is bigger than 16 KiB.
    const huge = Buffer.from([22, 3, 1, 0, 4, 1, 0, 0x40, 0x01])
    const over = parseClientHello(huge)
    assert.ok(over.kind === 'invalid' && /ClientHello of/.test(over.reason), JSON.stringify(over))
    assert.equal(MAX_HELLO_BYTES, 16 * 1024)
    // Random bytes never throw.
    for (let i = 0; i < 2000; i++) {
      const bytes = Buffer.from(Array.from({ length: 1 + (i % 300) }, () => Math.floor(Math.random() * 256)))
      bytes[0] = 22
      assert.ok(['need-more', 'invalid', 'hello'].includes(parseClientHello(bytes).kind))
    }
  })

  it('takes only DNS names as server names', () => {
    assert.equal(normalizeServerName('ABC.gate.test'), 'abc.gate.test')
    assert.equal(normalizeServerName('abc.gate.test.'), null)
    assert.equal(normalizeServerName('a b.gate.test'), null)
    assert.equal(normalizeServerName(`${'a'.repeat(64)}.gate.test`), null)
  })
})
