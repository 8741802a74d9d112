import type { DetectedEngine } from '@gate/rpc/client'
import { useState } from 'preact/hooks'
import { CopyButton } from '../components/copy-button.tsx'
import { InviteMaker, PeerAdder } from '../components/pairing.tsx'
import { Panel } from '../components/panel.tsx'
import { ms, plural } from '../format.ts'
import { Link } from '../router.tsx'
import { describe, useSession } from '../session.ts'
import { useCall } from '../use-call.ts'

/** First run: find the local engines, add the ones wanted, and pair with another machine. */
export function SetupPage() {
  const { nodeId } = useSession()
  return (
    <>
      <p class="lead">
        Three steps to a working node. Everything here can be changed later on the other pages.
      </p>
      <Panel title="1. Local engines">
        <EngineChooser />
      </Panel>
      <Panel title="2. This node">
        <p>Other machines know this node by its ID:</p>
        <p class="node-id">
          <code class="mono wrap">{nodeId}</code> <CopyButton text={nodeId} label="Copy node ID" />
        </p>
      </Panel>
      <Panel title="3. Pair with another machine">
        <p class="muted">
          Make an invite here and paste it into the other machine's dashboard (or run{' '}
          <code>gate peers join &lt;code&gt;</code> there); or paste here an invite made on the other machine.
        </p>
        <div class="grid">
          <InviteMaker />
          <PeerAdder onAdded={() => {}} />
        </div>
      </Panel>
    </>
  )
}

function EngineChooser() {
  const { rpc } = useSession()
  const detected = useCall('detect_engines')
  const [chosen, setChosen] = useState<Record<string, boolean>>({})
  const [message, setMessage] = useState<{ text: string; ok: boolean } | null>(null)
  const [busy, setBusy] = useState(false)
  const engines = detected.data?.engines
  const addable = (e: DetectedEngine) => e.ok && e.configured_as === null
  const add = async () => {
    setBusy(true)
    setMessage(null)
    const added: string[] = []
    try {
      for (const engine of engines ?? []) {
        if (!addable(engine) || chosen[engine.name] === false) continue
        await rpc.call('add_provider', { name: engine.name, kind: engine.kind, url: engine.url })
        added.push(engine.name)
      }
      setMessage({ text: added.length > 0 ? `Added ${added.join(' and ')}.` : 'Nothing to add.', ok: true })
      detected.reload()
    } catch (err) {
      setMessage({ text: describe(err), ok: false })
    } finally {
      setBusy(false)
    }
  }
  if (detected.error)
    return (
      <p class="error" role="alert">
        {detected.error}
      </p>
    )
  if (!engines) return <p class="muted">Looking for Ollama and LM Studio on this machine…</p>
  return (
    <div class="stack">
      <ul class="choices">
        {engines.map((engine) => (
          <li key={engine.name}>
            <label class="check">
              <input
                type="checkbox"
                disabled={!addable(engine)}
                checked={addable(engine) ? chosen[engine.name] !== false : engine.configured_as !== null}
                onChange={(e) => setChosen((c) => ({ ...c, [engine.name]: e.currentTarget.checked }))}
              />
              <span>
                <strong>{engine.name}</strong> <span class="mono">{engine.url}</span>
                <br />
                {engine.ok ? (
                  <span class="ok">
                    found: {plural(engine.models.length, 'model')} in {ms(engine.latency_ms)}
                    {engine.configured_as ? ` (already added as ${engine.configured_as})` : ''}
                  </span>
                ) : (
                  <span class="muted">not found ({engine.error ?? 'no answer'})</span>
                )}
              </span>
            </label>
          </li>
        ))}
      </ul>
      <div class="row">
        <button type="button" disabled={busy || !engines.some(addable)} onClick={add}>
          Add the chosen engines
        </button>
        <button type="button" class="secondary" onClick={detected.reload}>
          Look again
        </button>
      </div>
      {message ? (
        <p class={message.ok ? 'ok' : 'error'} role={message.ok ? 'status' : 'alert'}>
          {message.text}
        </p>
      ) : null}
      <p class="muted">
        Another engine or an OpenAI-compatible server? Add it on the <Link href="/providers">Providers</Link>{' '}
        page.
      </p>
    </div>
  )
}
