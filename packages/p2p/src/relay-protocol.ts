import { randomUUID } from 'node:crypto'
import { type Identity, peerIdToNodeId, verifySignature } from '@gate/core'
import type { Connection, Stream, StreamHandler } from '@libp2p/interface'
import { CONTROL_READ_TIMEOUT_MS } from './constants.ts'
import { deadline, FrameStream, ProtocolError } from './frames.ts'

/**
 * `/gate/relay/1.0.0`: a node registers with a relay, one request and one answer per stream. A
 * request is a `RelayMessage` the node signs with its key; the relay checks that it is signed by
 * the node the libp2p connection comes from, that it is fresh and not replayed, so a node can only
 * ever speak for itself. Answers are plain: the connection authenticates the relay.
 */
export const RELAY_PROTOCOL = '/gate/relay/1.0.0'
export const RELAY_VERSION = 1

/** What a node asks of a relay. */
export type RelayRequest =
  /** The node's public name at this relay, and the relay's address for it. */
  | { type: 'domain_request' }
  /** Publish `_acme-challenge` TXT `value` for the node's name; answered once it is published. */
  | { type: 'dns_challenge'; value: string }
  /** Remove a challenge value published before. */
  | { type: 'dns_challenge_remove'; value: string }
  /** The node has its certificate: route TLS for its name to it. */
  | { type: 'activate_domain' }

/** What a relay answers. */
export type RelayAnswer =
  | { type: 'domain_response'; domain: string; public_ip: string }
  | { type: 'dns_challenge_response'; published: boolean; error: string | null }
  | { type: 'activation_response'; active: boolean; error: string | null }
  | { type: 'ack' }
  | { type: 'error'; message: string }

/** The signed part of a request. */
export interface RelayMessage {
  version: number
  id: string
  /** ms since the epoch. */
  timestamp: number
  node_id: string
  payload: RelayRequest
}

/** How far a request's time may be from the relay's clock. @default 5 minutes */
export const RELAY_CLOCK_SKEW_MS = 5 * 60_000
/** Longest challenge value taken (an ACME key authorization digest is 43 characters). */
const MAX_VALUE_CHARS = 256
/** Request IDs remembered to refuse replays, per relay. */
const MAX_SEEN_IDS = 10_000

const REQUEST_TYPES = new Set(['domain_request', 'dns_challenge', 'dns_challenge_remove', 'activate_domain'])

/** Sends one signed request on a fresh stream and returns the relay's answer. */
export async function relayRequest(
  stream: Stream,
  identity: Identity,
  payload: RelayRequest,
  signal?: AbortSignal,
): Promise<RelayAnswer> {
  const frames = new FrameStream(stream)
  try {
    const message: RelayMessage = {
      version: RELAY_VERSION,
      id: randomUUID(),
      timestamp: Date.now(),
      node_id: identity.nodeId,
      payload,
    }
    const body = JSON.stringify(message)
    const signature = Buffer.from(await identity.sign(new TextEncoder().encode(body))).toString('base64')
    await frames.write({ type: 'head', value: { body, signature } })
    const answer = await frames.read(signal)
    if (answer.type !== 'head') throw new ProtocolError(`expected a relay answer, got a ${answer.type} frame`)
    await stream.close().catch(() => {})
    return parseAnswer(answer.value)
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw err
  }
}

/**
 * A `/gate/relay` handler: checks each request's signature against the node of the connection it
 * came on (and its freshness), then `answer` turns it into the relay's answer. A request that
 * fails the checks is answered with an error; one that breaks the framing resets the stream.
 */
export function relayStreamHandler(
  answer: (request: RelayRequest, nodeId: string, connection: Connection) => Promise<RelayAnswer>,
  options: { onProtocolError?: (err: Error, connection: Connection) => void } = {},
): StreamHandler {
  const seen = new Set<string>()
  return async (stream, connection) => {
    const frames = new FrameStream(stream)
    const late = deadline(
      CONTROL_READ_TIMEOUT_MS,
      () => new ProtocolError(`the relay request did not arrive within ${CONTROL_READ_TIMEOUT_MS} ms`),
    )
    try {
      const request = await frames.read(late.signal)
      if (request.type !== 'head')
        throw new ProtocolError(`expected a relay request, got a ${request.type} frame`)
      const from = peerIdToNodeId(connection.remotePeer.toString())
      const checked = await checkRequest(request.value, from, seen)
      const reply =
        typeof checked === 'string'
          ? { type: 'error' as const, message: checked }
          : await answer(checked.payload, checked.node_id, connection)
      await frames.write({ type: 'head', value: { ...reply } })
      await stream.close()
    } catch (err) {
      if (err instanceof ProtocolError) options.onProtocolError?.(err, connection)
      if (stream.status === 'open') stream.abort(err instanceof Error ? err : new Error(String(err)))
    } finally {
      late.clear()
    }
  }
}

/** The request in a frame, or why it is refused. */
async function checkRequest(
  value: Record<string, unknown>,
  from: string,
  seen: Set<string>,
): Promise<RelayMessage | string> {
  const { body, signature } = value
  if (typeof body !== 'string' || typeof signature !== 'string' || body.length > 4096) {
    throw new ProtocolError('a relay request is { body, signature }')
  }
  let message: RelayMessage
  try {
    message = parseMessage(JSON.parse(body))
  } catch {
    throw new ProtocolError('a relay request body is not a relay message')
  }
  if (message.node_id !== from) return `node ${from} cannot speak for node ${message.node_id}`
  const sig = Buffer.from(signature, 'base64')
  if (!(await verifySignature(from, new TextEncoder().encode(body), sig)))
    return 'the signature does not match the node'
  if (Math.abs(Date.now() - message.timestamp) > RELAY_CLOCK_SKEW_MS)
    return 'the request is too old or from the future'
  if (seen.has(message.id)) return 'the request was replayed'
  if (seen.size >= MAX_SEEN_IDS) seen.delete(seen.values().next().value as string)
  seen.add(message.id)
  return message
}

function parseMessage(value: unknown): RelayMessage {
  const m = value as Partial<RelayMessage> | null
  const p = m?.payload as { type?: unknown; value?: unknown } | undefined
  if (
    m === null ||
    typeof m !== 'object' ||
    m.version !== RELAY_VERSION ||
    typeof m.id !== 'string' ||
    m.id.length > 64 ||
    typeof m.timestamp !== 'number' ||
    typeof m.node_id !== 'string' ||
    typeof p?.type !== 'string' ||
    !REQUEST_TYPES.has(p.type) ||
    (p.type.startsWith('dns_challenge') &&
      !(typeof p.value === 'string' && p.value.length <= MAX_VALUE_CHARS))
  ) {
    throw new ProtocolError('malformed relay message')
  }
  return m as RelayMessage
}

function parseAnswer(value: Record<string, unknown>): RelayAnswer {
  const type = value.type
  const ok =
    (type === 'domain_response' && typeof value.domain === 'string' && typeof value.public_ip === 'string') ||
    (type === 'dns_challenge_response' && typeof value.published === 'boolean') ||
    (type === 'activation_response' && typeof value.active === 'boolean') ||
    type === 'ack' ||
    (type === 'error' && typeof value.message === 'string')
  if (!ok) throw new ProtocolError('malformed relay answer')
  return value as RelayAnswer
}
