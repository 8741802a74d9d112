import assert from 'node:assert/strict'
import { X509Certificate } from 'node:crypto'
import { Resolver } from 'node:dns/promises'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { createRpcClient } from '@gate/rpc'
import { type Agent, fetch as undiciFetch } from 'undici'
import { providerFor, startTestDaemon, type TestDaemon } from '../../daemon/test/utils/daemon.ts'
import { startFakeEngine } from '../../daemon/test/utils/fake-engine.ts'
import { waitFor } from '../../daemon/test/utils/wait.ts'
import { startPebble } from './utils/pebble.ts'
import { DOMAIN, relayDispatcher, startTestRelay } from './utils/relay.ts'

const MODEL = 'llama3.2:1b'

async function certificate(gate: TestDaemon) {
  return (await createRpcClient({ url: gate.controlUrl, token: gate.token }).call('node_status')).public
    ?.certificate
}

describe('certificates by ACME DNS-01 through the relay (pebble)', () => {
  it('issues one whose chain a client trusting the CA accepts, renews it before expiry without dropping a connection', async () => {
    await using engine = await startFakeEngine({ models: [MODEL], chunks: 60, chunkDelayMs: 200 })
    await using relay = await startTestRelay()
    const dns = relay.relay.runtime.dns
    assert.ok(dns)
    // Certificates that last 30 s, renewed 25 s before they expire: about every 5 s.
    await using pebble = await startPebble(`127.0.0.1:${dns.udp}`, 30)
    await using gate = await startTestDaemon({
      providers: [providerFor('engine', engine)],
      security: { api_keys: ['sk-relay'] },
      relay: {
        addresses: [relay.address],
        acme: {
          directory_url: pebble.directoryUrl,
          email: 'ops@example.test',
          ca_file: pebble.httpsCaFile,
          renew_before_days: 25 / 86_400,
        },
      },
    })
    await waitFor(async () => (await certificate(gate))?.self_signed === false, {
      timeoutMs: 30_000,
      label: 'a certificate from pebble',
    })
    const first = await certificate(gate)
    assert.match(first?.issuer ?? '', /Pebble/)
    assert.equal(first?.state, 'ok')
    assert.ok(first?.renews_at && Date.parse(first.renews_at) < Date.parse(first.expires_at))
    // Stored in certs/, the key owner-only.
    const chain = await readFile(join(gate.home, 'certs', 'node.crt'), 'utf8')
    assert.equal(new X509Certificate(chain).subjectAltName, `DNS:${gate.daemon.nodeId}.${DOMAIN}`)

    // A client that trusts only pebble's root reaches the node, on one kept-alive connection.
    const dispatcher = relayDispatcher(await pebble.issuingRoot())
    const url = `https://${gate.daemon.nodeId}.${DOMAIN}:${relay.tls.port}/v1/models`
    const get = async () => {
      const res = await undiciFetch(url, { headers: { authorization: 'Bearer sk-relay' }, dispatcher })
      assert.equal(res.status, 200)
      return res.json()
    }
    await get()
    // A completion that streams for 12 s, across a renewal: the connection it came on is not dropped.
    const stream = await undiciFetch(url.replace('/models', '/chat/completions'), {
      method: 'POST',
      headers: { authorization: 'Bearer sk-relay', 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'long' }], stream: true }),
      dispatcher,
    })
    const text = stream.text()
    await waitFor(async () => (await certificate(gate))?.expires_at !== first?.expires_at, {
      timeoutMs: 30_000,
      label: 'a renewed certificate',
    })
    assert.match(await text, /data: \[DONE\]/)
    await get()
    await dispatcher.close()
    // The challenge records are gone once validated.
    const resolver = new Resolver({ timeout: 1000, tries: 1 })
    resolver.setServers([`127.0.0.1:${dns.udp}`])
    await assert.rejects(resolver.resolveTxt(`_acme-challenge.${gate.daemon.nodeId}.${DOMAIN}`), {
      code: 'ENOTFOUND',
    })
  })

  it('reports an unreachable directory within seconds and goes on serving its self-signed certificate', async () => {
    await using relay = await startTestRelay()
    const started = Date.now()
    await using gate = await startTestDaemon({
      security: { api_keys: ['sk-relay'] },
      relay: { addresses: [relay.address], acme: { directory_url: 'https://127.0.0.1:9/dir' } },
    })
    await waitFor(async () => (await certificate(gate))?.state === 'failed', {
      timeoutMs: 10_000,
      label: 'the order reported failed',
    })
    assert.ok(Date.now() - started < 10_000)
    const status = await certificate(gate)
    assert.match(status?.error ?? '', /ECONNREFUSED|unreachable/)
    assert.equal(status?.self_signed, true)
    const ca = await readFile(join(gate.home, 'certs', 'node.crt'), 'utf8')
    const dispatcher: Agent = relayDispatcher(ca)
    const res = await undiciFetch(`https://${gate.daemon.nodeId}.${DOMAIN}:${relay.tls.port}/health`, {
      dispatcher,
    })
    assert.equal(res.status, 200)
    await res.body?.cancel()
    await dispatcher.close()
  })
})
