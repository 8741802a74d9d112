import { readFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  Breaker,
  type BreakerState,
  type Capabilities,
  type ConnectionType,
  describeError,
  InvalidRequestError,
  type Logger,
  nodeIdToPeerId,
  type PeerInfo,
  type PeerStatus,
  parseNodeId,
  peerIdToNodeId,
  writeFileAtomic,
} from '@gate/core'
import type { PeerId, Stream } from '@libp2p/interface'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import { bestConnection, connectionType, describeConnection } from './connections.ts'
import {
  PAIR_RETRY_MS,
  PAIR_TIMEOUT_MS,
  PEER_BACKOFF_MAX_MS,
  PEER_DIAL_TIMEOUT_MS,
  PEER_REFRESH_MS,
} from './constants.ts'
import { CONTROL_PROTOCOL, type ControlPayload, controlRequest } from './control.ts'
import { type GateLibp2p, peerIdOf } from './node.ts'

/** What this node knows of one trusted peer. */
interface PeerState {
  node_id: string
  /** Its libp2p PeerId, worked out once: routing asks for its connections on every request. */
  peer: PeerId
  status: PeerStatus
  /** Why the last attempt to reach it failed. */
  error: string | null
  last_seen: string | null
  rtt_ms: number | null
  addresses: string[]
  capabilities: Capabilities | null
  /** Requests we have in flight to it: a burst spreads over peers instead of piling on one. */
  inflight: number
  breaker: Breaker
  /** Failed attempts to reach it in a row. */
  attempts: number
  /** When it is next tried (ms since the epoch), after `attempts` failures; 0 when not waiting. */
  retry_at: number
}

/** A trusted peer as request routing sees it. */
export interface PeerView {
  node_id: string
  connected: boolean
  /** Its breaker lets a request through. */
  available: boolean
  breaker: BreakerState
  models: readonly string[]
  /** 0 idle … 1 full, as it last advertised. */
  load_factor: number
  /** Requests this node has in flight to it. */
  inflight: number
  rtt_ms: number | null
  /** How it is reached now; null when not connected. */
  connection: ConnectionType | null
}

/** Where the peer manager reports peers going up, down and changing capabilities (`/events`). */
export interface PeerEvents {
  emit(type: 'peer_up' | 'peer_down' | 'peer_capabilities', data: unknown): void
}

export interface PeerManagerInit {
  node: GateLibp2p
  nodeId: string
  /** `network.trusted_peers`, read live. */
  trusted: TrustedPeers
  /** `network.bootstrap` multiaddrs. */
  bootstrap: () => readonly string[]
  /** This node's capabilities now. */
  capabilities: () => Capabilities
  /** `peers.json`: the addresses of trusted peers, so a restarted node finds them again. */
  cachePath: string
  /** A node redeems an invite secret; true when it was valid (the node is then trusted). */
  onPair: (nodeId: string, secret: string) => Promise<boolean>
  logger: Logger
  events: PeerEvents
  /** How often peers are refreshed, the first reconnect delay. @default PEER_REFRESH_MS */
  refreshMs?: number
  /** The longest reconnect delay. @default PEER_BACKOFF_MAX_MS */
  maxBackoffMs?: number
}

/** The peer-store tag that keeps trusted peers' connections when libp2p prunes connections. */
const TRUSTED_TAG = 'gate-trusted'

/**
 * Keeps every trusted peer's state: connects, and reconnects with exponential backoff (doubling
 * from `refreshMs` up to `maxBackoffMs`, with jitter), exchanges capabilities on connect and when
 * ours change, measures RTT, and counts the requests in flight to each. A trusted peer found by
 * mDNS or connecting to us is tried at once.
 */
export class PeerManager {
  readonly #init: PeerManagerInit
  /** The refresh interval, which is also the first reconnect delay. */
  readonly #refreshMs: number
  readonly #maxBackoffMs: number
  readonly #peers = new Map<string, PeerState>()
  #timer: NodeJS.Timeout | undefined
  #advertised = ''
  #ticking: Promise<void> | undefined
  #saving: Promise<void> = Promise.resolve()

  constructor(init: PeerManagerInit) {
    this.#init = init
    this.#refreshMs = init.refreshMs ?? PEER_REFRESH_MS
    this.#maxBackoffMs = init.maxBackoffMs ?? PEER_BACKOFF_MAX_MS
    init.node.addEventListener('peer:connect', (event) => {
      const nodeId = safePeerNode(event.detail.toString())
      if (nodeId && this.isTrusted(nodeId)) void this.#handshake(this.#state(nodeId))
    })
    init.node.addEventListener('peer:disconnect', (event) => {
      const nodeId = safePeerNode(event.detail.toString())
      const state = nodeId ? this.#peers.get(nodeId) : undefined
      if (state && state.status === 'connected') this.#setStatus(state, 'disconnected', null)
    })
    init.node.addEventListener('peer:discovery', (event) => {
      const nodeId = safePeerNode(event.detail.id.toString())
      const state = nodeId && this.isTrusted(nodeId) ? this.#state(nodeId) : undefined
      if (state && state.status !== 'connected') void this.#handshake(state)
    })
  }

  /** Loads the peer cache into libp2p's peer store, dials the bootstrap peers and starts refreshing. */
  async start(): Promise<void> {
    const { node } = this.#init
    for (const [nodeId, addresses] of Object.entries(await readCache(this.#init.cachePath))) {
      const valid = addresses.flatMap((a) => parseAddress(a) ?? [])
      if (valid.length === 0 || !safeNodeId(nodeId)) continue
      this.#state(nodeId).addresses = valid.map(String)
      await node.peerStore.merge(peerIdOf(nodeId), { multiaddrs: valid })
    }
    for (const address of this.#init.bootstrap()) {
      const ma = parseAddress(address)
      if (ma) void node.dial(ma, { signal: AbortSignal.timeout(PEER_DIAL_TIMEOUT_MS) }).catch(() => {})
      else this.#init.logger.warn({ address }, 'network.bootstrap: not a multiaddr')
    }
    void this.tick()
    this.#timer = setInterval(() => void this.tick(), this.#refreshMs)
    this.#timer.unref()
  }

  /** Stops refreshing, and waits for the peer cache to be written. */
  async stop(): Promise<void> {
    clearInterval(this.#timer)
    await this.#saving
  }

  /**
   * One round: refresh every trusted peer's capabilities and push ours if they changed; reach
   * the unreachable ones whose backoff is over.
   */
  tick(): Promise<void> {
    this.#ticking ??= this.#tick().finally(() => {
      this.#ticking = undefined
    })
    return this.#ticking
  }

  async #tick(): Promise<void> {
    const trusted = new Set(this.trusted())
    for (const nodeId of this.#peers.keys()) if (!trusted.has(nodeId)) this.#forget(nodeId)
    const ours = JSON.stringify(this.#init.capabilities())
    const push = ours !== this.#advertised
    this.#advertised = ours
    const now = Date.now()
    await Promise.all(
      [...trusted]
        .map((nodeId) => this.#state(nodeId))
        .filter((state) => now >= state.retry_at)
        .map((state) => this.#handshake(state, push ? 'capability_update' : 'handshake')),
    )
  }

  /** Exchanges capabilities with a peer (dialling it if need be) and times the round trip. */
  async #handshake(state: PeerState, kind: 'handshake' | 'capability_update' = 'handshake'): Promise<void> {
    const { node } = this.#init
    if (state.status !== 'connected') this.#setStatus(state, 'connecting', state.error)
    const started = performance.now()
    try {
      const signal = AbortSignal.timeout(PEER_DIAL_TIMEOUT_MS)
      const { peer } = state
      const known = this.#init.bootstrap().find((a) => a.endsWith(`/p2p/${peer.toString()}`))
      const hasAddress = node.getConnections(peer).length > 0 || (await node.peerStore.has(peer))
      const stream = await this.#controlStream(peer, known && !hasAddress ? multiaddr(known) : peer, signal)
      const capabilities = this.#init.capabilities()
      const answer = await controlRequest(
        stream,
        kind === 'handshake'
          ? { type: 'handshake', capabilities }
          : { type: 'capability_update', capabilities },
        signal,
      )
      state.rtt_ms = Math.round((performance.now() - started) * 100) / 100
      if (answer.type === 'handshake_response') this.#setCapabilities(state, answer.capabilities)
      // Relayed to a trusted peer: try for a direct connection (once per relayed connection).
      if (bestConnection(node.getConnections(peer))?.direct === false) node.services.nat.upgrade(peer)
      // A punched connection's address is the NAT's mapping of one socket: no use once it closes.
      const addresses = node
        .getConnections(peer)
        .filter((c) => connectionType(c) !== 'hole-punched')
        .map((c) => c.remoteAddr.decapsulateCode(P2P_CODE).toString())
      if (addresses.join() !== state.addresses.join()) {
        state.addresses = addresses
        this.#saveCache()
      }
      this.#seen(state)
      state.attempts = 0
      state.retry_at = 0
      this.#setStatus(state, 'connected', null)
    } catch (err) {
      if (node.getConnections(state.peer).length > 0) {
        this.#setStatus(state, 'connected', describeError(err))
        return
      }
      state.attempts++
      const delay = Math.min(this.#refreshMs * 2 ** (state.attempts - 1), this.#maxBackoffMs)
      state.retry_at = Date.now() + delay * (0.8 + Math.random() * 0.4)
      this.#setStatus(state, 'failed', describeError(err))
    }
  }

  /**
   * Starts tracking a peer (the caller adds it to `trusted_peers`) and tries to reach it, at
   * `address` when given (a multiaddr, with or without its `/p2p/` part), else through the DHT.
   */
  async add(nodeId: string, address?: string): Promise<PeerInfo> {
    const state = this.#state(nodeId)
    if (address !== undefined) {
      const ma = parseAddress(address)
      if (!ma)
        throw new InvalidRequestError(`not a multiaddr: ${JSON.stringify(address)}`, { param: 'address' })
      // The last /p2p/ names the node (a relayed address names its relay first).
      const named = ma.getComponents().findLast((c) => c.code === P2P_CODE)?.value
      if (named !== undefined && named !== nodeIdToPeerId(nodeId)) {
        throw new InvalidRequestError(`address belongs to ${named}, not to node ${nodeId}`, {
          param: 'address',
        })
      }
      const plain = ma.decapsulateCode(P2P_CODE)
      const peer = peerIdOf(nodeId)
      await this.#init.node.peerStore.merge(peer, { multiaddrs: [plain] })
      state.addresses = [...new Set([...state.addresses, plain.toString()])]
      this.#saveCache()
      // The address given is dialled first: libp2p's order could take another the peer store has
      // (a relayed one) before it. A failure is the handshake's to report.
      await this.#init.node
        .dial(plain.encapsulate(`/p2p/${peer.toString()}`), {
          signal: AbortSignal.timeout(PEER_DIAL_TIMEOUT_MS),
        })
        .catch(() => {})
    }
    await this.#handshake(state)
    return this.info(nodeId)
  }

  /** Redeems an invite at the node that made it; it then trusts us. Throws when it refuses. */
  async pair(nodeId: string, addresses: string[], secret: string): Promise<void> {
    const peer = peerIdOf(nodeId)
    const valid = addresses.flatMap((a) => parseAddress(a)?.decapsulateCode(P2P_CODE) ?? [])
    if (valid.length > 0) await this.#init.node.peerStore.merge(peer, { multiaddrs: valid })
    const stream = await this.#reach(peer, AbortSignal.timeout(PAIR_TIMEOUT_MS))
    const answer = await controlRequest(
      stream,
      { type: 'pair', secret },
      AbortSignal.timeout(PEER_DIAL_TIMEOUT_MS),
    )
    if (answer.type !== 'pair_response' || !answer.accepted) {
      const reason = answer.type === 'pair_response' ? answer.reason : 'unexpected answer'
      throw new InvalidRequestError(`node ${nodeId} refused the invite: ${reason}`, { param: 'code' })
    }
  }

  /** Stops tracking a peer (the caller removes it from `trusted_peers`) and hangs up on it. */
  async remove(nodeId: string): Promise<boolean> {
    const known = this.#forget(nodeId)
    this.#saveCache()
    await this.#init.node.hangUp(peerIdOf(nodeId)).catch(() => {})
    return known
  }

  /** How this node sees `nodeId`, tracked or not. */
  info(nodeId: string): PeerInfo {
    const state = this.#peers.get(nodeId)
    const connections = this.#init.node.getConnections(peerIdOf(nodeId))
    return {
      node_id: nodeId,
      peer_id: nodeIdToPeerId(nodeId),
      trusted: this.isTrusted(nodeId),
      status: state?.status ?? (connections.length > 0 ? 'connected' : 'disconnected'),
      error: state?.error ?? null,
      addresses:
        state?.addresses ?? connections.map((c) => c.remoteAddr.decapsulateCode(P2P_CODE).toString()),
      models: state?.capabilities?.supported_models ?? [],
      load_factor: state?.capabilities?.load_factor ?? null,
      rtt_ms: state?.rtt_ms ?? null,
      connection: describe(connections),
      last_seen: state?.last_seen ?? null,
      next_attempt:
        state?.status === 'failed' && state.retry_at > 0 ? new Date(state.retry_at).toISOString() : null,
    }
  }

  /** Every node known: tracked trusted peers, and any other node connected now (e.g. for the DHT). */
  known(): PeerInfo[] {
    const ids = new Set(this.#peers.keys())
    for (const connection of this.#init.node.getConnections()) {
      const id = safePeerNode(connection.remotePeer.toString())
      if (id) ids.add(id)
    }
    return [...ids].map((id) => this.info(id))
  }

  /** Trusted peers as request routing sees them. */
  views(): PeerView[] {
    const out: PeerView[] = []
    for (const p of this.#peers.values()) {
      if (!this.isTrusted(p.node_id)) continue
      const best = bestConnection(this.#init.node.getConnections(p.peer))
      out.push({
        node_id: p.node_id,
        connected: p.status === 'connected',
        available: p.breaker.available,
        breaker: p.breaker.state,
        models: p.capabilities?.supported_models ?? [],
        load_factor: p.capabilities?.load_factor ?? 1,
        inflight: p.inflight,
        rtt_ms: p.rtt_ms,
        connection: best ? connectionType(best) : null,
      })
    }
    return out
  }

  /** Every model connected trusted peers advertise, with the node IDs that serve it. */
  models(): Map<string, string[]> {
    const out = new Map<string, string[]>()
    for (const p of this.#peers.values()) {
      if (p.status !== 'connected' || !p.capabilities) continue
      for (const model of p.capabilities.supported_models)
        out.set(model, [...(out.get(model) ?? []), p.node_id])
    }
    return out
  }

  /**
   * Takes a place on a peer for one request: its breaker's probe when half-open, and a request
   * counted in flight (so the next request prefers another peer). Undefined when the breaker
   * refuses; else the function that gives the place back with the attempt's outcome.
   */
  reserve(nodeId: string): ((outcome: 'ok' | 'failed' | 'cancelled') => void) | undefined {
    const state = this.#peers.get(nodeId)
    if (!state?.breaker.tryAcquire()) return undefined
    state.inflight++
    return (outcome) => {
      state.inflight--
      if (outcome === 'ok') state.breaker.success()
      else if (outcome === 'failed') state.breaker.failure()
      else state.breaker.release()
    }
  }

  /** Trusted peers' node IDs. */
  trusted(): string[] {
    return this.#init.trusted.list()
  }

  isTrusted(nodeId: string): boolean {
    return this.#init.trusted.has(nodeId)
  }

  /**
   * Answers a peer's control request. Only trusted peers learn this node's models and load: any
   * other node gets capabilities with none (and may still redeem an invite, or ping).
   */
  async answer(payload: ControlPayload, from: string): Promise<ControlPayload> {
    const state = this.isTrusted(from) ? this.#state(from) : undefined
    if (state) this.#seen(state)
    const ours = (): Capabilities => (state ? this.#init.capabilities() : withheld(this.#init.nodeId))
    switch (payload.type) {
      case 'handshake':
        if (state) this.#setCapabilities(state, payload.capabilities)
        return { type: 'handshake_response', capabilities: ours() }
      case 'capability_update':
        if (state) this.#setCapabilities(state, payload.capabilities)
        return { type: 'ack' }
      case 'capability_request':
        return { type: 'capability_response', capabilities: ours() }
      case 'ping':
        return { type: 'pong' }
      case 'pair': {
        const accepted = await this.#init.onPair(from, payload.secret)
        // Trusted now: reach it at once rather than at the next round.
        if (accepted) void this.#handshake(this.#state(from))
        return {
          type: 'pair_response',
          accepted,
          reason: accepted ? null : 'invite expired, used or unknown',
        }
      }
      default:
        return { type: 'ack' }
    }
  }

  /**
   * A `/gate/control` stream to `peer`, tried again until `signal` aborts. libp2p joins a dial to
   * the same peer already under way, and the DHT may have started one with only the addresses it
   * had learnt (a home LAN's, unreachable from here), not the relayed ones just put in the peer
   * store: that dial can take a QUIC timeout per address, and fails; the next starts afresh.
   */
  async #reach(peer: PeerId, signal: AbortSignal): Promise<Stream> {
    for (;;) {
      try {
        return await this.#controlStream(peer, peer, signal)
      } catch (err) {
        if (signal.aborted) throw err
        await sleep(PAIR_RETRY_MS)
      }
    }
  }

  /**
   * A `/gate/control` stream to `peer`: on its best open connection, a relayed one included
   * (control messages are small), else by dialling `target`. libp2p's own dial would not reuse a
   * relayed connection: it would open another circuit through the relay for each message.
   */
  #controlStream(peer: PeerId, target: PeerId | Multiaddr, signal: AbortSignal): Promise<Stream> {
    const options = { signal, runOnLimitedConnection: true }
    const open = bestConnection(this.#init.node.getConnections(peer))
    return open
      ? open.newStream(CONTROL_PROTOCOL, options)
      : this.#init.node.dialProtocol(target, CONTROL_PROTOCOL, options)
  }

  /** Writes `peers.json` (atomically, after any write in progress). */
  #saveCache(): void {
    const peers: Record<string, string[]> = {}
    for (const state of this.#peers.values())
      if (state.addresses.length > 0) peers[state.node_id] = state.addresses
    const text = `${JSON.stringify({ version: 1, peers }, null, 2)}\n`
    this.#saving = this.#saving
      .then(() => writeFileAtomic(this.#init.cachePath, text, { mode: 0o600 }))
      .catch((err: unknown) => this.#init.logger.warn({ err: describeError(err) }, 'peers.json not saved'))
  }

  #state(nodeId: string): PeerState {
    let state = this.#peers.get(nodeId)
    if (!state) {
      state = {
        node_id: nodeId,
        peer: peerIdOf(nodeId),
        status: 'disconnected',
        error: null,
        last_seen: null,
        rtt_ms: null,
        addresses: [],
        capabilities: null,
        inflight: 0,
        breaker: new Breaker(),
        attempts: 0,
        retry_at: 0,
      }
      this.#peers.set(nodeId, state)
      this.#tag(nodeId, true)
    }
    return state
  }

  /** Stops tracking a peer; false when it was not tracked. */
  #forget(nodeId: string): boolean {
    if (!this.#peers.delete(nodeId)) return false
    this.#tag(nodeId, false)
    return true
  }

  /** Trusted peers' connections are the last libp2p prunes. */
  #tag(nodeId: string, trusted: boolean): void {
    void this.#init.node.peerStore
      .merge(peerIdOf(nodeId), { tags: { [TRUSTED_TAG]: trusted ? { value: 100 } : undefined } })
      .catch(() => {})
  }

  #seen(state: PeerState): void {
    state.last_seen = new Date().toISOString()
  }

  #setCapabilities(state: PeerState, capabilities: Capabilities): void {
    const changed = JSON.stringify(capabilities) !== JSON.stringify(state.capabilities)
    state.capabilities = capabilities
    if (changed) this.#init.events.emit('peer_capabilities', { node_id: state.node_id, capabilities })
  }

  #setStatus(state: PeerState, status: PeerStatus, error: string | null): void {
    const was = state.status
    state.status = status
    state.error = error
    if (was === status) return
    if (status === 'connected') this.#init.events.emit('peer_up', { node_id: state.node_id })
    if (was === 'connected') this.#init.events.emit('peer_down', { node_id: state.node_id, error })
    this.#init.logger.info({ peer: state.node_id, status, error }, `peer ${status}`)
  }
}

/** What a node that does not trust the asker tells it: who it is, and nothing it serves. */
function withheld(nodeId: string): Capabilities {
  return {
    node_id: nodeId,
    supported_models: [],
    max_context_length: null,
    supports_streaming: true,
    load_factor: 1,
  }
}

/** The multicodec of a multiaddr's `/p2p/<PeerId>` part. */
const P2P_CODE = 421

/** How a node is reached: over the best of its open connections; null when there is none. */
function describe(connections: Parameters<typeof bestConnection>[0]): PeerInfo['connection'] {
  const best = bestConnection(connections)
  return best ? describeConnection(best) : null
}

function parseAddress(text: string): Multiaddr | undefined {
  try {
    return multiaddr(text)
  } catch {
    return undefined
  }
}

async function readCache(path: string): Promise<Record<string, string[]>> {
  try {
    const value = JSON.parse(await readFile(path, 'utf8')) as { peers?: unknown }
    const peers = value.peers
    if (typeof peers !== 'object' || peers === null) return {}
    return Object.fromEntries(
      Object.entries(peers).filter(
        (e): e is [string, string[]] => Array.isArray(e[1]) && e[1].every((a) => typeof a === 'string'),
      ),
    )
  } catch {
    return {}
  }
}

/**
 * `network.trusted_peers` as node IDs (entries may be PeerIds), without this node. Parsed again
 * only when the config's list changes: routing and the connection gater ask often.
 */
export class TrustedPeers {
  readonly #entries: () => readonly string[]
  readonly #self: string
  #from: readonly string[] | undefined
  #ids: string[] = []

  constructor(entries: () => readonly string[], self: string) {
    this.#entries = entries
    this.#self = self
  }

  list(): string[] {
    const entries = this.#entries()
    if (entries !== this.#from) {
      this.#from = entries
      this.#ids = entries.flatMap((entry) => {
        const id = safeNodeId(entry)
        return id && id !== this.#self ? [id] : []
      })
    }
    return this.#ids
  }

  has(nodeId: string): boolean {
    return this.list().includes(nodeId)
  }
}

/** The node ID an entry of `trusted_peers` names (a node ID or a PeerId), if it names one. */
export function safeNodeId(entry: string): string | undefined {
  try {
    return parseNodeId(entry)
  } catch {
    return undefined
  }
}

function safePeerNode(peerId: string): string | undefined {
  try {
    return peerIdToNodeId(peerId)
  } catch {
    return undefined
  }
}
