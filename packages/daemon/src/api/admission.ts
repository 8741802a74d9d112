/**
 * Admission: what a request must pass before anything is sent upstream. Where it may come from
 * (Host and Origin), who it is (an API key for relayed requests), how fast (per-peer rate limit),
 * its body (size and time limits), and a place among the requests in flight.
 */
import { createHash } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import {
  type Config,
  ForbiddenError,
  PayloadTooLargeError,
  RateLimitedError,
  RequestTimeoutError,
  type SecurityConfig,
  UnauthorizedError,
} from '@gate/core'
import { MAX_DISCARDED_BODY_BYTES, RETRY_AFTER_SECONDS } from '../constants.ts'
import { RateLimiter } from './rate-limit.ts'
import type { ApiRequest, RequestSource } from './types.ts'

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]'])

/** The host part of a Host header or origin authority, without its port, lowercase. */
function hostname(authority: string): string {
  const end = authority.startsWith('[') ? authority.indexOf(']') + 1 : authority.lastIndexOf(':')
  return (end > 0 ? authority.slice(0, end) : authority).toLowerCase()
}

export function isLoopbackOrigin(origin: string): boolean {
  const url = URL.parse(origin)
  return (url?.protocol === 'http:' || url?.protocol === 'https:') && LOOPBACK_HOSTS.has(url.hostname)
}

/**
 * Refuses what a web page could have made a local client send: a Host that is not a loopback
 * name (DNS rebinding) or an Origin that is not on this machine (CSRF). Clients that send no
 * Origin (SDKs, curl) pass. Used by the API and the control port alike.
 */
export function checkLocalRequest(host: string | undefined, origin: string | undefined): void {
  if (host === undefined || !LOOPBACK_HOSTS.has(hostname(host))) {
    throw new ForbiddenError(`Host "${host ?? ''}" is not allowed: use localhost or 127.0.0.1`)
  }
  if (origin !== undefined && !isLoopbackOrigin(origin)) {
    throw new ForbiddenError(`Origin "${origin}" is not allowed`)
  }
}

/** The token of an `Authorization: Bearer <token>` header: the API's keys, the control port's token. */
export function bearerToken(authorization: string | undefined): string | undefined {
  const token = /^Bearer\s+(.+)$/i.exec(authorization ?? '')?.[1]?.trim()
  return token === '' ? undefined : token
}

/**
 * Checks where the request comes from, and returns the CORS headers its answer carries (none for
 * a request without an Origin). Local requests: loopback Host and Origin only.
 */
export function checkSource(req: ApiRequest, source: RequestSource): Record<string, string> {
  const origin = req.headers.origin
  if (source.kind === 'local') checkLocalRequest(req.headers.host, origin)
  if (source.kind === 'relay' && hostname(req.headers.host ?? '') !== source.name.toLowerCase()) {
    throw new ForbiddenError(`Host "${req.headers.host ?? ''}" is not this node's public name`)
  }
  if (origin === undefined || (source.kind === 'local' && !isLoopbackOrigin(origin))) return {}
  if (source.kind === 'peer') return {}
  return {
    'access-control-allow-origin': origin,
    'access-control-expose-headers': 'x-request-id, x-gate-node',
    vary: 'origin',
  }
}

/** The answer to a CORS preflight. */
export function preflightHeaders(req: ApiRequest): Record<string, string> {
  return {
    'access-control-allow-methods': 'GET, POST, OPTIONS',
    'access-control-allow-headers': req.headers['access-control-request-headers'] ?? '*',
    'access-control-max-age': '600',
  }
}

/** The API keys made by `gate keys`: the name of the one a key is, if any. */
export interface KeyRing {
  use(key: string): string | undefined
}

/**
 * Who the request is from, for usage, rate limits and the request log: `local`, `peer:<node ID>`,
 * or for a relayed request the API key it must carry: `key:<name>` for a key made by `gate keys`,
 * `key:<fingerprint>` for one in `security.api_keys` (never the key itself), or `relay` where
 * keys are not required.
 */
export function consumerOf(req: ApiRequest, source: RequestSource, config: Config, keys: KeyRing): string {
  if (source.kind === 'local') return 'local'
  if (source.kind === 'peer') return `peer:${source.node}`
  const key = bearerToken(req.headers.authorization)
  if (key === undefined) {
    // Keyless relayed clients count as one: per address, the consumers would grow without bound.
    if (!config.relay.api_keys_required) return 'relay'
    throw new UnauthorizedError('an API key is required: Authorization: Bearer <key>')
  }
  const name = keys.use(key)
  if (name !== undefined) return `key:${name}`
  if (config.security.api_keys.includes(key))
    return `key:${createHash('sha256').update(key).digest('hex').slice(0, 12)}`
  throw new UnauthorizedError('invalid API key')
}

/** The address of an `<address>:<port>` the relay names a client by. */
function addressOf(client: string): string {
  return client.slice(0, Math.max(0, client.lastIndexOf(':'))) || client
}

/** The rate limits and the places of requests in flight. */
export class Admission {
  readonly #buckets = new RateLimiter()
  #active = 0

  /** Requests holding a place. */
  get active(): number {
    return this.#active
  }

  /**
   * Refuses a peer, a relayed client or an API key over `security.rate_limit` (429 with
   * Retry-After): a relayed request is held to its client address's limit and its key's.
   */
  limitRate(source: RequestSource, consumer: string, security: SecurityConfig): void {
    if (source.kind === 'local') return
    const who =
      source.kind === 'peer' ? [`node ${source.node}`] : [`client ${addressOf(source.client)}`, consumer]
    const { per_peer_rps, burst } = security.rate_limit
    for (const key of who) {
      const wait = this.#buckets.take(key, per_peer_rps, burst)
      if (wait > 0) throw new RateLimitedError(`${key} is over its rate limit`, Math.ceil(wait))
    }
  }

  /**
   * Takes a place among the requests in flight (429 at the cap); the returned function gives it
   * back, once. Taken once the body is in, so that a slow body holds no place.
   */
  enter(security: SecurityConfig): () => void {
    if (this.#active >= security.max_concurrent_requests) {
      throw new RateLimitedError('too many requests in flight: retry shortly', RETRY_AFTER_SECONDS)
    }
    this.#active++
    let left = false
    return () => {
      if (left) return
      left = true
      this.#active--
    }
  }
}

/** A request body over `limit` bytes, from a local client or a peer alike. */
export function tooLarge(limit: number): PayloadTooLargeError {
  return new PayloadTooLargeError(`request body is larger than the ${limit}-byte limit`)
}

/**
 * The request's body, whole. Over `limit` it fails at once with a 413, and the rest of the body is
 * read and dropped (up to MAX_DISCARDED_BODY_BYTES, then the connection is cut) so that a client
 * still sending it reads the answer instead of a reset. A body that stalls for `idleMs` fails
 * with a 408 (whose answer closes the connection).
 */
export function readBody(req: ApiRequest, limit: number, idleMs: number): Promise<Uint8Array> {
  if (req.body !== undefined) {
    return req.body.length > limit ? Promise.reject(tooLarge(limit)) : Promise.resolve(req.body)
  }
  const stream = req as IncomingMessage
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    let over = Number(stream.headers['content-length']) > limit
    if (over) reject(tooLarge(limit))
    // Unref'd: a body still being dropped after its 413 keeps nothing alive.
    const timer = setTimeout(
      () => reject(new RequestTimeoutError(`the request body stalled for ${idleMs / 1000} s`)),
      idleMs,
    ).unref()
    stream
      .on('data', (chunk: Buffer) => {
        timer.refresh()
        size += chunk.length
        if (size > limit + MAX_DISCARDED_BODY_BYTES) stream.destroy()
        else if (size > limit && !over) {
          over = true
          chunks.length = 0
          reject(tooLarge(limit))
        } else if (!over) chunks.push(chunk)
      })
      .on('end', () => {
        clearTimeout(timer)
        resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks))
      })
      .on('error', (err) => {
        clearTimeout(timer)
        reject(err)
      })
      .on('close', () => {
        clearTimeout(timer)
        if (!stream.complete) reject(new Error('the client closed the request before its body ended'))
      })
  })
}
