import { createServer, connect as netConnect } from 'node:net'
import { connect as tlsConnect } from 'node:tls'

/** The first bytes a real TLS client (Node's) sends to `servername`: its ClientHello, whole. */
export async function clientHello(servername?: string, ALPNProtocols = ['http/1.1']): Promise<Buffer> {
  const server = createServer()
  const bytes = new Promise<Buffer>((resolve) =>
    server.once('connection', (socket) => {
      socket.once('data', (data: Buffer) => {
        resolve(data)
        socket.destroy()
      })
    }),
  )
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  const socket = tlsConnect({ host: '127.0.0.1', port, ALPNProtocols, ...(servername ? { servername } : {}) })
  socket.on('error', () => {})
  const hello = await bytes
  socket.destroy()
  server.close()
  return hello
}

/** The same hello cut into TLS records of `size` bytes of handshake each. */
export function reframe(hello: Buffer, size: number): Buffer {
  const handshake = hello.subarray(5, 5 + hello.readUInt16BE(3))
  const records: Buffer[] = []
  for (let at = 0; at < handshake.length; at += size) {
    const part = handshake.subarray(at, at + size)
    const header = Buffer.from([22, 3, 1, 0, 0])
    header.writeUInt16BE(part.length, 3)
    records.push(header, part)
  }
  return Buffer.concat(records)
}

/**
 * Sends `chunks` to `port`, `gapMs` apart, and resolves with what came back before the close (or,
 * with `firstReply`, with the first bytes that come back).
 */
export async function exchange(
  port: number,
  chunks: Buffer[],
  gapMs = 0,
  firstReply = false,
): Promise<{ reply: Buffer; closedAfterMs: number }> {
  const socket = netConnect(port, '127.0.0.1')
  const received: Buffer[] = []
  socket.on('data', (d: Buffer) => received.push(d))
  socket.on('error', () => {})
  await new Promise((resolve) => socket.once('connect', resolve))
  const started = performance.now()
  const closed = new Promise<void>((resolve) => {
    socket.once('close', () => resolve())
    if (firstReply) socket.once('data', () => socket.destroy())
  })
  for (const chunk of chunks) {
    if (socket.destroyed) break
    socket.write(chunk)
    if (gapMs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs))
  }
  await closed
  return { reply: Buffer.concat(received), closedAfterMs: performance.now() - started }
}
