import type { ComponentChildren } from 'preact'

interface CellProps {
  /** The column's name, shown before the value when a narrow screen turns rows into cards. */
  label: string
  class?: string
  title?: string | undefined
  children?: ComponentChildren
}

/** A table cell whose content is one box, so that on a narrow screen it sits beside its label. */
export function Cell({ label, class: extra, title, children }: CellProps) {
  return (
    <td data-label={label} class={extra} title={title}>
      <div>{children}</div>
    </td>
  )
}
