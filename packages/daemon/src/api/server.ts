import { createServer, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { LogThrottle } from '@gate/core'
import type { Logger } from 'pino'
import type { FrontDoor } from './types.ts'

/** How long an idle keep-alive connection stays open. @default 65 s, longer than clients' pools keep theirs */
export const KEEP_ALIVE_TIMEOUT_MS = 65_000

export interface ApiServerInit {
  door: FrontDoor
  /** Connections served at once; more are closed as they come, with a (throttled) log line. */
  maxConnections: number
  logger: Logger
}

/**
 * The local API's HTTP server on 127.0.0.1: every request goes in at the pipeline's front door.
 * Requests pipelined on one connection are served one at a time, in order, so that one
 * connection holds at most one place among the requests in flight.
 */
export class ApiServer {
  readonly #server: Server
  /** Per connection, the request being served: the next one waits for it. */
  readonly #serving = new WeakMap<Socket, Promise<void>>()

  constructor(init: ApiServerInit) {
    this.#server = createServer({ keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS }, (req, res) => {
      const before = this.#serving.get(req.socket) ?? Promise.resolve()
      const served = before
        .then(() => init.door.handle(req, res, LOCAL))
        .catch(() => {
          res.destroy()
        })
      this.#serving.set(req.socket, served)
    })
    this.#server.maxConnections = init.maxConnections
    const drops = new LogThrottle(init.logger)
    this.#server.on('drop', () =>
      drops.warn(
        'drop',
        { max_connections: init.maxConnections },
        'local API at its connection cap: refusing new connections',
      ),
    )
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject)
        resolve(this.#server.address() as AddressInfo)
      })
    })
  }

  /** Takes no new connections, and closes the idle ones; requests under way go on. */
  stopAccepting(): void {
    if (this.#server.listening) this.#server.close()
    this.#server.closeIdleConnections()
  }

  /** Closes every connection left. */
  close(): void {
    this.stopAccepting()
    this.#server.closeAllConnections()
  }
}

const LOCAL = { kind: 'local' } as const
