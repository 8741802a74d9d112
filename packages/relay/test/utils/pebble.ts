import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { request } from 'node:https'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { selfSigned } from '../../../daemon/src/public/certificates.ts'

/** Let's Encrypt's ACME test server (Debian's `pebble`), started by a test. */
export interface Pebble extends AsyncDisposable {
  directoryUrl: string
  /** The CA of pebble's own HTTPS (not the one it issues from), and a file holding it. */
  httpsCa: string
  httpsCaFile: string
  /** The root pebble issues certificates under (a new one every start). */
  issuingRoot(): Promise<string>
}

/** A free TCP port on 127.0.0.1: pebble logs only the addresses it is given, so they are chosen first. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

function get(url: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request(url, { ca, timeout: 3000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d) => {
        body += d
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
      .on('error', reject)
      .end()
  })
}

/**
 * Starts pebble on loopback, validating DNS-01 challenges against `dnsServer` (`host:port`, UDP),
 * issuing certificates that last `validitySeconds`. Debian's package ships no certificate for
 * pebble's own HTTPS: the test makes one for `localhost`.
 */
export async function startPebble(dnsServer: string, validitySeconds = 3600): Promise<Pebble> {
  const dir = await mkdtemp(join(tmpdir(), 'gate-pebble-'))
  const { chain, key } = await selfSigned(['localhost'])
  const httpsCaFile = join(dir, 'cert.pem')
  await writeFile(httpsCaFile, chain)
  await writeFile(join(dir, 'key.pem'), key)
  const [acme, management, http, tls] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ]
  const config = {
    pebble: {
      listenAddress: `127.0.0.1:${acme}`,
      managementListenAddress: `127.0.0.1:${management}`,
      certificate: httpsCaFile,
      privateKey: join(dir, 'key.pem'),
      httpPort: http,
      tlsPort: tls,
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
      certificateValidityPeriod: validitySeconds,
    },
  }
  await writeFile(join(dir, 'pebble.json'), JSON.stringify(config))
  const proc: ChildProcess = spawn(
    'pebble',
    ['-config', join(dir, 'pebble.json'), '-dnsserver', dnsServer, '-strict=false'],
    {
      // No sleeps in validation, no bad nonces thrown in, no reuse of earlier authorizations.
      env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let log = ''
  proc.stdout?.on('data', (d) => {
    log += d
  })
  proc.stderr?.on('data', (d) => {
    log += d
  })
  const stop = () =>
    new Promise<void>((resolve) => {
      if (proc.exitCode !== null) return resolve()
      proc.once('exit', () => resolve())
      proc.kill('SIGTERM')
    })
  const directoryUrl = `https://localhost:${acme}/dir`
  const deadline = Date.now() + 10_000
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`pebble exited: ${log}`)
    if ((await get(directoryUrl, chain).catch(() => null))?.status === 200) break
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`pebble did not start: ${log}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    directoryUrl,
    httpsCa: chain,
    httpsCaFile,
    issuingRoot: async () => (await get(`https://localhost:${management}/roots/0`, chain)).body,
    async [Symbol.asyncDispose]() {
      await stop()
      await rm(dir, { recursive: true, force: true })
    },
  }
}
