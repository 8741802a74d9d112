import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { NotFoundError, UnavailableError } from '@gate/core'
import {
  type Candidate,
  type EngineView,
  type PeerView,
  type RouteInput,
  route,
} from '../../src/api/router.ts'

const SELF = 'a'.repeat(52)
const P1 = 'b'.repeat(52)
const P2 = 'c'.repeat(52)
const P3 = 'd'.repeat(52)

function engine(name: string, extra: Partial<EngineView> = {}): EngineView {
  return { name, models: ['llama'], healthy: true, available: true, error: null, ...extra }
}

function peer(node_id: string, extra: Partial<PeerView> = {}): PeerView {
  return {
    node_id,
    connected: true,
    available: true,
    breaker: 'closed',
    models: ['llama'],
    load_factor: 0,
    inflight: 0,
    rtt_ms: 1,
    connection: 'direct',
    ...extra,
  }
}

function input(extra: Partial<RouteInput>): RouteInput {
  return { model: 'llama', target: null, self: SELF, source: 'local', engines: [], peers: [], ...extra }
}

const engineC = (name: string): Candidate => ({ kind: 'engine', name })
const routed = (node: string): Candidate => ({ kind: 'peer', node, routed: true })

describe('router', () => {
  const cases: Array<{
    name: string
    input: RouteInput
    want: Candidate[] | (new (...args: never[]) => Error)
  }> = [
    {
      name: 'a healthy local engine first, then peers that advertise the model',
      input: input({ engines: [engine('ollama')], peers: [peer(P1)] }),
      want: [engineC('ollama'), routed(P1)],
    },
    {
      name: 'engines in config order',
      input: input({ engines: [engine('one'), engine('two')] }),
      want: [engineC('one'), engineC('two')],
    },
    {
      name: "Ollama's name:latest serves the bare name",
      input: input({ model: 'qwen', engines: [engine('ollama', { models: ['qwen:latest'] })] }),
      want: [engineC('ollama')],
    },
    {
      name: 'an engine that is down, or whose breaker is open, is left out',
      input: input({
        engines: [engine('down', { healthy: false }), engine('open', { available: false }), engine('up')],
      }),
      want: [engineC('up')],
    },
    {
      name: 'an engine not yet checked is tried',
      input: input({ engines: [engine('new', { healthy: null })] }),
      want: [engineC('new')],
    },
    {
      name: 'local engine down: the peers that have the model',
      input: input({ engines: [engine('down', { healthy: false })], peers: [peer(P1)] }),
      want: [routed(P1)],
    },
    {
      name: 'peers by load, then by our requests in flight to them, then by RTT',
      input: input({
        peers: [
          peer(P1, { load_factor: 0.5 }),
          peer(P2, { load_factor: 0, inflight: 1 }),
          peer(P3, { load_factor: 0, rtt_ms: 5 }),
        ],
      }),
      want: [routed(P3), routed(P2), routed(P1)],
    },
    {
      name: 'nearer of two equally loaded peers first',
      input: input({ peers: [peer(P1, { rtt_ms: 40 }), peer(P2, { rtt_ms: 2 })] }),
      want: [routed(P2), routed(P1)],
    },
    {
      name: 'a direct or hole-punched peer before a relayed one, even one a little nearer',
      input: input({
        peers: [
          peer(P1, { connection: 'relayed', rtt_ms: 30 }),
          peer(P2, { connection: 'hole-punched', rtt_ms: 60 }),
          peer(P3, { connection: 'direct', rtt_ms: 90 }),
        ],
      }),
      want: [routed(P2), routed(P3), routed(P1)],
    },
    {
      name: 'a relayed peer before a loaded direct one',
      input: input({
        peers: [peer(P1, { load_factor: 0.9 }), peer(P2, { connection: 'relayed', rtt_ms: 40 })],
      }),
      want: [routed(P2), routed(P1)],
    },
    {
      name: 'peers that are disconnected, breaker-open or without the model are left out',
      input: input({
        peers: [
          peer(P1, { connected: false }),
          peer(P2, { available: false }),
          peer(P3, { models: ['other'] }),
        ],
        engines: [engine('e')],
      }),
      want: [engineC('e')],
    },
    {
      name: 'X-Target-Node naming a trusted peer: that peer alone, whatever its breaker',
      input: input({ target: P1, engines: [engine('e')], peers: [peer(P1, { available: false })] }),
      want: [{ kind: 'peer', node: P1, routed: false }],
    },
    {
      name: 'X-Target-Node naming an unknown node: 404',
      input: input({ target: P2, peers: [peer(P1)] }),
      want: NotFoundError,
    },
    {
      name: 'X-Target-Node naming this node: local engines only, no peer',
      input: input({ target: SELF, engines: [engine('e')], peers: [peer(P1)] }),
      want: [engineC('e')],
    },
    {
      name: 'X-Target-Node naming this node with no engine: the model is not here (404), even though a peer has it',
      input: input({ target: SELF, peers: [peer(P1)] }),
      want: NotFoundError,
    },
    {
      name: "a peer's request is served here or nowhere: no peers",
      input: input({ source: 'peer', engines: [engine('e')], peers: [peer(P1)] }),
      want: [engineC('e')],
    },
    {
      name: "a peer's request for a model only other peers have: 404",
      input: input({ source: 'peer', peers: [peer(P1)] }),
      want: NotFoundError,
    },
    {
      name: "a peer's request naming a third node: refused",
      input: input({ source: 'peer', target: P2, engines: [engine('e')], peers: [peer(P2)] }),
      want: NotFoundError,
    },
    {
      name: 'a relayed request routes as a local one',
      input: input({ source: 'relay', peers: [peer(P1)] }),
      want: [routed(P1)],
    },
    {
      name: 'the model is known here but every engine with it is down: 503',
      input: input({ engines: [engine('e', { healthy: false })] }),
      want: UnavailableError,
    },
    {
      name: 'only a breaker-open peer has the model: 503',
      input: input({ peers: [peer(P1, { available: false })] }),
      want: UnavailableError,
    },
    {
      name: 'an engine down since start that never listed models may have it: 503',
      input: input({ engines: [engine('e', { healthy: false, models: [], error: 'ECONNREFUSED' })] }),
      want: UnavailableError,
    },
    {
      name: 'nobody has the model: 404',
      input: input({ model: 'nope', engines: [engine('e')], peers: [peer(P1)] }),
      want: NotFoundError,
    },
  ]
  for (const c of cases) {
    it(c.name, () => {
      if (Array.isArray(c.want)) assert.deepEqual(route(c.input), c.want)
      else assert.throws(() => route(c.input), c.want)
    })
  }

  it('names the down engines that may hold an unknown model, and the model as the faulty param', () => {
    assert.throws(
      () => route(input({ engines: [engine('e', { healthy: false, models: [], error: 'ECONNREFUSED' })] })),
      /"e" \(ECONNREFUSED\)/,
    )
    assert.throws(
      () => route(input({ model: 'nope' })),
      (err: unknown) => err instanceof NotFoundError && err.param === 'model',
    )
  })
})
