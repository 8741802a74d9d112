/**
 * TLS ClientHellos as `gate relay` reads them before it routes a connection (parseClientHello,
 * packages/relay/src/client-hello.ts): real hellos from Node's TLS client (with and without a
 * server name, one or two ALPN protocols), cut into TLS records of any size, cut short, with bytes
 * after them, with one byte changed; and random bytes, some starting as a handshake record.
 *
 * Properties: it never throws and answers one of its four kinds; a hello it reads names a server
 * and protocols within its bytes; a real hello, however its records are cut, gives its server
 * name, its ALPN list and where it ends; any proper prefix of one asks for more.
 */
import fc from 'fast-check'
import { parseClientHello } from '../packages/relay/src/client-hello.ts'
import { clientHello, reframe } from '../packages/relay/test/utils/hello.ts'
import { hostileBytes } from './frames.ts'
import { applyEdit, byteEdit, describe, ensure, PropertyFailure, type Target } from './lib.ts'

interface Hello {
  bytes: Buffer
  serverName: string | null
  alpn: string[]
}

const KINDS = new Set(['need-more', 'not-tls', 'invalid', 'hello'])
/** Largest TLS record (RFC 8446 §5.1). */
const MAX_RECORD = 16_384

type Input =
  | {
      kind: 'real'
      hello: number
      /** Handshake bytes per record; 0 keeps the client's own records. */
      record: number
      /** Where the bytes are cut (a share of their length); null for none. */
      cut: number | null
      tail: Uint8Array
    }
  | { kind: 'edited'; hello: number; record: number; edit: [number, number] | null }
  | { kind: 'random'; bytes: Uint8Array; handshake: boolean }

export async function createTarget(): Promise<Target<Input>> {
  const hellos: Hello[] = []
  for (const [serverName, alpn] of [
    ['node-id.gate.test', ['http/1.1']],
    ['A.B.C', ['h2', 'http/1.1']],
    [null, ['http/1.1']],
  ] as const) {
    const bytes = await clientHello(serverName ?? undefined, [...alpn])
    hellos.push({ bytes, serverName, alpn: [...alpn] })
  }
  const hello = fc.nat({ max: hellos.length - 1 })
  const record = fc.oneof(
    fc.constant(0),
    fc.integer({ min: 1, max: 64 }),
    fc.integer({ min: 1, max: MAX_RECORD }),
  )
  return {
    arbitrary: fc.oneof(
      fc.record({
        kind: fc.constant('real' as const),
        hello,
        record,
        cut: fc.option(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })),
        tail: fc.oneof(fc.constant(new Uint8Array(0)), hostileBytes),
      }),
      fc.record({ kind: fc.constant('edited' as const), hello, record, edit: byteEdit }),
      fc.record({ kind: fc.constant('random' as const), bytes: hostileBytes, handshake: fc.boolean() }),
    ),
    check: (input) => check(input, hellos),
  }
}

function check(input: Input, hellos: Hello[]): void {
  const hello = input.kind === 'random' ? undefined : (hellos[input.hello] as Hello)
  let bytes: Uint8Array
  if (input.kind === 'random') {
    bytes = Buffer.from(input.bytes)
    if (input.handshake && bytes.length > 0) bytes[0] = 22
  } else {
    const framed = framing((hello as Hello).bytes, input.record)
    if (input.kind === 'edited') bytes = applyEdit(framed, input.edit)
    else if (input.cut !== null) bytes = framed.subarray(0, Math.floor(input.cut * framed.length))
    else bytes = Buffer.concat([framed, input.tail])
  }
  let result: ReturnType<typeof parseClientHello>
  try {
    result = parseClientHello(bytes)
  } catch (err) {
    throw new PropertyFailure(`parseClientHello threw ${describe(err)}`, { cause: err })
  }
  ensure(KINDS.has(result.kind), `an answer of kind ${result.kind}`)
  if (result.kind === 'hello') {
    ensure(result.bytes > 0 && result.bytes <= bytes.length, `a hello of ${result.bytes} bytes`)
    ensure(result.serverName === null || typeof result.serverName === 'string', 'a bad server name')
    ensure(Array.isArray(result.alpn) && result.alpn.every((p) => typeof p === 'string'), 'a bad ALPN list')
  }
  if (input.kind !== 'real' || !hello) return
  const whole = framing(hello.bytes, input.record).length
  if (input.cut !== null) {
    ensure(result.kind === 'need-more', `a hello cut to ${bytes.length}/${whole} bytes gave ${result.kind}`)
    return
  }
  ensure(
    result.kind === 'hello' &&
      result.serverName === hello.serverName &&
      JSON.stringify(result.alpn) === JSON.stringify(hello.alpn) &&
      result.bytes === whole,
    `a real hello gave ${JSON.stringify(result)}`,
  )
}

/** The hello as the client sent it (`size` 0), or its handshake cut into records of `size` bytes. */
function framing(hello: Buffer, size: number): Buffer {
  return size === 0 ? hello : reframe(hello, size)
}
