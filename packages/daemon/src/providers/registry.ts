import type { ProviderConfig } from '@gate/core'
import { Provider, type ProviderStatus } from './provider.ts'

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

  /** Enabled providers that have `model` and may take a request now, in config order. */
  candidates(model: string): Provider[] {
    return this.list.filter((p) => p.config.enabled && p.serves(model))
  }

  /** Waits for the first health check of providers that have not answered one yet. */
  async settle(): Promise<void> {
    await Promise.all(this.list.filter((p) => p.config.enabled && p.healthy === null).map((p) => p.check()))
  }

  /** Whether any enabled provider lists `model`, whatever its health. */
  knows(model: string): boolean {
    return this.list.some((p) => p.config.enabled && p.hasModel(model) !== undefined)
  }

  /**
   * Enabled providers that are down and have never listed a model (down since start, with no
   * `models` in their config): any model may be theirs.
   */
  unknownDown(): Provider[] {
    return this.list.filter((p) => p.config.enabled && p.healthy === false && p.models.length === 0)
  }

  /** Every model of every healthy enabled provider, once. */
  models(): string[] {
    const all = new Set<string>()
    for (const p of this.list)
      if (p.config.enabled && p.healthy !== false) for (const m of p.models) all.add(m)
    return [...all]
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
    for (const p of this.list) if (p.config.enabled) p.start()
  }

  async stop(): Promise<void> {
    this.#started = false
    await Promise.all(this.list.map((p) => p.stop()))
  }

  status(): ProviderStatus[] {
    return this.list.map((p) => p.status())
  }
}
