/**
 * The request pipeline, one line for every request, whether it came from a local client, the
 * relay or a peer: admission → router → failover over upstreams (engines, peers) → response relay
 * → record. Gate's own answers (`/health`, model lists, CORS preflights) leave the line early.
 */
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { type Config, InvalidRequestError, NotFoundError, parseNodeId, UnavailableError } from '@gate/core'
import type { PeerView } from '@gate/p2p'
import type { Logger } from 'pino'
import { MAX_MODEL_CHARS } from '../constants.ts'
import type { EventBus } from '../events.ts'
import type { Metrics } from '../metrics.ts'
import type { ProviderRegistry } from '../providers/registry.ts'
import type { RequestLog } from '../request-log.ts'
import {
  type Admission,
  checkSource,
  consumerOf,
  type KeyRing,
  preflightHeaders,
  readBody,
} from './admission.ts'
import { sendError, toGateError } from './errors.ts'
import { failover } from './failover.ts'
import { type Exchange, Recorder } from './record.ts'
import { clientGone } from './respond.ts'
import { type Candidate, route } from './router.ts'
import type { ApiRequest, ApiResponse, FrontDoor, HeaderMap, RequestSource, Upstream } from './types.ts'
import { engineUpstream } from './upstream/engine.ts'
import { type PeerExchange, type PeerPlaces, peerUpstream } from './upstream/peer.ts'

/** What the pipeline needs of the peer manager: the trusted peers and what they serve. */
export interface Peers extends PeerPlaces {
  /** Trusted peers, as routing sees them. */
  views(): PeerView[]
  /** Models of connected trusted peers, with the node IDs that serve each. */
  models(): Map<string, string[]>
}

export interface PipelineComponents {
  nodeId: string
  config: () => Config
  admission: Admission
  /** The API keys made by `gate keys`. */
  keys: KeyRing
  providers: ProviderRegistry
  peers: Peers
  /** Sends requests to peers. */
  mesh: PeerExchange
  requestLog: RequestLog
  metrics: Metrics
  events: EventBus
  logger: Logger
}

/** The POST endpoints forwarded upstream, by path below `/v1`. */
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

/** Request headers not sent upstream: hop-by-hop, the client's credentials, Gate's own. */
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

/** How often `drain` looks whether the requests in flight are done. */
const DRAIN_POLL_MS = 20
/** How long cancelled requests get to send their clients the error. */
const CANCEL_WAIT_MS = 500

/** What a peer may pass on as a request ID. */
const REQUEST_ID = /^[\w-]{8,64}$/

/** The pipeline: its front door takes every request; `close` drains it. */
export class Pipeline implements FrontDoor {
  readonly #c: PipelineComponents
  readonly #recorder: Recorder
  /** Requests past admission, by the controller that cancels each. */
  readonly #inflight = new Set<AbortController>()
  #streams = 0

  constructor(components: PipelineComponents) {
    this.#c = components
    this.#recorder = new Recorder(components)
  }

  /** Streaming responses in flight. */
  get streams(): number {
    return this.#streams
  }

  async handle(req: ApiRequest, res: ApiResponse, source: RequestSource): Promise<void> {
    // A peer passes on the ID its requester gave the request, so one ID follows it across nodes.
    const given = source.kind === 'peer' ? req.headers['x-request-id'] : undefined
    const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
    const ex: Exchange = {
      id,
      start: performance.now(),
      method: req.method ?? 'GET',
      route: 'unmatched',
      model: null,
      node: this.#c.nodeId,
      provider: null,
      stream: false,
      consumer: source.kind === 'peer' ? `peer:${source.node}` : 'local',
      usage: null,
      error: null,
      complete: false,
    }
    const headers: Record<string, string> = { 'x-request-id': id, 'x-gate-node': this.#c.nodeId }
    /** Gate answered it itself (health, models, preflight): not a request to record. */
    let own = false
    try {
      own = await this.#serve(ex, req, res, source, headers)
    } catch (err) {
      const error = toGateError(err)
      ex.error = error.message
      // A client that went away (mid-body, say) is a 499, not a failure of ours.
      if (error.code === 'internal' && !clientGone(res))
        this.#c.logger.error({ err: error.cause, id }, 'request failed')
      sendError(res, error, headers)
    }
    if (own) return
    if (!res.writableFinished && !res.destroyed)
      await new Promise<void>((resolve) => res.once('close', () => resolve()))
    this.#recorder.record(ex, res)
  }

  /** Runs the request; true when Gate answered it itself. */
  async #serve(
    ex: Exchange,
    req: ApiRequest,
    res: ApiResponse,
    source: RequestSource,
    headers: Record<string, string>,
  ): Promise<boolean> {
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const path = q < 0 ? url : url.slice(0, q)
    ex.route = routeOf(path)
    Object.assign(headers, checkSource(req, source))
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { ...headers, ...preflightHeaders(req) }).end()
      return true
    }
    if (path === '/health') return json(res, headers, { status: 'ok', node_id: this.#c.nodeId })
    if (!path.startsWith('/v1/')) throw new NotFoundError(`no route ${req.method} ${path}`)
    const config = this.#c.config()
    const { security } = config
    ex.consumer = consumerOf(req, source, config, this.#c.keys)
    const sub = path.slice(3)
    if (req.method === 'GET' && (sub === '/models' || sub.startsWith('/models/'))) {
      await this.#c.providers.settle()
      if (sub === '/models') return json(res, headers, this.#modelList())
      const model = checkModel(decodePathPart(sub.slice('/models/'.length)))
      ex.model = model
      const entry = this.#modelList().data.find((m) => m.id === model)
      if (!entry) throw new NotFoundError(`model "${model}" not found`, { param: 'model' })
      return json(res, headers, entry)
    }
    if (req.method !== 'POST' || !FORWARDED.has(sub))
      throw new NotFoundError(`no route ${req.method} ${path}`)
    this.#c.admission.limitRate(source, ex.consumer, security)
    const body = await readBody(req, security.max_body_bytes, security.body_timeout * 1000)
    const leave = this.#c.admission.enter(security)
    try {
      await this.#forward(ex, req, res, source, headers, sub, body)
    } finally {
      leave()
    }
    return false
  }

  /** Routes the request and sends it to its candidates in turn. */
  async #forward(
    ex: Exchange,
    req: ApiRequest,
    res: ApiResponse,
    source: RequestSource,
    headers: Record<string, string>,
    sub: string,
    body: Uint8Array,
  ): Promise<void> {
    const { model, stream } = parseBody(body)
    ex.model = model
    ex.stream = stream
    const { events, providers, peers } = this.#c
    if (events.listening)
      events.emit('request_start', { id: ex.id, route: ex.route, model, stream, consumer: ex.consumer })
    const target = req.headers['x-target-node']
    // The first health checks may still be under way: until they answer, no model is known.
    await providers.settle()
    const candidates = route({
      model,
      target: typeof target === 'string' && target !== '' ? parseNodeId(target) : null,
      self: this.#c.nodeId,
      source: source.kind,
      engines: providers.views(),
      peers: peers.views(),
    })
    const cancel = new AbortController()
    const onClose = () => {
      if (!res.writableFinished) cancel.abort(new Error('the client closed the request'))
    }
    res.once('close', onClose)
    this.#inflight.add(cancel)
    if (stream) this.#streams++
    try {
      const result = await failover(
        candidates.map((c) => this.#upstream(c)),
        {
          request: { path: sub, headers: upstreamHeaders(req, ex.id), body },
          res,
          headers,
          timeoutMs: this.#c.config().security.request_timeout * 1000,
          signal: cancel.signal,
        },
      )
      ex.node = result.upstream?.node ?? this.#c.nodeId
      ex.provider = result.upstream?.provider ?? null
      if (result.ok) {
        ex.usage = result.usage
        ex.complete = true
        return
      }
      ex.error = result.error.message
      if (!result.sent && !clientGone(res)) sendError(res, result.error, headers)
    } finally {
      if (stream) this.#streams--
      this.#inflight.delete(cancel)
      res.off('close', onClose)
    }
  }

  #upstream(candidate: Candidate): Upstream {
    if (candidate.kind === 'peer') return peerUpstream(this.#c, candidate.node, candidate.routed)
    const provider = this.#c.providers.get(candidate.name)
    if (!provider) throw new UnavailableError(`provider ${candidate.name} is gone`)
    return engineUpstream(provider, this.#c.nodeId)
  }

  /**
   * Lets the requests in flight finish for `graceMs`, then cancels the rest, telling their clients
   * why (a 503, or for a stream under way an SSE error event), and waits a little for those
   * answers to go out.
   */
  async drain(graceMs: number): Promise<void> {
    const deadline = Date.now() + graceMs
    while (this.#inflight.size > 0 && Date.now() < deadline) await sleep(DRAIN_POLL_MS)
    if (this.#inflight.size === 0) return
    const reason = new UnavailableError('the node is shutting down')
    for (const cancel of this.#inflight) cancel.abort(reason)
    const end = Date.now() + CANCEL_WAIT_MS
    while (this.#inflight.size > 0 && Date.now() < end) await sleep(DRAIN_POLL_MS)
  }

  /** Local models and those of connected trusted peers, each once, with the nodes that serve it. */
  #modelList() {
    const { providers, nodeId, peers } = this.#c
    const servedBy = new Map<string, string[]>()
    for (const id of providers.models()) servedBy.set(id, [nodeId])
    for (const [id, nodes] of peers.models()) servedBy.set(id, [...(servedBy.get(id) ?? []), ...nodes])
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
}

/** Answers with Gate's own JSON. */
function json(res: ApiResponse, headers: Record<string, string>, value: unknown): true {
  const body = JSON.stringify(value)
  res
    .writeHead(200, {
      ...headers,
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
    })
    .end(body)
  return true
}

/**
 * The headers sent upstream: the client's, less hop-by-hop ones, credentials and Gate's own, and
 * the request's ID (a peer passes it on, an engine may log it).
 */
function upstreamHeaders(req: ApiRequest, id: string): HeaderMap {
  const out: HeaderMap = { 'x-request-id': id }
  for (const key in req.headers) {
    const value = req.headers[key]
    if (value !== undefined && !DROPPED_HEADERS.has(key)) out[key] = value
  }
  return out
}

function decodePathPart(part: string): string {
  try {
    return decodeURIComponent(part)
  } catch {
    throw new InvalidRequestError(`malformed percent-encoding in the path: ${part}`)
  }
}

/** The fields of the body that routing and the record read. */
function parseBody(body: Uint8Array): { model: string; stream: boolean } {
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString())
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
  if (stream !== undefined && stream !== null && typeof stream !== 'boolean') {
    throw new InvalidRequestError(`stream: expected true or false, got ${typeof stream}`, { param: 'stream' })
  }
  return { model: checkModel(model), stream: stream === true }
}

/** A model name of a sane length: it is recorded, logged and compared against every provider's list. */
function checkModel(model: string): string {
  if (model.length > MAX_MODEL_CHARS) {
    throw new InvalidRequestError(`model: at most ${MAX_MODEL_CHARS} characters, got ${model.length}`, {
      param: 'model',
    })
  }
  return model
}
