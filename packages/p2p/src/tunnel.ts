import { Duplex } from 'node:stream'
import type { FrameStream } from './frames.ts'

/**
 * `/gate/tls/1.0.0`: raw bytes (a TLS connection the relay does not terminate) between a relay and
 * a node. The relay first sends a head frame naming the client (`{ client: "<ip>:<port>" }`), then
 * both sides send data frames and an end frame for their half-close. Carried in Gate's frames
 * rather than on the bare stream for their credit-based flow control: the QUIC transport does not
 * stop reading when a stream is paused, so a slow reader would otherwise fill the node's memory.
 */
export const TLS_PROTOCOL = '/gate/tls/1.0.0'

/** Longest client address the relay may send. */
const MAX_CLIENT_CHARS = 64

/** The head a relay sends on a `/gate/tls` stream: where the client connects from. */
export interface TunnelHead {
  client: string
}

/** Reads the relay's head from a `/gate/tls` stream's frames. */
export async function readTunnelHead(frames: FrameStream, signal: AbortSignal): Promise<TunnelHead> {
  const head = await frames.read(signal)
  const client = head.type === 'head' ? head.value.client : undefined
  if (typeof client !== 'string' || client.length > MAX_CLIENT_CHARS) {
    throw new Error('a /gate/tls stream must begin with a head naming the client')
  }
  return { client }
}

/**
 * The frames of a tunnel as a node Duplex, with backpressure both ways: data is read from the
 * peer only as fast as the Duplex's consumer takes it, and each write waits for the peer's
 * credit. `end()` sends the end frame (the peer reads EOF, and may still answer); a destroy with
 * an error resets the stream.
 */
export function tunnelDuplex(frames: FrameStream): Duplex {
  const { stream } = frames
  let pumping = false
  const pump = async (): Promise<void> => {
    pumping = true
    try {
      for (;;) {
        const frame = await frames.next()
        if (frame === null || frame.type === 'end') {
          duplex.push(null)
          return
        }
        if (frame.type !== 'data') throw new Error(`unexpected ${frame.type} frame in a tunnel`)
        if (!duplex.push(frame.bytes)) return
      }
    } catch (err) {
      duplex.destroy(err as Error)
    } finally {
      pumping = false
    }
  }
  const duplex: Duplex = new Duplex({
    allowHalfOpen: true,
    read() {
      if (!pumping) void pump()
    },
    write(chunk: Buffer, _encoding, done) {
      frames.write({ type: 'data', bytes: chunk }).then(() => done(), done)
    },
    final(done) {
      frames
        .write({ type: 'end' })
        .then(() => stream.close())
        .then(() => done(), done)
    },
    destroy(err, done) {
      if (stream.status === 'open' || stream.status === 'closing') {
        if (err) stream.abort(err)
        else void stream.close().catch((e: Error) => stream.abort(e))
      }
      done(err)
    },
  })
  return duplex
}
