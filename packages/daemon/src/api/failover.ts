/**
 * The failover loop: tries each upstream in turn, moving on only while nothing has reached the
 * client, and relays the first answer through the one response relay.
 */
import { type GateError, isOutOfDescriptors, TimeoutError, UnavailableError, UpstreamError } from '@gate/core'
import { RelayError, relay, upstreamFailure } from './respond.ts'
import type { ApiResponse, Relayed, Upstream, UpstreamRequest } from './types.ts'

export interface FailoverInit {
  request: UpstreamRequest
  res: ApiResponse
  /** Gate's own response headers; `x-gate-node` is set to whoever answers. */
  headers: Record<string, string>
  /**
   * How long an upstream may be silent: before its answer's head, and between two chunks of its
   * body. Past it the attempt fails with a TimeoutError (504).
   */
  timeoutMs: number
  /** Aborted when the client goes away: the attempt under way is cancelled upstream. */
  signal: AbortSignal
}

export type FailoverResult =
  | ({ ok: true; upstream: Upstream } & Relayed)
  | { ok: false; upstream: Upstream | null; error: GateError; sent: boolean }

/**
 * Sends the request to each upstream in turn until one answers. An upstream that fails, or
 * answers 5xx while others are left to try, is given up before any byte reaches the client; once
 * the relay has begun, its outcome is the request's.
 */
export async function failover(upstreams: readonly Upstream[], init: FailoverInit): Promise<FailoverResult> {
  let last: FailoverResult | undefined
  for (const [i, upstream] of upstreams.entries()) {
    if (init.signal.aborted) break
    // Its breaker refused: another request holds the half-open probe.
    if (!upstream.acquire()) continue
    const result = await attempt(upstream, i === upstreams.length - 1, init)
    if (result.ok || result.sent || init.signal.aborted) return result
    last = result
  }
  return (
    last ?? {
      ok: false,
      upstream: null,
      error: new UpstreamError('no provider could take the request'),
      sent: false,
    }
  )
}

async function attempt(upstream: Upstream, isLast: boolean, init: FailoverInit): Promise<FailoverResult> {
  const controller = new AbortController()
  const cancel = () => controller.abort(init.signal.reason)
  init.signal.addEventListener('abort', cancel, { once: true })
  const timer = setTimeout(
    () => controller.abort(new TimeoutError(`${upstream.label} did not answer in time`)),
    init.timeoutMs,
  )
  const { signal } = controller
  try {
    const answer = await upstream.send(init.request, signal)
    if (answer.status >= 500 && !isLast) {
      // Nothing sent yet and another upstream to try. The abort cancels the request upstream
      // (a body never read would otherwise be left to do it).
      const error = new UpstreamError(`${upstream.label} answered ${answer.status}`)
      controller.abort(error)
      upstream.release('failed')
      return { ok: false, upstream, error, sent: false }
    }
    const relayed = await relay(answer, init.res, {
      headers: { ...init.headers, 'x-gate-node': upstream.node },
      label: upstream.label,
      progress: () => timer.refresh(),
      signal,
    })
    upstream.release(relayed.status < 500 ? 'ok' : 'failed')
    return { ok: true, upstream, ...relayed }
  } catch (err) {
    // Neither a client leaving nor this node out of descriptors is the upstream's failure.
    const ours = isOutOfDescriptors(err)
    upstream.release(init.signal.aborted || ours ? 'cancelled' : 'failed')
    if (err instanceof RelayError) return { ok: false, upstream, error: err.error, sent: err.sent }
    if (ours) {
      const error = new UnavailableError('this node is out of file descriptors: retry shortly', {
        cause: err,
      })
      return { ok: false, upstream, error, sent: false }
    }
    return { ok: false, upstream, error: upstreamFailure(upstream.label, err, signal), sent: false }
  } finally {
    clearTimeout(timer)
    init.signal.removeEventListener('abort', cancel)
  }
}
