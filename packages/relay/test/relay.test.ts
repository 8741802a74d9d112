import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { request as httpsRequest } from 'node:https'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { createRpcClient } from '@gate/rpc'
import OpenAI from 'openai'
import { fetch as undiciFetch } from 'undici'
import { providerFor, startTestDaemon, type TestDaemon } from '../../daemon/test/utils/daemon.ts'
import { replyText, startFakeEngine } from '../../daemon/test/utils/fake-engine.ts'
import { waitFor } from '../../daemon/test/utils/wait.ts'
import { DOMAIN, relayDispatcher, startTestRelay } from './utils/relay.ts'

const MODEL = 'llama3.2:1b'
const chat = (content: string) => ({ model: MODEL, messages: [{ role: 'user' as const, content }] })

async function publicStatus(gate: TestDaemon) {
  return (await createRpcClient({ url: gate.controlUrl, token: gate.token }).call('node_status')).public
}

/** Waits until the node is active at every relay, and returns its public URL. */
async function activeAt(gate: TestDaemon, relays = 1): Promise<string> {
  await waitFor(
    async () => {
      const status = await publicStatus(gate)
      return status?.relays.filter((r) => r.state === 'active').length === relays
    },
    { timeoutMs: 20_000, label: 'the node is active at its relays' },
  )
  return (await publicStatus(gate))?.url as string
}

describe('the relay', () => {
  it('serves a node at https://<node-id>.<domain> to the openai SDK with an API key, TLS ending at the node', async () => {
    await using engine = await startFakeEngine({ models: [MODEL] })
    await using relay = await startTestRelay()
    await using gate = await startTestDaemon({
      providers: [providerFor('engine', engine)],
      security: { api_keys: ['sk-relay'] },
      relay: { addresses: [relay.address] },
    })
    const url = await activeAt(gate)
    assert.equal(url, `https://${gate.daemon.nodeId}.${DOMAIN}`)
    const status = await publicStatus(gate)
    assert.equal(status?.certificate?.self_signed, true)
    assert.deepEqual(status?.certificate?.names, [`${gate.daemon.nodeId}.${DOMAIN}`])
    // The node's own certificate: the relay never held a key for it.
    const ca = await readFile(join(gate.home, 'certs', 'node.crt'), 'utf8')
    const dispatcher = relayDispatcher(ca)
    const baseURL = `${url}:${relay.tls.port}/v1`
    const client = new OpenAI({
      baseURL,
      apiKey: 'sk-relay',
      maxRetries: 0,
      fetchOptions: { dispatcher } as never,
    })
    const reply = await client.chat.completions.create(chat('through the relay'))
    assert.equal(reply.choices[0]?.message.content, replyText('through the relay'))
    const stream = await client.chat.completions.create({ ...chat('streamed'), stream: true })
    let text = ''
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ''
    assert.equal(text, replyText('streamed'))

    const noKey = new OpenAI({
      baseURL,
      apiKey: 'wrong',
      maxRetries: 0,
      fetchOptions: { dispatcher } as never,
    })
    await assert.rejects(noKey.models.list(), (err: unknown) => {
      assert.ok(err instanceof OpenAI.AuthenticationError, String(err))
      assert.equal((err.error as { type?: string }).type, 'authentication_error')
      return true
    })
    // The control port is not reachable through the relay, and Host must be the node's name.
    const rpc = await undiciFetch(`${url}:${relay.tls.port}/rpc`, { method: 'POST', dispatcher })
    assert.equal(rpc.status, 404)
    await rpc.body?.cancel()
    const otherHost = await new Promise<number | undefined>((resolve, reject) =>
      httpsRequest(
        {
          host: '127.0.0.1',
          port: relay.tls.port,
          servername: new URL(url).hostname,
          ca,
          path: '/v1/models',
          headers: { host: `elsewhere.${DOMAIN}`, authorization: 'Bearer sk-relay' },
        },
        (res) => {
          res.resume()
          resolve(res.statusCode)
        },
      )
        .on('error', reject)
        .end(),
    )
    assert.equal(otherHost, 403)
    // A browser app on another origin: its preflight is answered, the key is its credential.
    const preflight = await undiciFetch(`${url}:${relay.tls.port}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://app.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type',
      },
      dispatcher,
    })
    assert.equal(preflight.status, 204)
    assert.equal(preflight.headers.get('access-control-allow-origin'), 'https://app.example')
    // Relayed requests are recorded with their key's fingerprint as consumer.
    const history = await createRpcClient({ url: gate.controlUrl, token: gate.token }).call(
      'request_history',
      {
        limit: 10,
      },
    )
    assert.ok(history.requests.some((r) => /^key:[0-9a-f]{12}$/.test(r.consumer) && r.status === 200))
    await dispatcher.close()
  })

  it('takes keys made by gate keys, counts what each was used for, and refuses one revoked', async () => {
    await using engine = await startFakeEngine({ models: [MODEL] })
    await using relay = await startTestRelay()
    await using gate = await startTestDaemon({
      providers: [providerFor('engine', engine)],
      relay: { addresses: [relay.address] },
    })
    const url = await activeAt(gate)
    const rpc = createRpcClient({ url: gate.controlUrl, token: gate.token })
    const { key, name } = await rpc.call('create_api_key', { name: 'laptop' })
    assert.match(key, /^gate_[\w-]{43}$/)
    await assert.rejects(rpc.call('create_api_key', { name: 'laptop' }), /exists/)
    const stored = await readFile(join(gate.home, 'keys.json'), 'utf8')
    assert.ok(!stored.includes(key), 'keys.json holds no key, only its hash')
    const dispatcher = relayDispatcher(await readFile(join(gate.home, 'certs', 'node.crt'), 'utf8'))
    const client = new OpenAI({
      baseURL: `${url}:${relay.tls.port}/v1`,
      apiKey: key,
      maxRetries: 0,
      fetchOptions: { dispatcher } as never,
    })
    await client.chat.completions.create(chat('counted'))
    await client.chat.completions.create(chat('counted twice'))
    const { keys } = await rpc.call('list_api_keys')
    const laptop = keys.find((k) => k.name === name)
    assert.equal(laptop?.requests, 2)
    assert.ok((laptop?.completion_tokens ?? 0) > 0)
    assert.ok(laptop?.last_used_at)
    const metrics = await (await fetch(`${gate.controlUrl}/metrics`)).text()
    assert.match(metrics, /gate_consumer_requests_total\{consumer="key:laptop"} 2/)
    await rpc.call('revoke_api_key', { name: 'laptop' })
    await assert.rejects(client.models.list(), OpenAI.AuthenticationError)
    await dispatcher.close()
  })
})
