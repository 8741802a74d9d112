import {
  DEFAULT_PROVIDER_URLS,
  type ProviderConfig,
  ProviderConfigSchema,
  type ProviderKind,
} from '@gate/core'
import type { ProviderStatus } from '@gate/rpc'
import type { EngineView } from '../api/router.ts'
import { normalizeProviderUrl, type ProbeResult, Provider, probeEngine } from './provider.ts'

/**
 * The providers of the current config. `update` reconciles with a new config: unchanged
 * providers keep their pools, health and breakers; changed ones are replaced.
 */
export class ProviderRegistry {
  #providers = new Map<string, { provider: Provider; key: string }>()
  #started = false

  get list(): Provider[] {
    return [...this.#providers.values()].map((e) => e.provider)
  }

  get(name: string): Provider | undefined {
    return this.#providers.get(name)?.provider
  }

  /** Enabled providers as request routing sees them, in config order. */
  views(): EngineView[] {
    return this.#enabled().map((p) => ({
      name: p.name,
      models: p.models,
      healthy: p.healthy,
      available: p.breaker.available,
      error: p.lastError,
    }))
  }

  /** Waits for the first health check of providers that have not answered one yet. */
  async settle(): Promise<void> {
    await Promise.all(
      this.#enabled()
        .filter((p) => p.healthy === null)
        .map((p) => p.check()),
    )
  }

  /** Every model of every healthy enabled provider, once. */
  models(): string[] {
    const all = new Set<string>()
    for (const p of this.#enabled()) if (p.healthy !== false) for (const m of p.models) all.add(m)
    return [...all]
  }

  #enabled(): Provider[] {
    return this.list.filter((p) => p.config.enabled)
  }

  async update(configs: ProviderConfig[]): Promise<void> {
    const next = new Map<string, { provider: Provider; key: string }>()
    const retired: Provider[] = []
    for (const config of configs) {
      const key = JSON.stringify(config)
      const current = this.#providers.get(config.name)
      if (current?.key === key) {
        next.set(config.name, current)
        continue
      }
      if (current) retired.push(current.provider)
      const provider = new Provider(config)
      if (this.#started && config.enabled) provider.start()
      next.set(config.name, { provider, key })
    }
    for (const [name, entry] of this.#providers) if (!next.has(name)) retired.push(entry.provider)
    this.#providers = next
    await Promise.all(retired.map((p) => p.stop({ graceful: true })))
  }

  start(): void {
    this.#started = true
    for (const p of this.#enabled()) p.start()
  }

  async stop(): Promise<void> {
    this.#started = false
    await Promise.all(this.list.map((p) => p.stop()))
  }

  status(): ProviderStatus[] {
    return this.list.map((p) => p.status())
  }
}

/** The local engines Gate looks for, each by its kind's name. */
const LOCAL_ENGINES = ['ollama', 'lmstudio'] as const satisfies readonly ProviderKind[]

/** One local engine looked for: where, and what its probe found. */
export interface FoundEngine extends ProbeResult {
  name: string
  kind: ProviderKind
  url: string
}

/**
 * Looks for Ollama and LM Studio, at `urls` or their default URLs, at once: what `gate setup`
 * reports, and what a new config starts with.
 */
export function findEngines(
  urls: Partial<Record<(typeof LOCAL_ENGINES)[number], string>> = {},
): Promise<FoundEngine[]> {
  return Promise.all(
    LOCAL_ENGINES.map(async (kind) => {
      const url = normalizeProviderUrl(urls[kind] ?? DEFAULT_PROVIDER_URLS[kind])
      const result = await probeEngine(ProviderConfigSchema.parse({ name: kind, kind, url }))
      return { name: kind, kind, url, ...result }
    }),
  )
}

/** Provider entries for the local engines that answer. */
export async function detectEngines(urls: Parameters<typeof findEngines>[0] = {}): Promise<ProviderConfig[]> {
  const found = await findEngines(urls)
  return found
    .filter((engine) => engine.ok)
    .map(({ name, kind, url }) => ProviderConfigSchema.parse({ name, kind, url }))
}
