import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { exited, gateHome, waitForOutput } from './utils/gate.ts'

describe('gate relay and gate keys', () => {
  it('runs a relay that prints its node ID and addresses, a node that joins it, its keys, and stops both', async () => {
    await using relayHome = await gateHome()
    const config = join(await mkdtemp(join(tmpdir(), 'gate-relay-config-')), 'relay.json')
    await writeFile(
      config,
      JSON.stringify({
        network: { p2p_port: 0, p2p_host: '127.0.0.1' },
        relay_server: {
          domain: 'gate.test',
          public_ip: '127.0.0.1',
          tls_host: '127.0.0.1',
          tls_port: 0,
          dns: { host: '127.0.0.1', port: 0 },
          metrics: { host: '127.0.0.1', port: 0 },
        },
      }),
    )
    const relay = relayHome.spawn(['relay', '--config', config])
    try {
      const printed = await waitForOutput(relay, /relay\.addresses:\n {2}\S+\n {2}\S+\n/)
      assert.match(printed, /gate relay for \*\.gate\.test: TLS on 127\.0\.0\.1:\d+, DNS on 127\.0\.0\.1:\d+/)
      const nodeId = /node ID ([a-z2-7]{52})/.exec(printed)?.[1]
      const identity = JSON.parse((await relayHome.run(['identity', 'show', '--json'])).stdout)
      assert.equal(nodeId, identity.node_id)
      const address = /(\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3KooW\w+)/.exec(printed)?.[1] as string

      await using node = await gateHome({ relay: { addresses: [address] } })
      assert.equal((await node.run(['daemon', '--background'])).code, 0)
      let status: { node_id: string; public: { url: string; relays: Array<{ state: string }> } } | undefined
      for (let i = 0; i < 100; i++) {
        status = JSON.parse((await node.run(['status', '--json'])).stdout)
        if (status?.public.relays[0]?.state === 'active') break
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
      assert.equal(status?.public.url, `https://${status?.node_id}.gate.test`)
      const readable = await node.run(['status'])
      assert.match(readable.stdout, /public URL\s+https:\/\/[a-z2-7]{52}\.gate\.test/)
      assert.match(readable.stdout, /relay \/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/\w+\s+active/)
      assert.match(readable.stdout, /certificate\s+self-signed, expires /)

      const created = await node.run(['keys', 'create', 'phone'])
      assert.equal(created.code, 0, created.stderr)
      const key = created.stdout.split('\n')[0] as string
      assert.match(key, /^gate_[\w-]{43}$/)
      const listed = JSON.parse((await node.run(['keys', 'list', '--json'])).stdout)
      assert.deepEqual(
        listed.map((k: { name: string }) => k.name),
        ['phone'],
      )
      assert.ok(!JSON.stringify(listed).includes(key), 'a key is shown once, when made')
      assert.equal((await node.run(['keys', 'revoke', 'phone'])).code, 0)
      const missing = await node.run(['keys', 'revoke', 'phone'])
      assert.match(missing.stderr, /^error: no key named "phone"\n$/)
      assert.equal((await node.run(['stop'])).code, 0)

      relay.kill('SIGTERM')
      assert.deepEqual(await exited(relay), { code: 0, signal: null })
    } finally {
      relay.kill('SIGKILL')
      await rm(join(config, '..'), { recursive: true, force: true })
    }
  })
})
