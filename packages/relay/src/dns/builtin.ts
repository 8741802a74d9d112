import { isIPv6 } from 'node:net'
import dns2, { type Packet as DnsPacket } from 'dns2'
import type { RelayMetrics } from '../metrics.ts'
import { CHALLENGE_TTL_S, normalizeName, RECORD_TTL_S, type ZoneBackend } from './zone.ts'

const { Packet } = dns2

type Question = DnsPacket['questions'][number]

export interface BuiltinDnsInit {
  /** The zone: `<node-id>.<domain>` names live under it. */
  domain: string
  /** What node names (and the zone and its name server) resolve to. */
  publicIp: string
  host: string
  /** UDP and TCP; 0 picks free ports (the two may then differ). */
  port: number
  /** An issuer for the zone's CAA record, if any. */
  caa?: string | undefined
  metrics: RelayMetrics
  onError: (err: Error) => void
}

/**
 * The relay's own authoritative DNS server for its zone, on UDP and TCP (dns2: a maintained
 * library for the wire format). It holds the zone's SOA and NS (`ns1.<domain>`, at the public
 * address), an A or AAAA record for each registered node, and the `_acme-challenge` TXT records
 * nodes ask for; any other name in the zone is NXDOMAIN, names outside it are refused.
 */
export class BuiltinDns implements ZoneBackend {
  readonly #init: BuiltinDnsInit
  readonly #zone: string
  readonly #ns: string
  readonly #addresses = new Set<string>()
  readonly #txt = new Map<string, Set<string>>()
  readonly #server: ReturnType<typeof dns2.createServer>
  /** Where it listens once started: UDP and TCP ports. */
  ports = { udp: 0, tcp: 0 }

  constructor(init: BuiltinDnsInit) {
    this.#init = init
    this.#zone = normalizeName(init.domain)
    this.#ns = `ns1.${this.#zone}`
    this.#server = dns2.createServer({
      udp: true,
      tcp: true,
      handle: (request, send) => {
        const response = this.answer(request)
        void Promise.resolve(send(response)).catch((err: Error) => init.onError(err))
      },
    })
    // Without listeners a socket error would be an uncaught exception; undecodable input gets no reply.
    this.#server.on('error', (err: Error) => init.onError(err))
    this.#server.on('requestError', () => init.metrics.dnsQueries.inc({ type: 'malformed', rcode: 'none' }))
  }

  async start(): Promise<void> {
    // dns2 hands this object to dgram (which reads `address`) and net (which reads `host`).
    const where = { port: this.#init.port, address: this.#init.host, host: this.#init.host }
    const bound = (await this.#server.listen({ udp: where, tcp: where } as never)) as {
      udp: { port: number }
      tcp: { port: number }
    }
    this.ports = { udp: bound.udp.port, tcp: bound.tcp.port }
  }

  async stop(): Promise<void> {
    await this.#server.close()
  }

  async addAddress(name: string): Promise<void> {
    this.#addresses.add(normalizeName(name))
  }

  async removeAddress(name: string): Promise<void> {
    this.#addresses.delete(normalizeName(name))
  }

  async addTxt(name: string, value: string): Promise<void> {
    const key = normalizeName(name)
    const values = this.#txt.get(key) ?? new Set()
    values.add(value)
    this.#txt.set(key, values)
  }

  async removeTxt(name: string, value: string): Promise<void> {
    const key = normalizeName(name)
    this.#txt.get(key)?.delete(value)
    if (this.#txt.get(key)?.size === 0) this.#txt.delete(key)
  }

  /** The response to one query. */
  answer(request: DnsPacket): DnsPacket {
    const response = Packet.createResponseFromRequest(request)
    const reply = (rcode: number, type: string): DnsPacket => {
      response.header.rcode = rcode
      this.#init.metrics.dnsQueries.inc({ type, rcode: RCODE_NAMES[rcode] ?? String(rcode) })
      return response
    }
    if (request.errors?.length || request.questions.length !== 1)
      return reply(Packet.RCODE.FORMERR, 'malformed')
    const q = request.questions[0] as Question
    const type = (Packet.TYPE_NAME[q.type] as string | undefined) ?? 'other'
    const label = KNOWN_TYPES.has(type) ? type : 'other'
    if (request.header.opcode !== 0) return reply(Packet.RCODE.NOTIMP, label)
    const name = normalizeName(q.name)
    if (name !== this.#zone && !name.endsWith(`.${this.#zone}`)) return reply(Packet.RCODE.REFUSED, label)
    response.header.aa = 1
    const found = this.#records(name, q)
    if (found === null) {
      response.authorities.push(this.#soa(q))
      return reply(Packet.RCODE.NXDOMAIN, label)
    }
    for (const record of found) if (record.type === q.type) response.answers.push(record)
    // The name exists but has no record of this type: NODATA, with the SOA for negative caching.
    if (response.answers.length === 0) response.authorities.push(this.#soa(q))
    return reply(Packet.RCODE.NOERROR, label)
  }

  /** Every record at `name`, or null when the zone has no such name. */
  #records(name: string, q: Question): ReturnType<typeof resource>[] | null {
    const address = (): ReturnType<typeof resource> =>
      isIPv6(this.#init.publicIp)
        ? resource(q, { type: Packet.TYPE.AAAA, address: this.#init.publicIp }, RECORD_TTL_S)
        : resource(q, { type: Packet.TYPE.A, address: this.#init.publicIp }, RECORD_TTL_S)
    if (name === this.#zone) {
      const records = [
        this.#soa(q),
        resource(q, { type: Packet.TYPE.NS, ns: this.#ns }, RECORD_TTL_S),
        address(),
      ]
      if (this.#init.caa)
        records.push(
          resource(q, { type: Packet.TYPE.CAA, flags: 0, tag: 'issue', value: this.#init.caa }, RECORD_TTL_S),
        )
      return records
    }
    if (name === this.#ns || this.#addresses.has(name)) return [address()]
    const txt = this.#txt.get(name)
    if (txt) return [...txt].map((data) => resource(q, { type: Packet.TYPE.TXT, data }, CHALLENGE_TTL_S))
    return null
  }

  #soa(q: Question): ReturnType<typeof resource> {
    return Object.assign(
      resource(
        q,
        {
          type: Packet.TYPE.SOA,
          primary: this.#ns,
          admin: `hostmaster.${this.#zone}`,
          serial: 1,
          refresh: 3600,
          retry: 600,
          expiration: 86400,
          minimum: RECORD_TTL_S,
        },
        RECORD_TTL_S,
      ),
      { name: this.#zone },
    )
  }
}

/** Record types the query counter names; the rest are `other`, so its labels stay few. */
const KNOWN_TYPES = new Set(['A', 'AAAA', 'TXT', 'SOA', 'NS', 'CAA'])
const RCODE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(Packet.RCODE).map(([name, code]) => [code as number, name]),
)

/** A record answering `q` (dns2's typed way; its name echoes the question's, whose case resolvers randomise). */
function resource(q: Question, fields: Record<string, unknown>, ttl: number) {
  return Packet.createResourceFromQuestion(q, { class: Packet.CLASS.IN, ttl, ...fields } as never)
}
