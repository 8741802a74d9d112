import type { MethodResult, ProviderStatus } from '@gate/rpc/client'
import { useState } from 'preact/hooks'
import { Cell } from '../components/cell.tsx'
import { ConfirmButton } from '../components/confirm-button.tsx'
import { Panel } from '../components/panel.tsx'
import { ago, ms, plural } from '../format.ts'
import { describe, useSession } from '../session.ts'
import { useCall } from '../use-call.ts'

const KINDS = ['ollama', 'lmstudio', 'openai'] as const
type Kind = (typeof KINDS)[number]
const DEFAULT_URLS: Record<Kind, string> = {
  ollama: 'http://localhost:11434/v1',
  lmstudio: 'http://localhost:1234/v1',
  openai: 'https://api.openai.com/v1',
}

type Probe = MethodResult<'test_provider'>

export function ProvidersPage() {
  // Health changes without an event: checked on the providers' own intervals.
  const providers = useCall('list_providers', undefined, { events: ['config_changed'], everyMs: 5000 })
  return (
    <>
      <Panel title="Configured providers" error={providers.error} loading={!providers.data}>
        {providers.data ? (
          <ProviderTable providers={providers.data.providers} onChange={providers.reload} />
        ) : null}
      </Panel>
      <Panel title="Add a provider">
        <ProviderForm onAdded={providers.reload} />
      </Panel>
    </>
  )
}

function health(p: ProviderStatus): { text: string; tone: 'ok' | 'warn' | 'error' } {
  if (!p.enabled) return { text: 'disabled', tone: 'warn' }
  if (p.healthy === null) return { text: 'checking', tone: 'warn' }
  return p.healthy ? { text: 'healthy', tone: 'ok' } : { text: 'unhealthy', tone: 'error' }
}

function ProviderTable({ providers, onChange }: { providers: ProviderStatus[]; onChange: () => void }) {
  const { rpc } = useSession()
  const [results, setResults] = useState<Record<string, { busy: boolean; text: string; ok: boolean }>>({})
  const [error, setError] = useState<string | null>(null)
  if (providers.length === 0)
    return <p class="muted">No providers: add a local engine or an OpenAI-compatible server below.</p>
  const test = async (name: string) => {
    setResults((r) => ({ ...r, [name]: { busy: true, text: 'Testing…', ok: true } }))
    let result: { busy: boolean; text: string; ok: boolean }
    try {
      result = { busy: false, ...describeProbe(await rpc.call('test_provider', { name })) }
    } catch (err) {
      result = { busy: false, text: describe(err), ok: false }
    }
    setResults((r) => ({ ...r, [name]: result }))
    onChange()
  }
  const remove = async (name: string) => {
    setError(null)
    try {
      await rpc.call('remove_provider', { name })
      onChange()
    } catch (err) {
      setError(describe(err))
    }
  }
  return (
    <>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      <table class="rows" data-testid="providers">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Health</th>
            <th scope="col">Breaker</th>
            <th scope="col">Models</th>
            <th scope="col">Latency</th>
            <th scope="col">Checked</th>
            <th scope="col">
              <span class="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {providers.map((p) => {
            const h = health(p)
            const result = results[p.name]
            return (
              <tr key={p.name} data-provider={p.name}>
                <Cell label="Name">
                  <strong>{p.name}</strong>
                  <div class="muted small-text">
                    {p.kind} · <span class="mono">{p.url}</span>
                  </div>
                </Cell>
                <Cell label="Health">
                  <span class={`badge ${h.tone}`}>{h.text}</span>
                  {p.last_error ? <div class="muted small-text">{p.last_error}</div> : null}
                </Cell>
                <Cell label="Breaker">
                  <span
                    class={`badge ${p.breaker === 'closed' ? 'ok' : p.breaker === 'open' ? 'error' : 'warn'}`}
                  >
                    {p.breaker.replace('_', '-')}
                  </span>
                </Cell>
                <Cell label="Models" class="mono">
                  {p.models.length > 0 ? p.models.join(', ') : '—'}
                </Cell>
                <Cell label="Latency">{ms(p.latency_ms)}</Cell>
                <Cell label="Checked">{ago(p.last_checked)}</Cell>
                <Cell label="">
                  <div class="row">
                    <button type="button" class="small" disabled={result?.busy} onClick={() => test(p.name)}>
                      Test
                    </button>
                    <ConfirmButton label={`Remove provider ${p.name}`} onConfirm={() => remove(p.name)}>
                      Remove
                    </ConfirmButton>
                  </div>
                  {result ? (
                    <div class={`small-text ${result.ok ? 'ok' : 'error'}`} role="status">
                      {result.text}
                    </div>
                  ) : null}
                </Cell>
              </tr>
            )
          })}
        </tbody>
      </table>
    </>
  )
}

function describeProbe(probe: Probe): { text: string; ok: boolean } {
  return probe.ok
    ? { text: `OK: ${plural(probe.models.length, 'model')} in ${ms(probe.latency_ms)}`, ok: true }
    : { text: `Failed after ${ms(probe.latency_ms)}: ${probe.error ?? 'no answer'}`, ok: false }
}

function ProviderForm({ onAdded }: { onAdded: () => void }) {
  const { rpc } = useSession()
  const [name, setName] = useState('')
  const [kind, setKind] = useState<Kind>('ollama')
  const [url, setUrl] = useState('')
  const [apiKey, setApiKey] = useState('')
  const [busy, setBusy] = useState(false)
  const [message, setMessage] = useState<{ text: string; ok: boolean } | null>(null)
  const entry = () => ({
    kind,
    url: url.trim() || DEFAULT_URLS[kind],
    ...(apiKey ? { api_key: apiKey } : {}),
  })
  const run = async (action: () => Promise<{ text: string; ok: boolean }>) => {
    setBusy(true)
    setMessage(null)
    try {
      setMessage(await action())
    } catch (err) {
      setMessage({ text: describe(err), ok: false })
    } finally {
      setBusy(false)
    }
  }
  const add = (event: Event) => {
    event.preventDefault()
    void run(async () => {
      const { provider } = await rpc.call('add_provider', { name: name.trim(), ...entry() })
      setName('')
      setUrl('')
      setApiKey('')
      onAdded()
      const state = provider.healthy
        ? `healthy, ${plural(provider.models.length, 'model')}`
        : (provider.last_error ?? 'not answering yet')
      return { text: `Added ${provider.name} (${state}).`, ok: true }
    })
  }
  const test = () => run(async () => describeProbe(await rpc.call('test_provider', entry())))
  return (
    <form class="stack" onSubmit={add}>
      <div class="form-grid">
        <div class="field">
          <label for="provider-name">Name</label>
          <input
            id="provider-name"
            required
            autocomplete="off"
            value={name}
            onInput={(e) => setName(e.currentTarget.value)}
          />
        </div>
        <div class="field">
          <label for="provider-kind">Kind</label>
          <select id="provider-kind" value={kind} onChange={(e) => setKind(e.currentTarget.value as Kind)}>
            {KINDS.map((k) => (
              <option key={k} value={k}>
                {k}
              </option>
            ))}
          </select>
        </div>
        <div class="field wide">
          <label for="provider-url">URL</label>
          <input
            id="provider-url"
            class="mono"
            autocomplete="off"
            spellcheck={false}
            placeholder={DEFAULT_URLS[kind]}
            value={url}
            onInput={(e) => setUrl(e.currentTarget.value)}
          />
        </div>
        <div class="field wide">
          <label for="provider-key">
            API key <span class="muted">(optional)</span>
          </label>
          <input
            id="provider-key"
            type="password"
            autocomplete="off"
            value={apiKey}
            onInput={(e) => setApiKey(e.currentTarget.value)}
          />
        </div>
      </div>
      <div class="row">
        <button type="submit" disabled={busy}>
          Add provider
        </button>
        <button type="button" class="secondary" disabled={busy} onClick={test}>
          Test first
        </button>
      </div>
      {message ? (
        <p class={message.ok ? 'ok' : 'error'} role={message.ok ? 'status' : 'alert'}>
          {message.text}
        </p>
      ) : null}
    </form>
  )
}
