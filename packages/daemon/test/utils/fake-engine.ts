/**
 * A stand-in inference engine for Gate's tests and benchmarks, on bare `node:http` (keep-alive on).
 *
 * It speaks the OpenAI wire formats (`/v1/models`, `/v1/models/:id`, `/v1/chat/completions`,
 * `/v1/completions`, `/v1/embeddings`, `/v1/responses`) and, with `kind: 'ollama'`, Ollama's
 * `GET /`, `GET /api/tags` and `GET /api/version`.
 *
 * Replies are deterministic, so a test can tell that a request went through unchanged:
 * - chat: the reply text is `echo: <text of the last user message>` (see `replyText`); text parts of
 *   an array content are concatenated. Streamed, the same text is cut into exactly `chunks` pieces
 *   (`splitContent`; a piece is '' when the text is shorter than `chunks`), which concatenate back to it.
 * - completions: `echo: <prompt>` (a prompt array uses its first element).
 * - responses: `echo: <input>` (a string input, or the last user item of an input array).
 * - embeddings: `embeddingFor(text, dims)`: values that are multiples of 1/128 in [-1, 1), exact in
 *   float32, so the SDK's default base64 path and `encoding_format: 'float'` give equal numbers.
 * - usage: prompt_tokens = whitespace-separated words of the prompt text (at least 1),
 *   completion_tokens = `chunks` (at least 1), total = their sum. Same streamed or not.
 *
 * With `kind: 'openai'` every response carries an `x-request-id` of its own, as OpenAI's do.
 * Anything unrouted gets 404 with an OpenAI error body. `requests` records every request at arrival
 * (body filled in once read). `aborted` counts responses whose connection closed before they ended,
 * except the ones the fake cut itself (`close-before-headers`, `close-mid-stream`).
 */
import { createHash } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import http from 'node:http'
import type { AddressInfo } from 'node:net'

export type FailMode =
  | 'status500'
  | 'status503'
  | 'hang'
  | 'close-before-headers'
  | 'close-mid-stream'
  | 'bad-json'

export interface FakeEngineOptions {
  /** 'ollama' also serves GET /, GET /api/tags and GET /api/version. Default 'openai'. */
  kind?: 'ollama' | 'openai'
  /** Default ['llama3.2:1b']. */
  models?: string[]
  /** When set, /v1/* requires `Authorization: Bearer <apiKey>`, else 401. */
  apiKey?: string
  /** Content chunks in a streamed reply. Default 5. */
  chunks?: number
  /** Delay between stream events. Default 0. */
  chunkDelayMs?: number
  /** Default 127.0.0.1; the port is always random. */
  host?: string
  /** Keep every request in `requests`. Default true; benchmarks turn it off to hold memory flat. */
  record?: boolean
}

export interface RecordedRequest {
  method: string
  /** The request target as sent, query string included. */
  path: string
  headers: Record<string, string | string[] | undefined>
  body: string
}

export interface FakeEngine {
  /** 'http://127.0.0.1:PORT', without /v1. */
  url: string
  port: number
  requests: RecordedRequest[]
  /** How many of `requests` are POSTs: the inference requests that reached it. */
  readonly posts: number
  aborted: number
  /** Changes how later /v1 POSTs are answered; null answers normally. */
  fail: FailMode | null
  models: string[]
  stop(): Promise<void>
  /** Same as stop(), for `await using`. */
  [Symbol.asyncDispose](): Promise<void>
}

/** The version GET /api/version reports. */
export const FAKE_OLLAMA_VERSION = '0.12.6'

const DEFAULT_EMBEDDING_DIMS = 8

/** The reply text for a given prompt text. */
export function replyText(promptText: string): string {
  return `echo: ${promptText}`
}

/** Cuts `text` into exactly `n` pieces (by code point, near-equal) that concatenate back to it. */
export function splitContent(text: string, n: number): string[] {
  const chars = Array.from(text)
  const pieces: string[] = []
  const count = Math.max(1, n)
  for (let i = 0; i < count; i++) {
    const start = Math.floor((i * chars.length) / count)
    const end = Math.floor(((i + 1) * chars.length) / count)
    pieces.push(chars.slice(start, end).join(''))
  }
  return pieces
}

/** The deterministic embedding the fake returns for `text`. */
export function embeddingFor(text: string, dims: number = DEFAULT_EMBEDDING_DIMS): number[] {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193)
  const out: number[] = new Array(dims)
  for (let i = 0; i < dims; i++) out[i] = ((Math.imul(h ^ (i + 1), 0x9e3779b1) >>> 24) - 128) / 128
  return out
}

type Json = Record<string, unknown>

interface JsonReply {
  sse: false
  status: number
  body: string
}

interface SseReply {
  sse: true
  events: string[]
}

type Reply = JsonReply | SseReply

interface RequestState {
  req: IncomingMessage
  res: ServerResponse
  record: RecordedRequest
  /** The fake cut the connection on purpose: not a client abort. */
  selfClosed: boolean
  timer: NodeJS.Timeout | undefined
}

const SSE_HEADERS = { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' }

function isObj(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function errorBody(message: string, type: string, param: string | null, code: string | null): string {
  return JSON.stringify({ error: { message, type, param, code } })
}

function jsonReply(status: number, value: unknown): JsonReply {
  return { sse: false, status, body: JSON.stringify(value) }
}

function errorReply(
  status: number,
  message: string,
  type: string,
  param: string | null,
  code: string | null,
): JsonReply {
  return { sse: false, status, body: errorBody(message, type, param, code) }
}

function modelNotFound(model: string): JsonReply {
  return errorReply(
    404,
    `The model \`${model}\` does not exist or you do not have access to it.`,
    'invalid_request_error',
    'model',
    'model_not_found',
  )
}

/** Text of a message content: a string, or the concatenated `text` of its parts. */
function textOf(content: unknown): string {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) return ''
  let s = ''
  for (const part of content) if (isObj(part) && typeof part.text === 'string') s += part.text
  return s
}

function lastUserText(items: unknown): string {
  if (typeof items === 'string') return items
  if (!Array.isArray(items)) return ''
  for (let i = items.length - 1; i >= 0; i--) {
    const m: unknown = items[i]
    if (isObj(m) && m.role === 'user') return textOf(m.content)
  }
  return ''
}

function countWords(text: string): number {
  let n = 0
  let inWord = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    const space = c === 32 || (c >= 9 && c <= 13)
    if (!space && !inWord) n++
    inWord = !space
  }
  return n
}

function sseData(value: unknown): string {
  return `data: ${JSON.stringify(value)}\n\n`
}

const DONE = 'data: [DONE]\n\n'

function sendReply(res: ServerResponse, reply: JsonReply): void {
  res.writeHead(reply.status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(reply.body),
  })
  res.end(reply.body)
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  })
  res.end(text)
}

export function startFakeEngine(options: FakeEngineOptions = {}): Promise<FakeEngine> {
  const kind = options.kind ?? 'openai'
  const apiKey = options.apiKey
  const chunks = Math.max(1, Math.floor(options.chunks ?? 5))
  const delayMs = Math.max(0, options.chunkDelayMs ?? 0)
  const host = options.host ?? '127.0.0.1'
  const fingerprint = kind === 'ollama' ? 'fp_ollama' : 'fp_fake'
  const ownedBy = kind === 'ollama' ? 'library' : 'system'
  const startedAt = new Date()
  const startedSec = Math.floor(startedAt.getTime() / 1000)
  let seq = 0

  const engine: FakeEngine = {
    url: '',
    port: 0,
    requests: [],
    get posts() {
      return engine.requests.filter((r) => r.method === 'POST').length
    },
    aborted: 0,
    fail: null,
    models: [...(options.models ?? ['llama3.2:1b'])],
    stop: async () => {},
    [Symbol.asyncDispose]: () => engine.stop(),
  }

  // ---- streaming ---------------------------------------------------------------------------

  /** Writes each event with its own res.write, `delayMs` apart; cuts the socket after `cutAfter`. */
  function stream(st: RequestState, events: string[], cutAfter?: number): void {
    const { res } = st
    res.writeHead(200, SSE_HEADERS)
    const stopAt = cutAfter === undefined ? events.length : Math.min(cutAfter, events.length)
    if (delayMs === 0 && cutAfter === undefined) {
      for (const e of events) res.write(e)
      res.end()
      return
    }
    let i = 0
    const next = (): void => {
      st.timer = undefined
      if (res.destroyed) return
      if (i >= stopAt) {
        if (cutAfter === undefined) res.end()
        else cut(st)
        return
      }
      const e = events[i++] as string
      if (i === stopAt && cutAfter !== undefined) {
        // Cut once the last allowed event has reached the socket.
        res.write(e, () => cut(st))
        return
      }
      res.write(e)
      if (delayMs === 0) next()
      else st.timer = setTimeout(next, delayMs)
    }
    next()
  }

  function cut(st: RequestState): void {
    st.selfClosed = true
    st.req.socket.destroy()
  }

  // ---- /v1 handlers ------------------------------------------------------------------------

  function usageFor(promptText: string): {
    prompt_tokens: number
    completion_tokens: number
    total_tokens: number
  } {
    const prompt = Math.max(1, countWords(promptText))
    return { prompt_tokens: prompt, completion_tokens: chunks, total_tokens: prompt + chunks }
  }

  function chat(body: Json): Reply {
    const model = body.model as string
    const messages = body.messages
    if (!Array.isArray(messages)) {
      return errorReply(
        400,
        "Missing required parameter: 'messages'.",
        'invalid_request_error',
        'messages',
        null,
      )
    }
    let allText = ''
    for (const m of messages) if (isObj(m)) allText += ` ${textOf(m.content)}`
    const text = replyText(lastUserText(messages))
    const usage = usageFor(allText)
    const id = `chatcmpl-fake${++seq}`
    const created = Math.floor(Date.now() / 1000)
    if (body.stream !== true) {
      return jsonReply(200, {
        id,
        object: 'chat.completion',
        created,
        model,
        system_fingerprint: fingerprint,
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: text, refusal: null, annotations: [] },
            logprobs: null,
            finish_reason: 'stop',
          },
        ],
        usage,
      })
    }
    const includeUsage = isObj(body.stream_options) && body.stream_options.include_usage === true
    const chunk = (choices: unknown[], u?: unknown): string =>
      sseData({
        id,
        object: 'chat.completion.chunk',
        created,
        model,
        system_fingerprint: fingerprint,
        choices,
        ...(includeUsage ? { usage: u ?? null } : {}),
      })
    const events: string[] = [
      chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]),
    ]
    for (const piece of splitContent(text, chunks)) {
      events.push(chunk([{ index: 0, delta: { content: piece }, logprobs: null, finish_reason: null }]))
    }
    events.push(chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }]))
    if (includeUsage) events.push(chunk([], usage))
    events.push(DONE)
    return { sse: true, events }
  }

  function completion(body: Json): Reply {
    const model = body.model as string
    const prompt = Array.isArray(body.prompt) ? body.prompt[0] : body.prompt
    const promptText = typeof prompt === 'string' ? prompt : ''
    const text = replyText(promptText)
    const usage = usageFor(promptText)
    const id = `cmpl-fake${++seq}`
    const created = Math.floor(Date.now() / 1000)
    const base = { id, object: 'text_completion', created, model, system_fingerprint: fingerprint }
    if (body.stream !== true) {
      return jsonReply(200, {
        ...base,
        choices: [{ text, index: 0, logprobs: null, finish_reason: 'stop' }],
        usage,
      })
    }
    const includeUsage = isObj(body.stream_options) && body.stream_options.include_usage === true
    const chunk = (choices: unknown[], u?: unknown): string =>
      sseData({ ...base, choices, ...(includeUsage ? { usage: u ?? null } : {}) })
    const events: string[] = []
    for (const piece of splitContent(text, chunks)) {
      events.push(chunk([{ text: piece, index: 0, logprobs: null, finish_reason: null }]))
    }
    events.push(chunk([{ text: '', index: 0, logprobs: null, finish_reason: 'stop' }]))
    if (includeUsage) events.push(chunk([], usage))
    events.push(DONE)
    return { sse: true, events }
  }

  function embeddings(body: Json): Reply {
    const model = body.model as string
    const input = body.input
    let items: string[]
    if (typeof input === 'string') items = [input]
    else if (Array.isArray(input) && input.length > 0 && input.every((x) => typeof x === 'string')) {
      items = input as string[]
    } else if (Array.isArray(input) && input.length > 0 && input.every((x) => typeof x === 'number')) {
      items = [input.join(',')]
    } else if (Array.isArray(input) && input.length > 0 && input.every((x) => Array.isArray(x))) {
      items = input.map((x: unknown[]) => x.join(','))
    } else {
      return errorReply(
        400,
        "'input' must be a non-empty string or array.",
        'invalid_request_error',
        'input',
        null,
      )
    }
    const d = body.dimensions
    const dims =
      typeof d === 'number' && Number.isInteger(d) && d > 0 && d <= 4096 ? d : DEFAULT_EMBEDDING_DIMS
    const base64 = body.encoding_format === 'base64'
    let tokens = 0
    const data = items.map((text, index) => {
      tokens += Math.max(1, countWords(text))
      const vector = embeddingFor(text, dims)
      const embedding = base64 ? Buffer.from(new Float32Array(vector).buffer).toString('base64') : vector
      return { object: 'embedding', index, embedding }
    })
    return jsonReply(200, {
      object: 'list',
      data,
      model,
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    })
  }

  function responses(body: Json): Reply {
    const model = body.model as string
    const promptText = lastUserText(body.input)
    const text = replyText(promptText)
    const u = usageFor(typeof body.input === 'string' ? body.input : promptText)
    const n = ++seq
    const id = `resp_fake${n}`
    const msgId = `msg_fake${n}`
    const usage = {
      input_tokens: u.prompt_tokens,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: u.completion_tokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: u.total_tokens,
    }
    const created = Math.floor(Date.now() / 1000)
    const response = (status: string, output: unknown[], withUsage: boolean): Json => ({
      id,
      object: 'response',
      created_at: created,
      status,
      error: null,
      incomplete_details: null,
      instructions: body.instructions ?? null,
      max_output_tokens: body.max_output_tokens ?? null,
      model,
      output,
      parallel_tool_calls: true,
      previous_response_id: null,
      reasoning: { effort: null, summary: null },
      store: false,
      temperature: typeof body.temperature === 'number' ? body.temperature : 1,
      text: { format: { type: 'text' } },
      tool_choice: 'auto',
      tools: [],
      top_p: typeof body.top_p === 'number' ? body.top_p : 1,
      truncation: 'disabled',
      usage: withUsage ? usage : null,
      user: null,
      metadata: {},
    })
    const part = (t: string) => ({ type: 'output_text', text: t, annotations: [], logprobs: [] })
    const message = (status: string, content: unknown[]) => ({
      id: msgId,
      type: 'message',
      status,
      role: 'assistant',
      content,
    })
    const done = message('completed', [part(text)])
    if (body.stream !== true) return jsonReply(200, response('completed', [done], true))

    let sequence = 0
    const event = (type: string, fields: Json): string =>
      `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence++, ...fields })}\n\n`
    const at = { item_id: msgId, output_index: 0, content_index: 0 }
    const events: string[] = [
      event('response.created', { response: response('in_progress', [], false) }),
      event('response.in_progress', { response: response('in_progress', [], false) }),
      event('response.output_item.added', { output_index: 0, item: message('in_progress', []) }),
      event('response.content_part.added', { ...at, part: part('') }),
    ]
    for (const delta of splitContent(text, chunks)) {
      events.push(event('response.output_text.delta', { ...at, delta, logprobs: [] }))
    }
    events.push(
      event('response.output_text.done', { ...at, text, logprobs: [] }),
      event('response.content_part.done', { ...at, part: part(text) }),
      event('response.output_item.done', { output_index: 0, item: done }),
      event('response.completed', { response: response('completed', [done], true) }),
    )
    return { sse: true, events }
  }

  function v1Post(path: string, body: Json): Reply {
    const handler =
      path === '/v1/chat/completions'
        ? chat
        : path === '/v1/completions'
          ? completion
          : path === '/v1/embeddings'
            ? embeddings
            : path === '/v1/responses'
              ? responses
              : undefined
    if (handler === undefined) return notFound('POST', path)
    const model = body.model
    if (typeof model !== 'string' || model === '') {
      return errorReply(400, 'You must provide a model parameter.', 'invalid_request_error', 'model', null)
    }
    if (!engine.models.includes(model)) return modelNotFound(model)
    return handler(body)
  }

  function notFound(method: string, path: string): JsonReply {
    return errorReply(404, `Invalid URL (${method} ${path})`, 'invalid_request_error', null, null)
  }

  function modelObject(id: string): Json {
    return { id, object: 'model', created: startedSec, owned_by: ownedBy }
  }

  function authorized(req: IncomingMessage): JsonReply | undefined {
    if (apiKey === undefined) return undefined
    const auth = req.headers.authorization
    if (auth === `Bearer ${apiKey}`) return undefined
    if (auth === undefined || !auth.startsWith('Bearer ') || auth.length === 7) {
      return errorReply(
        401,
        "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        'invalid_request_error',
        null,
        null,
      )
    }
    const given = auth.slice(7)
    const shown = given.length > 8 ? `${given.slice(0, 3)}...${given.slice(-4)}` : '***'
    return errorReply(
      401,
      `Incorrect API key provided: ${shown}.`,
      'invalid_request_error',
      null,
      'invalid_api_key',
    )
  }

  /** Answers a /v1 POST under a fail mode. */
  function failWith(st: RequestState, mode: FailMode, path: string): void {
    const { res } = st
    switch (mode) {
      case 'status500':
        sendReply(res, {
          sse: false,
          status: 500,
          body: errorBody(
            'The server had an error while processing your request. Sorry about that!',
            'server_error',
            null,
            null,
          ),
        })
        return
      case 'status503':
        sendReply(res, {
          sse: false,
          status: 503,
          body: errorBody(
            'The engine is currently overloaded, please try again later.',
            'server_error',
            null,
            null,
          ),
        })
        return
      case 'hang':
        return
      case 'close-before-headers':
        cut(st)
        return
      case 'close-mid-stream':
      case 'bad-json': {
        let body: Json = {}
        try {
          const parsed: unknown = JSON.parse(st.record.body)
          if (isObj(parsed)) body = parsed
        } catch {}
        const reply = v1Post(path, body)
        if (reply.sse) {
          if (mode === 'close-mid-stream') {
            stream(st, reply.events, 2)
          } else {
            const first = reply.events[0] ?? 'data: {}\n\n'
            stream(st, [`${first.slice(0, Math.floor(first.length / 2))}\n\n`, DONE])
          }
          return
        }
        const half = reply.body.slice(0, Math.max(1, Math.floor(reply.body.length / 2)))
        if (mode === 'bad-json') {
          sendReply(res, { sse: false, status: 200, body: half })
          return
        }
        res.writeHead(reply.status, {
          'Content-Type': 'application/json',
          'Content-Length': Buffer.byteLength(reply.body),
        })
        res.write(half, () => cut(st))
        return
      }
    }
  }

  // ---- routing -----------------------------------------------------------------------------

  function route(st: RequestState): void {
    const reply = dispatch(st)
    if (reply !== undefined) sendReply(st.res, reply)
  }

  /** Returns the JSON reply to send, or undefined when the request was answered (or left) already. */
  function dispatch(st: RequestState): JsonReply | undefined {
    const { req, res, record } = st
    const method = record.method
    const q = record.path.indexOf('?')
    const path = q === -1 ? record.path : record.path.slice(0, q)

    if (path.startsWith('/v1/')) {
      const denied = authorized(req)
      if (denied !== undefined) return denied
      if (method === 'GET') {
        if (path === '/v1/models')
          return jsonReply(200, { object: 'list', data: engine.models.map(modelObject) })
        if (path.startsWith('/v1/models/')) {
          let id: string
          try {
            id = decodeURIComponent(path.slice('/v1/models/'.length))
          } catch {
            id = path.slice('/v1/models/'.length)
          }
          return engine.models.includes(id) ? jsonReply(200, modelObject(id)) : modelNotFound(id)
        }
      } else if (method === 'POST') {
        const mode = engine.fail
        if (mode !== null) {
          failWith(st, mode, path)
          return undefined
        }
        let body: unknown
        try {
          body = JSON.parse(record.body)
        } catch {
          return errorReply(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
            'invalid_request_error',
            null,
            null,
          )
        }
        if (!isObj(body)) {
          return errorReply(
            400,
            'The request body must be a JSON object.',
            'invalid_request_error',
            null,
            null,
          )
        }
        const reply = v1Post(path, body)
        if (!reply.sse) return reply
        stream(st, reply.events)
        return undefined
      }
      return notFound(method, path)
    }

    if (kind === 'ollama') {
      if (path === '/' && (method === 'GET' || method === 'HEAD')) {
        sendText(res, 200, 'Ollama is running')
        return undefined
      }
      if (path === '/api/version' && method === 'GET') return jsonReply(200, { version: FAKE_OLLAMA_VERSION })
      if (path === '/api/tags' && method === 'GET') {
        const modifiedAt = startedAt.toISOString()
        const models = engine.models.map((name) => ({
          name,
          model: name,
          modified_at: modifiedAt,
          size: 1_000_000 + name.length * 1000,
          digest: createHash('sha256').update(name).digest('hex'),
          details: {
            parent_model: '',
            format: 'gguf',
            family: 'llama',
            families: ['llama'],
            parameter_size: '1.2B',
            quantization_level: 'Q4_K_M',
          },
        }))
        return jsonReply(200, { models })
      }
    }
    return notFound(method, path)
  }

  let served = 0
  const server = http.createServer({ noDelay: true }, (req, res) => {
    const record: RecordedRequest = {
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      headers: req.headers,
      body: '',
    }
    if (options.record !== false) engine.requests.push(record)
    // Like OpenAI's API: its own request ID on every response.
    if (kind === 'openai') res.setHeader('x-request-id', `req_${++served}`)
    const st: RequestState = { req, res, record, selfClosed: false, timer: undefined }
    res.on('close', () => {
      if (st.timer !== undefined) clearTimeout(st.timer)
      if (!res.writableFinished && !st.selfClosed) engine.aborted++
    })
    req.on('error', () => {})
    const parts: Buffer[] = []
    req.on('data', (c: Buffer) => parts.push(c))
    req.on('end', () => {
      if (parts.length > 0)
        record.body = (parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts)).toString()
      route(st)
    })
  })

  let stopping: Promise<void> | undefined
  engine.stop = () => {
    stopping ??= new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
    return stopping
  }

  return new Promise<FakeEngine>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, () => {
      server.off('error', reject)
      const { port } = server.address() as AddressInfo
      engine.port = port
      engine.url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`
      resolve(engine)
    })
  })
}
