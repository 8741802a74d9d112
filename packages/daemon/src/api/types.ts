/**
 * What the request pipeline's steps share: the request and response it is handed (node:http's, or
 * a peer's as frames), where the request came from, and what an upstream (engine or peer) is.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { Usage } from './usage.ts'

/** Header values as they cross the pipeline (node:http's and the `/gate/http` frames' shape). */
export type HeaderMap = Record<string, string | string[]>

/**
 * How a request reached the pipeline: a loopback socket, the relay (from a client on the internet,
 * whose address the relay passes on), or a trusted peer (whose node ID the connection proves).
 */
export type RequestSource =
  | { kind: 'local' }
  /** `name`: the server name the client's TLS asked for, which its Host must be. */
  | { kind: 'relay'; client: string; name: string }
  | { kind: 'peer'; node: string }

/** What the pipeline reads of a request: node:http's IncomingMessage, or a peer's. */
export interface ApiRequest {
  headers: IncomingHttpHeaders
  method?: string | undefined
  url?: string | undefined
  /** A body already read whole (a peer's); absent when it is still to be read from the stream. */
  body?: Uint8Array | undefined
}

/**
 * What the pipeline writes a response to: the part of node:http's ServerResponse it uses, which a
 * peer's response, written as frames, also implements.
 */
export interface ApiResponse {
  statusCode: number
  readonly headersSent: boolean
  readonly destroyed: boolean
  readonly writableFinished: boolean
  setHeader(name: string, value: string | number): this
  writeHead(status: number, headers?: Record<string, string | string[] | number>): this
  /** False when the caller should wait for `drain`. */
  write(chunk: Uint8Array): boolean
  end(chunk?: Uint8Array | string): this
  once(event: 'close' | 'drain', listener: () => void): this
  off(event: 'close' | 'drain', listener: () => void): this
  destroy(): this
}

/** The pipeline's front door: local, relayed and peer requests all come in here. */
export interface FrontDoor {
  /** Runs one request through the pipeline; settles once it is answered and recorded. */
  handle(req: ApiRequest, res: ApiResponse, source: RequestSource): Promise<void>
}

/** One forwarded request, as every upstream takes it. */
export interface UpstreamRequest {
  /** Path below `/v1`, e.g. `/chat/completions`. */
  path: string
  headers: HeaderMap
  body: Uint8Array
}

/** An upstream's answer: its head, and its body as it arrives. */
export interface UpstreamAnswer {
  status: number
  headers: HeaderMap
  body: AsyncIterable<Uint8Array>
}

/** How one attempt on an upstream ended, for its breaker and load accounting. */
export type AttemptOutcome = 'ok' | 'failed' | 'cancelled'

/** Something a request can be sent to: a local engine or a trusted peer, behind one interface. */
export interface Upstream {
  /** For messages: `provider "ollama"`, `node <id>`. */
  readonly label: string
  /** The provider's name, for the request record; null for a peer. */
  readonly provider: string | null
  /** The node that serves what is sent here: this node for an engine, else the peer. */
  readonly node: string
  /** Takes a place on it (its breaker's probe, a slot counted in its load); false to skip it. */
  acquire(): boolean
  /** Sends the request; aborting `signal` cancels it upstream, before or after the answer's head. */
  send(request: UpstreamRequest, signal: AbortSignal): Promise<UpstreamAnswer>
  /** Gives back what `acquire` took, with how the attempt ended. */
  release(outcome: AttemptOutcome): void
}

/** What the response relay reports for an answer that reached the client whole. */
export interface Relayed {
  status: number
  stream: boolean
  usage: Usage | null
}
