import type { AttemptOutcome, HeaderMap, Upstream } from '../types.ts'

/** Sends requests to trusted peers: the mesh. */
export interface PeerExchange {
  /** Sends one request to a trusted peer; aborting `signal` resets the stream, before or after the head. */
  exchange(
    node: string,
    head: { method: string; path: string; headers: HeaderMap },
    body: Uint8Array,
    signal: AbortSignal,
  ): Promise<{ head: { status: number; headers: HeaderMap }; body: AsyncIterable<Uint8Array> }>
}

/** Places on peers: the peer manager. */
export interface PeerPlaces {
  /**
   * Takes a place on a peer chosen by model: its breaker's probe, and a request counted in its
   * load (so a burst spreads over peers). Undefined when its breaker refuses; else the function
   * that gives it back with the attempt's outcome.
   */
  reserve(node: string): ((outcome: AttemptOutcome) => void) | undefined
}

/**
 * A trusted peer as an upstream: the request goes over `/gate/http`, and the peer runs it through
 * its own pipeline, served there or nowhere. `routed`: chosen by model, so its breaker and load
 * count; a peer the client named is tried whatever its breaker says.
 */
export function peerUpstream(
  c: { mesh: PeerExchange; peers: PeerPlaces },
  node: string,
  routed: boolean,
): Upstream {
  let release: ((outcome: AttemptOutcome) => void) | undefined
  return {
    label: `node ${node}`,
    provider: null,
    node,
    acquire() {
      if (!routed) return true
      release = c.peers.reserve(node)
      return release !== undefined
    },
    async send(request, signal) {
      const head = { method: 'POST', path: `/v1${request.path}`, headers: request.headers }
      const answer = await c.mesh.exchange(node, head, request.body, signal)
      return { status: answer.head.status, headers: answer.head.headers, body: answer.body }
    },
    release: (outcome) => release?.(outcome),
  }
}
