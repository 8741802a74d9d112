import { createServer, type Server } from 'node:http'
import { TLSSocket } from 'node:tls'
import type { Config, Identity, Logger } from '@gate/core'
import { deadline, FrameStream, type GateLibp2p, readTunnelHead, TLS_PROTOCOL, tunnelDuplex } from '@gate/p2p'
import type { PublicStatus } from '@gate/rpc'
import { KEEP_ALIVE_TIMEOUT_MS } from '../api/server.ts'
import type { FrontDoor } from '../api/types.ts'
import { Certificates } from './certificates.ts'
import { RelayLink } from './relay-link.ts'

/** How long a relayed TLS stream may take to name its client. @default 10 s */
const HEAD_TIMEOUT_MS = 10_000
/** Relayed TLS connections one relay may have open to this node at once. @default 128 */
const MAX_RELAYED_STREAMS = 128

export interface PublicEndpointInit {
  node: GateLibp2p
  identity: Identity
  /** `relay` of the config at start (addresses and ACME need a restart). */
  relay: Config['relay']
  /** `certs/`. */
  certsDir: string
  /** The PEM of `relay.acme.ca_file`, read at start. */
  acmeCa?: string | undefined
  /** The request pipeline: relayed requests enter it at its front door. */
  door: FrontDoor
  logger: Logger
}

/**
 * What makes a node reachable at `https://<node-id>.<domain>` through its relays: a registration
 * with each relay, the certificate for the names they give it, and the TLS server for the
 * `/gate/tls` streams they open. The HTTP inside runs through the request pipeline as a relayed
 * request; the control port is never reachable this way.
 */
export class PublicEndpoint {
  readonly #init: PublicEndpointInit
  readonly #links: RelayLink[]
  readonly #certificates: Certificates
  readonly #http: Server
  /** The client address of each relayed TLS connection. */
  readonly #clients = new WeakMap<object, string>()
  #names = new Set<string>()

  constructor(init: PublicEndpointInit) {
    this.#init = init
    const { acme } = init.relay
    this.#certificates = new Certificates({
      dir: init.certsDir,
      acme: acme && {
        directoryUrl: acme.directory_url,
        email: acme.email,
        ca: init.acmeCa,
        renewBeforeMs: acme.renew_before_days * 86_400_000,
      },
      challenges: (name) => {
        const link = this.#links.find((l) => l.domain === name)
        if (!link) throw new Error(`no relay serves ${name}`)
        return {
          publish: (value) => link.publishChallenge(value),
          remove: (value) => link.removeChallenge(value),
        }
      },
      logger: init.logger,
    })
    this.#links = init.relay.addresses.map(
      (address) =>
        new RelayLink({
          address,
          node: init.node,
          identity: init.identity,
          onDomain: (domain) => this.#cover(domain),
          logger: init.logger,
        }),
    )
    this.#http = createServer({ keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS }, (req, res) => {
      const socket = req.socket as TLSSocket & { servername?: string | false }
      const client = this.#clients.get(socket)
      if (client === undefined) return void res.destroy()
      const name = typeof socket.servername === 'string' ? socket.servername : ''
      void init.door.handle(req, res, { kind: 'relay', client, name })
    })
  }

  async start(): Promise<void> {
    if (this.#links.length === 0) return
    const relays = new Set(this.#links.map((l) => l.peer))
    await this.#init.node.handle(
      TLS_PROTOCOL,
      async (stream, connection) => {
        if (!relays.has(connection.remotePeer.toString()))
          return void stream.abort(new Error("not one of this node's relays"))
        await this.#serve(new FrameStream(stream))
      },
      { maxInboundStreams: MAX_RELAYED_STREAMS },
    )
    this.#init.node.addEventListener('peer:disconnect', this.#onDisconnect)
    for (const link of this.#links) link.start()
  }

  readonly #onDisconnect = (event: CustomEvent<{ toString(): string }>): void => {
    const peer = event.detail.toString()
    for (const link of this.#links) if (link.peer === peer) link.disconnected()
  }

  async stop(): Promise<void> {
    this.#init.node.removeEventListener('peer:disconnect', this.#onDisconnect)
    for (const link of this.#links) link.stop()
    this.#certificates.stop()
    if (this.#links.length > 0) await this.#init.node.unhandle(TLS_PROTOCOL)
    this.#http.closeAllConnections()
  }

  status(): PublicStatus {
    const domain = this.#links.find((l) => l.domain !== null)?.domain ?? null
    return {
      url: domain === null ? null : `https://${domain}`,
      relays: this.#links.map((l) => l.status()),
      certificate: this.#certificates.status,
    }
  }

  /** A relay named the node `domain`: the certificate must cover it before the relay routes to it. */
  async #cover(domain: string): Promise<void> {
    if (this.#names.has(domain) && this.#certificates.context) return
    this.#names.add(domain)
    await this.#certificates.ensure([...this.#names])
  }

  /** Terminates one relayed TLS connection and serves the HTTP inside it. */
  async #serve(frames: FrameStream): Promise<void> {
    const late = deadline(HEAD_TIMEOUT_MS, () => new Error(`no tunnel head within ${HEAD_TIMEOUT_MS} ms`))
    const { client } = await readTunnelHead(frames, late.signal).finally(late.clear)
    const context = this.#certificates.context
    if (!context) throw new Error('no certificate yet')
    const socket = new TLSSocket(tunnelDuplex(frames), {
      isServer: true,
      secureContext: context,
      ALPNProtocols: ['http/1.1'],
    })
    socket.on('error', () => socket.destroy())
    this.#clients.set(socket, client)
    this.#http.emit('connection', socket)
  }
}
