import { useState } from 'preact/hooks'

/** Copies `text` to the clipboard and says whether it worked. */
export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [said, setSaid] = useState<string | null>(null)
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text)
      setSaid('Copied')
    } catch {
      setSaid('Copy failed: select the text and copy it')
    }
    setTimeout(() => setSaid(null), 2000)
  }
  return (
    <button type="button" class="small" onClick={copy} aria-live="polite">
      {said ?? label}
    </button>
  )
}
