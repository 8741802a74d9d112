import assert from 'node:assert/strict'
import { request } from 'node:http'
import { describe, it } from 'node:test'
import { createRpcClient, RpcError } from '@gate/rpc'
import { DASHBOARD_CSP, DASHBOARD_PAGES } from '../src/control/dashboard.ts'
import { providerFor, startTestDaemon } from './utils/daemon.ts'
import { startFakeEngine } from './utils/fake-engine.ts'
import { waitFor } from './utils/wait.ts'

/** A GET with the path sent exactly as written (fetch would resolve `..` away). */
function get(
  url: string,
  path: string,
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    request(`${url}${path}`, { path }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => {
        body += chunk
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
      .on('error', reject)
      .end()
  })
}

describe('the dashboard on the control port', () => {
  it('serves the app at every page path and its assets, with a strict CSP and no token', async () => {
    await using gate = await startTestDaemon()
    for (const path of DASHBOARD_PAGES) {
      const page = await get(gate.controlUrl, path)
      assert.equal(page.status, 200, path)
      assert.match(String(page.headers['content-type']), /^text\/html/)
      assert.equal(page.headers['content-security-policy'], DASHBOARD_CSP)
      assert.equal(page.headers['x-content-type-options'], 'nosniff')
      assert.match(page.body, /<div id="app">/)
    }
    const index = (await get(gate.controlUrl, '/')).body
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(index)?.[1]
    assert.ok(script, 'index.html loads a script from /assets/')
    const asset = await get(gate.controlUrl, script)
    assert.equal(asset.status, 200)
    assert.match(String(asset.headers['content-type']), /^text\/javascript/)
    assert.match(String(asset.headers['cache-control']), /immutable/)
    for (const path of [
      '/nope',
      '/assets/missing.js',
      '/../package.json',
      '/assets/../../index.ts',
      '/.env',
    ]) {
      assert.equal((await get(gate.controlUrl, path)).status, 404, path)
    }
    // The API and events are still where they were, and still need the token.
    assert.equal((await get(gate.controlUrl, '/events')).status, 401)
    assert.equal((await get(gate.controlUrl, '/health')).status, 200)
  })

  it('serves nothing when web.enabled is false, at once, and says how to build a missing app', async () => {
    await using gate = await startTestDaemon()
    const rpc = createRpcClient({ url: gate.controlUrl, token: gate.token })
    await rpc.call('update_config', { config: { web: { enabled: false } } })
    for (const path of ['/', '/peers', '/favicon.svg']) {
      const answer = await get(gate.controlUrl, path)
      assert.equal(answer.status, 404, path)
      assert.match(answer.body, /web\.enabled is false/)
    }
    assert.equal((await rpc.call('node_status')).node_id, gate.daemon.nodeId)

    await using unbuilt = await startTestDaemon({}, { webDist: '/nonexistent/gate-web-dist/' })
    const answer = await get(unbuilt.controlUrl, '/config')
    assert.equal(answer.status, 503)
    assert.match(answer.body, /not built.*npx -y pnpm@10 install/)
  })

  it('refuses pages asked for under a foreign Host (DNS rebinding)', async () => {
    await using gate = await startTestDaemon()
    const status = await new Promise<number>((resolve, reject) => {
      request(`${gate.controlUrl}/`, { headers: { host: 'evil.example' } }, (res) => {
        res.resume()
        resolve(res.statusCode ?? 0)
      })
        .on('error', reject)
        .end()
    })
    assert.equal(status, 403)
  })
})

describe("the dashboard's RPC methods", () => {
  it('get_overview: status, an hour of traffic by minute, tokens, the latest requests and whether this is a first run', async () => {
    await using engine = await startFakeEngine({ models: ['m'] })
    await using gate = await startTestDaemon()
    const rpc = createRpcClient({ url: gate.controlUrl, token: gate.token })
    const fresh = await rpc.call('get_overview', {})
    assert.equal(fresh.first_run, true)
    assert.equal(fresh.traffic.length, 60)
    assert.deepEqual(fresh.recent, [])
    assert.equal(fresh.status.node_id, gate.daemon.nodeId)
    assert.ok(fresh.p2p.length > 0)

    await rpc.call('add_provider', providerFor('engine', engine))
    await gate.client.chat.completions.create({
      model: 'm',
      messages: [{ role: 'user', content: 'one two' }],
    })
    await gate.client.chat.completions.create({ model: 'nope', messages: [] }).catch(() => {})
    await waitFor(async () => (await rpc.call('get_overview', { recent: 1 })).recent.length === 1)
    const overview = await rpc.call('get_overview', {})
    assert.equal(overview.first_run, false)
    assert.deepEqual(
      overview.recent.map((r) => [r.model, r.status]),
      [
        ['nope', 404],
        ['m', 200],
      ],
    )
    // The last two minutes, in case the requests straddled the turn of one.
    const minutes = overview.traffic.slice(-2)
    assert.equal(
      minutes.reduce((n, m) => n + m.requests, 0),
      2,
    )
    assert.equal(
      minutes.reduce((n, m) => n + m.errors, 0),
      1,
    )
    assert.ok(minutes.some((m) => (m.p95_ms ?? 0) > 0))
    // The refused request reached no engine: only the answered one counts as served.
    assert.deepEqual(overview.tokens.served, { requests: 1, prompt_tokens: 2, completion_tokens: 5 })
    assert.deepEqual(overview.tokens.consumed, { requests: 0, prompt_tokens: 0, completion_tokens: 0 })

    const { lines, requests } = await rpc.call('get_logs', { lines: 50, requests: true })
    assert.ok(lines.some((l) => l.msg === 'config reloaded'))
    assert.deepEqual(
      requests?.map((r) => r.model),
      ['nope', 'm'],
    )
    assert.equal((await rpc.call('get_logs', { lines: 5 })).requests, undefined)
  })

  it('remove_provider, detect_engines and get_peers', async () => {
    await using ollama = await startFakeEngine({ kind: 'ollama', models: ['o'] })
    await using gate = await startTestDaemon(
      { providers: [providerFor('ollama-here', ollama, { kind: 'ollama' })] },
      { engineUrls: { ollama: ollama.url, lmstudio: 'http://127.0.0.1:9' } },
    )
    const rpc = createRpcClient({ url: gate.controlUrl, token: gate.token })
    const { engines } = await rpc.call('detect_engines')
    assert.deepEqual(
      engines.map((e) => [e.name, e.ok, e.configured_as, e.models]),
      [
        ['ollama', true, 'ollama-here', ['o']],
        ['lmstudio', false, null, []],
      ],
    )
    assert.deepEqual(await rpc.call('get_peers'), { peers: [] })

    assert.deepEqual(await rpc.call('remove_provider', { name: 'ollama-here' }), { removed: true })
    assert.deepEqual(gate.daemon.config.providers, [])
    assert.deepEqual((await rpc.call('list_providers')).providers, [])
    await assert.rejects(rpc.call('remove_provider', { name: 'ollama-here' }), (err) => {
      assert.ok(err instanceof RpcError)
      assert.match(err.message, /no provider named "ollama-here"/)
      return true
    })
    await assert.rejects(rpc.call('remove_provider', {} as never), /name/)
  })
})
