import { randomUUID } from 'node:crypto'
import { type Capabilities, describeInput } from '@gate/core'
import type { Connection, Stream, StreamHandler } from '@libp2p/interface'
import { CONTROL_READ_TIMEOUT_MS } from './constants.ts'
import { deadline, FrameStream, ProtocolError } from './frames.ts'

/**
 * `/gate/control/1.0.0`: one request and one answer per stream, each a `NodeMessage` in a JSON
 * frame. Requests: `handshake` (our capabilities; the answer carries theirs), `capability_request`,
 * `capability_update` (pushed when our models or load change), `ping`, `pair` (redeems an invite).
 */
export const CONTROL_PROTOCOL = '/gate/control/1.0.0'
export const CONTROL_VERSION = 1

export type ControlPayload =
  | { type: 'handshake'; capabilities: Capabilities }
  | { type: 'handshake_response'; capabilities: Capabilities }
  | { type: 'capability_request' }
  | { type: 'capability_response'; capabilities: Capabilities }
  | { type: 'capability_update'; capabilities: Capabilities }
  | { type: 'ack' }
  | { type: 'ping' }
  | { type: 'pong' }
  /** Redeems an invite: the sender holds the secret of a code the receiver made. */
  | { type: 'pair'; secret: string }
  | { type: 'pair_response'; accepted: boolean; reason: string | null }

export interface NodeMessage {
  version: number
  id: string
  timestamp: number
  payload: ControlPayload
}

/** Sends one control request on a fresh stream and returns the answer's payload. */
export async function controlRequest(
  stream: Stream,
  payload: ControlPayload,
  signal?: AbortSignal,
): Promise<ControlPayload> {
  const frames = new FrameStream(stream)
  try {
    await frames.write({ type: 'head', value: message(payload) })
    const answer = await frames.read(signal)
    if (answer.type !== 'head')
      throw new ProtocolError(`expected a control message, got a ${answer.type} frame`)
    const parsed = parseMessage(answer.value)
    await stream.close().catch(() => {})
    return parsed.payload
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw err
  }
}

/** A `/gate/control` handler: `answer` turns each request into its answer. */
export function controlStreamHandler(
  answer: (payload: ControlPayload, connection: Connection) => Promise<ControlPayload>,
  options: { onProtocolError?: (err: Error, connection: Connection) => void } = {},
): StreamHandler {
  return async (stream, connection) => {
    const frames = new FrameStream(stream)
    const late = deadline(
      CONTROL_READ_TIMEOUT_MS,
      () => new ProtocolError(`the control request did not arrive within ${CONTROL_READ_TIMEOUT_MS} ms`),
    )
    try {
      const request = await frames.read(late.signal)
      if (request.type !== 'head')
        throw new ProtocolError(`expected a control message, got a ${request.type} frame`)
      const reply = await answer(parseMessage(request.value).payload, connection)
      await frames.write({ type: 'head', value: message(reply) })
      await stream.close()
    } catch (err) {
      if (err instanceof ProtocolError) options.onProtocolError?.(err, connection)
      if (stream.status === 'open') stream.abort(err instanceof Error ? err : new Error(String(err)))
    } finally {
      late.clear()
    }
  }
}

function message(payload: ControlPayload): Record<string, unknown> {
  return { version: CONTROL_VERSION, id: randomUUID(), timestamp: Date.now(), payload }
}

const PAYLOAD_TYPES = new Set([
  'handshake',
  'handshake_response',
  'capability_request',
  'capability_response',
  'capability_update',
  'ack',
  'ping',
  'pong',
  'pair',
  'pair_response',
])

/** Payload types whose `capabilities` the type requires. */
const WITH_CAPABILITIES = new Set([
  'handshake',
  'handshake_response',
  'capability_response',
  'capability_update',
])

/** Longest invite secret taken; the ones Gate makes are far shorter. */
const MAX_SECRET_CHARS = 256

function parseMessage(value: Record<string, unknown>): NodeMessage {
  const { version, id, timestamp, payload } = value
  if (version !== CONTROL_VERSION)
    throw new ProtocolError(`unsupported control version ${describeInput(['version'], version)}`)
  if (typeof id !== 'string' || typeof timestamp !== 'number')
    throw new ProtocolError('control message needs id and timestamp')
  if (
    typeof payload !== 'object' ||
    payload === null ||
    !PAYLOAD_TYPES.has((payload as { type?: string }).type ?? '')
  ) {
    throw new ProtocolError('control message has no known payload type')
  }
  const p = payload as ControlPayload
  if (
    ('capabilities' in p || WITH_CAPABILITIES.has(p.type)) &&
    !isCapabilities((p as { capabilities?: unknown }).capabilities)
  )
    throw new ProtocolError('malformed capabilities')
  if (p.type === 'pair' && !(typeof p.secret === 'string' && p.secret.length <= MAX_SECRET_CHARS))
    throw new ProtocolError('malformed pair secret')
  if (
    p.type === 'pair_response' &&
    !(typeof p.accepted === 'boolean' && (p.reason === null || typeof p.reason === 'string'))
  )
    throw new ProtocolError('malformed pair response')
  return { version, id, timestamp, payload: p }
}

function isCapabilities(value: unknown): value is Capabilities {
  if (typeof value !== 'object' || value === null) return false
  const c = value as Record<string, unknown>
  return (
    typeof c.node_id === 'string' &&
    Array.isArray(c.supported_models) &&
    c.supported_models.every((m) => typeof m === 'string') &&
    (c.max_context_length === null || typeof c.max_context_length === 'number') &&
    typeof c.supports_streaming === 'boolean' &&
    typeof c.load_factor === 'number' &&
    c.load_factor >= 0 &&
    c.load_factor <= 1
  )
}
