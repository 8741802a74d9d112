import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, request as httpRequest } from 'node:http'
import { describe, it } from 'node:test'
import { BREAKER_COOLDOWN_MS, BREAKER_FAILURE_THRESHOLD } from '@gate/core'
import { createRpcClient } from '@gate/rpc'
import OpenAI from 'openai'
import { providerFor, startTestDaemon, type TestDaemon } from './utils/daemon.ts'
import { replyText, startFakeEngine } from './utils/fake-engine.ts'
import { waitFor } from './utils/wait.ts'

const chat = (content: string, model = 'llama3.2:1b') => ({
  model,
  messages: [{ role: 'user' as const, content }],
})

const status = (code: number) => (err: unknown) => err instanceof OpenAI.APIError && err.status === code

/** The daemon's only provider, as `list_providers` shows it. */
async function theProvider(gate: TestDaemon) {
  const { providers } = await createRpcClient({ url: gate.controlUrl, token: gate.token }).call(
    'list_providers',
  )
  assert.equal(providers.length, 1)
  return providers[0] as (typeof providers)[number]
}

/**
 * Listens on `port` (127.0.0.1) and passes every request on to `engine`: the engine comes up at
 * `port`. Disposing it closes the port again.
 */
async function serveAt(port: number, engine: { port: number }): Promise<AsyncDisposable> {
  const server = createServer((req, res) => {
    const upstream = httpRequest(
      { host: '127.0.0.1', port: engine.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      },
    )
    upstream.on('error', () => res.destroy())
    req.pipe(upstream)
  })
  server.listen(port, '127.0.0.1')
  await once(server, 'listening')
  return {
    [Symbol.asyncDispose]: async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

describe('provider recovery', () => {
  it('opens the breaker after repeated failures, and closes it once a half-open probe succeeds', async (t) => {
    // The cooldown is a constant (BREAKER_COOLDOWN_MS): rather than wait it out, the clock the
    // breakers read (Date.now, taken when the daemon makes its providers) is moved on.
    const realNow = Date.now
    let skew = 0
    t.mock.method(Date, 'now', () => realNow() + skew)
    await using engine = await startFakeEngine()
    await using gate = await startTestDaemon({ providers: [providerFor('a', engine)] })

    engine.fail = 'status500'
    for (let i = 0; i < BREAKER_FAILURE_THRESHOLD; i++) {
      await assert.rejects(gate.client.chat.completions.create(chat('x')), status(500))
    }
    assert.equal((await theProvider(gate)).breaker, 'open')
    const reached = engine.posts
    for (let i = 0; i < 2; i++) {
      await assert.rejects(gate.client.chat.completions.create(chat('x')), status(503))
    }
    assert.equal(engine.posts, reached, 'an open breaker keeps requests from the engine')

    // Cooldown over: one probe goes through; it fails, and the breaker opens again.
    skew += BREAKER_COOLDOWN_MS
    assert.equal((await theProvider(gate)).breaker, 'half_open')
    await assert.rejects(gate.client.chat.completions.create(chat('x')), status(500))
    assert.equal(engine.posts, reached + 1)
    assert.equal((await theProvider(gate)).breaker, 'open')
    await assert.rejects(gate.client.chat.completions.create(chat('x')), status(503))
    assert.equal(engine.posts, reached + 1)

    // The engine is back: after the next cooldown the probe succeeds and closes the breaker.
    engine.fail = null
    skew += BREAKER_COOLDOWN_MS
    const probe = await gate.client.chat.completions.create(chat('probe'))
    assert.equal(probe.choices[0]?.message.content, replyText('probe'))
    assert.equal((await theProvider(gate)).breaker, 'closed')
    // Closed, it lets every request through again, not one probe at a time.
    const replies = await Promise.all(
      ['a', 'b', 'c'].map((text) => gate.client.chat.completions.create(chat(text))),
    )
    assert.deepEqual(
      replies.map((r) => r.choices[0]?.message.content),
      ['a', 'b', 'c'].map(replyText),
    )
    assert.equal(engine.posts, reached + 5)
  })

  it('picks up an engine that was down at start once a periodic health check finds it', async () => {
    await using engine = await startFakeEngine({ models: ['late'] })
    await using nothing = await startFakeEngine()
    await nothing.stop() // nothing listens on its port until the engine comes up there
    await using gate = await startTestDaemon({
      providers: [providerFor('late', nothing, { health_check_interval: 1 })],
    })

    await waitFor(async () => (await theProvider(gate)).healthy === false, { label: 'the first check' })
    const down = await theProvider(gate)
    assert.match(down.last_error ?? '', /ECONNREFUSED/)
    assert.deepEqual(down.models, [])
    // Its models are unknown, so any model may be its: 503, naming it and why, not 404.
    await assert.rejects(
      gate.client.chat.completions.create(chat('x', 'late')),
      (err) =>
        status(503)(err) &&
        /model "late" is unknown while these providers are down.*: "late" \(.*ECONNREFUSED/.test(
          (err as Error).message,
        ),
    )

    await using _up = await serveAt(nothing.port, engine)
    await waitFor(async () => (await theProvider(gate)).healthy === true, {
      timeoutMs: 5000,
      label: 'a health check to find the engine up',
    })
    const up = await theProvider(gate)
    assert.deepEqual(up.models, ['late'])
    assert.equal(up.last_error, null)
    const reply = await gate.client.chat.completions.create(chat('back', 'late'))
    assert.equal(reply.choices[0]?.message.content, replyText('back'))
    assert.deepEqual(
      (await gate.client.models.list()).data.map((m) => m.id),
      ['late'],
    )
  })
})
