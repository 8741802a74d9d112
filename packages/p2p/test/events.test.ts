import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { TypedEventEmitter } from '@libp2p/interface'

/**
 * libp2p's emitters (nodes, connections, streams) keep and call their own listeners, by
 * patches/main-event@1.0.5.patch: these are the DOM behaviours libp2p relies on.
 */
describe('TypedEventEmitter (patched main-event)', () => {
  type Events = { tick: CustomEvent<number> }

  it('is an EventTarget and calls listeners in order, each callback once', () => {
    const target = new TypedEventEmitter<Events>()
    assert.ok(target instanceof EventTarget)
    const calls: string[] = []
    const a = (event: CustomEvent<number>) => calls.push(`a${event.detail}`)
    target.addEventListener('tick', a)
    target.addEventListener('tick', a) // the same callback again: ignored
    target.addEventListener('tick', { handleEvent: (event) => calls.push(`b${event.detail}`) })
    assert.equal(target.listenerCount('tick'), 2)
    assert.equal(target.safeDispatchEvent('tick', { detail: 1 }), true)
    assert.deepEqual(calls, ['a1', 'b1'])
    target.removeEventListener('tick', a)
    target.safeDispatchEvent('tick', { detail: 2 })
    assert.deepEqual(calls, ['a1', 'b1', 'b2'])
    assert.equal(target.listenerCount('tick'), 1)
  })

  it('honours once and signal', () => {
    const target = new TypedEventEmitter<Events>()
    const seen: number[] = []
    target.addEventListener('tick', (event) => seen.push(event.detail), { once: true })
    const controller = new AbortController()
    target.addEventListener('tick', (event) => seen.push(event.detail * 10), { signal: controller.signal })
    target.addEventListener('tick', () => seen.push(-1), { signal: AbortSignal.abort() })
    target.safeDispatchEvent('tick', { detail: 1 })
    controller.abort()
    target.safeDispatchEvent('tick', { detail: 2 })
    assert.deepEqual(seen, [1, 10])
    assert.equal(target.listenerCount('tick'), 0)
  })

  it('leaves listeners added during a dispatch for the next one, and skips those removed', () => {
    const target = new TypedEventEmitter<Events>()
    const calls: string[] = []
    const late = () => calls.push('late')
    const removed = () => calls.push('removed')
    target.addEventListener('tick', () => {
      calls.push('first')
      target.addEventListener('tick', late)
      target.removeEventListener('tick', removed)
    })
    target.addEventListener('tick', removed)
    target.safeDispatchEvent('tick', { detail: 0 })
    assert.deepEqual(calls, ['first'])
    target.safeDispatchEvent('tick', { detail: 0 })
    assert.deepEqual(calls, ['first', 'first', 'late'])
  })

  it('reports a throwing listener as an uncaught exception and still calls the others', () => {
    const target = new TypedEventEmitter<Events>()
    const calls: number[] = []
    target.addEventListener('tick', () => {
      throw new Error('boom')
    })
    target.addEventListener('tick', (event) => calls.push(event.detail))
    const reported: Array<() => void> = []
    const { nextTick } = process
    process.nextTick = ((callback: () => void) => reported.push(callback)) as typeof process.nextTick
    try {
      target.safeDispatchEvent('tick', { detail: 7 })
    } finally {
      process.nextTick = nextTick
    }
    assert.deepEqual(calls, [7])
    assert.equal(reported.length, 1)
    assert.throws(() => reported[0]?.(), /boom/)
  })
})
