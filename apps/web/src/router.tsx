import type { ComponentChildren } from 'preact'
import { useEffect, useState } from 'preact/hooks'

const listeners = new Set<() => void>()

/** Goes to a page of the app without reloading it; the address bar and history follow. */
export function navigate(path: string): void {
  if (path === location.pathname) return
  history.pushState(null, '', path)
  for (const listener of listeners) listener()
}

/** The current path; re-renders on navigation and on the browser's back and forward. */
export function usePath(): string {
  const [path, setPath] = useState(location.pathname)
  useEffect(() => {
    const update = () => setPath(location.pathname)
    listeners.add(update)
    addEventListener('popstate', update)
    return () => {
      listeners.delete(update)
      removeEventListener('popstate', update)
    }
  }, [])
  return path
}

interface LinkProps {
  href: string
  children: ComponentChildren
  class?: string
  current?: boolean
}

/** A real link (it opens in a new tab, shows its URL), followed in place on a plain click. */
export function Link({ href, children, current, ...rest }: LinkProps) {
  return (
    <a
      href={href}
      aria-current={current ? 'page' : undefined}
      onClick={(event) => {
        if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return
        event.preventDefault()
        navigate(href)
      }}
      {...rest}
    >
      {children}
    </a>
  )
}
