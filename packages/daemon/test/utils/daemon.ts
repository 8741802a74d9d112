import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ConfigInput } from '@gate/core'
import OpenAI from 'openai'
import { createDaemon, type Daemon, type DaemonInit } from '../../src/index.ts'

export interface TestDaemon extends AsyncDisposable {
  daemon: Daemon
  home: string
  /** `http://127.0.0.1:<port>` of the API. */
  url: string
  /** `http://127.0.0.1:<port>` of the control port. */
  controlUrl: string
  token: string
  /** The official SDK, pointed at the daemon, with retries off so failures show as they are. */
  client: OpenAI
}

/** Starts a daemon in a fresh temp data dir on random loopback ports; dispose stops it and removes the dir. */
export async function startTestDaemon(
  config: ConfigInput = {},
  init: {
    shutdownGraceMs?: number
    passphrase?: string | undefined
    engineUrls?: DaemonInit['engineUrls']
    webDist?: string
  } = {},
): Promise<TestDaemon> {
  const home = await mkdtemp(join(tmpdir(), 'gate-test-'))
  await mkdir(home, { recursive: true })
  const full = {
    ...config,
    node: { shutdown_grace: (init.shutdownGraceMs ?? 2000) / 1000, ...config.node },
    network: { http_port: 0, control_port: 0, p2p_port: 0, p2p_host: '127.0.0.1', ...config.network },
  }
  await writeFile(join(home, 'config.json'), JSON.stringify(full, null, 2))
  const passphrase = 'passphrase' in init ? init.passphrase : 'test-passphrase'
  const daemon = createDaemon({
    home,
    keyring: null,
    ...(init.engineUrls ? { engineUrls: init.engineUrls } : {}),
    ...(init.webDist ? { webDist: init.webDist } : {}),
    // `passphrase: undefined`: none, as on a machine without GATE_PASSPHRASE.
    ...(passphrase === undefined ? {} : { passphrase }),
  })
  await daemon.start()
  const { http, control } = daemon.runtime
  const { readFile } = await import('node:fs/promises')
  const token = (await readFile(join(home, 'control.token'), 'utf8')).trim()
  const url = `http://127.0.0.1:${http.port}`
  return {
    daemon,
    home,
    url,
    controlUrl: `http://127.0.0.1:${control.port}`,
    token,
    client: new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-local', maxRetries: 0, timeout: 10_000 }),
    async [Symbol.asyncDispose]() {
      await daemon.stop()
      await rm(home, { recursive: true, force: true })
    },
  }
}

/** A provider entry for a fake engine. */
export function providerFor(name: string, engine: { url: string }, extra: Record<string, unknown> = {}) {
  return { name, kind: 'openai' as const, url: `${engine.url}/v1`, health_check_interval: 60, ...extra }
}
