import { DEFAULT_PROVIDER_URLS } from '@gate/core'
import { type FoundEngine, findEngines, normalizeProviderUrl } from '@gate/daemon'
import type { Command } from 'commander'
import { output, progress } from '../context.ts'
import { changeConfig } from './config.ts'

interface Found extends FoundEngine {
  /** What setup did with it. */
  action: 'added' | 'already configured' | 'not found'
}

export function registerSetupCommand(program: Command): void {
  program
    .command('setup')
    .description('detect Ollama and LM Studio on their default ports and add them as providers')
    .option('--config <path>', 'config file (default: config.json in the data dir)')
    .option('--ollama-url <url>', 'where to look for Ollama', DEFAULT_PROVIDER_URLS.ollama)
    .option('--lmstudio-url <url>', 'where to look for LM Studio', DEFAULT_PROVIDER_URLS.lmstudio)
    .option('--json', 'print JSON')
    .action(async (options: { config?: string; ollamaUrl: string; lmstudioUrl: string; json?: boolean }) => {
      const urls = { ollama: options.ollamaUrl, lmstudio: options.lmstudioUrl }
      progress(`looking for engines at ${Object.values(urls).map(normalizeProviderUrl).join(' and ')}…`)
      const found: Found[] = (await findEngines(urls)).map((engine) => ({
        ...engine,
        action: engine.ok ? 'added' : 'not found',
      }))
      let restart: string[] | null = null
      if (found.some((f) => f.ok)) {
        restart = await changeConfig(options.config, (raw) => {
          const providers = Array.isArray(raw.providers)
            ? (raw.providers as Array<Record<string, unknown>>)
            : []
          for (const engine of found.filter((f) => f.ok)) {
            if (providers.some((p) => normalizeProviderUrl(String(p.url)) === engine.url)) {
              engine.action = 'already configured'
              continue
            }
            providers.push({ name: uniqueName(engine.name, providers), kind: engine.kind, url: engine.url })
          }
          raw.providers = providers
        })
      }
      output(options.json, { engines: found }, () => {
        const lines = found.map((f) =>
          f.ok
            ? `✓ ${f.name} at ${f.url}: ${f.models.length} models (${f.action})`
            : `✗ ${f.name} at ${f.url}: not found (${f.error})`,
        )
        if (!found.some((f) => f.ok)) {
          lines.push('no engine found: start Ollama or LM Studio and run gate setup again')
        } else if (restart === null) {
          lines.push('saved to the config; gate daemon uses it at start')
        } else {
          lines.push('the running daemon uses it now')
        }
        return lines.join('\n')
      })
    })
}

function uniqueName(base: string, providers: Array<Record<string, unknown>>): string {
  const taken = new Set(providers.map((p) => p.name))
  let name = base
  for (let i = 2; taken.has(name); i++) name = `${base}-${i}`
  return name
}
