import assert from 'node:assert/strict'
import { createServer, type Server, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { createRpcClient } from '@gate/rpc'
import type { Browser } from 'playwright-core'
import { providerFor, startTestDaemon, type TestDaemon } from '../../../packages/daemon/test/utils/daemon.ts'
import { type FakeEngine, startFakeEngine } from '../../../packages/daemon/test/utils/fake-engine.ts'
import { waitFor } from '../../../packages/daemon/test/utils/wait.ts'
import { launch, NO_BROWSER, openTab, screenshots, signedIn, type Tab } from './utils/browser.ts'

const LOCAL_MODEL = 'local-model'
const PEER_MODEL = 'peer-model'
const chat = (model: string, content: string) => ({ model, messages: [{ role: 'user' as const, content }] })

function rpc(gate: TestDaemon) {
  return createRpcClient({ url: `http://127.0.0.1:${gate.daemon.runtime.control.port}`, token: gate.token })
}

function quicAddress(gate: TestDaemon): string {
  const address = gate.daemon.runtime.p2p.find((a) => a.includes('/quic-v1/'))
  assert.ok(address, 'a QUIC address')
  return address
}

/** A port free now, for a daemon that must come back on the same control port after a restart. */
async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** An engine that accepts connections and never answers: a provider that hangs. */
async function startHungEngine(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

/** No console error or warning and no uncaught error, except the `allowed` ones (expected network failures). */
function assertQuiet(tab: Tab, allowed?: RegExp): void {
  assert.deepEqual(
    tab.problems.filter((p) => !allowed?.test(p)),
    [],
    'the page logged errors or warnings',
  )
}

describe('the dashboard in Chromium', { skip: NO_BROWSER }, () => {
  let browser: Browser
  let engineA: FakeEngine
  let engineB: FakeEngine
  /** A serves LOCAL_MODEL from its engine and trusts B, which serves PEER_MODEL. */
  let a: TestDaemon
  let b: TestDaemon
  /** A fresh node: no provider, no peer (a first run). */
  let c: TestDaemon
  const tabs: Tab[] = []
  const tab = async (width?: number) => {
    const opened = await openTab(browser, width === undefined ? {} : { width })
    tabs.push(opened)
    return opened
  }

  before(async () => {
    ;[browser, engineA, engineB] = await Promise.all([
      launch(),
      startFakeEngine({ kind: 'ollama', models: [LOCAL_MODEL] }),
      startFakeEngine({ models: [PEER_MODEL] }),
    ])
    ;[a, b, c] = await Promise.all([
      startTestDaemon(
        { providers: [providerFor('engine', engineA, { kind: 'ollama' })] },
        { engineUrls: { ollama: engineA.url, lmstudio: 'http://127.0.0.1:9' } },
      ),
      startTestDaemon({ providers: [providerFor('engine-b', engineB)] }),
      startTestDaemon({}, { engineUrls: { ollama: engineA.url, lmstudio: 'http://127.0.0.1:9' } }),
    ])
    await rpc(a).call('add_peer', { node_id: b.daemon.nodeId, address: quicAddress(b) })
    await rpc(b).call('add_peer', { node_id: a.daemon.nodeId, address: quicAddress(a) })
    await waitFor(async () => (await a.client.models.list()).data.length === 2, { timeoutMs: 10_000 })
    // Some traffic of each kind: served here, sent to the peer, refused.
    await a.client.chat.completions.create(chat(LOCAL_MODEL, 'hello there'))
    await a.client.chat.completions.create(chat(PEER_MODEL, 'hello peer'))
    await a.client.chat.completions.create(chat('no-such-model', 'hello?')).catch(() => {})
  })

  after(async () => {
    for (const t of tabs) await t.context.close()
    await browser?.close()
    await Promise.all([a, b, c].map((gate) => gate?.[Symbol.asyncDispose]()))
    await Promise.all([engineA, engineB].map((engine) => engine?.stop()))
  })

  it('signs in by URL, drops the token from the address bar, and sends it only in the Authorization header', async () => {
    const t = await tab()
    const requests: Array<{ url: string; authorization: string | undefined }> = []
    t.page.on('request', (r) => requests.push({ url: r.url(), authorization: r.headers().authorization }))
    await signedIn(t, a.controlUrl, a.token)
    assert.equal(new URL(t.page.url()).hash, '')
    assert.equal(await t.page.getByTestId('node-id').textContent(), a.daemon.nodeId)
    await t.page.reload()
    await t.page.getByTestId('node-id').waitFor()
    assert.equal(await t.page.getByLabel('Control token').count(), 0, 'still signed in after a reload')
    assert.ok(requests.some((r) => r.url.endsWith('/rpc') && r.authorization === `Bearer ${a.token}`))
    for (const r of requests) assert.ok(!r.url.includes(a.token), `the token is in a URL: ${r.url}`)
    assertQuiet(t)
  })

  it('signs in by form, saying so when the token is wrong', async () => {
    const t = await tab()
    await t.page.goto(`${a.controlUrl}/peers`)
    await t.page.getByLabel('Control token').fill('not-the-token')
    await t.page.getByRole('button', { name: 'Sign in' }).click()
    await t.page.getByRole('alert').getByText('That token is wrong').waitFor()
    await t.page.getByLabel('Control token').fill(a.token)
    await t.page.getByRole('button', { name: 'Sign in' }).click()
    await t.page.getByRole('heading', { name: 'Peers', level: 1 }).waitFor()
    assert.equal(new URL(t.page.url()).pathname, '/peers')
    // The refused token's 401 is the browser's own note of a failed load, the one expected here.
    assertQuiet(t, /Failed to load resource: the server responded with a status of 401/)
  })

  it('shows real data on every page, at 1280 and 360 px (screenshots)', async () => {
    const t = await tab()
    await signedIn(t, a.controlUrl, a.token)
    const { page } = t
    const table = page.getByTestId('recent-requests')
    await table.getByText(LOCAL_MODEL).first().waitFor()
    await table.getByText(PEER_MODEL).first().waitFor()
    await page
      .getByText(`peer ${b.daemon.nodeId.slice(0, 8)}`)
      .first()
      .waitFor()
    await page.getByText('local · engine').first().waitFor()
    await page.getByRole('img', { name: /Requests per minute.*3 requests in the last hour/ }).waitFor()
    await screenshots(t, 'overview')
    await page.emulateMedia({ colorScheme: 'dark' })
    await screenshots(t, 'overview-dark')
    await page.emulateMedia({ colorScheme: 'light' })

    await page.getByRole('link', { name: 'Peers' }).click()
    const peer = page.locator(`tr[data-node-id="${b.daemon.nodeId}"]`)
    await peer.getByText('connected').waitFor()
    await peer.getByText('direct · QUIC').waitFor()
    await peer.getByText(PEER_MODEL).waitFor()
    await peer.getByText('consumed from it: 1 request,').waitFor()
    await screenshots(t, 'peers')

    await page.getByRole('link', { name: 'Providers' }).click()
    const provider = page.locator('tr[data-provider="engine"]')
    await provider.getByText('healthy').waitFor()
    await provider.getByText(LOCAL_MODEL).waitFor()
    await provider.getByRole('button', { name: 'Test' }).click()
    await provider.getByText('OK: 1 model in').waitFor()
    await screenshots(t, 'providers')

    await page.getByRole('link', { name: 'Configuration' }).click()
    assert.equal(await page.getByLabel('Max concurrent requests').inputValue(), '64')
    assert.equal(await page.getByLabel('Trusted peers').inputValue(), b.daemon.nodeId)
    await screenshots(t, 'config')

    await page.getByRole('link', { name: 'Logs' }).click()
    await page.getByTestId('log').getByText('gate daemon ready').waitFor()
    await page.getByTestId('log').getByText(`POST /v1/chat/completions ${PEER_MODEL}`).waitFor()
    await page.getByLabel('Search').fill('config reloaded')
    await page.getByTestId('log').getByText('config reloaded').first().waitFor()
    await page.getByTestId('log').getByText('gate daemon ready').waitFor({ state: 'detached' })
    await page.getByLabel('Search').fill('')
    await page.getByLabel('Level').selectOption('warn')
    await page.getByTestId('log').getByText('no-such-model → 404').waitFor()
    await page.getByTestId('log').getByText('gate daemon ready').waitFor({ state: 'detached' })
    await page.getByLabel('Level').selectOption('info')
    await screenshots(t, 'logs')

    await page.getByRole('link', { name: 'Setup' }).click()
    await page.getByText('already added as engine').waitFor()
    await page.getByText(a.daemon.nodeId).waitFor()
    await screenshots(t, 'setup')
    assertQuiet(t)
  })

  it('shows a request made with the openai SDK in the live list and the logs within a second', async () => {
    const [overview, logs] = [await tab(), await tab()]
    await signedIn(overview, a.controlUrl, a.token)
    await signedIn(logs, a.controlUrl, a.token, '/logs')
    for (const t of [overview, logs]) await t.page.getByTestId('connection').getByText('Live').waitFor()
    await logs.page.getByTestId('log').getByText('gate daemon ready').waitFor()
    const { response } = await a.client.chat.completions.create(chat(LOCAL_MODEL, 'live one')).withResponse()
    const id = response.headers.get('x-request-id')
    const sent = performance.now()
    await Promise.all([
      overview.page.locator(`tr[data-request-id="${id}"]`).waitFor({ timeout: 1000 }),
      logs.page.getByTestId('log').getByText(`id=${id}`).waitFor({ timeout: 1000 }),
    ])
    assert.ok(performance.now() - sent < 1000)
    assertQuiet(overview)
    assertQuiet(logs)
  })

  it("offers Setup on a first run, and adds and removes peers and providers through the UI, which the daemon's config follows", async () => {
    const t = await tab()
    await signedIn(t, c.controlUrl, c.token)
    await t.page.getByRole('heading', { name: 'Setup', level: 1 }).waitFor()
    assert.equal(new URL(t.page.url()).pathname, '/setup')
    await t.page.getByText('found: 1 model in').waitFor()

    // B's dashboard makes an invite; C's takes it.
    const inviter = await tab()
    await signedIn(inviter, b.controlUrl, b.token, '/peers')
    await inviter.page.getByRole('button', { name: 'Create an invite' }).click()
    const code = await inviter.page.getByLabel(/Invite code/).inputValue()
    await t.page.getByRole('link', { name: 'Peers' }).click()
    await t.page.getByLabel('Node ID or invite code').fill(code)
    await t.page.getByRole('button', { name: 'Add peer' }).click()
    await t.page.getByRole('status').getByText(`Added ${b.daemon.nodeId}`).waitFor({ timeout: 10_000 })
    assert.ok(c.daemon.config.network.trusted_peers.includes(b.daemon.nodeId))
    await waitFor(() => b.daemon.config.network.trusted_peers.includes(c.daemon.nodeId))
    await t.page.locator(`tr[data-node-id="${b.daemon.nodeId}"]`).getByText('connected').waitFor()

    // A by its node ID and address; then removed.
    await t.page.getByLabel('Node ID or invite code').fill(a.daemon.nodeId)
    await t.page.getByLabel(/^Address/).fill(quicAddress(a))
    await t.page.getByRole('button', { name: 'Add peer' }).click()
    const rowA = t.page.locator(`tr[data-node-id="${a.daemon.nodeId}"]`)
    await rowA.waitFor({ timeout: 10_000 })
    assert.ok(c.daemon.config.network.trusted_peers.includes(a.daemon.nodeId))
    await rowA.getByRole('button', { name: /^Remove peer/ }).click()
    await rowA.getByRole('button', { name: /^Confirm: Remove peer/ }).click()
    await rowA.waitFor({ state: 'detached' })
    assert.ok(!c.daemon.config.network.trusted_peers.includes(a.daemon.nodeId))

    await t.page.getByRole('link', { name: 'Providers' }).click()
    await t.page.getByLabel('Name').fill('added')
    await t.page.getByLabel('Kind').selectOption('openai')
    await t.page.getByLabel('URL').fill(`${engineB.url}/v1`)
    await t.page.getByRole('button', { name: 'Add provider' }).click()
    await t.page.getByText('Added added (healthy, 1 model).').waitFor()
    assert.deepEqual(
      c.daemon.config.providers.map((p) => [p.name, p.kind, p.url]),
      [['added', 'openai', `${engineB.url}/v1`]],
    )
    const row = t.page.locator('tr[data-provider="added"]')
    await row.getByText('healthy').waitFor()
    await row.getByRole('button', { name: /^Remove provider/ }).click()
    await row.getByRole('button', { name: /^Confirm: Remove provider/ }).click()
    await row.waitFor({ state: 'detached' })
    assert.deepEqual(c.daemon.config.providers, [])
    assertQuiet(t)
    assertQuiet(inviter)
  })

  it("shows validate_config's message under a bad field, and says which saved changes need a restart", async () => {
    const t = await tab()
    await signedIn(t, c.controlUrl, c.token, '/config')
    const port = t.page.getByLabel('API port')
    await port.fill('abc')
    const message = t.page.locator('#field-network-http_port-error')
    await message.getByText('expected integer 0–65535, got "abc"').waitFor()
    assert.equal(await port.getAttribute('aria-invalid'), 'true')
    await t.page.getByRole('button', { name: 'Save' }).click()
    await t.page.waitForTimeout(200)
    assert.equal(c.daemon.config.network.http_port, 0, 'nothing saved')

    await port.fill('0')
    await message.waitFor({ state: 'detached' })
    await t.page.getByLabel('Max concurrent requests').fill('32')
    await t.page.getByRole('button', { name: 'Save' }).click()
    await t.page.getByTestId('config-saved').getByText('Saved and applied.').waitFor()
    assert.equal(c.daemon.config.security.max_concurrent_requests, 32)

    await t.page.getByLabel(/Find peers on the LAN/).check()
    await t.page.getByRole('button', { name: 'Save' }).click()
    await t.page.getByTestId('config-saved').getByText('needs a restart: network.mdns').waitFor()
    assert.equal(c.daemon.config.network.mdns, true)
    assertQuiet(t)
  })

  it('moves between pages by keyboard, focusing each page heading', async () => {
    const t = await tab()
    await signedIn(t, a.controlUrl, a.token)
    await t.page.keyboard.press('Tab')
    assert.equal(await t.page.evaluate(() => document.activeElement?.textContent), 'Skip to content')
    await t.page.keyboard.press('Tab')
    await t.page.keyboard.press('Tab')
    assert.equal(await t.page.evaluate(() => document.activeElement?.textContent), 'Peers')
    await t.page.keyboard.press('Enter')
    await t.page.getByRole('heading', { name: 'Peers', level: 1 }).waitFor()
    // Focus moves in an effect after the page renders: wait for it, within a bound.
    await t.page
      .waitForFunction(() => document.activeElement?.tagName === 'H1', undefined, { timeout: 2000 })
      .catch(() => {})
    assert.equal(await t.page.evaluate(() => document.activeElement?.tagName), 'H1')
    assert.equal(new URL(t.page.url()).pathname, '/peers')
    assertQuiet(t)
  })

  describe('a node with a provider that hangs', () => {
    let hung: Awaited<ReturnType<typeof startHungEngine>>
    let d: TestDaemon

    before(async () => {
      hung = await startHungEngine()
      d = await startTestDaemon({
        providers: [{ ...providerFor('hung', hung), models: ['hung-model'] }],
        network: { control_port: await freePort() },
      })
    })

    after(async () => {
      await d?.[Symbol.asyncDispose]()
      await hung?.close()
    })

    it('shows the Overview and Providers at once, while a request and a test of that provider hang', async () => {
      const abort = new AbortController()
      const pending = d.client.chat.completions
        .create(chat('hung-model', 'anyone?'), { signal: abort.signal })
        .catch(() => {})
      const t = await tab()
      const started = performance.now()
      await signedIn(t, d.controlUrl, d.token)
      await t.page.getByTestId('node-id').waitFor({ timeout: 3000 })
      await t.page.getByText('In flight').waitFor()
      await t.page.getByRole('link', { name: 'Providers' }).click()
      const row = t.page.locator('tr[data-provider="hung"]')
      await row.getByRole('button', { name: 'Test' }).click()
      await row.getByText('Testing…').waitFor()
      await t.page.getByRole('link', { name: 'Overview' }).click()
      await t.page.getByTestId('node-id').waitFor({ timeout: 3000 })
      assert.ok(performance.now() - started < 5000, 'nothing waited for the hung provider')
      abort.abort()
      await pending
      assertQuiet(t)
    })

    it('says "disconnected" while the daemon restarts, then recovers without a reload', async () => {
      const t = await tab()
      await signedIn(t, d.controlUrl, d.token)
      const connection = t.page.getByTestId('connection')
      await connection.getByText('Live').waitFor()
      await t.page.evaluate(() => {
        ;(window as unknown as { notReloaded: boolean }).notReloaded = true
      })
      await d.daemon.stop()
      await connection.getByText('Disconnected').waitFor({ timeout: 5000 })
      await t.page.getByRole('alert').getByText('Disconnected from the daemon').waitFor()
      await d.daemon.start()
      await connection.getByText('Live').waitFor({ timeout: 10_000 })
      await t.page.getByRole('alert').getByText('Disconnected from the daemon').waitFor({ state: 'detached' })
      await t.page.getByTestId('node-id').waitFor()
      assert.equal(
        await t.page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded),
        true,
      )
      // The browser notes the event stream cut by the stop, and each connection refused while the
      // daemon was down: the failures this test makes.
      assertQuiet(t, /Failed to load resource: net::ERR_(INCOMPLETE_CHUNKED_ENCODING|CONNECTION_REFUSED)/)
    })
  })
})
