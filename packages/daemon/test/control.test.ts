import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { createRpcClient, RpcError } from '@gate/rpc'
import { providerFor, startTestDaemon, type TestDaemon } from './utils/daemon.ts'
import { startFakeEngine } from './utils/fake-engine.ts'
import { waitFor } from './utils/wait.ts'

function rpc(gate: TestDaemon) {
  return createRpcClient({ url: gate.controlUrl, token: gate.token })
}

async function post(gate: TestDaemon, body: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${gate.controlUrl}/rpc`, {
    method: 'POST',
    headers: { authorization: `Bearer ${gate.token}`, 'content-type': 'application/json', ...headers },
    body,
  })
  return { status: res.status, body: res.status === 204 ? null : await res.json() }
}

/** Collects `/events` from the moment the subscription is greeted until `stop`. */
async function subscribe(client: ReturnType<typeof rpc>) {
  const controller = new AbortController()
  const seen: Array<{ event: string; data: unknown }> = []
  const listening = (async () => {
    for await (const e of client.events({ signal: controller.signal })) seen.push(e)
  })().catch(() => {})
  await waitFor(() => seen.some((e) => e.event === 'hello'))
  return {
    seen,
    stop: async () => {
      controller.abort()
      await listening
    },
  }
}

describe('control port', () => {
  it('requires the control token and refuses foreign Hosts and Origins', async () => {
    await using gate = await startTestDaemon()
    const call = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'node_status' })
    const noToken = await fetch(`${gate.controlUrl}/rpc`, { method: 'POST', body: call })
    assert.equal(noToken.status, 401)
    assert.equal((await noToken.json()).error.code, -32001)
    const wrong = await post(gate, call, { authorization: 'Bearer nope' })
    assert.equal(wrong.status, 401)
    const events = await fetch(`${gate.controlUrl}/events`)
    assert.equal(events.status, 401)
    await events.body?.cancel()
    const origin = await post(gate, call, { origin: 'https://evil.example' })
    assert.equal(origin.status, 403)
    const { request } = await import('node:http')
    const status = await new Promise<number>((resolve, reject) => {
      request(`${gate.controlUrl}/rpc`, { method: 'POST', headers: { host: 'evil.example' } }, (res) => {
        res.resume()
        resolve(res.statusCode ?? 0)
      })
        .on('error', reject)
        .end(call)
    })
    assert.equal(status, 403)
    const ok = await post(gate, call)
    assert.equal(ok.body.result.node_id, gate.daemon.nodeId)
  })

  it('answers malformed, unknown and invalid calls with JSON-RPC errors', async () => {
    await using gate = await startTestDaemon()
    assert.equal((await post(gate, '{not json')).body.error.code, -32700)
    assert.equal(
      (await post(gate, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'nope' }))).body.error.code,
      -32601,
    )
    const bad = await post(
      gate,
      JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'get_logs', params: { lines: 0 } }),
    )
    assert.equal(bad.body.error.code, -32602)
    assert.match(bad.body.error.message, /lines/)
    const huge = await post(
      gate,
      JSON.stringify({
        jsonrpc: '2.0',
        id: 3,
        method: 'validate_config',
        params: { config: 'x'.repeat(2 * 1024 * 1024) },
      }),
    )
    assert.equal(huge.status, 413)
    assert.equal(
      (await post(gate, JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'node_status' }))).status,
      200,
    )
  })

  it('shows, validates and updates the config, never returning secrets unasked', async () => {
    await using engine = await startFakeEngine()
    await using gate = await startTestDaemon({
      providers: [providerFor('a', engine, { api_key: 'sk-secret-upstream' })],
      security: { api_keys: ['sk-secret-key'] },
    })
    const client = rpc(gate)
    const shown = await client.call('get_config')
    assert.ok(!JSON.stringify(shown).includes('sk-secret'), 'secrets redacted')
    const revealed = await client.call('get_config', { reveal_secrets: true })
    assert.ok(JSON.stringify(revealed).includes('sk-secret-upstream'))
    const invalid = await client.call('validate_config', { config: { network: { http_port: 'abc' } } })
    assert.deepEqual(invalid, {
      valid: false,
      errors: ['network.http_port: expected integer 0–65535, got "abc"'],
    })
    assert.deepEqual(await client.call('validate_config', { config: {} }), { valid: true, errors: [] })
    const updated = await client.call('update_config', {
      config: { security: { max_concurrent_requests: 7 } },
    })
    assert.deepEqual(updated.restart_required, [])
    assert.equal(gate.daemon.config.security.max_concurrent_requests, 7)
    assert.deepEqual(gate.daemon.config.security.api_keys, ['sk-secret-key'], 'merge keeps other fields')
    await assert.rejects(
      client.call('update_config', { config: { network: { http_port: -1 } } }),
      (err: unknown) =>
        err instanceof RpcError && err.code === -32602 && /network.http_port/.test(err.message),
    )
    const moved = await client.call('update_config', { config: { network: { http_port: 1 } } })
    assert.deepEqual(moved.restart_required, ['network.http_port'])
    assert.deepEqual((await client.call('node_status')).restart_required, ['network.http_port'])
  })

  it('applies concurrent config changes without losing any, and leaves a broken config.json alone', async () => {
    await using engine = await startFakeEngine()
    await using gate = await startTestDaemon()
    const client = rpc(gate)
    const names = ['p1', 'p2', 'p3', 'p4', 'p5']
    await Promise.all(
      names.map((name) => client.call('add_provider', { name, kind: 'openai', url: engine.url })),
    )
    const onDisk = JSON.parse(await readFile(join(gate.home, 'config.json'), 'utf8'))
    assert.deepEqual(onDisk.providers.map((p: { name: string }) => p.name).sort(), names)
    assert.deepEqual(gate.daemon.config.providers.map((p) => p.name).sort(), names)

    // An edit that breaks the file: reported without quoting it, and not overwritten by updates.
    const broken = '{"security": {"api_keys": [gk-SECRET-abc]}}\n'
    await writeFile(join(gate.home, 'config.json'), broken)
    const logs = async () => (await client.call('get_logs', { lines: 50, level: 'error' })).lines
    await waitFor(async () => (await logs()).some((l) => /config is not valid JSON/.test(String(l.msg))))
    assert.ok(!JSON.stringify(await logs()).includes('SECRET'), 'the log quotes none of the file')
    await assert.rejects(
      client.call('update_config', { config: { security: { max_concurrent_requests: 7 } } }),
      (err: unknown) => err instanceof RpcError && /config is not valid JSON/.test(err.message),
    )
    assert.equal(await readFile(join(gate.home, 'config.json'), 'utf8'), broken)
  })

  it('adds and tests providers', async () => {
    await using engine = await startFakeEngine({ kind: 'ollama', models: ['qwen:0.5b'] })
    await using gate = await startTestDaemon()
    const client = rpc(gate)
    assert.deepEqual((await client.call('list_providers')).providers, [])
    const tried = await client.call('test_provider', { kind: 'ollama', url: engine.url })
    assert.equal(tried.ok, true)
    assert.deepEqual(tried.models, ['qwen:0.5b'])
    const down = await client.call('test_provider', { kind: 'openai', url: 'http://127.0.0.1:9' })
    assert.equal(down.ok, false)
    assert.ok(down.error)
    const added = await client.call('add_provider', { name: 'local', kind: 'ollama', url: engine.url })
    assert.equal(added.provider.healthy, true)
    assert.equal(added.provider.url, `${engine.url}/v1`)
    await assert.rejects(
      client.call('add_provider', { name: 'local', kind: 'ollama', url: engine.url }),
      RpcError,
    )
    const reply = await gate.client.chat.completions.create({
      model: 'qwen:0.5b',
      messages: [{ role: 'user', content: 'hi' }],
    })
    assert.equal(reply.model, 'qwen:0.5b')
    const listed = await client.call('list_providers')
    assert.equal(listed.providers[0]?.breaker, 'closed')
  })

  it('reports metrics, history, logs and events', async () => {
    await using engine = await startFakeEngine()
    await using gate = await startTestDaemon({ providers: [providerFor('a', engine)] })
    const client = rpc(gate)
    const { seen, stop } = await subscribe(client)
    await gate.client.chat.completions.create({
      model: 'llama3.2:1b',
      messages: [{ role: 'user', content: 'count me' }],
    })
    await waitFor(() => seen.some((e) => e.event === 'request'))
    await stop()
    // Its start, then its end, under one ID.
    const started = seen.findIndex((e) => e.event === 'request_start')
    const ended = seen.findIndex((e) => e.event === 'request')
    assert.ok(started >= 0 && started < ended, seen.map((e) => e.event).join())
    const start = seen[started]?.data as { id: string; model: string; stream: boolean }
    const end = seen[ended]?.data as { id: string }
    assert.deepEqual(
      { model: start.model, stream: start.stream, id: start.id },
      { model: 'llama3.2:1b', stream: false, id: end.id },
    )
    const metrics = await client.call('get_metrics')
    assert.equal(metrics.requests.total, 1)
    assert.equal(metrics.requests.by_status['200'], 1)
    assert.deepEqual(metrics.usage.local, { requests: 1, prompt_tokens: 2, completion_tokens: 5 })
    const history = await client.call('request_history', { limit: 5 })
    assert.equal(history.requests[0]?.model, 'llama3.2:1b')
    assert.equal(history.requests[0]?.provider, 'a')
    const logs = await client.call('get_logs', { lines: 50, level: 'info' })
    assert.ok(logs.lines.some((l) => String(l.msg).startsWith('gate daemon ready')))
    const prom = await (await fetch(`${gate.controlUrl}/metrics`)).text()
    assert.match(prom, /gate_requests_total\{route="\/v1\/chat\/completions",status="200"\} 1/)
    assert.match(prom, /gate_tokens_total\{consumer="local",kind="prompt"\} 2\n/)
    assert.match(prom, /gate_tokens_total\{consumer="local",kind="completion"\} 5\n/)
    assert.match(prom, /gate_consumer_requests_total\{consumer="local"\} 1\n/)
    assert.match(prom, /gate_provider_up\{provider="a"\} 1/)
    const rss = Number(/^process_resident_memory_bytes (\d+)/m.exec(prom)?.[1])
    assert.ok(rss > 10e6, `resident memory in /metrics: ${rss}`)
  })

  it('disconnects an /events subscriber that stops reading, and only that one', async () => {
    await using gate = await startTestDaemon()
    const client = rpc(gate)
    const { connect } = await import('node:net')
    const { port } = new URL(gate.controlUrl)
    // A subscriber that sends its request and then never reads, so its socket backs up.
    const stalled = connect(Number(port), '127.0.0.1')
    let stalledClosed = false
    stalled.on('close', () => {
      stalledClosed = true
    })
    stalled.on('error', () => {})
    stalled.pause()
    stalled.write(
      `GET /events HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\nauthorization: Bearer ${gate.token}\r\n\r\n`,
    )
    const { seen, stop } = await subscribe(client)
    const dropped = () =>
      seen.some(
        (e) => e.event === 'log' && /events subscriber/.test(String((e.data as { msg?: unknown }).msg)),
      )
    // Events of 8 KiB, in batches the reading subscriber keeps up with, until the stalled one is
    // dropped: its socket buffers (a few MiB) fill, then its queue. Bounded if it never is.
    const padding = 'x'.repeat(8 * 1024)
    let sent = 0
    while (!dropped() && sent < 6000) {
      for (let i = 0; i < 50; i++) gate.daemon.events.emit('filler', { n: ++sent, padding })
      const last = sent
      await waitFor(() => seen.some((e) => e.event === 'filler' && (e.data as { n: number }).n === last), {
        label: `the reading subscriber got filler ${last}`,
      })
    }
    assert.ok(dropped(), `a warning that the stalled subscriber was dropped, after ${sent} events`)
    // Reading now, the stalled subscriber finds its stream ended after what was already sent.
    stalled.resume()
    await waitFor(() => stalledClosed, { label: 'the daemon closed the stalled stream' })
    gate.daemon.events.emit('after', { ok: true })
    await waitFor(() => seen.some((e) => e.event === 'after'), { label: 'the reader still gets events' })
    await stop()
    assert.equal((await client.call('node_status')).node_id, gate.daemon.nodeId)
  })

  it('names routes in metrics and history from a fixed set, whatever paths clients ask for', async () => {
    await using engine = await startFakeEngine()
    await using gate = await startTestDaemon({ providers: [providerFor('a', engine)] })
    const started = Date.now()
    for (let i = 0; i < 30; i++) assert.equal((await fetch(`${gate.url}/v1/nothing-${i}`)).status, 404)
    assert.equal((await fetch(`${gate.url}/v1/models/nope`)).status, 404)
    const prom = await (await fetch(`${gate.controlUrl}/metrics`)).text()
    assert.doesNotMatch(prom, /nothing-/)
    assert.match(prom, /gate_requests_total\{route="unmatched",status="404"\} 30/)
    assert.match(prom, /gate_request_duration_seconds_count\{route="unmatched"\} 30/)
    // The latency histogram's buckets add up: every request is under the top bound and +Inf.
    assert.match(prom, /# TYPE gate_request_duration_seconds histogram/)
    assert.match(prom, /gate_request_duration_seconds_bucket\{le="120",route="unmatched"\} 30/)
    assert.match(prom, /gate_request_duration_seconds_bucket\{le="\+Inf",route="unmatched"\} 30/)
    assert.match(prom, /gate_request_duration_seconds_sum\{route="unmatched"\} 0\.\d+/)
    assert.match(prom, /gate_requests_total\{route="\/v1\/models\/\{model\}",status="404"\} 1/)
    const { requests } = await rpc(gate).call('request_history', { limit: 2 })
    assert.deepEqual(
      requests.map((r) => [r.route, r.model, r.status]),
      [
        ['/v1/models/{model}', 'nope', 404],
        ['unmatched', null, 404],
      ],
    )
    assert.match(requests[1]?.error ?? '', /no route GET \/v1\/nothing-29/)
    // Each record's time is when its request started, in ISO 8601, newest first.
    const times = requests.map((r) => r.time)
    for (const time of times) assert.match(time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    const [newest, older] = times.map(Date.parse) as [number, number]
    assert.ok(started <= older && older <= newest && newest <= Date.now(), times.join(' '))
  })

  it('generates, exports and imports identities', async () => {
    await using gate = await startTestDaemon()
    const client = rpc(gate)
    const fresh = await client.call('generate_keypair')
    assert.equal(fresh.node_id.length, 52)
    assert.ok(fresh.private_key)
    const { identity } = await client.call('export_identity')
    assert.equal(JSON.parse(identity).node_id, gate.daemon.nodeId)
    const same = await client.call('import_identity', { identity })
    assert.deepEqual(same, { node_id: gate.daemon.nodeId, restart_required: [] })
    await assert.rejects(client.call('import_identity', { identity: '{"node_id": "x"}' }), RpcError)
    const saved = await client.call('generate_keypair', { save: true })
    assert.equal(saved.private_key, undefined, 'a saved key is not returned')
    assert.deepEqual(saved.restart_required, ['identity'])
    assert.deepEqual((await client.call('node_status')).restart_required, ['identity'])
    await client.call('node_restart')
    await waitFor(async () => {
      try {
        return gate.daemon.nodeId === saved.node_id
      } catch {
        return false
      }
    })
    // Restarted on new ports.
    const restarted = createRpcClient({
      url: `http://127.0.0.1:${gate.daemon.runtime.control.port}`,
      token: gate.token,
    })
    assert.deepEqual((await restarted.call('node_status')).restart_required, [])
  })

  it('warns when a key saved over RPC can only be stored unencrypted', async () => {
    const { GATE_PASSPHRASE, ...env } = process.env
    process.env = env
    try {
      await using gate = await startTestDaemon({}, { passphrase: undefined })
      const client = rpc(gate)
      const warnings = async () =>
        (await client.call('get_logs', { lines: 100, level: 'warn' })).lines.filter((l) =>
          String(l.msg).includes('stored unencrypted'),
        ).length
      const before = await warnings()
      await client.call('generate_keypair', { save: true })
      await waitFor(async () => (await warnings()) === before + 1)
    } finally {
      process.env.GATE_PASSPHRASE = GATE_PASSPHRASE
      if (GATE_PASSPHRASE === undefined) delete process.env.GATE_PASSPHRASE
    }
  })
})
