import { useState } from 'preact/hooks'

interface SignInProps {
  /** Why the form is shown: a refused token, a daemon that cannot be reached. */
  message: string | null
  busy: boolean
  onSubmit: (token: string) => void
}

/** Asks for the control token, once per browser session. */
export function SignInPage({ message, busy, onSubmit }: SignInProps) {
  const [token, setToken] = useState('')
  return (
    <main class="sign-in" id="main">
      <form
        class="panel stack"
        onSubmit={(event) => {
          event.preventDefault()
          if (token.trim()) onSubmit(token.trim())
        }}
      >
        <h1>Sign in to Gate</h1>
        <p class="muted">
          Run <code>gate dashboard</code> on this machine and open the link it prints, or paste the contents
          of the daemon's <code>control.token</code> file.
        </p>
        <div class="field">
          <label for="token">Control token</label>
          <input
            id="token"
            type="password"
            class="mono"
            autocomplete="off"
            spellcheck={false}
            required
            value={token}
            onInput={(e) => setToken(e.currentTarget.value)}
            aria-describedby={message ? 'sign-in-message' : undefined}
          />
        </div>
        {message ? (
          <p class="error" role="alert" id="sign-in-message">
            {message}
          </p>
        ) : null}
        <div class="row">
          <button type="submit" disabled={busy}>
            {busy ? 'Signing in…' : 'Sign in'}
          </button>
        </div>
      </form>
    </main>
  )
}
