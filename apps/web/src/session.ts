import type { RpcClient } from '@gate/rpc/client'
import { createContext } from 'preact'
import { useContext } from 'preact/hooks'
import type { LiveEvents } from './live.ts'

/** What every view of a signed-in dashboard uses. */
export interface Session {
  rpc: RpcClient
  live: LiveEvents
  /** This node's ID, as it was at sign-in: requests it served are "local". */
  nodeId: string
  /** Back to the sign-in form, with a message saying why. */
  signOut: (message?: string) => void
}

export const SessionContext = createContext<Session | null>(null)

export function useSession(): Session {
  const session = useContext(SessionContext)
  if (!session) throw new Error('useSession outside a signed-in dashboard')
  return session
}

/** An error as a panel shows it: its message, without the stack. */
export function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
