import { performance } from 'node:perf_hooks'
import { Breaker, describeError, isOutOfDescriptors, type ProviderConfig } from '@gate/core'
import type { MethodResults, ProviderStatus } from '@gate/rpc'
import { Pool } from 'undici'
import { HEALTH_CHECK_TIMEOUT_MS } from '../constants.ts'

/** Turns any accepted provider URL into the base an OpenAI SDK would take (ending in `/v1`). */
export function normalizeProviderUrl(url: string): string {
  const u = new URL(url)
  let path = u.pathname.replace(/\/+$/, '')
  if (!path.endsWith('/v1')) path += '/v1'
  return `${u.origin}${path}`
}

/**
 * One engine the daemon forwards to: a keep-alive connection pool, a health check on an
 * interval that also refreshes the model list, and a circuit breaker.
 */
export class Provider {
  readonly config: ProviderConfig
  readonly baseUrl: string
  /** Path prefix of the OpenAI API on the engine's origin, e.g. `/v1`. */
  readonly basePath: string
  readonly breaker = new Breaker()
  readonly pool: Pool
  healthy: boolean | null = null
  models: string[]
  lastError: string | null = null
  lastChecked: Date | null = null
  /** How long the last health check that answered took, in ms. */
  latency: number | null = null
  readonly #authorization: string | undefined
  #timer: NodeJS.Timeout | undefined
  #checking: Promise<void> | undefined
  readonly #abort = new AbortController()

  constructor(config: ProviderConfig) {
    this.config = config
    this.baseUrl = normalizeProviderUrl(config.url)
    const url = new URL(this.baseUrl)
    this.basePath = url.pathname
    this.pool = new Pool(url.origin, { connections: 128, pipelining: 1, keepAliveTimeout: 30_000 })
    this.models = config.models ?? []
    this.#authorization = config.api_key ? `Bearer ${config.api_key}` : undefined
  }

  get name(): string {
    return this.config.name
  }

  /** Headers bound upstream with the provider's API key, when it has one (a copy then). */
  authorized<H extends Record<string, string | string[]>>(headers: H): H {
    return this.#authorization ? { ...headers, authorization: this.#authorization } : headers
  }

  start(): void {
    void this.check()
    this.#timer = setInterval(() => void this.check(), this.config.health_check_interval * 1000)
    this.#timer.unref()
  }

  /** Stops health checks; `graceful` lets requests in flight finish, else they are cancelled. */
  async stop({ graceful = false } = {}): Promise<void> {
    clearInterval(this.#timer)
    this.#abort.abort()
    await this.#checking
    await (graceful ? this.pool.close() : this.pool.destroy())
  }

  /** Health check and model discovery in one: the engine is healthy when it lists its models. */
  check(): Promise<void> {
    this.#checking ??= this.#check().finally(() => {
      this.#checking = undefined
    })
    return this.#checking
  }

  async #check(): Promise<void> {
    const start = performance.now()
    try {
      const models = await this.#discoverModels()
      this.models = this.config.models ?? models
      this.healthy = true
      this.lastError = null
      this.latency = Math.round((performance.now() - start) * 10) / 10
    } catch (err) {
      // Stopped, or this node is out of descriptors: says nothing of the engine's health.
      if (this.#abort.signal.aborted || isOutOfDescriptors(err)) return
      this.healthy = false
      this.lastError = describeError(err)
    } finally {
      this.lastChecked = new Date()
    }
  }

  async #discoverModels(): Promise<string[]> {
    if (this.config.kind === 'ollama') {
      const tags = (await this.#getJson(`${this.basePath.slice(0, -'/v1'.length)}/api/tags`)) as {
        models?: Array<{ name?: unknown }>
      }
      if (!Array.isArray(tags.models)) throw new Error('unexpected /api/tags answer')
      return tags.models.map((m) => m.name).filter((n): n is string => typeof n === 'string')
    }
    const list = (await this.#getJson(`${this.basePath}/models`)) as { data?: Array<{ id?: unknown }> }
    if (!Array.isArray(list.data)) throw new Error('unexpected /models answer')
    return list.data.map((m) => m.id).filter((id): id is string => typeof id === 'string')
  }

  async #getJson(path: string): Promise<unknown> {
    const headers = this.authorized({ accept: 'application/json' })
    const signal = AbortSignal.any([this.#abort.signal, AbortSignal.timeout(HEALTH_CHECK_TIMEOUT_MS)])
    const res = await this.pool.request({ method: 'GET', path, headers, signal })
    if (res.statusCode !== 200) {
      await res.body.dump()
      throw new Error(`GET ${path} answered ${res.statusCode}`)
    }
    return res.body.json()
  }

  status(): ProviderStatus {
    return {
      name: this.name,
      kind: this.config.kind,
      url: this.baseUrl,
      enabled: this.config.enabled,
      healthy: this.healthy,
      models: this.models,
      breaker: this.breaker.state,
      last_error: this.lastError,
      last_checked: this.lastChecked?.toISOString() ?? null,
      latency_ms: this.latency,
    }
  }
}

/** What `test_provider` answers: whether the engine answered, its models, how long it took. */
export type ProbeResult = MethodResults['test_provider']

/** Runs one health check and model discovery against a provider and times it. */
export async function probe(provider: Provider): Promise<ProbeResult> {
  const start = performance.now()
  await provider.check()
  return {
    ok: provider.healthy === true,
    models: provider.models,
    latency_ms: Math.round(performance.now() - start),
    error: provider.lastError,
  }
}

/** Probes an engine that is not (yet) a configured provider, e.g. for `gate setup`. */
export async function probeEngine(config: ProviderConfig): Promise<ProbeResult> {
  const provider = new Provider(config)
  try {
    return await probe(provider)
  } finally {
    await provider.stop()
  }
}
