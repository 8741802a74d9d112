import type { Connection, Stream } from '@libp2p/interface'

export interface StreamPoolOptions {
  /** Negotiated streams kept ready on each connection. */
  spare: number
  /** An unused stream older than this is closed: the receiver would time it out. */
  idleMs: number
  /** Passed to `newStream` (stream limits). */
  streamOptions?: { maxOutboundStreams?: number }
}

interface Ready {
  stream: Stream
  expiry: NodeJS.Timeout
}

interface Spares {
  ready: Ready[]
  opening: number
}

/**
 * Streams of one protocol opened ahead of need. Opening a libp2p stream costs a round trip of
 * protocol negotiation (libp2p 3.3 ignores `negotiateFully: false`); a stream taken from here
 * was negotiated while the connection was idle, so an exchange starts by sending at once. Each
 * stream still carries one exchange; the pool refills in the background after every take.
 */
export class StreamPool {
  readonly #protocol: string
  readonly #options: StreamPoolOptions
  readonly #spares = new WeakMap<Connection, Spares>()

  constructor(protocol: string, options: StreamPoolOptions) {
    this.#protocol = protocol
    this.#options = options
  }

  /** A negotiated stream on `connection`: a ready one if there is one, else a new one. */
  async take(connection: Connection, signal: AbortSignal): Promise<Stream> {
    const spares = this.#sparesOf(connection)
    let stream: Stream | undefined
    while (!stream && spares.ready.length > 0) {
      const ready = spares.ready.shift() as Ready
      clearTimeout(ready.expiry)
      if (usable(ready.stream)) stream = ready.stream
    }
    this.#refill(connection, spares)
    return stream ?? connection.newStream(this.#protocol, { ...this.#options.streamOptions, signal })
  }

  #sparesOf(connection: Connection): Spares {
    let spares = this.#spares.get(connection)
    if (!spares) {
      spares = { ready: [], opening: 0 }
      this.#spares.set(connection, spares)
    }
    return spares
  }

  #refill(connection: Connection, spares: Spares): void {
    while (connection.status === 'open' && spares.ready.length + spares.opening < this.#options.spare) {
      spares.opening++
      connection
        .newStream(this.#protocol, {
          ...this.#options.streamOptions,
          signal: AbortSignal.timeout(this.#options.idleMs),
        })
        .then(
          (stream) => {
            spares.opening--
            const expiry = setTimeout(() => {
              const at = spares.ready.findIndex((r) => r.stream === stream)
              if (at >= 0) spares.ready.splice(at, 1)
              void stream.close().catch(() => {})
            }, this.#options.idleMs)
            expiry.unref()
            spares.ready.push({ stream, expiry })
          },
          () => {
            // The connection is going or the peer refuses more streams: the next take opens its own.
            spares.opening--
          },
        )
    }
  }
}

function usable(stream: Stream): boolean {
  return stream.status === 'open' && stream.writeStatus === 'writable' && stream.readStatus === 'readable'
}
