import assert from 'node:assert/strict'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { connect } from 'node:net'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { createRpcClient } from '@gate/rpc'
import OpenAI from 'openai'
import { providerFor, startTestDaemon } from './utils/daemon.ts'
import { replyText, startFakeEngine } from './utils/fake-engine.ts'
import { waitFor } from './utils/wait.ts'

const chat = (content: string) => ({ model: 'llama3.2:1b', messages: [{ role: 'user' as const, content }] })

/** A raw HTTP request, for what the SDK cannot send (bad JSON, foreign Host headers). */
function raw(
  url: string,
  options: { method?: string; path: string; headers?: Record<string, string>; body?: string | Buffer },
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${url}${options.path}`,
      { method: options.method ?? 'GET', headers: options.headers },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (c) => {
          body += c
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
      },
    )
    req.on('error', reject)
    req.end(options.body)
  })
}

describe('local API', () => {
  it('forwards chat completions unchanged and names the request and the node', async () => {
    await using engine = await startFakeEngine()
    await using gate = await startTestDaemon({ providers: [providerFor('a', engine)] })
    const { data, response } = await gate.client.chat.completions.create(chat('hello there')).withResponse()
    assert.equal(data.choices[0]?.message.content, replyText('hello there'))
    // Gate's request ID, not the engine's own (the stand-in sends one, as OpenAI's API does).
    const id = response.headers.get('x-request-id')
    assert.match(id ?? '', /^[0-9a-f-]{36}$/)
    assert.equal(response.headers.get('x-gate-node'), gate.daemon.nodeId)
    const sent = engine.requests.find((r) => r.path === '/v1/chat/completions')
    assert.deepEqual(JSON.parse(sent?.body ?? '{}'), chat('hello there'))
    assert.equal(sent?.headers.authorization, undefined, "the client's key is not sent to a keyless engine")
    assert.equal((await waitForLog(gate.home, 1))[0]?.id, id)
  })

  it('streams chunk by chunk, ends with [DONE], and counts the usage chunk', async () => {
    await using engine = await startFakeEngine({ chunks: 6, chunkDelayMs: 30 })
    await using gate = await startTestDaemon({ providers: [providerFor('a', engine)] })
    const stream = await gate.client.chat.completions.create({
      ...chat('one two three'),
      stream: true,
      stream_options: { include_usage: true },
    })
    const arrivals: number[] = []
    let text = ''
    let usage: OpenAI.CompletionUsage | undefined
    for await (const chunk of stream) {
      arrivals.push(performance.now())
      text += chunk.choices[0]?.delta.content ?? ''
      if (chunk.usage) usage = chunk.usage
    }
    assert.equal(text, replyText('one two three'))
    assert.ok(arrivals.length >= 8, `got ${arrivals.length} chunks`)
    const spread = (arrivals.at(-1) as number) - (arrivals[0] as number)
    assert.ok(spread >= 150, `chunks arrived over ${spread} ms: they were buffered, not streamed`)
    assert.equal(usage?.completion_tokens, 6)
    await waitFor(() => gate.daemon.metrics !== undefined)
    const log = await waitForLog(gate.home, 1)
    assert.equal(log[0]?.stream, true)
    assert.deepEqual(log[0]?.usage, { prompt_tokens: 3, completion_tokens: 6, total_tokens: 9 })
  })

  it('passes completions, embeddings and responses through', async () => {
    await using engine = await startFakeEngine()
    await using gate = await startTestDaemon({ providers: [providerFor('a', engine)] })
    const completion = await gate.client.completions.create({ model: 'llama3.2:1b', prompt: 'say this' })
    assert.equal(completion.choices[0]?.text, replyText('say this'))
    const embedding = await gate.client.embeddings.create({ model: 'llama3.2:1b', input: 'vector me' })
    assert.equal(embedding.data[0]?.embedding.length, 8)
    const response = await gate.client.responses.create({ model: 'llama3.2:1b', input: 'respond' })
    assert.equal(response.output_text, replyText('respond'))
  })

  it('lists models once with served_by, and answers unknown ones with 404', async () => {
    await using a = await startFakeEngine({ models: ['m1', 'shared'] })
    await using b = await startFakeEngine({ models: ['m2', 'shared'] })
    await using gate = await startTestDaemon({ providers: [providerFor('a', a), providerFor('b', b)] })
    const models = await gate.client.models.list()
    const ids = models.data.map((m) => m.id).sort()
    assert.deepEqual(ids, ['m1', 'm2', 'shared'])
    for (const m of models.data)
      assert.deepEqual((m as unknown as { served_by: string[] }).served_by, [gate.daemon.nodeId])
    const one = await gate.client.models.retrieve('m2')
    assert.equal(one.id, 'm2')
    await assert.rejects(gate.client.models.retrieve('nope'), OpenAI.NotFoundError)
    await assert.rejects(
      gate.client.chat.completions.create({ ...chat('x'), model: 'nope' }),
      (err: unknown) => err instanceof OpenAI.NotFoundError && /nope/.test(err.message),
    )
  })

  it('answers bad input with OpenAI error bodies and keeps serving', async () => {
    await using engine = await startFakeEngine()
    await using gate = await startTestDaemon({
      providers: [providerFor('a', engine)],
      security: { max_body_bytes: 1024 },
    })
    const post = (body: string | Buffer) =>
      raw(gate.url, {
        method: 'POST',
        path: '/v1/chat/completions',
        headers: { 'content-type': 'application/json' },
        body,
      })
    const badJson = await post('{"model": ')
    assert.equal(badJson.status, 400)
    assert.equal(JSON.parse(badJson.body).error.type, 'invalid_request_error')
    assert.ok(badJson.headers['x-request-id'])
    const noModel = await post('{"messages": []}')
    assert.equal(noModel.status, 400)
    assert.equal(JSON.parse(noModel.body).error.param, 'model')
    const big = await post(JSON.stringify({ ...chat('x'.repeat(2000)) }))
    assert.equal(big.status, 413)
    assert.equal(JSON.parse(big.body).error.type, 'invalid_request_error')
    assert.ok(big.headers['x-request-id'])
    // Without a declared length, the limit applies as the body arrives.
    const bigChunked = await raw(gate.url, {
      method: 'POST',
      path: '/v1/chat/completions',
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      body: JSON.stringify({ ...chat('x'.repeat(2000)) }),
    })
    assert.equal(bigChunked.status, 413)
    assert.ok(bigChunked.headers['x-request-id'])
    const unknownRoute = await raw(gate.url, { path: '/v1/nothing' })
    assert.equal(unknownRoute.status, 404)
    assert.equal(JSON.parse(unknownRoute.body).error.type, 'not_found_error')
    const badEscape = await raw(gate.url, { path: '/v1/models/%E0%A4%A' })
    assert.equal(badEscape.status, 400)
    assert.match(JSON.parse(badEscape.body).error.message, /percent-encoding/)
    const health = await raw(gate.url, { path: '/health' })
    assert.equal(JSON.parse(health.body).status, 'ok')
    const after = await gate.client.chat.completions.create(chat('still here'))
    assert.equal(after.choices[0]?.message.content, replyText('still here'))
    assert.equal(engine.posts, 1, 'no bad request reached the engine')
  })

  it('answers a body that stalls with a 408 once security.body_timeout has passed, and frees nothing it did not take', async () => {
    await using engine = await startFakeEngine()
    await using gate = await startTestDaemon({
      providers: [providerFor('a', engine)],
      security: { body_timeout: 0.3, max_concurrent_requests: 1 },
    })
    const { port } = new URL(gate.url)
    const socket = connect(Number(port), '127.0.0.1')
    await once(socket, 'connect')
    socket.write(
      'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"mo',
    )
    let answer = ''
    socket.on('data', (d) => {
      answer += d
    })
    // While it stalls, it holds no place: another client is served at a cap of 1.
    const other = await gate.client.chat.completions.create(chat('meanwhile'))
    assert.equal(other.choices[0]?.message.content, replyText('meanwhile'))
    await once(socket, 'close')
    assert.match(answer, /^HTTP\/1\.1 408 /)
    assert.match(answer, /"type":"invalid_request_error"/)
  })

  it('records a client that leaves mid-body once, as 499, without logging an error', async () => {
    await using engine = await startFakeEngine()
    await using gate = await startTestDaemon({ providers: [providerFor('a', engine)] })
    const { port } = new URL(gate.url)
    const socket = connect(Number(port), '127.0.0.1')
    await once(socket, 'connect')
    socket.write(
      'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"model":',
    )
    await sleep(100)
    socket.destroy()
    const control = createRpcClient({ url: gate.controlUrl, token: gate.token })
    await waitFor(async () => (await control.call('request_history', { limit: 5 })).requests.length > 0)
    await sleep(200) // time for a second record, were one made
    const { requests } = await control.call('request_history', { limit: 5 })
    assert.deepEqual(
      requests.map((r) => [r.route, r.status]),
      [['/v1/chat/completions', 499]],
    )
    const { lines } = await control.call('get_logs', { lines: 50, level: 'error' })
    assert.deepEqual(lines, [])
    assert.equal(engine.posts, 0)
  })

  it('refuses foreign Host and Origin headers (DNS rebinding, CSRF) and allows loopback origins', async () => {
    await using engine = await startFakeEngine()
    await using gate = await startTestDaemon({ providers: [providerFor('a', engine)] })
    const rebound = await raw(gate.url, { path: '/v1/models', headers: { host: 'evil.example:31145' } })
    assert.equal(rebound.status, 403)
    assert.equal(JSON.parse(rebound.body).error.type, 'permission_error')
    const csrf = await raw(gate.url, {
      method: 'POST',
      path: '/v1/chat/completions',
      headers: { origin: 'https://evil.example', 'content-type': 'application/json' },
      body: JSON.stringify(chat('x')),
    })
    assert.equal(csrf.status, 403)
    const local = await raw(gate.url, { path: '/v1/models', headers: { origin: 'http://localhost:3000' } })
    assert.equal(local.status, 200)
    assert.equal(local.headers['access-control-allow-origin'], 'http://localhost:3000')
    assert.equal(engine.posts, 0)
    // Gate's own headers go with an engine's answer and with an error alike.
    for (const [model, status] of [
      ['llama3.2:1b', 200],
      ['no-such-model', 404],
    ] as const) {
      const answer = await raw(gate.url, {
        method: 'POST',
        path: '/v1/chat/completions',
        headers: { origin: 'http://localhost:3000', 'content-type': 'application/json' },
        body: JSON.stringify({ ...chat('x'), model }),
      })
      assert.equal(answer.status, status)
      assert.equal(answer.headers['access-control-allow-origin'], 'http://localhost:3000')
      assert.equal(answer.headers['x-gate-node'], gate.daemon.nodeId)
      assert.match(String(answer.headers['x-request-id']), /^[\w-]{8,64}$/)
    }
  })

  it('answers 429 with Retry-After at the concurrency cap', async () => {
    await using engine = await startFakeEngine()
    await using gate = await startTestDaemon({
      providers: [providerFor('a', engine)],
      security: { max_concurrent_requests: 1 },
    })
    engine.fail = 'hang'
    const controller = new AbortController()
    const first = gate.client.chat.completions
      .create(chat('slow'), { signal: controller.signal })
      .catch(() => {})
    await waitFor(() => engine.posts > 0)
    const second = await raw(gate.url, {
      method: 'POST',
      path: '/v1/chat/completions',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(chat('fast')),
    })
    assert.equal(second.status, 429)
    assert.equal(second.headers['retry-after'], '1')
    assert.equal(JSON.parse(second.body).error.type, 'rate_limit_error')
    controller.abort()
    await first
    await waitFor(() => engine.aborted === 1, { label: 'the engine saw the abort' })
  })

  it('frees the place of each request that leaves, in whatever order they leave', async () => {
    await using engine = await startFakeEngine()
    await using gate = await startTestDaemon(
      { providers: [providerFor('a', engine)], security: { max_concurrent_requests: 3 } },
      { shutdownGraceMs: 100 },
    )
    /** Requests and streams in flight, as /metrics counts them. */
    const inflight = async () => {
      const text = await (await fetch(`${gate.controlUrl}/metrics`)).text()
      const gauge = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1])
      return [gauge('gate_active_requests'), gauge('gate_active_streams')]
    }
    const refused = async () =>
      (
        await raw(gate.url, {
          method: 'POST',
          path: '/v1/chat/completions',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(chat('x')),
        })
      ).status === 429
    engine.fail = 'hang'
    const clients: AbortController[] = []
    const calls: Promise<unknown>[] = []
    /** Starts requests that hang at the engine, streaming or not. */
    const start = async (...streams: boolean[]) => {
      for (const stream of streams) {
        const client = new AbortController()
        clients.push(client)
        calls.push(
          gate.client.chat.completions
            .create({ ...chat('slow'), stream }, { signal: client.signal, maxRetries: 0 })
            .catch(() => {}),
        )
      }
      await waitFor(() => engine.posts === clients.length)
    }
    const leave = async (i: number, left: number[]) => {
      clients[i]?.abort()
      await calls[i]
      await waitFor(async () => String(await inflight()) === String(left), { label: `${left} in flight` })
    }
    await start(false, true, false)
    assert.deepEqual(await inflight(), [3, 1])
    assert.ok(await refused(), 'a fourth is refused at the cap')
    // The middle one leaves: the last one takes its place.
    await leave(1, [2, 0])
    await start(true)
    assert.deepEqual(await inflight(), [3, 1])
    assert.ok(await refused(), 'the cap holds once the place is taken again')
    // The one that moved leaves while it is not the last, then the first.
    await leave(2, [2, 1])
    await leave(0, [1, 1])
    // Stopping cancels the one still in flight.
    await gate[Symbol.asyncDispose]()
    await Promise.all(calls)
    await waitFor(() => engine.aborted === 4, { label: 'the engine saw every request aborted' })
  })
})

describe('providers and failure', () => {
  it('sends the provider API key upstream and fails over from a failing provider', async () => {
    await using bad = await startFakeEngine()
    await using good = await startFakeEngine({ apiKey: 'sk-upstream' })
    await using gate = await startTestDaemon({
      providers: [providerFor('bad', bad), providerFor('good', good, { api_key: 'sk-upstream' })],
    })
    bad.fail = 'status500'
    const reply = await gate.client.chat.completions.create(chat('failover'))
    assert.equal(reply.choices[0]?.message.content, replyText('failover'))
    assert.equal(bad.posts, 1)
    bad.fail = 'close-before-headers'
    const again = await gate.client.chat.completions.create(chat('again'))
    assert.equal(again.choices[0]?.message.content, replyText('again'))
    const log = await readFile(join(gate.home, 'logs', 'daemon.log'), 'utf8')
    assert.ok(!log.includes('sk-upstream'))
  })

  it('answers 503 when no provider of the model is healthy, 502 when the engine dies mid-body, 504 when it hangs', async () => {
    const engine = await startFakeEngine()
    const deadUrl = engine.url
    await engine.stop()
    await using hanging = await startFakeEngine({ models: ['slow'] })
    await using dying = await startFakeEngine({ models: ['dying'] })
    await using gate = await startTestDaemon({
      providers: [
        providerFor('dead', { url: deadUrl }, { models: ['llama3.2:1b'] }),
        providerFor('hanging', hanging),
        providerFor('dying', dying),
      ],
      security: { request_timeout: 0.5 },
    })
    await assert.rejects(
      gate.client.chat.completions.create(chat('x')),
      (err: unknown) => err instanceof OpenAI.APIError && err.status === 503,
    )
    hanging.fail = 'hang'
    await assert.rejects(
      gate.client.chat.completions.create({ ...chat('x'), model: 'slow' }),
      (err: unknown) => err instanceof OpenAI.APIError && err.status === 504,
    )
    dying.fail = 'close-mid-stream'
    await assert.rejects(
      gate.client.chat.completions.create({ ...chat('x'), model: 'dying' }),
      (err: unknown) => err instanceof OpenAI.APIError && err.status === 502,
    )
  })

  it('ends a stream whose engine dies with an SSE error event and no [DONE]', async () => {
    await using engine = await startFakeEngine({ chunks: 10, chunkDelayMs: 10 })
    await using gate = await startTestDaemon({ providers: [providerFor('a', engine)] })
    engine.fail = 'close-mid-stream'
    const res = await fetch(`${gate.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...chat('x'), stream: true }),
    })
    assert.equal(res.status, 200)
    const text = await res.text()
    assert.match(text, /^data: \{"id"/)
    assert.match(
      text,
      /data: \{"error":\{"message":"provider a failed: [^"]+","type":"api_error","code":"upstream_error"/,
    )
    assert.ok(!text.includes('[DONE]'))
  })

  it('aborts the engine request when the client goes away mid-stream', async () => {
    await using engine = await startFakeEngine({ chunks: 50, chunkDelayMs: 50 })
    await using gate = await startTestDaemon({ providers: [providerFor('a', engine)] })
    const stream = await gate.client.chat.completions.create({ ...chat('x'), stream: true })
    let seen = 0
    for await (const _ of stream) if (++seen === 3) break
    assert.equal(seen, 3)
    await waitFor(() => engine.aborted === 1, { label: 'engine saw the abort' })
    const log = await waitForLog(gate.home, 1)
    assert.equal(log[0]?.status, 499)
  })

  it('opens the breaker after repeated failures (503) without calling the engine', async () => {
    await using engine = await startFakeEngine()
    await using gate = await startTestDaemon({ providers: [providerFor('a', engine)] })
    engine.fail = 'status500'
    for (let i = 0; i < 3; i++) {
      await assert.rejects(
        gate.client.chat.completions.create(chat('x')),
        (e: unknown) => e instanceof OpenAI.APIError && e.status === 500,
      )
    }
    const calls = engine.requests.length
    await assert.rejects(
      gate.client.chat.completions.create(chat('x')),
      (err: unknown) => err instanceof OpenAI.APIError && err.status === 503,
    )
    assert.equal(engine.requests.length, calls)
  })

  it('applies a changed config.json live: new provider, new key, bad file rejected', async () => {
    await using a = await startFakeEngine({ models: ['first'] })
    await using b = await startFakeEngine({ models: ['second'] })
    await using gate = await startTestDaemon({ providers: [providerFor('a', a)] })
    const events: Array<{ type: string; data: unknown }> = []
    const unsubscribe = gate.daemon.events.subscribe((e) => events.push(e))
    const path = join(gate.home, 'config.json')
    const config = JSON.parse(await readFile(path, 'utf8'))
    const { writeFileAtomic } = await import('@gate/core')
    await writeFileAtomic(path, '{"network": {"http_port": "abc"}}')
    await waitFor(() => events.some((e) => e.type === 'config_error'))
    assert.match(
      JSON.stringify(events.find((e) => e.type === 'config_error')?.data),
      /network.http_port: expected integer/,
    )
    assert.equal((await gate.client.chat.completions.create({ ...chat('x'), model: 'first' })).model, 'first')
    config.providers.push(providerFor('b', b))
    config.network.control_port = 1
    await writeFileAtomic(path, JSON.stringify(config))
    await waitFor(() => events.some((e) => e.type === 'config_changed'))
    const changed = events.find((e) => e.type === 'config_changed')?.data as { restart_required: string[] }
    assert.deepEqual(changed.restart_required, ['network.control_port'])
    const reply = await gate.client.chat.completions.create({ ...chat('y'), model: 'second' })
    assert.equal(reply.choices[0]?.message.content, replyText('y'))
    unsubscribe()
  })

  it('on stop lets a stream in flight finish, then cancels what outlives the grace period', async () => {
    await using engine = await startFakeEngine({ chunks: 5, chunkDelayMs: 40 })
    await using hang = await startFakeEngine({ models: ['hang'] })
    const gate = await startTestDaemon(
      { providers: [providerFor('a', engine), providerFor('h', hang)] },
      { shutdownGraceMs: 800 },
    )
    hang.fail = 'hang'
    const stream = await gate.client.chat.completions.create({ ...chat('bye'), stream: true })
    const hung = gate.client.chat.completions.create({ ...chat('x'), model: 'hang' }).then(
      () => 'answered',
      () => 'cancelled',
    )
    await waitFor(() => hang.posts > 0)
    const stopping = gate[Symbol.asyncDispose]()
    let text = ''
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ''
    assert.equal(text, replyText('bye'), 'the stream in flight finished')
    assert.equal(await hung, 'cancelled')
    await stopping
    await waitFor(() => hang.aborted === 1, { label: 'the hanging engine request was aborted' })
    await assert.rejects(fetch(`${gate.url}/health`))
  })
})

async function waitForLog(home: string, count: number): Promise<Array<Record<string, unknown>>> {
  let lines: Array<Record<string, unknown>> = []
  await waitFor(
    async () => {
      const text = await readFile(join(home, 'logs', 'requests.jsonl'), 'utf8').catch(() => '')
      lines = text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l))
      return lines.length >= count
    },
    { label: `${count} lines in requests.jsonl` },
  )
  return lines
}
