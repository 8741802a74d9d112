import { createRpcClient, type RpcClient } from '@gate/rpc/client'
import { isRefused } from './live.ts'

/** sessionStorage key: the token is asked for once per browser session, and kept no longer. */
const TOKEN_KEY = 'gate.control-token'
/** How long a dashboard call may take before its panel shows a timeout. */
const CALL_TIMEOUT_MS = 10_000

/**
 * The token a sign-in URL carries (`/#token=…`, as `gate dashboard` prints it), taken out of the
 * address bar at once so that it is not left in history, bookmarks or screen shares.
 */
export function takeTokenFromUrl(): string | null {
  const match = /(?:^#|&)token=([^&]*)/.exec(location.hash)
  if (!match) return null
  history.replaceState(history.state, '', location.pathname + location.search)
  return decodeURIComponent(match[1] ?? '').trim() || null
}

export function storedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY)
}

export function storeToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token)
}

export function forgetToken(): void {
  sessionStorage.removeItem(TOKEN_KEY)
}

/** A client for the daemon that served this page; the token goes in the Authorization header only. */
export function clientFor(token: string): RpcClient {
  return createRpcClient({ url: location.origin, token, timeoutMs: CALL_TIMEOUT_MS })
}

export type SignInResult = { ok: true; rpc: RpcClient; nodeId: string } | { ok: false; message: string }

/** Tries a token with one call. */
export async function signIn(token: string): Promise<SignInResult> {
  const rpc = clientFor(token)
  try {
    const status = await rpc.call('node_status')
    storeToken(token)
    return { ok: true, rpc, nodeId: status.node_id }
  } catch (err) {
    if (isRefused(err)) {
      forgetToken()
      return { ok: false, message: 'That token is wrong: the daemon refused it.' }
    }
    return { ok: false, message: `Cannot sign in: ${err instanceof Error ? err.message : String(err)}` }
  }
}
