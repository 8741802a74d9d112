/**
 * The relay's zone behind its one interface: the same behaviour against the built-in server
 * (asked over the wire) and against Cloudflare's API (a stand-in that the test runs, asked for its
 * records as Cloudflare's own DNS would serve them).
 */
import assert from 'node:assert/strict'
import { Resolver } from 'node:dns/promises'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, it } from 'node:test'
import { BuiltinDns } from '../src/dns/builtin.ts'
import { CloudflareDns } from '../src/dns/cloudflare.ts'
import type { ZoneBackend } from '../src/dns/zone.ts'
import { RelayMetrics } from '../src/metrics.ts'

const ZONE = 'gate.test'
const NODE = `${'a'.repeat(52)}.${ZONE}`

/** What a backend publishes, as a resolver would find it. */
interface Published {
  address(name: string): Promise<string[]>
  txt(name: string): Promise<string[]>
}

interface Harness extends AsyncDisposable {
  zone: ZoneBackend
  published: Published
}

const notFound = (err: { code?: string }) =>
  ['ENOTFOUND', 'ENODATA'].includes(err.code ?? '') ? [] : Promise.reject(err)

async function builtin(): Promise<Harness> {
  const zone = new BuiltinDns({
    domain: ZONE,
    publicIp: '198.51.100.7',
    host: '127.0.0.1',
    port: 0,
    caa: 'letsencrypt.org',
    metrics: new RelayMetrics(),
    onError: () => {},
  })
  await zone.start()
  const resolver = new Resolver({ timeout: 1000, tries: 1 })
  resolver.setServers([`127.0.0.1:${zone.ports.udp}`])
  return {
    zone,
    published: {
      address: (name) => resolver.resolve4(name).catch(notFound),
      txt: async (name) => (await resolver.resolveTxt(name).catch(notFound)).map((parts) => parts.join('')),
    },
    [Symbol.asyncDispose]: () => zone.stop(),
  }
}

/** A stand-in of Cloudflare's v4 API: the DNS record calls the SDK makes. */
async function cloudflare(): Promise<Harness> {
  const records = new Map<string, { id: string; type: string; name: string; content: string }>()
  let next = 1
  const server = createServer(async (req, res) => {
    const send = (status: number, result: unknown) =>
      res
        .writeHead(status, { 'content-type': 'application/json' })
        .end(JSON.stringify({ success: status < 400, errors: [], messages: [], result }))
    if (req.headers.authorization !== 'Bearer cf-token') return send(403, null)
    const path = new URL(req.url ?? '/', 'http://x').pathname
    const match = /^\/client\/v4\/zones\/zone-1\/dns_records(?:\/(\w+))?$/.exec(path)
    if (!match) return send(404, null)
    if (req.method === 'POST') {
      const body = JSON.parse(await text(req))
      const record = { id: `r${next++}`, type: body.type, name: body.name, content: body.content }
      records.set(record.id, record)
      return send(200, record)
    }
    if (req.method === 'DELETE' && match[1] && records.delete(match[1])) return send(200, { id: match[1] })
    return send(404, null)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const zone = new CloudflareDns({
    apiUrl: `http://127.0.0.1:${port}/client/v4`,
    apiToken: 'cf-token',
    zoneId: 'zone-1',
    publicIp: '198.51.100.7',
  })
  await zone.start()
  const find = (type: string, name: string) =>
    [...records.values()].filter((r) => r.type === type && r.name === name).map((r) => r.content)
  return {
    zone,
    published: {
      address: async (name) => find('A', name.toLowerCase()),
      // Cloudflare keeps a TXT record's content quoted, as a zone file would.
      txt: async (name) => find('TXT', name.toLowerCase()).map((content) => JSON.parse(content)),
    },
    async [Symbol.asyncDispose]() {
      await zone.stop()
      assert.equal(records.size, 0, 'the relay deletes every record it made when it stops')
      server.close()
    },
  }
}

function text(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let body = ''
    req.on('data', (d) => {
      body += d
    })
    req.on('end', () => resolve(body))
  })
}

for (const [backend, start] of [
  ['built-in', builtin],
  ['Cloudflare', cloudflare],
] as const) {
  describe(`the relay's zone, ${backend}`, () => {
    it("publishes a registered node's name and its challenge values, and takes them back", async () => {
      await using h = await start()
      assert.deepEqual(await h.published.address(NODE), [])
      await h.zone.addAddress(NODE.toUpperCase())
      assert.deepEqual(await h.published.address(NODE), ['198.51.100.7'])
      const challenge = `_acme-challenge.${NODE}`
      await h.zone.addTxt(challenge, 'value-1')
      await h.zone.addTxt(challenge, 'value-2')
      assert.deepEqual((await h.published.txt(challenge)).sort(), ['value-1', 'value-2'])
      await h.zone.removeTxt(challenge, 'value-1')
      assert.deepEqual(await h.published.txt(challenge), ['value-2'])
      await h.zone.removeTxt(challenge, 'value-2')
      await h.zone.removeAddress(NODE)
      assert.deepEqual(await h.published.address(NODE), [])
      assert.deepEqual(await h.published.txt(challenge), [])
    })
  })
}

describe('the built-in DNS server', () => {
  it('is authoritative for its zone: SOA, NS, CAA, NXDOMAIN, names in any case, refuses other zones and garbage', async () => {
    await using h = await builtin()
    const resolver = new Resolver({ timeout: 1000, tries: 1 })
    resolver.setServers([`127.0.0.1:${(h.zone as BuiltinDns).ports.udp}`])
    const soa = await resolver.resolveSoa(ZONE)
    assert.equal(soa.nsname, `ns1.${ZONE}`)
    assert.deepEqual(await resolver.resolveNs(ZONE), [`ns1.${ZONE}`])
    assert.deepEqual(await resolver.resolve4(`NS1.${ZONE.toUpperCase()}`), ['198.51.100.7'])
    assert.deepEqual(
      (await resolver.resolveCaa(ZONE)).map((r) => r.issue),
      ['letsencrypt.org'],
    )
    await assert.rejects(resolver.resolve4(`nobody.${ZONE}`), { code: 'ENOTFOUND' })
    await assert.rejects(resolver.resolve4('example.com'), { code: 'EREFUSED' })
    // Garbage over UDP gets no answer, or FORMERR; the server answers the next query.
    const { createSocket } = await import('node:dgram')
    const socket = createSocket('udp4')
    socket.send(Buffer.from('not a dns message at all'), (h.zone as BuiltinDns).ports.udp, '127.0.0.1')
    await new Promise((resolve) => setTimeout(resolve, 100))
    socket.close()
    assert.equal(soa.hostmaster, `hostmaster.${ZONE}`)
    assert.deepEqual(await resolver.resolveNs(ZONE), [`ns1.${ZONE}`])
  })
})
