import { webcrypto, X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import https from 'node:https'
import { join } from 'node:path'
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls'
import { describeError, ensureDir, type Logger, writeFileAtomic } from '@gate/core'
import type { CertificateStatus } from '@gate/rpc'
import * as x509 from '@peculiar/x509'
import acme from 'acme-client'

export interface AcmeSettings {
  directoryUrl: string
  email?: string | undefined
  /** Extra CA (PEM) trusted for the ACME API only. */
  ca?: string | undefined
  /** Renew this long before expiry. */
  renewBeforeMs: number
}

/** Publishes and removes `_acme-challenge` TXT values for a name: the relay that serves the name. */
export type ChallengePublisher = (name: string) => {
  publish(value: string): Promise<void>
  remove(value: string): Promise<void>
}

export interface CertificatesInit {
  /** `certs/` in the data dir. */
  dir: string
  acme?: AcmeSettings | undefined
  challenges: ChallengePublisher
  logger: Logger
  /** Told when the serving certificate changes. */
  onChange?: () => void
}

/** How long a self-signed certificate lasts. @default 365 days */
const SELF_SIGNED_DAYS = 365
/** The first wait after a failed ACME order, doubled each time up to an hour. @default 60 s */
const RETRY_MIN_MS = 60_000
const RETRY_MAX_MS = 3_600_000
/** How long one ACME API call may take. @default 10 s */
const ACME_TIMEOUT_MS = 10_000

/**
 * The certificate and key a node terminates relayed TLS with, for its public names, kept in
 * `certs/` (written atomically, key 0600). Without ACME it makes a self-signed one; with ACME it
 * orders one by DNS-01 (`acme-client`), the relay publishing the challenge, renews it before it
 * expires, backs off on failure and meanwhile serves what it has. The TLS context is swapped in
 * place: connections open keep theirs.
 */
export class Certificates {
  readonly #init: CertificatesInit
  #names: string[] = []
  #context: SecureContext | undefined
  #status: CertificateStatus | null = null
  #timer: NodeJS.Timeout | undefined
  #failures = 0
  #stopped = false

  constructor(init: CertificatesInit) {
    this.#init = init
  }

  /** The TLS context to serve now; undefined until `ensure` has run. */
  get context(): SecureContext | undefined {
    return this.#context
  }

  get status(): CertificateStatus | null {
    return this.#status
  }

  /**
   * Serves `names` from now on: the certificate on disk if it covers them and is valid, else a new
   * self-signed one at once; with ACME, orders one unless the one on disk is from the CA and not
   * due for renewal.
   */
  async ensure(names: string[]): Promise<void> {
    this.#names = [...new Set(names)].sort()
    await ensureDir(this.#init.dir, 0o700)
    const current = await this.#load()
    if (current && covers(current.cert, this.#names) && current.cert.validToDate > new Date()) {
      this.#use(current.chain, current.key, 'ok', null)
    } else {
      const made = await selfSigned(this.#names)
      await this.#save(made.chain, made.key)
      this.#use(made.chain, made.key, 'ok', null)
    }
    if (this.#init.acme) this.#schedule()
  }

  stop(): void {
    this.#stopped = true
    clearTimeout(this.#timer)
  }

  /** Orders now if the serving certificate is self-signed or due, else when it is due. */
  #schedule(delay?: number): void {
    clearTimeout(this.#timer)
    if (this.#stopped) return
    const wait = delay ?? this.#dueIn()
    this.#timer = setTimeout(() => void this.#renew(), Math.max(0, Math.min(wait, 2 ** 31 - 1)))
    this.#timer.unref()
  }

  #dueIn(): number {
    const status = this.#status
    if (!status || status.self_signed || !this.#init.acme) return 0
    return Date.parse(status.expires_at) - this.#init.acme.renewBeforeMs - Date.now()
  }

  async #renew(): Promise<void> {
    const settings = this.#init.acme as AcmeSettings
    const status = this.#status
    if (status) this.#status = { ...status, state: status.self_signed ? 'issuing' : status.state }
    try {
      const { chain, key } = await this.#order(settings)
      await this.#save(chain, key)
      this.#use(chain, key, 'ok', null)
      this.#failures = 0
      this.#init.logger.info(
        { names: this.#names, expires_at: this.#status?.expires_at },
        'certificate issued',
      )
      this.#schedule()
    } catch (err) {
      this.#failures++
      const error = describeError(err)
      if (this.#status) this.#status = { ...this.#status, state: 'failed', error }
      const retry = Math.min(RETRY_MIN_MS * 2 ** (this.#failures - 1), RETRY_MAX_MS)
      this.#init.logger.warn(
        { names: this.#names, err: error, retry_in_s: retry / 1000 },
        'certificate order failed',
      )
      this.#schedule(retry)
    }
  }

  async #order(settings: AcmeSettings): Promise<{ chain: string; key: string }> {
    configureAcme(settings)
    const accountKey = await this.#accountKey()
    const accountFile = join(this.#init.dir, 'acme-account.json')
    const account = JSON.parse(await readFile(accountFile, 'utf8').catch(() => '{}')) as {
      url?: string
      directory?: string
    }
    const client = new acme.Client({
      directoryUrl: settings.directoryUrl,
      accountKey,
      ...(account.url && account.directory === settings.directoryUrl ? { accountUrl: account.url } : {}),
      backoffAttempts: 30,
      backoffMin: 250,
      backoffMax: 5000,
    })
    const key = await acme.crypto.createPrivateEcdsaKey('P-256')
    const [, csr] = await acme.crypto.createCsr({ altNames: this.#names }, key)
    const chain = await client.auto({
      csr,
      termsOfServiceAgreed: true,
      ...(settings.email ? { email: settings.email } : {}),
      challengePriority: ['dns-01'],
      // Its own check asks the system's resolver, which may not see the relay's zone: the relay
      // answers a challenge only once it is published, which is the check that matters.
      skipChallengeVerification: true,
      challengeCreateFn: (authz, _challenge, value) =>
        this.#init.challenges(authz.identifier.value).publish(value),
      challengeRemoveFn: (authz, _challenge, value) =>
        this.#init.challenges(authz.identifier.value).remove(value),
    })
    await writeFileAtomic(
      accountFile,
      `${JSON.stringify({ url: client.getAccountUrl(), directory: settings.directoryUrl })}\n`,
      { mode: 0o600 },
    )
    return { chain, key: key.toString() }
  }

  async #accountKey(): Promise<Buffer> {
    const file = join(this.#init.dir, 'acme-account.key')
    try {
      return await readFile(file)
    } catch {
      const key = await acme.crypto.createPrivateEcdsaKey('P-256')
      await writeFileAtomic(file, key, { mode: 0o600 })
      return key
    }
  }

  #use(chain: string, key: string, state: CertificateStatus['state'], error: string | null): void {
    const cert = new X509Certificate(chain)
    this.#context = createSecureContext({ cert: chain, key })
    const selfSigned = cert.issuer === cert.subject
    const expires = cert.validToDate
    this.#status = {
      issuer: cert.issuer.replace(/^CN=/, ''),
      self_signed: selfSigned,
      names: this.#names,
      expires_at: expires.toISOString(),
      renews_at:
        this.#init.acme && !selfSigned
          ? new Date(expires.getTime() - this.#init.acme.renewBeforeMs).toISOString()
          : null,
      state,
      error,
    }
    this.#init.onChange?.()
  }

  get #paths(): { chain: string; key: string } {
    return { chain: join(this.#init.dir, 'node.crt'), key: join(this.#init.dir, 'node.key') }
  }

  async #load(): Promise<{ chain: string; key: string; cert: X509Certificate } | null> {
    try {
      const chain = await readFile(this.#paths.chain, 'utf8')
      const key = await readFile(this.#paths.key, 'utf8')
      return { chain, key, cert: new X509Certificate(chain) }
    } catch {
      return null
    }
  }

  async #save(chain: string, key: string): Promise<void> {
    // The key first: a certificate on disk always has its key beside it.
    await writeFileAtomic(this.#paths.key, key, { mode: 0o600 })
    await writeFileAtomic(this.#paths.chain, chain, { mode: 0o644 })
  }
}

/** Whether `cert` names every one of `names`. */
function covers(cert: X509Certificate, names: string[]): boolean {
  const sans = (cert.subjectAltName ?? '').split(', ').map((s) => s.replace(/^DNS:/, '').toLowerCase())
  return names.every((name) => sans.includes(name))
}

/** A self-signed certificate for `names`, and its key (P-256). @peculiar/x509: Node's crypto cannot make certificates. */
export async function selfSigned(names: string[]): Promise<{ chain: string; key: string }> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' }
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as CryptoKeyPair
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: `CN=${names[0] ?? 'gate'}`,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + SELF_SIGNED_DAYS * 86_400_000),
      keys,
      signingAlgorithm: algorithm,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.SubjectAlternativeNameExtension(names.map((value) => ({ type: 'dns' as const, value }))),
      ],
    },
    webcrypto as unknown as Crypto,
  )
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)
  return { chain: cert.toString('pem'), key: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') }
}

/**
 * acme-client's HTTP settings (one axios instance for the process): fail within seconds instead
 * of its default five retries over 75 s, with the real cause rather than the TypeError its retry
 * interceptor makes of an error without a response, and `ca` trusted for its calls only.
 */
function configureAcme(settings: AcmeSettings): void {
  const defaults = acme.axios.defaults as typeof acme.axios.defaults & {
    acmeSettings: { retryMaxAttempts: number }
  }
  defaults.timeout = ACME_TIMEOUT_MS
  defaults.acmeSettings.retryMaxAttempts = 0
  defaults.httpsAgent = new https.Agent(settings.ca ? { ca: [...rootCertificates, settings.ca] } : {})
  if (!configured) {
    configured = true
    const handlers = (acme.axios.interceptors.response as unknown as { handlers: unknown[] }).handlers
    handlers.unshift({
      fulfilled: (response: unknown) => response,
      rejected: (err: { response?: unknown; code?: string; message: string }) =>
        Promise.reject(
          err.response
            ? err
            : Object.assign(new Error(`ACME directory unreachable: ${err.message}`), { code: err.code }),
        ),
      synchronous: false,
      runWhen: null,
    })
  }
}

let configured = false
