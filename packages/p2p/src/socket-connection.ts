import type { Socket } from 'node:net'
import type { AbortOptions, Logger } from '@libp2p/interface'
import { AbstractMultiaddrConnection } from '@libp2p/utils'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Uint8ArrayList } from 'uint8arraylist'

/**
 * A connected TCP socket as the raw connection libp2p's upgrader takes (it adds noise and yamux).
 * `@libp2p/tcp` has its own but keeps it private; hole punching makes its sockets itself.
 */
export class SocketConnection extends AbstractMultiaddrConnection {
  readonly #socket: Socket

  constructor(
    socket: Socket,
    init: { remoteAddr: Multiaddr; direction: 'inbound' | 'outbound'; log: Logger },
  ) {
    super(init)
    this.#socket = socket
    socket.on('data', (buf: Buffer) => this.onData(buf))
    socket.on('error', (err) => this.abort(err))
    socket.on('drain', () => this.safeDispatchEvent('drain'))
    // Node answers the peer's FIN with its own (allowHalfOpen is off), then emits 'close'.
    socket.once('close', (hadError) => {
      if (hadError) this.abort(new Error('TCP transmission error'))
      else this.onTransportClosed()
    })
  }

  sendData(data: Uint8ArrayList): { sentBytes: number; canSendMore: boolean } {
    let sentBytes = 0
    let canSendMore = true
    for (const buf of data) {
      sentBytes += buf.byteLength
      canSendMore = this.#socket.write(buf)
      if (!canSendMore) break
    }
    return { sentBytes, canSendMore }
  }

  async sendClose(options?: AbortOptions): Promise<void> {
    const socket = this.#socket
    if (socket.destroyed) return
    const closed = new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(options?.signal?.reason)
      options?.signal?.addEventListener('abort', onAbort, { once: true })
      socket.once('close', () => {
        options?.signal?.removeEventListener('abort', onAbort)
        resolve()
      })
    })
    socket.destroySoon()
    await closed
  }

  sendReset(): void {
    if (this.#socket.writableEnded) this.#socket.destroy()
    else this.#socket.resetAndDestroy()
  }

  sendPause(): void {
    this.#socket.pause()
  }

  sendResume(): void {
    this.#socket.resume()
  }
}
