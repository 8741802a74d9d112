import type { FunctionComponent } from 'preact'
import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import { forgetToken, type SignInResult, signIn, storedToken, takeTokenFromUrl } from './auth.ts'
import { LiveEvents, type LiveState } from './live.ts'
import { ConfigPage } from './pages/config.tsx'
import { LogsPage } from './pages/logs.tsx'
import { OverviewPage } from './pages/overview.tsx'
import { PeersPage } from './pages/peers.tsx'
import { ProvidersPage } from './pages/providers.tsx'
import { SetupPage } from './pages/setup.tsx'
import { SignInPage } from './pages/sign-in.tsx'
import { Link, usePath } from './router.tsx'
import { type Session, SessionContext } from './session.ts'

interface Page {
  path: string
  title: string
  view: FunctionComponent
}

const PAGES: Page[] = [
  { path: '/', title: 'Overview', view: OverviewPage },
  { path: '/peers', title: 'Peers', view: PeersPage },
  { path: '/providers', title: 'Providers', view: ProvidersPage },
  { path: '/config', title: 'Configuration', view: ConfigPage },
  { path: '/logs', title: 'Logs', view: LogsPage },
  { path: '/setup', title: 'Setup', view: SetupPage },
]

type Auth =
  | { state: 'checking' }
  | { state: 'signed-out'; message: string | null; busy: boolean }
  | { state: 'signed-in'; session: Omit<Session, 'signOut'> }

/** Signs in (from the URL's token, the session's, or the form), then shows the pages. */
export function App() {
  const [auth, setAuth] = useState<Auth>({ state: 'checking' })
  const accept = (result: SignInResult) => {
    if (result.ok)
      setAuth({
        state: 'signed-in',
        session: { rpc: result.rpc, nodeId: result.nodeId, live: new LiveEvents() },
      })
    else setAuth({ state: 'signed-out', message: result.message, busy: false })
  }
  useEffect(() => {
    const token = takeTokenFromUrl() ?? storedToken()
    if (token) void signIn(token).then(accept)
    else setAuth({ state: 'signed-out', message: null, busy: false })
  }, [])
  const signOut = (message?: string) => {
    forgetToken()
    setAuth({ state: 'signed-out', message: message ?? null, busy: false })
  }
  if (auth.state === 'checking') return <p class="muted center">Signing in…</p>
  if (auth.state === 'signed-out')
    return (
      <SignInPage
        message={auth.message}
        busy={auth.busy}
        onSubmit={(token) => {
          setAuth({ state: 'signed-out', message: null, busy: true })
          void signIn(token).then(accept)
        }}
      />
    )
  return <Dashboard session={auth.session} signOut={signOut} />
}

function Dashboard({
  session,
  signOut,
}: {
  session: Omit<Session, 'signOut'>
  signOut: (message?: string) => void
}) {
  const path = usePath()
  const page = PAGES.find((p) => p.path === path)
  const [live, setLive] = useState<LiveState>(session.live.state)
  const value = useMemo(() => ({ ...session, signOut }), [session])
  const heading = useRef<HTMLHeadingElement>(null)

  useEffect(() => {
    const controller = new AbortController()
    const off = session.live.onState(setLive)
    void session.live.run(session.rpc, controller.signal, () =>
      signOut('The daemon no longer accepts this token: sign in again.'),
    )
    return () => {
      off()
      controller.abort()
    }
  }, [session])

  // A new page: its title in the tab, and focus on its heading so that a screen reader announces it.
  const first = useRef(true)
  useEffect(() => {
    document.title = page ? `${page.title} · Gate` : 'Gate'
    if (first.current) first.current = false
    else heading.current?.focus()
  }, [path])

  const View = page?.view
  return (
    <SessionContext.Provider value={value}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <div class="brand">
          <img src="/favicon.svg" alt="" width={24} height={24} />
          <span>Gate</span>
        </div>
        <nav aria-label="Pages">
          {PAGES.map((p) => (
            <Link key={p.path} href={p.path} current={p.path === path}>
              {p.title}
            </Link>
          ))}
        </nav>
        <div class="top-right">
          <span class={`live ${live}`} role="status" data-testid="connection">
            {live === 'live' ? 'Live' : live === 'connecting' ? 'Connecting…' : 'Disconnected: reconnecting…'}
          </span>
          <button type="button" class="small secondary" onClick={() => signOut()}>
            Sign out
          </button>
        </div>
      </header>
      {live === 'disconnected' ? (
        <p class="banner" role="alert">
          Disconnected from the daemon. Reconnecting; the pages show what they last knew.
        </p>
      ) : null}
      <main id="main">
        <h1 ref={heading} tabIndex={-1}>
          {page?.title ?? 'Not found'}
        </h1>
        {View ? (
          <View key={path} />
        ) : (
          <p>
            There is no page here. <Link href="/">Go to the overview</Link>.
          </p>
        )}
      </main>
    </SessionContext.Provider>
  )
}
