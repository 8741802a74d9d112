import assert from 'node:assert/strict'
import { request } from 'node:http'
import { describe, it } from 'node:test'
import { createRpcClient } from '@gate/rpc'
import { DASHBOARD_CSP, DASHBOARD_PAGES } from '../src/control/dashboard.ts'
import { startTestDaemon } from './utils/daemon.ts'

/** A GET with the path sent exactly as written (fetch would resolve `..` away). */
function get(url: string, path: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
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
    for (const path of ['/nope', '/assets/missing.js', '/../package.json', '/assets/../../index.ts', '/.env']) {
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
