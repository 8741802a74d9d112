/**
 * The admission of requests (packages/daemon/src/api/admission.ts) and the pipeline's body parse
 * (pipeline.ts), in-process: whole requests go in at the real Pipeline's front door, as node:http
 * hands them over (lowercase header names, values of latin-1 without CR, LF or NUL), from a local
 * client, the relay or a peer: Host and Origin as browsers send them for this machine and for
 * other sites, and as nobody would; API keys right and wrong; every route and method; JSON bodies
 * with wrong types, over the size limit, cut short, stalled, or left by a client that went away.
 * Behind the pipeline, a stand-in trusted peer serves one model, in JSON or SSE, or fails.
 *
 * Properties: the pipeline settles every request; a client that stays gets one complete answer
 * with a status Gate uses for a client's or an upstream's fault, never a 500, and an error in
 * OpenAI's shape whose length is its Content-Length; every header it writes is one node:http
 * accepts; a browser on another site is refused (Host or Origin), and CORS headers echo only the
 * request's Origin, on a local request only a loopback one; no body over the limit and no client
 * credentials go upstream; and when the request is over, no place among the requests in flight,
 * no stream count and no upstream body is left held.
 */
import { EventEmitter } from 'node:events'
import { validateHeaderName, validateHeaderValue } from 'node:http'
import fc from 'fast-check'
import { ForbiddenError, parseConfig, UpstreamError } from '../packages/core/src/index.ts'
import { Admission, checkLocalRequest } from '../packages/daemon/src/api/admission.ts'
import { Pipeline, type PipelineComponents } from '../packages/daemon/src/api/pipeline.ts'
import type { ApiResponse, RequestSource } from '../packages/daemon/src/api/types.ts'
import { EventBus } from '../packages/daemon/src/events.ts'
import { Metrics } from '../packages/daemon/src/metrics.ts'
import { ProviderRegistry } from '../packages/daemon/src/providers/registry.ts'
import type { PeerView } from '../packages/p2p/src/index.ts'
import {
  anyJson,
  awkwardString,
  deepJson,
  ensure,
  mutate,
  mutation,
  onlyThrows,
  split,
  type Target,
} from './lib.ts'

const SELF = 'a'.repeat(52)
const PEER = 'b'.repeat(52)
/** The node's public name, that relayed requests must carry in Host; another site to a local client. */
const PUBLIC = `${SELF}.gate.test`
const MODEL = 'fuzz-model'
const API_KEY = 'sk-fuzz-key'
/** Small limits, so that inputs reach them. */
const MAX_BODY_BYTES = 4096
const BODY_TIMEOUT_S = 0.02
/** What Gate answers with for a client's fault, an upstream's, or its own answers. */
const STATUSES = new Set([200, 204, 400, 401, 403, 404, 408, 413, 429, 502, 503, 504])

/** Characters node:http leaves in a header value: latin-1 less controls (tab aside) and DEL. */
const headerChar = fc
  .oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0x80, max: 0xff }), fc.constant(0x09))
  .map((c) => String.fromCharCode(c))
const headerValue = fc.string({ unit: headerChar, maxLength: 40 }).map((s) => s.trim())

/** `arbitrary` one time in `every`, else undefined. */
function sometimes<T>(arbitrary: fc.Arbitrary<T>, every = 5): fc.Arbitrary<T | undefined> {
  return fc.oneof({ weight: every - 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary })
}

const port = fc.option(
  fc.integer({ min: 0, max: 65_535 }).map((p) => `:${p}`),
  { nil: '' },
)
const loopbackName = fc.constantFrom('localhost', '127.0.0.1', '[::1]', 'LOCALHOST', 'LocalHost')
/** A name a browser may put in Host for another site: what a DNS-rebinding page would send. */
const foreignName = fc.oneof(
  fc.domain(),
  fc.ipV4().filter((ip) => ip !== '127.0.0.1'),
  fc.constantFrom('localhost.evil.com', '127.0.0.1.nip.io', '[::2]', PUBLIC),
)

/** Host and Origin, and whether a browser would send them for this machine, another site, or neither. */
const place = fc.oneof(
  {
    weight: 12,
    arbitrary: fc
      .tuple(loopbackName, port)
      .map(([name, p]) => ({ host: `${name}${p}`, site: 'loopback' as const })),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(foreignName, port)
      .map(([name, p]) => ({ host: `${name}${p}`, site: 'foreign' as const })),
  },
  { weight: 1, arbitrary: headerValue.map((host) => ({ host, site: 'other' as const })) },
)
const origin = fc.oneof(
  fc.tuple(fc.constantFrom('http', 'https'), place).map(([scheme, p]) => ({
    origin: `${scheme}://${p.host}`,
    site: p.site === 'other' ? ('other' as const) : p.site,
  })),
  fc
    .constantFrom('null', 'file://', 'chrome-extension://abc')
    .map((o) => ({ origin: o, site: 'foreign' as const })),
  headerValue.map((o) => ({ origin: o, site: 'other' as const })),
)

const chat = fc
  .record(
    {
      model: fc.oneof({ weight: 6, arbitrary: fc.constant(MODEL) }, awkwardString),
      messages: fc.constant([{ role: 'user', content: 'hi' }]),
      stream: fc.boolean(),
    },
    { requiredKeys: ['model'] },
  )
  .chain((c) => mutation.map((m) => mutate(c, m)))

const body = fc.oneof(
  { weight: 60, arbitrary: chat.map((c) => Buffer.from(JSON.stringify(c))) },
  { weight: 10, arbitrary: anyJson.map((v) => Buffer.from(JSON.stringify(v) ?? '')) },
  { weight: 10, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)) },
  {
    weight: 5,
    arbitrary: fc
      .integer({ min: MAX_BODY_BYTES - 2, max: MAX_BODY_BYTES * 3 })
      .map((n) => Buffer.alloc(n, 0x20)),
  },
  { weight: 1, arbitrary: deepJson.map((t) => Buffer.from(t)) },
)

const path = fc.oneof(
  {
    weight: 24,
    arbitrary: fc.constantFrom('/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses'),
  },
  {
    weight: 3,
    arbitrary: fc.constantFrom('/health', '/v1/models', `/v1/models/${MODEL}`, '/v1/models/%E0%A4%A', '/'),
  },
  { weight: 2, arbitrary: fc.webPath().map((p) => `/v1/models/${p}`) },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.webPath(), fc.webQueryParameters()).map(([p, q]) => `${p || '/'}?${q}`),
  },
)

const request = fc.record({
  source: fc.oneof(
    { weight: 8, arbitrary: fc.constant<RequestSource>({ kind: 'local' }) },
    { weight: 2, arbitrary: fc.constantFrom<RequestSource>({ kind: 'peer', node: PEER }) },
    {
      weight: 1,
      arbitrary: fc.constant<RequestSource>({ kind: 'relay', client: '203.0.113.7', name: PUBLIC }),
    },
  ),
  method: fc.oneof(
    { weight: 8, arbitrary: fc.constant('POST') },
    { weight: 2, arbitrary: fc.constant('GET') },
    fc.constantFrom('OPTIONS', 'PUT', 'DELETE', 'M-SEARCH'),
  ),
  url: path,
  host: fc.option(place, { freq: 10 }),
  origin: fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, origin),
  /** Present on about one request in `1 / share` each: with all of them, nothing would get through. */
  headers: fc.record({
    authorization: sometimes(
      fc.oneof(fc.constant(`Bearer ${API_KEY}`), fc.constant(`bearer   ${API_KEY}`), headerValue),
    ),
    'content-type': sometimes(fc.constantFrom('application/json', 'text/plain'), 2),
    'x-target-node': sometimes(
      fc.oneof(fc.constantFrom(PEER, SELF, PEER.toUpperCase(), 'c'.repeat(52)), headerValue),
    ),
    'x-request-id': sometimes(fc.oneof(fc.uuid(), headerValue)),
    'access-control-request-headers': sometimes(headerValue),
    'x-anything': sometimes(headerValue),
  }),
  /** The body's length as sent, none (chunked), or any value. */
  contentLength: fc.oneof(
    { weight: 6, arbitrary: fc.constant('exact') },
    { weight: 2, arbitrary: fc.constant('none') },
    { weight: 1, arbitrary: fc.oneof(fc.nat(MAX_BODY_BYTES * 2).map(String), headerValue) },
  ),
  body,
  cuts: fc.array(fc.nat(), { maxLength: 4 }),
  /** How the client sends its body: whole, then gone before its end, or stalled past the body timeout. */
  delivery: fc.oneof(
    { weight: 20, arbitrary: fc.constant('whole' as const) },
    { weight: 2, arbitrary: fc.constantFrom('gone' as const, 'error' as const) },
    { weight: 1, arbitrary: fc.constant('stall' as const) },
  ),
  /** After how many writes of the answer the client goes away, if it does. */
  leaveAfter: fc.option(fc.nat(4), { freq: 5 }),
  peer: fc.constantFrom('json', 'sse', 'fails', 'fails-mid-body'),
})

type Input = typeof request extends fc.Arbitrary<infer T> ? T : never

/** What the pipeline reads of node:http's IncomingMessage, fed by the fuzz input. */
class FakeRequest extends EventEmitter {
  readonly headers: Record<string, string>
  readonly method: string
  readonly url: string
  readonly body: Uint8Array | undefined
  complete = false

  constructor(input: Input) {
    super()
    const headers: Record<string, string> = {}
    for (const [name, value] of Object.entries(input.headers)) if (value !== undefined) headers[name] = value
    if (input.contentLength === 'exact') headers['content-length'] = String(input.body.length)
    else if (input.contentLength !== 'none') headers['content-length'] = input.contentLength
    if (input.host) headers.host = input.host.host
    if (input.origin) headers.origin = input.origin.origin
    this.headers = headers
    this.method = input.method
    this.url = input.url
    // A peer's body comes whole with its request; a local client's is read from the stream.
    this.body = input.source.kind === 'peer' ? input.body : undefined
  }

  destroy(): this {
    this.emit('close')
    return this
  }
}

/** What the pipeline writes to: node:http's ServerResponse, its header checks included. */
class FakeResponse extends EventEmitter implements ApiResponse {
  statusCode = 200
  headersSent = false
  destroyed = false
  writableFinished = false
  readonly headers: Record<string, string | string[] | number> = {}
  readonly chunks: Buffer[] = []
  writes = 0
  /** Called on each write: the client may go away. */
  onWrite: () => void = () => {}

  setHeader(name: string, value: string | number | string[]): this {
    validateHeaderName(name)
    for (const v of [value].flat()) validateHeaderValue(name, String(v))
    this.headers[name.toLowerCase()] = value
    return this
  }

  writeHead(status: number, headers: Record<string, string | string[] | number> = {}): this {
    for (const [name, value] of Object.entries(headers)) this.setHeader(name, value)
    this.statusCode = status
    this.headersSent = true
    return this
  }

  write(chunk: Uint8Array | string): boolean {
    if (this.destroyed) return false
    this.headersSent = true
    this.chunks.push(Buffer.from(chunk))
    this.writes++
    this.onWrite()
    return true
  }

  end(chunk?: Uint8Array | string): this {
    if (this.destroyed || this.writableFinished) return this
    if (chunk !== undefined) this.write(chunk)
    if (this.destroyed) return this
    this.headersSent = true
    this.writableFinished = true
    process.nextTick(() => this.emit('close'))
    return this
  }

  destroy(): this {
    if (this.destroyed) return this
    this.destroyed = true
    process.nextTick(() => this.emit('close'))
    return this
  }
}

export async function createTarget(): Promise<Target<Input>> {
  const config = parseConfig({
    security: {
      api_keys: [API_KEY],
      max_body_bytes: MAX_BODY_BYTES,
      body_timeout: BODY_TIMEOUT_S,
      rate_limit: { per_peer_rps: 1e9, burst: 1e9 },
    },
  })
  const admission = new Admission()
  let peerMode: Input['peer'] = 'json'
  /** Upstream bodies the stand-in peer has handed out and the pipeline has not let go of. */
  let open = 0
  /** What reached the peer that should not have: a client's credentials, a body over the limit. */
  const leaks: string[] = []
  const peerView: PeerView = {
    node_id: PEER,
    connected: true,
    available: true,
    breaker: 'closed',
    models: [MODEL],
    load_factor: 0,
    inflight: 0,
    rtt_ms: 1,
    connection: 'direct',
  }
  const components: PipelineComponents = {
    nodeId: SELF,
    config: () => config,
    admission,
    keys: { use: () => undefined },
    providers: new ProviderRegistry(),
    peers: { views: () => [peerView], models: () => new Map([[MODEL, [PEER]]]), reserve: () => () => {} },
    mesh: {
      async exchange(_node, head, request, signal) {
        if (peerMode === 'fails') throw new UpstreamError('the stand-in peer failed')
        const stream = (JSON.parse(Buffer.from(request).toString()) as { stream?: unknown }).stream === true
        const failMidBody = peerMode === 'fails-mid-body'
        open++
        async function* body(): AsyncGenerator<Uint8Array> {
          try {
            for (let i = 0; i < 3; i++) {
              signal.throwIfAborted()
              if (failMidBody && i === 1) throw new Error('the stand-in peer broke off')
              yield Buffer.from(stream ? `data: {"i":${i}}\n\n` : `{"part":${i}}`)
              await new Promise((resolve) => setImmediate(resolve))
            }
            if (stream) yield Buffer.from('data: [DONE]\n\n')
          } finally {
            open--
          }
        }
        if (head.headers.authorization !== undefined) leaks.push("the client's Authorization header")
        if (request.length > MAX_BODY_BYTES) leaks.push(`a body of ${request.length} bytes`)
        return {
          head: {
            status: 200,
            headers: { 'content-type': stream ? 'text/event-stream' : 'application/json' },
          },
          body: body(),
        }
      },
    },
    // The record's sinks: what each request leaves behind is checked through the counts below.
    requestLog: { add() {} } as unknown as PipelineComponents['requestLog'],
    metrics: new Metrics(),
    events: new EventBus(),
    logger: { error() {}, warn() {}, info() {}, debug() {} } as unknown as PipelineComponents['logger'],
  }
  const pipeline = new Pipeline(components)

  return {
    arbitrary: request,
    async check(input) {
      checkHostRule(input)
      peerMode = input.peer
      const req = new FakeRequest(input)
      const res = new FakeResponse()
      const leave = () => {
        res.destroy()
        req.destroy()
      }
      if (input.leaveAfter !== null) {
        const after = input.leaveAfter
        res.onWrite = () => {
          if (res.writes > after) leave()
        }
      }
      const handled = pipeline.handle(req, res, input.source)
      const gone = input.delivery === 'gone' || input.delivery === 'error'
      if (input.source.kind !== 'peer') {
        for (const piece of split(input.body, input.cuts)) req.emit('data', Buffer.from(piece))
        if (input.delivery === 'whole') {
          req.complete = true
          req.emit('end')
          req.emit('close')
        } else if (input.delivery === 'error') {
          // node:http emits a request's error only to a listener (readBody's, once it reads).
          if (req.listenerCount('error') > 0)
            req.emit('error', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }))
          leave()
        } else if (input.delivery === 'gone') leave()
      }
      await handled

      ensure(admission.active === 0, `${admission.active} places among the requests in flight are still held`)
      ensure(pipeline.streams === 0, `${pipeline.streams} streams are still counted`)
      await new Promise((resolve) => setImmediate(resolve))
      ensure(open === 0, `${open} upstream bodies were not let go of`)
      ensure(leaks.length === 0, `went upstream: ${leaks.splice(0).join(', ')}`)
      if (res.destroyed || gone) return
      ensure(res.writableFinished, 'a client that stayed got no complete answer')
      ensure(STATUSES.has(res.statusCode), `answered ${res.statusCode}`)
      checkAnswer(input, res)
    },
  }
}

/** What a browser page can make a local client send is refused: checkLocalRequest on its own. */
function checkHostRule(input: Input): void {
  const result = onlyThrows(
    () => checkLocalRequest(input.host?.host, input.origin?.origin),
    (err) => err instanceof ForbiddenError,
  )
  if (input.host === null || input.host.site === 'foreign' || input.origin?.site === 'foreign')
    ensure(!result.ok, `Host ${input.host?.host} with Origin ${input.origin?.origin} was let in`)
  if (input.host?.site === 'loopback' && (input.origin === null || input.origin.site === 'loopback'))
    ensure(result.ok, `Host ${input.host.host} with Origin ${input.origin?.origin} was refused`)
}

function checkAnswer(input: Input, res: FakeResponse): void {
  const allowed = res.headers['access-control-allow-origin']
  if (allowed !== undefined) {
    ensure(allowed === input.origin?.origin, 'CORS allows an origin the request did not come from')
    if (input.source.kind === 'local')
      ensure(input.origin?.site !== 'foreign', `CORS allows ${String(allowed)} on a local request`)
  }
  if (input.source.kind === 'local' && (input.host?.site === 'foreign' || input.origin?.site === 'foreign'))
    ensure(res.statusCode === 403, `a request from another site got ${res.statusCode}`)
  const named = input.host?.host.replace(/:\d*$/, '') === PUBLIC
  if (input.source.kind === 'relay' && input.host?.site !== 'other' && !named)
    ensure(res.statusCode === 403, `a relayed request for Host ${input.host?.host} got ${res.statusCode}`)
  if (res.statusCode < 400) return
  const text = Buffer.concat(res.chunks).toString()
  ensure(
    Number(res.headers['content-length']) === Buffer.byteLength(text),
    'Content-Length is not the body length',
  )
  const { error } = JSON.parse(text) as { error: Record<string, unknown> }
  ensure(
    typeof error.message === 'string' && typeof error.type === 'string' && typeof error.code === 'string',
    `an error body not in OpenAI's shape: ${text}`,
  )
}
