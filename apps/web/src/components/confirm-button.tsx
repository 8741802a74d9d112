import type { ComponentChildren } from 'preact'
import { useState } from 'preact/hooks'

interface ConfirmButtonProps {
  /** What the second click does. */
  onConfirm: () => Promise<void>
  children: ComponentChildren
  /** Names the action for screen readers, e.g. "Remove peer abc…". */
  label: string
}

/**
 * A destructive action in two clicks on the same button (no modal dialog): the first asks, the
 * second does it; leaving the button cancels.
 */
export function ConfirmButton({ onConfirm, children, label }: ConfirmButtonProps) {
  const [asking, setAsking] = useState(false)
  const [busy, setBusy] = useState(false)
  const click = async () => {
    if (!asking) {
      setAsking(true)
      return
    }
    setBusy(true)
    try {
      await onConfirm()
    } finally {
      setBusy(false)
      setAsking(false)
    }
  }
  return (
    <button
      type="button"
      class={asking ? 'small danger' : 'small'}
      aria-label={asking ? `Confirm: ${label}` : label}
      disabled={busy}
      onClick={click}
      onBlur={() => setAsking(false)}
    >
      {asking ? 'Confirm' : children}
    </button>
  )
}
