import type { MethodName, MethodParams, MethodResult } from '@gate/rpc/client'
import { useEffect, useRef, useState } from 'preact/hooks'
import { isRefused, RECONNECTED } from './live.ts'
import { describe, useSession } from './session.ts'

/** Events come in bursts (a request per event under load): a view reloads at most this often for them. */
const EVENT_RELOAD_MS = 1000

export interface Loaded<T> {
  /** The last answer, kept while a reload fails. */
  data: T | undefined
  /** Why the last call failed, if it did. */
  error: string | undefined
  reload: () => void
}

export interface UseCallOptions {
  /** Events after which to call again. */
  events?: readonly string[]
  /** Also call again on this interval, for what changes without an event (RTT, health). */
  everyMs?: number
}

/**
 * One method's answer for a view: called when the view opens, after the listed events, on an
 * interval and when the event stream reconnects. Every call has the client's timeout, and its error
 * stays in the panel that made it, so one slow or failing call never blocks another view.
 */
export function useCall<M extends MethodName>(
  method: M,
  params?: MethodParams<M>,
  options: UseCallOptions = {},
): Loaded<MethodResult<M>> {
  const { rpc, live, signOut } = useSession()
  const [state, setState] = useState<{ data?: MethodResult<M> | undefined; error?: string }>({})
  const reload = useRef(() => {})
  const key = JSON.stringify(params ?? {})
  const events = (options.events ?? []).join(',')
  useEffect(() => {
    const controller = new AbortController()
    let running = false
    let again = false
    let timer: ReturnType<typeof setTimeout> | undefined
    const load = async (): Promise<void> => {
      if (running) {
        again = true
        return
      }
      running = true
      try {
        const data = await rpc.call(method, params, { signal: controller.signal })
        if (!controller.signal.aborted) setState({ data })
      } catch (err) {
        if (controller.signal.aborted) return
        if (isRefused(err)) signOut('The daemon no longer accepts this token: sign in again.')
        else setState((previous) => ({ data: previous.data, error: describe(err) }))
      } finally {
        running = false
        if (again && !controller.signal.aborted) {
          again = false
          void load()
        }
      }
    }
    const soon = () => {
      timer ??= setTimeout(() => {
        timer = undefined
        void load()
      }, EVENT_RELOAD_MS)
    }
    reload.current = () => void load()
    void load()
    const unsubscribe = [
      live.on(RECONNECTED, () => void load()),
      ...(events ? events.split(',') : []).map((event) => live.on(event, soon)),
    ]
    const interval = options.everyMs ? setInterval(() => void load(), options.everyMs) : undefined
    return () => {
      controller.abort()
      for (const off of unsubscribe) off()
      clearInterval(interval)
      clearTimeout(timer)
    }
  }, [method, key, events, options.everyMs])
  return { data: state.data, error: state.error, reload: () => reload.current() }
}
