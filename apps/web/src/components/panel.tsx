import type { ComponentChildren } from 'preact'

interface PanelProps {
  title: string
  /** The panel's own failure: shown here, whatever the other panels do. */
  error?: string | undefined
  /** Nothing loaded yet (and no error). */
  loading?: boolean
  actions?: ComponentChildren
  children?: ComponentChildren
  class?: string
}

/** A titled section of a page, with its own loading and error state. */
export function Panel({ title, error, loading, actions, children, class: extra }: PanelProps) {
  const id = `panel-${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`
  return (
    <section class={extra ? `panel ${extra}` : 'panel'} aria-labelledby={id}>
      <header class="panel-head">
        <h2 id={id}>{title}</h2>
        {actions ? <div class="panel-actions">{actions}</div> : null}
      </header>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      {loading && !error ? <p class="muted">Loading…</p> : children}
    </section>
  )
}
