/**
 * Raw HTTP/1.1 to a real daemon (startTestDaemon, with a stand-in engine behind it) over loopback
 * sockets: well-formed requests to the API and the control port with Hosts, Origins, tokens and
 * bodies right and wrong; framing broken every way (lengths that lie, chunked encoding with bad
 * sizes, both at once, header lines that are too long, split or missing); pipelined requests; a
 * well-formed request whose body stalls; random bytes. Each is sent in random pieces on a new
 * connection, kept open until a whole answer comes (as clients do) or closed on our side once
 * all is sent. Fewer inputs than the in-process targets (MAX_INPUTS): each is a connection.
 *
 * Properties: the daemon answers or closes every connection within the bound, its answers parse
 * as HTTP/1.1 (status line, headers, a body framed by its length or chunks), none is a 500, and
 * it stays up: `/health` answers after every input.
 */
import { once } from 'node:events'
import { connect } from 'node:net'
import fc from 'fast-check'
import { Pool } from 'undici'
import { providerFor, startTestDaemon } from '../packages/daemon/test/utils/daemon.ts'
import { startFakeEngine } from '../packages/daemon/test/utils/fake-engine.ts'
import { anyJson, awkwardString, ensure, PropertyFailure, split, type Target } from './lib.ts'

/** Connections per run, whatever the time budget: a real daemon takes far fewer than a parser. */
const MAX_INPUTS = 5000
/** The daemon's body timeout: what a stalled body waits for its 408. */
const BODY_TIMEOUT_S = 0.2
const MAX_BODY_BYTES = 64 * 1024
const MODEL = 'llama3.2:1b'
/** Read-only methods: a fuzzer holding the token must not stop or reconfigure the daemon. */
const SAFE_METHODS = [
  'node_status',
  'list_providers',
  'get_metrics',
  'request_history',
  'list_peers',
  'validate_config',
]

const token = fc.stringMatching(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,16}$/)
/** A header value with what HTTP forbids in one now and then: CR, LF, NUL, obs-fold. */
const value = fc.oneof(
  { weight: 16, arbitrary: fc.string({ unit: 'grapheme-ascii', maxLength: 32 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 32 }) },
  { weight: 1, arbitrary: fc.constantFrom('a\rb', 'a\nb', 'a\0b', 'a\r\n b', 'é', '\u00ff') },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: 20_000 }).map((n) => 'x'.repeat(n)) },
)

const chatBody = fc
  .record({
    model: fc.oneof({ weight: 4, arbitrary: fc.constant(MODEL) }, awkwardString),
    messages: fc.constant([{ role: 'user', content: 'HTTP/1.1 500 hi' }]),
    stream: fc.boolean(),
  })
  .map((b) => JSON.stringify(b))

const rpcBody = fc
  .record({
    jsonrpc: fc.constant('2.0'),
    id: fc.nat(),
    method: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...SAFE_METHODS) }, awkwardString),
    params: fc.oneof(fc.constant({}), fc.record({ config: anyJson })),
  })
  .map((b) => JSON.stringify(b))

interface RequestSpec {
  method: string
  target: string
  version: string
  headers: Array<[string, string]>
  body: string
  /** How the body is delimited: its length, chunks (some sizes wrong), both, neither, a wrong length. */
  framing: 'length' | 'chunked' | 'bad-chunks' | 'both' | 'none' | 'short' | 'long'
}

const spec = (port: 'api' | 'control'): fc.Arbitrary<RequestSpec> =>
  fc.record({
    method: fc.oneof(
      { weight: 12, arbitrary: fc.constant('POST') },
      { weight: 4, arbitrary: fc.constantFrom('GET', 'OPTIONS') },
      token.filter((t) => t.toUpperCase() !== 'HEAD'),
    ),
    target:
      port === 'api'
        ? fc.oneof(
            { weight: 6, arbitrary: fc.constantFrom('/v1/chat/completions', '/v1/embeddings', '/v1/models') },
            fc.constantFrom(
              '/health',
              `/v1/models/${encodeURIComponent(MODEL)}`,
              '*',
              'http://localhost/v1/models',
              '/%zz',
            ),
            fc.webPath().map((p) => `/${p}`),
          )
        : fc.oneof(
            { weight: 6, arbitrary: fc.constant('/rpc') },
            fc.constantFrom('/health', '/metrics', '/nope'),
          ),
    version: fc.oneof(
      { weight: 12, arbitrary: fc.constant('HTTP/1.1') },
      fc.constantFrom('HTTP/1.0', 'HTTP/2.0', 'HTTP/1.x', ''),
    ),
    headers: fc
      .tuple(
        fc.oneof(
          { weight: 8, arbitrary: fc.constantFrom('127.0.0.1', 'localhost:1', '[::1]') },
          fc.constantFrom('evil.example', ''),
          value,
        ),
        fc.oneof(
          { weight: 4, arbitrary: fc.constant(null) },
          fc.constantFrom('http://localhost:1', 'https://evil.example', 'null'),
        ),
        fc.constantFrom('none', 'right', 'wrong'),
        fc.array(
          fc.oneof(
            {
              weight: 8,
              arbitrary: fc.tuple(
                fc.constantFrom('Content-Type', 'Accept', 'User-Agent', 'X-Target-Node'),
                value,
              ),
            },
            fc.tuple(
              fc.oneof(token, fc.constantFrom('Expect', 'Connection', 'Transfer-Encoding', 'Host')),
              value,
            ),
          ),
          { maxLength: 2 },
        ),
      )
      .map(([host, origin, auth, extra]) => [
        ['Host', host] as [string, string],
        ...(origin === null ? [] : [['Origin', origin] as [string, string]]),
        ...(auth === 'none'
          ? []
          : [['Authorization', auth === 'right' ? 'Bearer TOKEN' : 'Bearer nope'] as [string, string]]),
        ...extra,
      ]),
    body: fc.oneof(
      { weight: 6, arbitrary: port === 'api' ? chatBody : rpcBody },
      fc.string({ maxLength: 64 }),
      fc.constant(''),
      fc.integer({ min: MAX_BODY_BYTES - 8, max: MAX_BODY_BYTES + 8 }).map((n) => ' '.repeat(n)),
    ),
    framing: fc.oneof(
      { weight: 18, arbitrary: fc.constant('length' as const) },
      fc.constantFrom(
        'chunked' as const,
        'bad-chunks' as const,
        'both' as const,
        'none' as const,
        'short' as const,
        'long' as const,
      ),
    ),
  })

/** The bytes of one request; `TOKEN` in an Authorization header stands for the control token. */
function serialise(r: RequestSpec, controlToken: string): string {
  const lines = [`${r.method} ${r.target} ${r.version}`.trimEnd()]
  for (const [name, v] of r.headers) lines.push(`${name}: ${v.replace('TOKEN', controlToken)}`)
  const length = Buffer.byteLength(r.body)
  if (r.framing === 'length' || r.framing === 'both') lines.push(`Content-Length: ${length}`)
  if (r.framing === 'short') lines.push(`Content-Length: ${Math.max(0, length - 3)}`)
  if (r.framing === 'long') lines.push(`Content-Length: ${length + 3}`)
  const chunked = r.framing === 'chunked' || r.framing === 'both' || r.framing === 'bad-chunks'
  if (chunked) lines.push('Transfer-Encoding: chunked')
  let body = r.body
  if (chunked) {
    const size = r.framing === 'bad-chunks' ? `${(length + 5).toString(16)};x` : length.toString(16)
    body = `${length > 0 ? `${size}\r\n${r.body}\r\n` : ''}0\r\n\r\n`
  }
  return `${lines.join('\r\n')}\r\n\r\n${body}`
}

type Input = {
  port: 'api' | 'control'
  cuts: number[]
  /**
   * Closes our side once all is sent (node:http then drops an answer not yet written); else keeps
   * it open until the first whole answer, as clients do.
   */
  halfClose: boolean
} & ({ kind: 'requests'; requests: RequestSpec[] } | { kind: 'bytes'; bytes: Uint8Array })

const input = (port: 'api' | 'control') =>
  fc.oneof(
    {
      weight: 16,
      arbitrary: fc.record({
        port: fc.constant(port),
        kind: fc.constant('requests' as const),
        requests: fc.array(spec(port), { minLength: 1, maxLength: 3 }),
        cuts: fc.array(fc.nat(), { maxLength: 3 }),
        halfClose: fc.oneof({ weight: 3, arbitrary: fc.constant(false) }, fc.constant(true)),
      }),
    },
    // A well-formed request whose body stalls: the API's body timeout must answer it.
    {
      weight: port === 'api' ? 1 : 0,
      arbitrary: fc.record({
        port: fc.constant(port),
        kind: fc.constant('requests' as const),
        requests: chatBody.map((body): RequestSpec[] => [
          {
            method: 'POST',
            target: '/v1/chat/completions',
            version: 'HTTP/1.1',
            headers: [['Host', '127.0.0.1']],
            body,
            framing: 'long',
          },
        ]),
        cuts: fc.array(fc.nat(), { maxLength: 3 }),
        halfClose: fc.constant(false),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        port: fc.constant(port),
        kind: fc.constant('bytes' as const),
        bytes: fc.uint8Array({ maxLength: 256 }),
        cuts: fc.array(fc.nat(), { maxLength: 3 }),
        halfClose: fc.constant(true),
      }),
    },
  )

export async function createTarget(): Promise<Target<Input>> {
  const engine = await startFakeEngine({ record: false })
  const gate = await startTestDaemon({
    providers: [providerFor('engine', engine)],
    security: { body_timeout: BODY_TIMEOUT_S, max_body_bytes: MAX_BODY_BYTES, request_timeout: 5 },
  })
  const ports = { api: Number(new URL(gate.url).port), control: Number(new URL(gate.controlUrl).port) }
  const health = new Pool(gate.url, { connections: 1 })
  return {
    // Four in five to the API: it is the one local apps and web pages reach.
    arbitrary: fc.oneof({ weight: 4, arbitrary: input('api') }, input('control')),
    maxInputs: MAX_INPUTS,
    timeoutMs: 15_000,
    heapGrowthMb: 64,
    async check(i) {
      const bytes =
        i.kind === 'bytes'
          ? i.bytes
          : Buffer.from(i.requests.map((r) => serialise(r, gate.token)).join(''), 'latin1')
      // A stalled body on the control port is never answered (it has no body timeout: a caller
      // with the token could hold a connection until node's 300-s request timeout), so such a
      // connection is closed on our side once sent.
      const stalls =
        i.port === 'control' &&
        i.kind === 'requests' &&
        i.requests.some((r) => r.framing === 'long' || r.framing === 'bad-chunks')
      const answer = await exchange(ports[i.port], split(bytes, i.cuts), i.halfClose || stalls)
      for (const status of parseResponses(answer))
        ensure(status !== 500, `answered 500:\n${answer.toString('latin1')}`)
      const res = await health.request({ method: 'GET', path: '/health', headers: { host: '127.0.0.1' } })
      await res.body.text()
      ensure(res.statusCode === 200, `/health answered ${res.statusCode} after the input`)
    },
    async close() {
      await health.close()
      await gate[Symbol.asyncDispose]()
      await engine.stop()
    },
  }
}

/**
 * Sends `pieces` on a new connection and returns what came back: until it closed (a reset is a way
 * of closing too), or, with our side left open, until a whole answer came (one that needs no body,
 * a 404 say, leaves the connection waiting for the rest of a stalled body, as keep-alive does).
 */
async function exchange(port: number, pieces: Uint8Array[], halfClose: boolean): Promise<Buffer> {
  const socket = connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  const chunks: Buffer[] = []
  const over = new Promise((resolve) => {
    socket.once('close', resolve)
    socket.on('data', (d: Buffer) => {
      chunks.push(d)
      if (!halfClose && wholeAnswer(Buffer.concat(chunks))) resolve(undefined)
    })
  })
  await once(socket, 'connect')
  socket.on('error', () => {})
  for (const piece of pieces) socket.write(piece)
  if (halfClose) socket.end()
  await over
  socket.destroy()
  return Buffer.concat(chunks)
}

function wholeAnswer(bytes: Buffer): boolean {
  try {
    return parseResponses(bytes).length > 0
  } catch {
    return false
  }
}

/** The statuses of the HTTP/1.1 responses in `bytes`; fails on anything that is not one. */
function parseResponses(bytes: Buffer): number[] {
  const statuses: number[] = []
  let at = 0
  while (at < bytes.length) {
    const end = bytes.indexOf('\r\n\r\n', at)
    if (end < 0)
      throw new PropertyFailure(`an answer cut in its head: ${bytes.subarray(at).toString('latin1')}`)
    const [statusLine = '', ...lines] = bytes.subarray(at, end).toString('latin1').split('\r\n')
    const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine)?.[1])
    if (!status) throw new PropertyFailure(`not a status line: ${JSON.stringify(statusLine)}`)
    at = end + 4
    // 100 Continue (node answers Expect: 100-continue itself) comes before the answer.
    if (status < 200) continue
    statuses.push(status)
    const headers = new Map(
      lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]),
    )
    const length = headers.get('content-length')
    if (length !== undefined) at += Number(length)
    else if (headers.get('transfer-encoding') === 'chunked') at = skipChunks(bytes, at)
    else if (status !== 204) at = bytes.length // delimited by the close
  }
  ensure(at === bytes.length, 'an answer shorter than its Content-Length')
  return statuses
}

function skipChunks(bytes: Buffer, from: number): number {
  let at = from
  for (;;) {
    const line = bytes.indexOf('\r\n', at)
    if (line < 0) throw new PropertyFailure('a chunked answer cut short')
    const size = Number.parseInt(bytes.subarray(at, line).toString('latin1'), 16)
    if (!Number.isFinite(size)) throw new PropertyFailure('a bad chunk size in an answer')
    at = line + 2 + size + 2
    if (size === 0) return at
  }
}
