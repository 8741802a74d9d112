import { MAX_SSE_EVENT_CHARS } from './constants.ts'

export interface SseEvent {
  /** The `event:` field; `message` when the server sent none. */
  event: string
  /** The `data:` lines joined and JSON-parsed; the raw text when it is not JSON. */
  data: unknown
}

export interface ParseSseOptions {
  /** @default MAX_SSE_EVENT_CHARS */
  maxEventChars?: number
}

/**
 * Reads Server-Sent Events from a byte stream as they arrive. Chunks may split lines, line
 * endings (`\r\n`) and UTF-8 characters anywhere. Comments (`: keepalive`), `id:` and `retry:`
 * are skipped, and an event cut off by the end of the stream is dropped, as the SSE spec says.
 * Returning early (a `break` in `for await`) cancels the stream.
 */
export async function* parseSse(
  body: ReadableStream<Uint8Array>,
  options: ParseSseOptions = {},
): AsyncGenerator<SseEvent, void, undefined> {
  const maxChars = options.maxEventChars ?? MAX_SSE_EVENT_CHARS
  const reader = body.getReader()
  const decoder = new TextDecoder()
  let buffer = ''
  let event = ''
  let data: string[] | undefined
  let eventChars = 0

  // Handles one complete line; returns the event a blank line completes.
  const takeLine = (line: string): SseEvent | undefined => {
    if (line === '') {
      const done =
        data === undefined ? undefined : { event: event || 'message', data: parseData(data.join('\n')) }
      event = ''
      data = undefined
      eventChars = 0
      return done
    }
    if (line.startsWith(':')) return undefined
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'event') event = value
    else if (field === 'data') {
      eventChars += value.length
      if (eventChars > maxChars) throw new RangeError(`SSE event larger than ${maxChars} characters`)
      data ??= []
      data.push(value)
    }
    return undefined
  }

  try {
    for (;;) {
      const { done, value } = await reader.read()
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true })
      let start = 0
      for (;;) {
        const end = lineEnd(buffer, start)
        if (end === -1) break
        // A `\r` that ends the buffer may be the first half of `\r\n`: wait for the next chunk.
        if (buffer[end] === '\r' && end + 1 === buffer.length && !done) break
        const completed = takeLine(buffer.slice(start, end))
        start = end + (buffer[end] === '\r' && buffer[end + 1] === '\n' ? 2 : 1)
        if (completed) yield completed
      }
      buffer = buffer.slice(start)
      if (buffer.length > maxChars) throw new RangeError(`SSE line longer than ${maxChars} characters`)
      if (done) return
    }
  } finally {
    // No-op after the stream ended; closes the connection when the consumer stopped early.
    reader.cancel().catch(() => {})
  }
}

function lineEnd(text: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 10 || c === 13) return i
  }
  return -1
}

function parseData(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}
