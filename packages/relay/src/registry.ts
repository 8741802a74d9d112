import type { RelayAnswer, RelayRequest } from '@gate/p2p'
import type { Logger } from 'pino'
import type { ZoneBackend } from './dns/zone.ts'
import type { RelayMetrics } from './metrics.ts'
import { TokenBucket } from './token-bucket.ts'

/** A node registered with this relay. */
export interface Registration {
  nodeId: string
  /** `<node-id>.<domain>`. */
  domain: string
  /** The node has its certificate: TLS for its name is routed to it. */
  active: boolean
  /** Relayed connections open to it now. */
  connections: number
  /** Its share of bandwidth, both ways, all its connections together. */
  bandwidth: TokenBucket
  /** Challenge values published for it. */
  challenges: Set<string>
}

export interface NodeRegistryInit {
  domain: string
  publicIp: string
  zone: ZoneBackend
  maxBytesPerSecond: number
  metrics: RelayMetrics
  logger: Logger
}

/**
 * The nodes registered with this relay, by node ID: made by a node's `domain_request`, activated
 * by its `activate_domain`, dropped when its last connection to the relay closes. Each one's name
 * is published in the zone while it is registered, and its challenge records while it asks.
 */
export class NodeRegistry {
  readonly #init: NodeRegistryInit
  readonly #nodes = new Map<string, Registration>()

  constructor(init: NodeRegistryInit) {
    this.#init = init
  }

  get size(): number {
    return this.#nodes.size
  }

  /** The active registration a TLS server name routes to, if any. */
  route(serverName: string): Registration | undefined {
    const suffix = `.${this.#init.domain}`
    if (!serverName.endsWith(suffix)) return undefined
    const registration = this.#nodes.get(serverName.slice(0, -suffix.length))
    return registration?.active ? registration : undefined
  }

  /** Answers a node's request, the node already authenticated. */
  async answer(request: RelayRequest, nodeId: string): Promise<RelayAnswer> {
    if (request.type === 'domain_request') {
      const registration = await this.#register(nodeId)
      return { type: 'domain_response', domain: registration.domain, public_ip: this.#init.publicIp }
    }
    const registration = this.#nodes.get(nodeId)
    if (!registration) return { type: 'error', message: 'not registered: send a domain_request first' }
    const challenge = `_acme-challenge.${registration.domain}`
    switch (request.type) {
      case 'dns_challenge':
        try {
          await this.#init.zone.addTxt(challenge, request.value)
          registration.challenges.add(request.value)
          this.#init.metrics.challenges.inc({ outcome: 'published' })
          return { type: 'dns_challenge_response', published: true, error: null }
        } catch (err) {
          this.#init.metrics.challenges.inc({ outcome: 'failed' })
          this.#init.logger.warn(
            { node: nodeId, err: (err as Error).message },
            'challenge record not published',
          )
          return { type: 'dns_challenge_response', published: false, error: (err as Error).message }
        }
      case 'dns_challenge_remove':
        registration.challenges.delete(request.value)
        await this.#init.zone.removeTxt(challenge, request.value)
        this.#init.metrics.challenges.inc({ outcome: 'removed' })
        return { type: 'ack' }
      case 'activate_domain':
        registration.active = true
        this.#count()
        this.#init.logger.info({ node: nodeId, domain: registration.domain }, 'node active')
        return { type: 'activation_response', active: true, error: null }
    }
  }

  async #register(nodeId: string): Promise<Registration> {
    const known = this.#nodes.get(nodeId)
    if (known) return known
    const registration: Registration = {
      nodeId,
      domain: `${nodeId}.${this.#init.domain}`,
      active: false,
      connections: 0,
      bandwidth: new TokenBucket(this.#init.maxBytesPerSecond),
      challenges: new Set(),
    }
    this.#nodes.set(nodeId, registration)
    await this.#init.zone.addAddress(registration.domain)
    this.#count()
    this.#init.logger.info({ node: nodeId, domain: registration.domain }, 'node registered')
    return registration
  }

  /** Drops a node (its last connection closed): its name and challenge records go. */
  async unregister(nodeId: string): Promise<void> {
    const registration = this.#nodes.get(nodeId)
    if (!registration) return
    this.#nodes.delete(nodeId)
    this.#count()
    const challenge = `_acme-challenge.${registration.domain}`
    await Promise.all([
      this.#init.zone.removeAddress(registration.domain),
      ...[...registration.challenges].map((value) => this.#init.zone.removeTxt(challenge, value)),
    ]).catch((err: Error) =>
      this.#init.logger.warn({ node: nodeId, err: err.message }, 'records not removed'),
    )
    this.#init.logger.info({ node: nodeId }, 'node unregistered')
  }

  #count(): void {
    let active = 0
    for (const r of this.#nodes.values()) if (r.active) active++
    this.#init.metrics.registrations.set({ state: 'registered' }, this.#nodes.size)
    this.#init.metrics.registrations.set({ state: 'active' }, active)
  }
}
