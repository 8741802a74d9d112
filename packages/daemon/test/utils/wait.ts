import { setTimeout as sleep } from 'node:timers/promises'

export interface WaitForOptions {
  /** Give up after this long (default 5000 ms). */
  timeoutMs?: number
  /** Time between two checks (default 10 ms). */
  intervalMs?: number
  /** Names the condition in the timeout message. */
  label?: string
}

/**
 * Polls `predicate` until it returns (or resolves to) true. Rejects once `timeoutMs` has passed,
 * or with the predicate's own error if it throws. Bounded: never loops past the deadline.
 */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  { timeoutMs = 5000, intervalMs = 10, label }: WaitForOptions = {},
): Promise<void> {
  const started = Date.now()
  const deadline = started + timeoutMs
  for (;;) {
    if (await predicate()) return
    const left = deadline - Date.now()
    if (left <= 0) {
      const what = label ?? (predicate.toString().replace(/\s+/g, ' ').slice(0, 120) || 'condition')
      throw new Error(`waitFor: timed out after ${Date.now() - started} ms waiting for: ${what}`)
    }
    await sleep(Math.min(intervalMs, left))
  }
}
