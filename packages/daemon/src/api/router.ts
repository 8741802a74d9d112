/**
 * Who may serve a request: a pure function of the model, the node the client named, where the
 * request came from and what is healthy now. The pipeline hands the candidates it returns, best
 * first, to the failover loop.
 */
import { NotFoundError, UnavailableError } from '@gate/core'
import type { PeerView } from '@gate/p2p'

/** A local engine as routing sees it. */
export interface EngineView {
  name: string
  /** The models it lists (or its config names). */
  models: readonly string[]
  /** null until its first health check has answered. */
  healthy: boolean | null
  /** Its breaker lets a request through. */
  available: boolean
  /** Why its last health check failed. */
  error: string | null
}

export interface RouteInput {
  model: string
  /** The node `X-Target-Node` names, parsed; null when absent. */
  target: string | null
  /** This node's ID. */
  self: string
  /** Where the request came from: a peer's request is served here or nowhere. */
  source: 'local' | 'relay' | 'peer'
  /** Enabled local engines, in config order. */
  engines: readonly EngineView[]
  /** Trusted peers. */
  peers: readonly PeerView[]
}

export type { PeerView }

/** One place to send the request. `routed`: chosen by model, so its breaker and load count. */
export type Candidate = { kind: 'engine'; name: string } | { kind: 'peer'; node: string; routed: boolean }

/** Whether an engine that lists `models` serves `model` (Ollama lists `name:latest` for `name`). */
export function servesModel(models: readonly string[], model: string): boolean {
  return models.includes(model) || (!model.includes(':') && models.includes(`${model}:latest`))
}

/** How much a peer's request in flight from us weighs against it, in load factor. */
const INFLIGHT_WEIGHT = 0.25
/** What an unknown round trip counts as. */
const UNKNOWN_RTT_MS = 1000
/**
 * What being reached through a relay costs beyond the round trip (which, measured over the relayed
 * connection, already counts the detour): the relay's limits on duration and data, and its load.
 */
const RELAYED_PENALTY = 0.5

/**
 * A peer's score, lower is better: how loaded it is (as it says, and by our requests to it), how
 * far (its round trip over the connection requests take), and whether only a relay reaches it.
 */
export function peerScore(peer: PeerView): number {
  const relayed = peer.connection === 'relayed' ? RELAYED_PENALTY : 0
  return peer.load_factor + peer.inflight * INFLIGHT_WEIGHT + (peer.rtt_ms ?? UNKNOWN_RTT_MS) / 1000 + relayed
}

/**
 * The candidates for a request, best first: the named node alone; else the local engines that
 * have the model, then the connected trusted peers that advertise it, least loaded and nearest
 * first. Throws the error the client gets when there is none.
 */
export function route(input: RouteInput): Candidate[] {
  const { model, target, self, source } = input
  if (target !== null && target !== self) {
    if (source === 'peer') {
      throw new NotFoundError(`node ${target} is not this node: a peer's request is served here or nowhere`)
    }
    if (!input.peers.some((p) => p.node_id === target)) {
      throw new NotFoundError(`unknown node ${target}: it is not in network.trusted_peers`)
    }
    return [{ kind: 'peer', node: target, routed: false }]
  }
  const here = target === self || source === 'peer'
  const candidates: Candidate[] = input.engines
    .filter((e) => e.healthy !== false && e.available && servesModel(e.models, model))
    .map((e) => ({ kind: 'engine', name: e.name }))
  if (!here) {
    const peers = input.peers
      .filter((p) => p.connected && p.available && p.models.includes(model))
      .sort((a, b) => peerScore(a) - peerScore(b))
    for (const p of peers) candidates.push({ kind: 'peer', node: p.node_id, routed: true })
  }
  if (candidates.length > 0) return candidates
  throw noCandidate(input, here)
}

/** Why nobody can serve the model: it is known but down (503), or nobody has it (404). */
function noCandidate(input: RouteInput, here: boolean): Error {
  const { model } = input
  const known =
    input.engines.some((e) => servesModel(e.models, model)) ||
    (!here && input.peers.some((p) => p.connected && p.models.includes(model)))
  if (known) return new UnavailableError(`no healthy provider for model "${model}"`)
  // An engine that is down and has never listed its models may be the one that has it.
  const unknown = input.engines.filter((e) => e.healthy === false && e.models.length === 0)
  if (unknown.length > 0) {
    const which = unknown.map((e) => `"${e.name}" (${e.error})`).join(', ')
    return new UnavailableError(
      `model "${model}" is unknown while these providers are down and have not listed their models: ${which}`,
    )
  }
  return new NotFoundError(`model "${model}" not found`, { param: 'model' })
}
