import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { promisify } from 'node:util'
import { createRpcClient } from '@gate/rpc'
import { launch, NO_BROWSER, openTab } from '../../../apps/web/test/utils/browser.ts'
import { providerFor, startTestDaemon } from '../../daemon/test/utils/daemon.ts'
import { replyText, startFakeEngine } from '../../daemon/test/utils/fake-engine.ts'
import { waitFor } from '../../daemon/test/utils/wait.ts'
import { startPebble } from './utils/pebble.ts'
import { DOMAIN, startTestRelay } from './utils/relay.ts'

const MODEL = 'llama3.2:1b'

/** A HOME whose NSS database trusts `root`, as a user who installed the CA would have. */
async function trustingHome(root: string): Promise<string> {
  const home = await mkdtemp(join(tmpdir(), 'gate-chromium-'))
  const db = join(home, '.pki', 'nssdb')
  await mkdir(db, { recursive: true })
  await writeFile(join(home, 'root.pem'), root)
  const certutil = promisify(execFile)
  await certutil('certutil', ['-d', `sql:${db}`, '-N', '--empty-password'])
  await certutil('certutil', [
    '-d',
    `sql:${db}`,
    '-A',
    '-t',
    'C,,',
    '-n',
    'pebble-root',
    '-i',
    join(home, 'root.pem'),
  ])
  return home
}

/** The page of a browser app on another origin: it calls the node through the relay with its key. */
const APP = `<!doctype html><meta charset="utf-8"><title>app</title><script type="module">
const base = location.hash.slice(1)
const headers = { authorization: 'Bearer sk-browser', 'content-type': 'application/json' }
const models = await (await fetch(base + '/v1/models', { headers })).json()
const res = await fetch(base + '/v1/chat/completions', {
  method: 'POST', headers,
  body: JSON.stringify({ model: '${MODEL}', messages: [{ role: 'user', content: 'from a browser' }], stream: true }),
})
let text = '', raw = ''
const reader = res.body.getReader(), decoder = new TextDecoder()
for (let r = await reader.read(); !r.done; r = await reader.read()) raw += decoder.decode(r.value)
for (const line of raw.split('\\n')) if (line.startsWith('data: {')) text += JSON.parse(line.slice(6)).choices[0]?.delta?.content ?? ''
window.result = { models: models.data.map((m) => m.id), status: res.status, text, done: raw.includes('[DONE]') }
</script>`

describe('the relay, from a browser', { skip: NO_BROWSER }, () => {
  it('serves a page on another origin that calls the node with an API key, the CA being a pebble-issued certificate', async () => {
    await using engine = await startFakeEngine({ models: [MODEL], chunks: 8, chunkDelayMs: 20 })
    await using relay = await startTestRelay()
    const dns = relay.relay.runtime.dns
    assert.ok(dns)
    await using pebble = await startPebble(`127.0.0.1:${dns.udp}`)
    await using gate = await startTestDaemon({
      providers: [providerFor('engine', engine)],
      security: { api_keys: ['sk-browser'] },
      relay: {
        addresses: [relay.address],
        acme: { directory_url: pebble.directoryUrl, ca_file: pebble.httpsCaFile },
      },
    })
    const rpc = createRpcClient({ url: gate.controlUrl, token: gate.token })
    await waitFor(async () => (await rpc.call('node_status')).public?.certificate?.self_signed === false, {
      timeoutMs: 30_000,
      label: 'a certificate from pebble',
    })
    const home = await trustingHome(await pebble.issuingRoot())
    const app = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(APP))
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve))
    const browser = await launch({
      args: [`--host-resolver-rules=MAP *.${DOMAIN} 127.0.0.1`],
      env: { HOME: home },
    })
    try {
      const tab = await openTab(browser)
      const node = `https://${gate.daemon.nodeId}.${DOMAIN}:${relay.tls.port}`
      await tab.page.goto(`http://127.0.0.1:${(app.address() as AddressInfo).port}/#${node}`)
      await tab.page.waitForFunction(() => (window as { result?: unknown }).result !== undefined, undefined, {
        timeout: 20_000,
      })
      const result = await tab.page.evaluate(() => (window as unknown as { result: unknown }).result)
      assert.deepEqual(result, {
        models: [MODEL],
        status: 200,
        text: replyText('from a browser'),
        done: true,
      })
      assert.deepEqual(tab.problems, [])
    } finally {
      await browser.close()
      app.close()
      await rm(home, { recursive: true, force: true })
    }
  })
})
