import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import OpenAI, {
  APIConnectionError,
  APIConnectionTimeoutError,
  AuthenticationError,
  BadRequestError,
  InternalServerError,
  NotFoundError,
} from 'openai'
import {
  embeddingFor,
  FAKE_OLLAMA_VERSION,
  type FakeEngine,
  type FakeEngineOptions,
  replyText,
  splitContent,
  startFakeEngine,
} from './utils/fake-engine.ts'
import { waitFor } from './utils/wait.ts'

type TestContext = { after: (fn: () => Promise<void> | void) => void }

/** Starts a fake engine that is stopped when the test ends. */
async function engineFor(t: TestContext, options?: FakeEngineOptions): Promise<FakeEngine> {
  const engine = await startFakeEngine(options)
  t.after(() => engine.stop())
  return engine
}

function clientFor(engine: FakeEngine, extra: { apiKey?: string; timeout?: number } = {}): OpenAI {
  return new OpenAI({
    baseURL: `${engine.url}/v1`,
    apiKey: extra.apiKey ?? 'x',
    maxRetries: 0,
    ...(extra.timeout === undefined ? {} : { timeout: extra.timeout }),
  })
}

const MODEL = 'llama3.2:1b'

describe('fake engine', () => {
  test('non-streaming chat echoes the last user message, with usage, and records the request', async (t) => {
    const engine = await engineFor(t)
    const client = clientFor(engine)
    const messages = [
      { role: 'system' as const, content: 'be brief' },
      { role: 'user' as const, content: 'first' },
      { role: 'assistant' as const, content: 'ok' },
      { role: 'user' as const, content: 'hello there' },
    ]
    const res = await client.chat.completions.create({ model: MODEL, messages, temperature: 0.5 })
    assert.equal(res.object, 'chat.completion')
    assert.equal(res.model, MODEL)
    assert.match(res.id, /^chatcmpl-/)
    assert.equal(res.choices.length, 1)
    assert.equal(res.choices[0]?.message.role, 'assistant')
    assert.equal(res.choices[0]?.message.content, 'echo: hello there')
    assert.equal(res.choices[0]?.finish_reason, 'stop')
    assert.ok(res.usage)
    assert.equal(res.usage.completion_tokens, 5)
    assert.equal(res.usage.prompt_tokens, 6) // words across all messages
    assert.equal(res.usage.total_tokens, res.usage.prompt_tokens + res.usage.completion_tokens)

    assert.equal(engine.requests.length, 1)
    const rec = engine.requests[0]
    assert.ok(rec)
    assert.equal(rec.method, 'POST')
    assert.equal(rec.path, '/v1/chat/completions')
    assert.equal(rec.headers.authorization, 'Bearer x')
    assert.deepEqual(JSON.parse(rec.body), { model: MODEL, messages, temperature: 0.5 })
  })

  test('array content parts are concatenated', async (t) => {
    const engine = await engineFor(t)
    const res = await clientFor(engine).chat.completions.create({
      model: MODEL,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'a' },
            { type: 'text', text: 'b' },
          ],
        },
      ],
    })
    assert.equal(res.choices[0]?.message.content, 'echo: ab')
  })

  test('streaming chat: role chunk, `chunks` content chunks, finish chunk, then [DONE]', async (t) => {
    const engine = await engineFor(t, { chunks: 7 })
    const stream = await clientFor(engine).chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'stream me please' }],
      stream: true,
    })
    const chunks = []
    for await (const chunk of stream) chunks.push(chunk)
    assert.equal(chunks.length, 1 + 7 + 1)
    const ids = new Set(chunks.map((c) => c.id))
    assert.equal(ids.size, 1)
    for (const c of chunks) {
      assert.equal(c.object, 'chat.completion.chunk')
      assert.equal(c.model, MODEL)
      assert.equal('usage' in c, false)
    }
    assert.equal(chunks[0]?.choices[0]?.delta.role, 'assistant')
    const content = chunks.slice(1, -1).map((c) => c.choices[0]?.delta.content)
    assert.equal(content.length, 7)
    assert.deepEqual(content, splitContent(replyText('stream me please'), 7))
    assert.equal(content.join(''), 'echo: stream me please')
    for (const c of chunks.slice(0, -1)) assert.equal(c.choices[0]?.finish_reason, null)
    assert.equal(chunks.at(-1)?.choices[0]?.finish_reason, 'stop')
  })

  test('streamed events arrive as separate writes, chunkDelayMs apart, ending with [DONE]', async (t) => {
    const engine = await engineFor(t, { chunks: 3, chunkDelayMs: 30 })
    const res = await fetch(`${engine.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], stream: true }),
    })
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/)
    assert.ok(res.body)
    const decoder = new TextDecoder()
    const reads: string[] = []
    const started = Date.now()
    const reader = res.body.getReader()
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      reads.push(decoder.decode(value, { stream: true }))
    }
    const elapsed = Date.now() - started
    const text = reads.join('')
    const events = text.split('\n\n').filter((e) => e !== '')
    assert.equal(events.length, 1 + 3 + 1 + 1)
    for (const e of events) assert.match(e, /^data: /)
    assert.equal(events.at(-1), 'data: [DONE]')
    // 6 events, 5 gaps of 30 ms: the reads cannot all have come in one piece.
    assert.ok(reads.length >= 3, `expected separate reads, got ${reads.length}`)
    assert.ok(elapsed >= 100, `expected the delay to be honoured, took ${elapsed} ms`)
  })

  test('stream_options.include_usage adds a final chunk with empty choices and usage', async (t) => {
    const engine = await engineFor(t)
    const stream = await clientFor(engine).chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'count my words' }],
      stream: true,
      stream_options: { include_usage: true },
    })
    const chunks = []
    for await (const chunk of stream) chunks.push(chunk)
    assert.equal(chunks.length, 1 + 5 + 1 + 1)
    const last = chunks.at(-1)
    assert.ok(last)
    assert.deepEqual(last.choices, [])
    assert.deepEqual(last.usage, { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 })
    for (const c of chunks.slice(0, -1)) assert.equal(c.usage, null)
    assert.equal(chunks.at(-2)?.choices[0]?.finish_reason, 'stop')
  })

  test('completions, streaming and not', async (t) => {
    const engine = await engineFor(t, { chunks: 4 })
    const client = clientFor(engine)
    const res = await client.completions.create({ model: MODEL, prompt: 'once upon' })
    assert.equal(res.object, 'text_completion')
    assert.equal(res.choices[0]?.text, 'echo: once upon')
    assert.equal(res.choices[0]?.finish_reason, 'stop')
    assert.deepEqual(res.usage, { prompt_tokens: 2, completion_tokens: 4, total_tokens: 6 })

    const stream = await client.completions.create({ model: MODEL, prompt: 'once upon', stream: true })
    const texts: string[] = []
    let finish: string | null | undefined
    for await (const chunk of stream) {
      texts.push(chunk.choices[0]?.text ?? '')
      finish = chunk.choices[0]?.finish_reason
    }
    assert.equal(texts.length, 4 + 1)
    assert.equal(texts.join(''), 'echo: once upon')
    assert.equal(finish, 'stop')
  })

  test('embeddings: deterministic vectors, same via base64 (SDK default) and float', async (t) => {
    const engine = await engineFor(t, { models: ['nomic-embed-text'] })
    const client = clientFor(engine)
    const viaBase64 = await client.embeddings.create({
      model: 'nomic-embed-text',
      input: ['alpha', 'beta gamma'],
    })
    assert.equal(JSON.parse(engine.requests[0]?.body ?? '{}').encoding_format, 'base64')
    assert.equal(viaBase64.object, 'list')
    assert.equal(viaBase64.model, 'nomic-embed-text')
    assert.equal(viaBase64.data.length, 2)
    assert.deepEqual(
      viaBase64.data.map((d) => [d.object, d.index]),
      [
        ['embedding', 0],
        ['embedding', 1],
      ],
    )
    assert.deepEqual(viaBase64.data[0]?.embedding, embeddingFor('alpha'))
    assert.deepEqual(viaBase64.data[1]?.embedding, embeddingFor('beta gamma'))
    assert.deepEqual(viaBase64.usage, { prompt_tokens: 3, total_tokens: 3 })
    assert.notDeepEqual(embeddingFor('alpha'), embeddingFor('beta gamma'))

    const viaFloat = await client.embeddings.create({
      model: 'nomic-embed-text',
      input: 'alpha',
      encoding_format: 'float',
      dimensions: 4,
    })
    assert.deepEqual(viaFloat.data[0]?.embedding, embeddingFor('alpha', 4))
    assert.deepEqual(viaFloat.data[0]?.embedding, embeddingFor('alpha').slice(0, 4))
  })

  test('responses API: output message and usage; streamed events assemble to the same text', async (t) => {
    const engine = await engineFor(t, { chunks: 3 })
    const client = clientFor(engine)
    const res = await client.responses.create({ model: MODEL, input: 'tell me' })
    assert.equal(res.object, 'response')
    assert.equal(res.status, 'completed')
    assert.equal(res.output_text, 'echo: tell me')
    assert.equal(res.output[0]?.type, 'message')
    assert.deepEqual(
      res.usage && [res.usage.input_tokens, res.usage.output_tokens, res.usage.total_tokens],
      [2, 3, 5],
    )

    const res2 = await client.responses.create({
      model: MODEL,
      input: [{ role: 'user', content: [{ type: 'input_text', text: 'from parts' }] }],
    })
    assert.equal(res2.output_text, 'echo: from parts')

    const stream = client.responses.stream({ model: MODEL, input: 'tell me' })
    const deltas: string[] = []
    stream.on('response.output_text.delta', (e) => deltas.push(e.delta))
    const final = await stream.finalResponse()
    assert.equal(deltas.length, 3)
    assert.equal(deltas.join(''), 'echo: tell me')
    assert.equal(final.output_text, 'echo: tell me')
    assert.equal(final.usage?.total_tokens, 5)
  })

  test('models list and retrieve follow engine.models', async (t) => {
    const engine = await engineFor(t, { models: ['a:1b', 'hf.co/org/b:Q4'] })
    const client = clientFor(engine)
    const page = await client.models.list()
    assert.deepEqual(
      page.data.map((m) => [m.id, m.object, typeof m.created, typeof m.owned_by]),
      [
        ['a:1b', 'model', 'number', 'string'],
        ['hf.co/org/b:Q4', 'model', 'number', 'string'],
      ],
    )
    const one = await client.models.retrieve('hf.co/org/b:Q4')
    assert.equal(one.id, 'hf.co/org/b:Q4')

    engine.models.push('c')
    const again = await client.models.list()
    assert.deepEqual(
      again.data.map((m) => m.id),
      ['a:1b', 'hf.co/org/b:Q4', 'c'],
    )
  })

  test('unknown model -> NotFoundError with OpenAI error body', async (t) => {
    const engine = await engineFor(t)
    const client = clientFor(engine)
    const err = await client.chat.completions
      .create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] })
      .then(
        () => assert.fail('expected an error'),
        (e: unknown) => e,
      )
    assert.ok(err instanceof NotFoundError)
    assert.equal(err.status, 404)
    assert.equal(err.type, 'invalid_request_error')
    assert.equal(err.param, 'model')
    assert.equal(err.code, 'model_not_found')
    await assert.rejects(client.models.retrieve('nope'), (e: unknown) => e instanceof NotFoundError)
    await assert.rejects(
      client.embeddings.create({ model: 'nope', input: 'x' }),
      (e: unknown) => e instanceof NotFoundError,
    )
  })

  test('malformed JSON -> 400 OpenAI error body', async (t) => {
    const engine = await engineFor(t)
    const res = await fetch(`${engine.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"model": ',
    })
    assert.equal(res.status, 400)
    const body = (await res.json()) as { error: Record<string, unknown> }
    assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type'])
    assert.equal(body.error.type, 'invalid_request_error')
    assert.equal(engine.requests[0]?.body, '{"model": ')

    await assert.rejects(
      clientFor(engine).chat.completions.create({ model: '', messages: [] }),
      (e: unknown) => e instanceof BadRequestError,
    )
  })

  test('apiKey: /v1 requires the bearer key, /api and / do not', async (t) => {
    const engine = await engineFor(t, { kind: 'ollama', apiKey: 'secret-key' })
    await assert.rejects(
      clientFor(engine, { apiKey: 'wrong' }).models.list(),
      (e: unknown) => e instanceof AuthenticationError && e.status === 401,
    )
    const noAuth = await fetch(`${engine.url}/v1/models`)
    assert.equal(noAuth.status, 401)
    const body = (await noAuth.json()) as { error: { type: string } }
    assert.equal(body.error.type, 'invalid_request_error')

    const ok = await clientFor(engine, { apiKey: 'secret-key' }).models.list()
    assert.equal(ok.data[0]?.id, MODEL)
    assert.equal((await fetch(`${engine.url}/api/tags`)).status, 200)
  })

  test('fail modes: status500/503, close-before-headers, bad-json, close-mid-stream, then recovery', async (t) => {
    const engine = await engineFor(t)
    const client = clientFor(engine)
    const ask = () =>
      client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }] })

    engine.fail = 'status503'
    await assert.rejects(ask(), (e: unknown) => e instanceof InternalServerError && e.status === 503)
    engine.fail = 'status500'
    await assert.rejects(ask(), (e: unknown) => e instanceof InternalServerError && e.status === 500)
    // GETs are not affected by `fail`.
    assert.equal((await client.models.list()).data.length, 1)

    engine.fail = 'close-before-headers'
    await assert.rejects(ask(), (e: unknown) => e instanceof APIConnectionError)

    engine.fail = 'bad-json'
    const bad = await fetch(`${engine.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'x' }] }),
    })
    assert.equal(bad.status, 200)
    const badText = await bad.text()
    assert.ok(badText.startsWith('{"id":"chatcmpl-'))
    assert.throws(() => JSON.parse(badText), SyntaxError)
    await assert.rejects(ask())

    engine.fail = 'close-mid-stream'
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'x' }],
      stream: true,
    })
    const got: unknown[] = []
    await assert.rejects(async () => {
      for await (const chunk of stream) got.push(chunk)
    })
    assert.equal(got.length, 2)
    await assert.rejects(ask())

    engine.fail = null
    const ok = await ask()
    assert.equal(ok.choices[0]?.message.content, 'echo: x')
    assert.equal(engine.aborted, 0, 'cuts made by the fake itself are not counted as aborts')
  })

  test('hang never answers; the client giving up is counted in aborted', async (t) => {
    const engine = await engineFor(t)
    engine.fail = 'hang'
    const client = clientFor(engine, { timeout: 200 })
    await assert.rejects(
      client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }] }),
      (e: unknown) => e instanceof APIConnectionTimeoutError,
    )
    await waitFor(() => engine.aborted === 1, { timeoutMs: 2000, label: 'aborted === 1' })
  })

  test('a stream the client abandons is counted in aborted', async (t) => {
    const engine = await engineFor(t, { chunks: 50, chunkDelayMs: 20 })
    const stream = await clientFor(engine).chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'long one' }],
      stream: true,
    })
    let seen = 0
    for await (const _chunk of stream) {
      if (++seen === 2) break // breaking aborts the request
    }
    await waitFor(() => engine.aborted === 1, { timeoutMs: 2000, label: 'aborted === 1' })
    assert.equal(engine.aborted, 1)
  })

  test('ollama kind: GET /, /api/version, /api/tags shapes', async (t) => {
    const engine = await engineFor(t, { kind: 'ollama', models: ['llama3.2:1b', 'qwen2.5:0.5b'] })
    const root = await fetch(`${engine.url}/`)
    assert.equal(root.status, 200)
    assert.equal(await root.text(), 'Ollama is running')

    const version = await fetch(`${engine.url}/api/version`)
    assert.deepEqual(await version.json(), { version: FAKE_OLLAMA_VERSION })

    const tags = (await (await fetch(`${engine.url}/api/tags`)).json()) as {
      models: Array<Record<string, unknown>>
    }
    assert.equal(tags.models.length, 2)
    for (const [i, m] of tags.models.entries()) {
      assert.deepEqual(Object.keys(m).sort(), ['details', 'digest', 'model', 'modified_at', 'name', 'size'])
      assert.equal(m.name, engine.models[i])
      assert.equal(m.model, engine.models[i])
      assert.equal(typeof m.size, 'number')
      assert.match(String(m.digest), /^[0-9a-f]{64}$/)
      assert.ok(!Number.isNaN(Date.parse(String(m.modified_at))))
      const details = m.details as Record<string, unknown>
      assert.deepEqual(Object.keys(details).sort(), [
        'families',
        'family',
        'format',
        'parameter_size',
        'parent_model',
        'quantization_level',
      ])
    }
    // The OpenAI side of an Ollama engine uses Ollama's fingerprint.
    const res = await clientFor(engine).chat.completions.create({
      model: 'qwen2.5:0.5b',
      messages: [{ role: 'user', content: 'x' }],
    })
    assert.equal(res.system_fingerprint, 'fp_ollama')
  })

  test('openai kind has no Ollama routes', async (t) => {
    const engine = await engineFor(t)
    const res = await fetch(`${engine.url}/api/tags`)
    assert.equal(res.status, 404)
    const body = (await res.json()) as { error: { message: string } }
    assert.equal(typeof body.error.message, 'string')
  })

  test('stop() closes in-flight connections at once and is idempotent', async (t) => {
    const engine = await engineFor(t, { chunkDelayMs: 1000, chunks: 100 })
    const res = await fetch(`${engine.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'x' }], stream: true }),
    })
    assert.ok(res.body)
    const reader = res.body.getReader()
    await reader.read()
    const started = Date.now()
    await engine.stop()
    assert.ok(Date.now() - started < 1000)
    await assert.rejects(reader.read())
    await engine.stop() // idempotent
  })
})

test('waitFor rejects with a clear message on timeout', async () => {
  await assert.rejects(
    waitFor(() => false, { timeoutMs: 50, label: 'never' }),
    /timed out after \d+ ms waiting for: never/,
  )
  let n = 0
  await waitFor(async () => ++n >= 3, { timeoutMs: 1000, intervalMs: 1 })
  assert.equal(n, 3)
})
