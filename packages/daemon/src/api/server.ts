import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FrontDoor } from './types.ts'

/** How long an idle keep-alive connection stays open. @default 65 s, longer than clients' pools keep theirs */
const KEEP_ALIVE_TIMEOUT_MS = 65_000

/** The local API's HTTP server on 127.0.0.1: every request goes in at the pipeline's front door. */
export class ApiServer {
  readonly #server: Server

  constructor(door: FrontDoor) {
    this.#server = createServer({ keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS }, (req, res) => {
      void door.handle(req, res, LOCAL)
    })
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
