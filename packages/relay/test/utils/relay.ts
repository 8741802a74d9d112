import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent } from 'undici'
import type { RelayConfigInput } from '../../src/config.ts'
import { createRelay, type Relay } from '../../src/index.ts'

/** The zone the test relays serve. */
export const DOMAIN = 'gate.test'

export interface TestRelay extends AsyncDisposable {
  relay: Relay
  home: string
  /** Its TCP multiaddr, for a node's `relay.addresses`. */
  address: string
  /** `127.0.0.1:<port>` of its TLS listener. */
  tls: { host: string; port: number }
}

/** A relay on loopback, random ports, in a fresh data dir; disposing stops it and removes the dir. */
export async function startTestRelay(
  config: Partial<RelayConfigInput['relay_server']> = {},
  home?: string,
): Promise<TestRelay> {
  const dir = home ?? (await mkdtemp(join(tmpdir(), 'gate-relay-')))
  const full: RelayConfigInput = {
    network: { p2p_port: 0, p2p_host: '127.0.0.1' },
    relay_server: {
      domain: DOMAIN,
      public_ip: '127.0.0.1',
      tls_host: '127.0.0.1',
      tls_port: 0,
      ...config,
      dns: { host: '127.0.0.1', port: 0, ...config.dns },
      metrics: { host: '127.0.0.1', port: 0, ...config.metrics },
    },
  }
  await writeFile(join(dir, 'relay.json'), JSON.stringify(full, null, 2))
  const relay = createRelay({ home: dir, keyring: null, passphrase: 'relay-test' })
  await relay.start()
  const { runtime } = relay
  return {
    relay,
    home: dir,
    address: runtime.p2p.find((a) => a.includes('/tcp/')) as string,
    tls: runtime.tls,
    async [Symbol.asyncDispose]() {
      await relay.stop()
      if (home === undefined) await rm(dir, { recursive: true, force: true })
    },
  }
}

/**
 * An undici dispatcher that resolves every name to 127.0.0.1 (as Chromium's
 * `--host-resolver-rules` does) and trusts `ca`: a client reaching `https://<node-id>.gate.test`.
 */
export function relayDispatcher(ca: string): Agent {
  return new Agent({
    connect: {
      ca,
      lookup: (_hostname, _options, callback) => callback(null, [{ address: '127.0.0.1', family: 4 }]),
    },
  })
}
