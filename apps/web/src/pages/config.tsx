import type { MethodResult } from '@gate/rpc/client'
import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import { Panel } from '../components/panel.tsx'
import {
  CONFIG_FIELDS,
  CONFIG_SECTIONS,
  type ConfigField,
  fromInput,
  get,
  type InputValue,
  set,
  toInput,
} from '../config-fields.ts'
import { Link } from '../router.tsx'
import { describe, useSession } from '../session.ts'
import { useCall } from '../use-call.ts'

/** Pause in typing after which the edits are checked with `validate_config`. */
const VALIDATE_AFTER_MS = 300

type Config = Record<string, unknown>
type Saved = MethodResult<'update_config'>

export function ConfigPage() {
  const loaded = useCall('get_config', undefined, { events: ['config_changed'] })
  const config = loaded.data?.config as Config | undefined
  return (
    <Panel title="config.json" error={loaded.error} loading={!config}>
      {config && loaded.data ? (
        <ConfigForm config={config} path={loaded.data.path} onSaved={loaded.reload} />
      ) : null}
    </Panel>
  )
}

/** The edits that change something, as a partial config (what `update_config` merges in). */
function patchOf(config: Config, edits: Record<string, InputValue>): Config {
  let patch: Config = {}
  for (const field of CONFIG_FIELDS) {
    const input = edits[field.path]
    if (input === undefined) continue
    const value = fromInput(field, input)
    if (value !== undefined && JSON.stringify(value) !== JSON.stringify(get(config, field.path)))
      patch = set(patch, field.path, value)
  }
  return patch
}

function merged(config: Config, patch: Config): Config {
  let out = config
  for (const field of CONFIG_FIELDS) {
    const value = get(patch, field.path)
    if (value !== undefined) out = set(out, field.path, value)
  }
  return out
}

/** Splits `validate_config`'s messages (`network.http_port: expected …`) by the field they name. */
function byField(errors: string[]): { fields: Record<string, string>; other: string[] } {
  const fields: Record<string, string> = {}
  const other: string[] = []
  for (const error of errors) {
    const colon = error.indexOf(': ')
    const at = colon === -1 ? '' : error.slice(0, colon)
    const field = CONFIG_FIELDS.find((f) => at === f.path || at.startsWith(`${f.path}[`))
    if (field) fields[field.path] = fields[field.path] ?? error.slice(colon + 2)
    else other.push(error)
  }
  return { fields, other }
}

function ConfigForm({ config, path, onSaved }: { config: Config; path: string; onSaved: () => void }) {
  const { rpc } = useSession()
  const [edits, setEdits] = useState<Record<string, InputValue>>({})
  const [errors, setErrors] = useState<string[]>([])
  const [saved, setSaved] = useState<Saved | null>(null)
  const [failure, setFailure] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  const form = useRef<HTMLFormElement>(null)
  const patch = useMemo(() => patchOf(config, edits), [config, edits])
  const dirty = Object.keys(patch).length > 0
  const problems = byField(errors)

  const validate = async (): Promise<string[]> => {
    const result = await rpc.call('validate_config', { config: merged(config, patch) })
    setErrors(result.errors)
    return result.errors
  }

  useEffect(() => {
    const timer = setTimeout(
      () => void validate().catch((err) => setFailure(describe(err))),
      VALIDATE_AFTER_MS,
    )
    return () => clearTimeout(timer)
  }, [patch])

  const submit = async (event: Event) => {
    event.preventDefault()
    setBusy(true)
    setFailure(null)
    setSaved(null)
    try {
      if ((await validate()).length > 0) {
        form.current?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus()
        return
      }
      setSaved(await rpc.call('update_config', { config: patch }))
      setEdits({})
      onSaved()
    } catch (err) {
      setFailure(describe(err))
    } finally {
      setBusy(false)
    }
  }

  const restart = async () => {
    try {
      await rpc.call('node_restart')
      setSaved(null)
    } catch (err) {
      setFailure(describe(err))
    }
  }

  return (
    <form ref={form} class="stack config" onSubmit={submit} noValidate>
      <p class="muted">
        Editing <code class="mono">{path}</code>. Providers are on the{' '}
        <Link href="/providers">Providers</Link> page; API keys are not shown here.
      </p>
      {CONFIG_SECTIONS.map((section) => (
        <fieldset key={section.title}>
          <legend>{section.title}</legend>
          <div class="form-grid">
            {section.fields.map((field) => (
              <FieldInput
                key={field.path}
                field={field}
                value={edits[field.path] ?? toInput(field, get(config, field.path))}
                error={problems.fields[field.path]}
                onChange={(value) => setEdits((e) => ({ ...e, [field.path]: value }))}
              />
            ))}
          </div>
        </fieldset>
      ))}
      {problems.other.length > 0 ? (
        <ul class="error" role="alert">
          {problems.other.map((e) => (
            <li key={e}>{e}</li>
          ))}
        </ul>
      ) : null}
      <div class="row">
        <button type="submit" disabled={busy || !dirty}>
          {busy ? 'Saving…' : 'Save'}
        </button>
        <button type="button" class="secondary" disabled={busy || !dirty} onClick={() => setEdits({})}>
          Discard changes
        </button>
        {dirty ? <span class="muted">Unsaved changes</span> : null}
      </div>
      {failure ? (
        <p class="error" role="alert">
          {failure}
        </p>
      ) : null}
      {saved ? (
        <div class="ok" role="status" data-testid="config-saved">
          {saved.restart_required.length === 0 ? (
            <p>Saved and applied.</p>
          ) : (
            <p>
              Saved. Applied live except what needs a restart: {saved.restart_required.join(', ')}.{' '}
              <button type="button" class="small" onClick={restart}>
                Restart now
              </button>
            </p>
          )}
        </div>
      ) : null}
    </form>
  )
}

interface FieldInputProps {
  field: ConfigField
  value: InputValue
  error: string | undefined
  onChange: (value: InputValue) => void
}

function FieldInput({ field, value, error, onChange }: FieldInputProps) {
  const id = `field-${field.path.replaceAll('.', '-')}`
  const described = [error ? `${id}-error` : '', field.help ? `${id}-help` : ''].filter(Boolean).join(' ')
  const common = {
    id,
    name: field.path,
    'aria-invalid': error ? ('true' as const) : undefined,
    'aria-describedby': described || undefined,
  }
  const label = (
    <label for={id}>
      {field.label}
      {field.restart ? <span class="tag">restart</span> : null}
    </label>
  )
  const notes = (
    <>
      {field.help ? (
        <p class="muted small-text" id={`${id}-help`}>
          {field.help}
        </p>
      ) : null}
      {error ? (
        <p class="field-error" id={`${id}-error`}>
          {error}
        </p>
      ) : null}
    </>
  )
  if (field.kind === 'boolean')
    return (
      <div class="field check">
        <input
          {...common}
          type="checkbox"
          checked={value === true}
          onChange={(e) => onChange(e.currentTarget.checked)}
        />
        {label}
        {notes}
      </div>
    )
  return (
    <div class={field.kind === 'list' ? 'field wide' : 'field'}>
      {label}
      {field.kind === 'choice' ? (
        <select {...common} value={String(value)} onChange={(e) => onChange(e.currentTarget.value)}>
          {(field.choices ?? []).map((choice) => (
            <option key={choice} value={choice}>
              {choice}
            </option>
          ))}
        </select>
      ) : field.kind === 'list' ? (
        <textarea
          {...common}
          class="mono"
          rows={3}
          spellcheck={false}
          value={String(value)}
          onInput={(e) => onChange(e.currentTarget.value)}
        />
      ) : (
        <input
          {...common}
          inputMode={field.kind === 'number' ? 'decimal' : undefined}
          autocomplete="off"
          spellcheck={false}
          value={String(value)}
          onInput={(e) => onChange(e.currentTarget.value)}
        />
      )}
      {notes}
    </div>
  )
}
