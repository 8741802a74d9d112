import { createHash, randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  type Config,
  type GateError,
  InvalidRequestError,
  NotFoundError,
  PayloadTooLargeError,
  parseNodeId,
  RateLimitedError,
  UnavailableError,
} from '@gate/core'
import type { IncomingRequest, ResponseWriter } from '@gate/p2p'
import type { Logger } from 'pino'
import { RETRY_AFTER_SECONDS } from '../constants.ts'
import type { EventBus } from '../events.ts'
import type { Metrics } from '../metrics.ts'
import type { Provider } from '../providers/provider.ts'
import type { ProviderRegistry } from '../providers/registry.ts'
import type { RequestLog } from '../request-log.ts'
import { sendError, toGateError, tooLarge } from './errors.ts'
import {
  clientGone,
  type ForwardRequest,
  forward,
  forwardToPeer,
  type PeerExchange,
  type PeerForwardResult,
} from './forward.ts'
import { checkApiKey, checkLocalRequest, isLoopbackOrigin } from './guards.ts'
import { type ApiRequest, type ApiResponse, PeerRequest, PeerResponse } from './peer-call.ts'
import { RateLimiter } from './rate-limit.ts'
import type { Usage } from './usage.ts'

export interface ApiComponents {
  nodeId: string
  /** Sends requests to peers (`X-Target-Node`). */
  mesh: PeerExchange
  config: () => Config
  providers: ProviderRegistry
  requestLog: RequestLog
  metrics: Metrics
  events: EventBus
  logger: Logger
}

/**
 * How a request reached the pipeline: a loopback socket, the relay (API key required), or a
 * trusted peer (through the mesh, in-process).
 */
export type RequestSource = 'local' | 'relay' | 'peer'

/** The POST endpoints forwarded to engines, by path below `/v1`. */
const FORWARDED = new Set(['/chat/completions', '/completions', '/embeddings', '/responses'])

/**
 * The route a path falls under, as metrics and the request log name it: one of a fixed few, so
 * that requests for arbitrary paths cannot grow them without bound. A refused path is named in
 * the record's error.
 */
function routeOf(path: string): string {
  if (path === '/health' || path === '/v1/models') return path
  if (path.startsWith('/v1/models/')) return '/v1/models/{model}'
  if (path.startsWith('/v1/') && FORWARDED.has(path.slice(3))) return path
  return 'unmatched'
}

/** Request headers not forwarded to engines: hop-by-hop, the client's credentials, Gate's own. */
const DROPPED_HEADERS = new Set([
  'host',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'authorization',
  'proxy-authorization',
  'cookie',
  'origin',
  'referer',
  'te',
  'upgrade',
  'expect',
  'x-target-node',
  'x-request-id',
])

/** What a peer may pass on as a request ID. */
const REQUEST_ID = /^[\w-]{8,64}$/

/** The state of one request as it goes through the pipeline; becomes its request record. */
interface Exchange {
  id: string
  start: number
  req: ApiRequest
  res: ApiResponse
  /**
   * Gate's own response headers (request ID, node, CORS), written with the response head. Passed
   * to `writeHead` rather than set with `setHeader` beforehand, which sends node:http down its
   * slower header path.
   */
  headers: Record<string, string>
  route: string
  model: string | null
  provider: string | null
  stream: boolean
  consumer: string
  /** The node that served it: this one, or the peer it was sent to. */
  node: string
  usage: Usage | null
  error: string | null
  /** The upstream exchange (engine or peer) under way, if any: its record waits for its outcome. */
  upstream: ForwardRequest | null
  /** Its response has closed. */
  closed: boolean
  /** The whole response reached the client, even if it closed the connection before our last write (SSE after `[DONE]`). */
  complete: boolean
  /** Its record is made: once, though a client leaving mid-body both closes and fails it. */
  recorded: boolean
  /** Its index in the server's requests in flight, or -1. */
  slot: number
}

/**
 * The OpenAI-compatible API. Built on bare `node:http` and undici's dispatcher rather than a
 * framework: this is the hot path, and every object built per request shows in throughput.
 */
export class ApiServer {
  readonly #c: ApiComponents
  readonly #server: Server
  /**
   * Requests in flight, each at its `slot`. Not a Set: a long-lived Set that every request passes
   * through kept them all alive through young-generation collections (V8 links each hash table a
   * Set replaces, as it grows or sheds deleted entries, to its successor, so an old table holds on
   * to the newer ones). Under load that moved about 5 KB per request into the old generation.
   */
  readonly #inflight: Exchange[] = []
  readonly #peerLimits = new RateLimiter()
  /** The latest record's start, in whole milliseconds, and as `#isoTime` wrote it. */
  #timeMs = 0
  #time = ''

  constructor(components: ApiComponents) {
    this.#c = components
    this.#server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => this.handle(req, res, 'local'))
  }

  /**
   * Runs a trusted peer's `/gate/http` request through the pipeline, answering in frames;
   * settles when the response is sent or abandoned.
   */
  servePeer(request: IncomingRequest, response: ResponseWriter, from: string): Promise<void> {
    const res = new PeerResponse(response, request.signal)
    this.handle(new PeerRequest(request), res, 'peer', from)
    return res.done
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject)
        resolve(this.#server.address() as AddressInfo)
      })
    })
  }

  get active(): number {
    return this.#inflight.length
  }

  /** Streaming responses in flight. */
  get streams(): number {
    let n = 0
    for (const ex of this.#inflight) if (ex.stream) n++
    return n
  }

  /**
   * Stops accepting, lets requests in flight finish for `graceMs`, then cancels the rest (which
   * aborts their upstream requests).
   */
  async close(graceMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) =>
      this.#server.listening ? this.#server.close(() => resolve()) : resolve(),
    )
    this.#server.closeIdleConnections()
    const deadline = Date.now() + graceMs
    while (this.#inflight.length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    for (const ex of [...this.#inflight]) ex.res.destroy()
    this.#server.closeAllConnections()
    await closed
  }

  /**
   * Runs one request through the pipeline; the relay and peers hand theirs in here too. `peer`:
   * the node a `peer` request came from.
   */
  handle(req: ApiRequest, res: ApiResponse, source: RequestSource, peer?: string): void {
    // A peer passes on the ID its requester gave the request, so one ID follows it across nodes.
    const given = source === 'peer' ? req.headers['x-request-id'] : undefined
    const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
    const ex: Exchange = {
      id,
      start: performance.now(),
      req,
      res,
      headers: { 'x-request-id': id, 'x-gate-node': this.#c.nodeId },
      route: '',
      model: null,
      provider: null,
      stream: false,
      consumer: source === 'peer' ? `peer:${peer}` : 'local',
      node: this.#c.nodeId,
      usage: null,
      error: null,
      upstream: null,
      closed: false,
      complete: false,
      recorded: false,
      slot: -1,
    }
    try {
      this.#route(ex, source, peer)
    } catch (err) {
      this.#fail(ex, toGateError(err))
    }
  }

  /**
   * The request's way through the pipeline, in steps run as their input arrives (its body, the
   * engine's answer): callbacks rather than promises on the path of every local request, where
   * each promise and await showed in its cost. What a step throws is the answer (`#fail`).
   */
  #route(ex: Exchange, source: RequestSource, peer: string | undefined): void {
    const { req, res } = ex
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const path = q < 0 ? url : url.slice(0, q)
    ex.route = routeOf(path)
    const origin = req.headers.origin
    if (source === 'local') checkLocalRequest(req.headers.host, origin)
    if (origin !== undefined && isLoopbackOrigin(origin)) {
      ex.headers['access-control-allow-origin'] = origin
      ex.headers['access-control-expose-headers'] = 'x-request-id, x-gate-node'
      ex.headers.vary = 'origin'
    }
    if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        ...ex.headers,
        'access-control-allow-methods': 'GET, POST, OPTIONS',
        'access-control-allow-headers': req.headers['access-control-request-headers'] ?? '*',
        'access-control-max-age': '600',
      })
      return void res.end()
    }
    if (path === '/health') return void this.#json(ex, 200, { status: 'ok', node_id: this.#c.nodeId })
    if (!path.startsWith('/v1/')) throw new NotFoundError(`no route ${req.method} ${path}`)
    const config = this.#c.config()
    if (source === 'relay')
      ex.consumer = keyConsumer(checkApiKey(req.headers.authorization, config.security.api_keys))
    const sub = path.slice(3)
    if (req.method === 'GET' && (sub === '/models' || sub.startsWith('/models/'))) {
      return void this.#later(ex, this.#models(ex, sub))
    }
    if (req.method !== 'POST' || !FORWARDED.has(sub))
      throw new NotFoundError(`no route ${req.method} ${path}`)
    this.#forward(ex, sub, config, source === 'peer' ? peer : undefined)
  }

  /** `GET /v1/models` and `/v1/models/{model}`, once every provider has answered a health check. */
  async #models(ex: Exchange, sub: string): Promise<void> {
    await this.#c.providers.settle()
    if (sub === '/models') return this.#json(ex, 200, this.#modelList())
    const id = decodePathPart(sub.slice('/models/'.length))
    ex.model = id
    const model = this.#modelList().data.find((m) => m.id === id)
    if (!model) throw new NotFoundError(`model "${id}" not found`, { param: 'model' })
    this.#json(ex, 200, model)
  }

  /** A step of `ex` that goes on asynchronously: what it rejects with is the answer. */
  #later(ex: Exchange, step: Promise<void>): void {
    step.catch((err: unknown) => this.#fail(ex, toGateError(err)))
  }

  /**
   * Takes the request in (held to the limits, counted in flight, recorded once its response has
   * closed) and reads its body. `peer`: the node the request came from, held to its rate limit.
   */
  #forward(ex: Exchange, sub: string, config: Config, peer: string | undefined): void {
    const { req, res } = ex
    if (peer !== undefined) {
      const { per_peer_rps, burst } = config.security.rate_limit
      const wait = this.#peerLimits.take(peer, per_peer_rps, burst)
      if (wait > 0) throw new RateLimitedError(`node ${peer} is over its rate limit`, Math.ceil(wait))
    }
    if (this.#inflight.length >= config.security.max_concurrent_requests) {
      throw new RateLimitedError('too many requests in flight: retry shortly', RETRY_AFTER_SECONDS)
    }
    ex.slot = this.#inflight.push(ex) - 1
    res.once('close', () => this.#closed(ex))
    readBody(req, config.security.max_body_bytes, (err, body) => {
      try {
        if (err) throw err
        this.#dispatch(ex, sub, config, peer, body as Buffer)
      } catch (err) {
        this.#fail(ex, toGateError(err))
      }
    })
  }

  /**
   * The response has closed: the request leaves those in flight, its upstream exchange is
   * cancelled if the client went away, and it is recorded unless that exchange has yet to settle.
   */
  #closed(ex: Exchange): void {
    this.#settle(ex)
    ex.closed = true
    if (ex.upstream === null) return void this.#record(ex)
    if (!ex.res.writableFinished) ex.upstream.cancel?.()
  }

  /** The upstream exchange has settled, its outcome stored: recorded if the response has closed. */
  #settled(ex: Exchange): void {
    ex.upstream = null
    if (ex.closed) this.#record(ex)
  }

  /** The body is in: picks who serves the request, from its model and `X-Target-Node`. */
  #dispatch(ex: Exchange, sub: string, config: Config, peer: string | undefined, body: Buffer): void {
    const { req } = ex
    const { model, stream } = parseModel(body)
    ex.model = model
    ex.stream = stream
    const { events } = this.#c
    if (events.listening)
      events.emit('request_start', { id: ex.id, route: ex.route, model, stream, consumer: ex.consumer })
    const target = req.headers['x-target-node']
    /** This node was named: its own providers serve the request, with no peer to fail over to. */
    let named = false
    if (typeof target === 'string' && target !== '') {
      const nodeId = parseNodeId(target)
      if (nodeId !== this.#c.nodeId) {
        if (!this.#c.mesh.trusts(nodeId))
          throw new NotFoundError(`unknown node ${nodeId}: it is not in network.trusted_peers`)
        return void this.#toPeers(ex, [nodeId], sub, body, config)
      }
      named = true
    }
    const here = named || peer !== undefined
    const { providers } = this.#c
    const candidates = providers.candidates(model)
    if (candidates.length > 0) return void this.#choose(ex, candidates, sub, body, config, here)
    // None may be known yet: the first health checks may still be under way.
    this.#later(
      ex,
      providers.settle().then(() => this.#choose(ex, providers.candidates(model), sub, body, config, here)),
    )
  }

  /**
   * Sends the request to the first of the local `candidates` that answers, else to the trusted
   * peers that have its model. `here`: it is served by this node or not at all (it came from a
   * peer, which do not pass requests on, or named this node).
   */
  #choose(
    ex: Exchange,
    candidates: Provider[],
    sub: string,
    body: Buffer,
    config: Config,
    here: boolean,
  ): void {
    const { providers } = this.#c
    const model = ex.model as string
    const peers = here ? [] : this.#c.mesh.candidates(model)
    if (candidates.length === 0) {
      if (peers.length > 0) return void this.#toPeers(ex, peers, sub, body, config, true)
      if (providers.knows(model)) throw new UnavailableError(`no healthy provider for model "${model}"`)
      const down = providers.unknownDown()
      if (down.length > 0) {
        const which = down.map((p) => `"${p.name}" (${p.lastError})`).join(', ')
        throw new UnavailableError(
          `model "${model}" is unknown while these providers are down and have not listed their models: ${which}`,
        )
      }
      throw new NotFoundError(`model "${model}" not found`, { param: 'model' })
    }
    const request = this.#upstream(ex, sub, body, config, upstreamHeaders(ex.req))
    forward(request, candidates, peers.length > 0, (result) => {
      try {
        ex.provider = result.provider?.name ?? null
        if (result.ok) {
          ex.usage = result.usage
          ex.complete = true
        } else if (!result.sent && !clientGone(ex.res) && peers.length > 0) {
          // No local provider answered, and nothing has reached the client: the peers that have it.
          ex.provider = null
          return void this.#toPeers(ex, peers, sub, body, config, true)
        } else {
          ex.error = result.error.message
          if (!result.sent && !clientGone(ex.res)) sendError(ex.res, result.error as GateError, ex.headers)
        }
        this.#settled(ex)
      } catch (err) {
        // Nothing thrown here may reach undici, whose callback this runs in.
        this.#fail(ex, toGateError(err))
        this.#settled(ex)
      }
    })
  }

  /**
   * Sends the request to peers in turn, failing over while nothing has reached the client.
   * `routed`: chosen by model (each peer's slot and breaker are tracked), not named by the client.
   */
  #toPeers(ex: Exchange, nodeIds: string[], sub: string, body: Buffer, config: Config, routed = false): void {
    const headers = upstreamHeaders(ex.req)
    headers['x-request-id'] = ex.id
    const request = this.#upstream(ex, sub, body, config, headers)
    this.#peerExchange(ex, nodeIds, request, routed).then(
      () => this.#settled(ex),
      (err: unknown) => {
        this.#fail(ex, toGateError(err))
        this.#settled(ex)
      },
    )
  }

  /** The exchange `ex` starts upstream (engine or peer), sent `headers`: under way until `#settled`. */
  #upstream(
    ex: Exchange,
    sub: string,
    body: Buffer,
    config: Config,
    headers: Record<string, string | string[]>,
  ): ForwardRequest {
    ex.upstream = {
      res: ex.res,
      responseHeaders: ex.headers,
      path: sub,
      headers,
      body,
      timeoutMs: config.security.request_timeout * 1000,
    }
    return ex.upstream
  }

  async #peerExchange(
    ex: Exchange,
    nodeIds: string[],
    request: ForwardRequest,
    routed: boolean,
  ): Promise<void> {
    const { mesh } = this.#c
    let result: PeerForwardResult | undefined
    for (const [i, nodeId] of nodeIds.entries()) {
      ex.node = nodeId
      const done = routed ? mesh.reserve(nodeId) : undefined
      result = await forwardToPeer(mesh, nodeId, request, i === nodeIds.length - 1)
      done?.(result.ok || clientGone(ex.res))
      if (result.ok || result.sent || clientGone(ex.res)) break
    }
    result = result as PeerForwardResult // nodeIds is never empty
    if (result.ok) {
      ex.usage = result.usage
      ex.complete = true
      return
    }
    ex.error = result.error.message
    if (!result.sent && !clientGone(ex.res)) sendError(ex.res, result.error as GateError, ex.headers)
  }

  /** Takes `ex` out of the requests in flight: the last one moves into its slot. */
  #settle(ex: Exchange): void {
    if (ex.slot < 0) return
    const last = this.#inflight.pop() as Exchange
    if (last !== ex) {
      this.#inflight[ex.slot] = last
      last.slot = ex.slot
    }
    ex.slot = -1
  }

  #fail(ex: Exchange, err: GateError): void {
    ex.error = err.message
    // A client that went away (mid-body, say) is a 499, not a failure of ours.
    if (err.code === 'internal' && !clientGone(ex.res))
      this.#c.logger.error({ err: err.cause, id: ex.id }, 'request failed')
    if (err instanceof PayloadTooLargeError) ex.res.setHeader('connection', 'close')
    sendError(ex.res, err, ex.headers)
    if (ex.slot >= 0) return // recorded when its response closes (#forward)
    // Recorded once the answer has gone out, so that its status counts as sent (not as 499).
    if (ex.res.destroyed || ex.res.writableFinished) this.#record(ex)
    else ex.res.once('close', () => this.#record(ex))
  }

  #record(ex: Exchange): void {
    if (ex.recorded) return
    ex.recorded = true
    const status = ex.res.writableFinished || ex.complete ? ex.res.statusCode : 499
    const latency = performance.now() - ex.start
    const { metrics, requestLog, events } = this.#c
    metrics.duration.observe(ex.route, latency / 1000)
    const record = {
      id: ex.id,
      time: this.#isoTime(Date.now() - latency),
      method: ex.req.method ?? 'GET',
      route: ex.route,
      model: ex.model,
      node: ex.node,
      provider: ex.provider,
      status,
      latency_ms: Math.round(latency * 100) / 100,
      stream: ex.stream,
      consumer: ex.consumer,
      usage: ex.usage,
      error: ex.error,
    }
    requestLog.add(record)
    events.emit('request', record)
  }

  /** `ms` since the epoch as an ISO 8601 string: requests started in the same millisecond share one. */
  #isoTime(ms: number): string {
    const whole = Math.floor(ms)
    if (whole !== this.#timeMs) {
      this.#timeMs = whole
      this.#time = new Date(whole).toISOString()
    }
    return this.#time
  }

  /** Local models and those of connected trusted peers, each once, with the nodes that serve it. */
  #modelList() {
    const { providers, nodeId, mesh } = this.#c
    const servedBy = new Map<string, string[]>()
    for (const id of providers.models()) servedBy.set(id, [nodeId])
    for (const [id, nodes] of mesh.models()) servedBy.set(id, [...(servedBy.get(id) ?? []), ...nodes])
    return {
      object: 'list' as const,
      data: [...servedBy].map(([id, served_by]) => ({
        id,
        object: 'model' as const,
        created: 0,
        owned_by: 'gate',
        served_by,
      })),
    }
  }

  #json(ex: Exchange, status: number, value: unknown): void {
    const body = JSON.stringify(value)
    ex.res
      .writeHead(status, {
        ...ex.headers,
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      })
      .end(body)
  }
}

/** A stable, non-reversible name for an API key in logs and usage: never the key itself. */
function keyConsumer(key: string): string {
  return `key:${createHash('sha256').update(key).digest('hex').slice(0, 12)}`
}

function upstreamHeaders(req: ApiRequest): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const key in req.headers) {
    const value = req.headers[key]
    if (value !== undefined && !DROPPED_HEADERS.has(key)) out[key] = value
  }
  return out
}

/** Reads the request's body whole into `done`, or fails at the first byte over `limit`. */
function readBody(from: ApiRequest, limit: number, done: (err: Error | null, body?: Buffer) => void): void {
  if (from instanceof PeerRequest) {
    if (from.body.length > limit) done(tooLarge(limit))
    else done(null, from.body)
    return
  }
  const req = from as IncomingMessage
  const declared = Number(req.headers['content-length'])
  if (declared > limit) return void done(tooLarge(limit))
  // The listeners stay: the request is done with once its body ends or fails. A body over the
  // limit keeps flowing to its end, its chunks dropped.
  const chunks: Buffer[] = []
  let size = 0
  /** `done` has been called: once, whatever the stream does after. */
  let called = false
  const once = (err: Error | null, body?: Buffer) => {
    if (called) return
    called = true
    done(err, body)
  }
  req
    .on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size <= limit) chunks.push(chunk)
      else once(tooLarge(limit))
    })
    .on('end', () => once(null, chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)))
    .on('error', (err) => once(err))
}

function decodePathPart(part: string): string {
  try {
    return decodeURIComponent(part)
  } catch {
    throw new InvalidRequestError(`malformed percent-encoding in the path: ${part}`)
  }
}

function parseModel(body: Buffer): { model: string; stream: boolean } {
  let value: unknown
  try {
    value = JSON.parse(body.toString())
  } catch (err) {
    throw new InvalidRequestError(`request body is not valid JSON: ${(err as Error).message}`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidRequestError('request body must be a JSON object')
  }
  const { model, stream } = value as { model?: unknown; stream?: unknown }
  if (typeof model !== 'string' || model === '') {
    throw new InvalidRequestError('you must provide a model parameter', { param: 'model' })
  }
  return { model, stream: stream === true }
}
