import { describeError, type Identity, type Logger } from '@gate/core'
import {
  type GateLibp2p,
  PEER_DIAL_TIMEOUT_MS,
  RELAY_PROTOCOL,
  type RelayAnswer,
  type RelayRequest,
  relayRequest,
} from '@gate/p2p'
import type { RelayStatus } from '@gate/rpc'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'

/** The first wait before trying a relay again, doubled up to RETRY_MAX_MS. @default 2 s */
const RETRY_MIN_MS = 2000
const RETRY_MAX_MS = 60_000

type RelayState = RelayStatus['state']

export interface RelayLinkInit {
  /** The relay's multiaddr, ending in `/p2p/<relay PeerId>`. */
  address: string
  node: GateLibp2p
  identity: Identity
  /** The relay gave the node its name: the certificate must cover it before `activate`. */
  onDomain: (domain: string) => Promise<void>
  logger: Logger
}

/**
 * The node's registration with one relay: it dials the relay, asks for its name, has the caller
 * make sure a certificate covers it, and activates it. The registration lasts as long as the
 * connection (libp2p's connection monitor pings it both ways); when the connection drops (the
 * relay restarted, the network changed) the node registers again, backing off while the relay
 * is away.
 */
export class RelayLink {
  readonly #init: RelayLinkInit
  readonly #address: Multiaddr
  #state: RelayState = 'connecting'
  #domain: string | null = null
  #error: string | null = null
  #timer: NodeJS.Timeout | undefined
  #failures = 0
  #stopped = false

  constructor(init: RelayLinkInit) {
    this.#init = init
    this.#address = multiaddr(init.address)
  }

  /** The relay's PeerId: `/gate/tls` streams are taken from it alone. */
  get peer(): string | undefined {
    return this.#address.getComponents().find((c) => c.name === 'p2p')?.value
  }

  get domain(): string | null {
    return this.#domain
  }

  status(): RelayStatus {
    return { address: this.#init.address, state: this.#state, domain: this.#domain, error: this.#error }
  }

  start(): void {
    void this.#register()
  }

  stop(): void {
    this.#stopped = true
    clearTimeout(this.#timer)
  }

  /** The connection to the relay closed: the relay has dropped the node, so register again soon. */
  disconnected(): void {
    if (this.#state === 'connecting' || this.#state === 'failed') return
    this.#state = 'connecting'
    this.#next(RETRY_MIN_MS, () => this.#register())
  }

  /** Has the relay publish an `_acme-challenge` value for the node's name; resolves once it is published. */
  async publishChallenge(value: string): Promise<void> {
    const answer = await this.#request({ type: 'dns_challenge', value })
    if (answer.type !== 'dns_challenge_response' || !answer.published) {
      throw new Error(`relay ${this.#init.address} did not publish the challenge: ${describeAnswer(answer)}`)
    }
  }

  async removeChallenge(value: string): Promise<void> {
    await this.#request({ type: 'dns_challenge_remove', value })
  }

  async #register(): Promise<void> {
    if (this.#stopped) return
    try {
      if (this.#state !== 'active') this.#state = 'connecting'
      const answer = await this.#request({ type: 'domain_request' })
      if (answer.type !== 'domain_response') throw new Error(describeAnswer(answer))
      this.#domain = answer.domain
      this.#state = 'registered'
      await this.#init.onDomain(answer.domain)
      const activation = await this.#request({ type: 'activate_domain' })
      if (activation.type !== 'activation_response' || !activation.active)
        throw new Error(describeAnswer(activation))
      this.#state = 'active'
      this.#error = null
      this.#failures = 0
      this.#init.logger.info({ relay: this.#init.address, domain: this.#domain }, 'registered with the relay')
    } catch (err) {
      this.#fail(err)
    }
  }

  #fail(err: unknown): void {
    if (this.#stopped) return
    this.#failures++
    this.#state = 'failed'
    this.#error = describeError(err)
    const wait = Math.min(RETRY_MIN_MS * 2 ** (this.#failures - 1), RETRY_MAX_MS)
    this.#init.logger.warn(
      { relay: this.#init.address, err: this.#error, retry_in_s: wait / 1000 },
      'relay unreachable',
    )
    this.#next(wait * (0.8 + Math.random() * 0.4), () => this.#register())
  }

  #next(delay: number, step: () => Promise<void>): void {
    clearTimeout(this.#timer)
    if (this.#stopped) return
    this.#timer = setTimeout(() => void step(), delay)
    this.#timer.unref()
  }

  /** One signed request on a new stream; libp2p dials the relay when there is no connection. */
  async #request(payload: RelayRequest): Promise<RelayAnswer> {
    const signal = AbortSignal.timeout(PEER_DIAL_TIMEOUT_MS)
    const stream = await this.#init.node.dialProtocol(this.#address, RELAY_PROTOCOL, { signal })
    return relayRequest(stream, this.#init.identity, payload, signal)
  }
}

function describeAnswer(answer: RelayAnswer): string {
  if (answer.type === 'error') return answer.message
  if ('error' in answer && answer.error) return answer.error
  return `unexpected answer ${answer.type}`
}
