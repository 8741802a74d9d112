import { isIPv6 } from 'node:net'
import Cloudflare from 'cloudflare'
import { CHALLENGE_TTL_S, normalizeName, RECORD_TTL_S, type ZoneBackend } from './zone.ts'

/** How long one call to Cloudflare's API may take. @default 10 s */
const API_TIMEOUT_MS = 10_000

export interface CloudflareDnsInit {
  /** @default Cloudflare's own (`https://api.cloudflare.com/client/v4`) */
  apiUrl?: string | undefined
  apiToken: string
  zoneId: string
  publicIp: string
}

/**
 * The relay's zone kept at Cloudflare, through the official SDK: an A (or AAAA) record per
 * registered node and the `_acme-challenge` TXT records, created and deleted as nodes come and go.
 * Cloudflare answers the queries, so the relay runs no DNS server of its own.
 */
export class CloudflareDns implements ZoneBackend {
  readonly #client: Cloudflare
  readonly #init: CloudflareDnsInit
  /** The ID of each record this relay made, by `type name value`, to delete it again. */
  readonly #records = new Map<string, string>()

  constructor(init: CloudflareDnsInit) {
    this.#init = init
    this.#client = new Cloudflare({
      apiToken: init.apiToken,
      ...(init.apiUrl ? { baseURL: init.apiUrl } : {}),
      maxRetries: 0,
      timeout: API_TIMEOUT_MS,
    })
  }

  async start(): Promise<void> {}

  /** Deletes every record this relay made. */
  async stop(): Promise<void> {
    await Promise.all([...this.#records.values()].map((id) => this.#delete(id)))
    this.#records.clear()
  }

  addAddress(name: string): Promise<void> {
    return this.#create(isIPv6(this.#init.publicIp) ? 'AAAA' : 'A', name, this.#init.publicIp, RECORD_TTL_S)
  }

  removeAddress(name: string): Promise<void> {
    return this.#remove(isIPv6(this.#init.publicIp) ? 'AAAA' : 'A', name, this.#init.publicIp)
  }

  addTxt(name: string, value: string): Promise<void> {
    return this.#create('TXT', name, value, CHALLENGE_TTL_S)
  }

  removeTxt(name: string, value: string): Promise<void> {
    return this.#remove('TXT', name, value)
  }

  async #create(type: 'A' | 'AAAA' | 'TXT', name: string, content: string, ttl: number): Promise<void> {
    const key = `${type} ${normalizeName(name)} ${content}`
    if (this.#records.has(key)) return
    const record = await this.#client.dns.records.create({
      zone_id: this.#init.zoneId,
      type,
      name: normalizeName(name),
      // A TXT record's content is quoted in Cloudflare's API, as in a zone file.
      content: type === 'TXT' ? JSON.stringify(content) : content,
      // Cloudflare's lowest TTL other than "automatic" is 60 s.
      ttl: Math.max(60, ttl),
    } as never)
    this.#records.set(key, (record as { id: string }).id)
  }

  async #remove(type: string, name: string, content: string): Promise<void> {
    const key = `${type} ${normalizeName(name)} ${content}`
    const id = this.#records.get(key)
    if (id === undefined) return
    this.#records.delete(key)
    await this.#delete(id)
  }

  async #delete(id: string): Promise<void> {
    await this.#client.dns.records.delete(id, { zone_id: this.#init.zoneId })
  }
}
