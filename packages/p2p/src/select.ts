import type { Connection, Stream, StreamMuxer } from '@libp2p/interface'

/**
 * Optimistic protocol selection ("lazy" multistream-select, as go-libp2p and rust-libp2p do it
 * for a single protocol). libp2p's `newStream` sends multistream-select's header and the
 * protocol, then waits a round trip for the answer before the stream carries data; libp2p 3.3
 * declares `negotiateFully: false` but never reads it. Here the dialer sends the same two lines
 * in front of its first data instead, and reads the listener's answer, which echoes both lines,
 * in front of the first data that comes back. The listener is unchanged: it answers and passes
 * the data that came with the selection on to the protocol handler. A listener that does not
 * speak the protocol answers `na`, and FrameStream fails the exchange with a ProtocolError.
 */
const MULTISTREAM = '/multistream/1.0.0'

/** Selection bytes by protocol: Gate has a fixed few, and streams only read them. */
const selections = new Map<string, Uint8Array>()

/**
 * The bytes that select `protocol`: multistream-select's header and the protocol, each a
 * length-prefixed line. A listener that speaks the protocol answers with the same bytes.
 * Made once per protocol; the caller must not change them.
 */
export function selectionBytes(protocol: string): Uint8Array {
  let bytes = selections.get(protocol)
  if (bytes === undefined) {
    bytes = encodeSelection(protocol)
    selections.set(protocol, bytes)
  }
  return bytes
}

function encodeSelection(protocol: string): Uint8Array {
  const lines = [`${MULTISTREAM}\n`, `${protocol}\n`].map((line) => new TextEncoder().encode(line))
  const out: number[] = []
  for (const line of lines) {
    // Protocol names are short (multistream-select caps them at 1 KiB): a one- or two-byte varint.
    if (line.length >= 0x80) out.push((line.length & 0x7f) | 0x80, line.length >> 7)
    else out.push(line.length)
    out.push(...line)
  }
  return Uint8Array.from(out)
}

/**
 * A new stream on `connection` for `protocol`, not yet negotiated (`negotiated: false`): the
 * caller sends `selectionBytes(protocol)` ahead of its first data and checks the echo
 * (FrameStream's `select` option does both), and must not close its side before the echo is in:
 * libp2p 3.3's listener resets a stream whose end arrives while it is still negotiating. Falls
 * back to a stream negotiated by libp2p's `newStream` when the connection exposes no muxer.
 */
export async function openStream(
  connection: Connection,
  protocol: string,
  signal?: AbortSignal,
): Promise<{ stream: Stream; negotiated: boolean }> {
  const options = signal ? { signal } : {}
  // libp2p's Connection keeps its muxer as a public field, though the interface does not list it.
  const muxer = (connection as Connection & { muxer?: StreamMuxer }).muxer
  if (muxer === undefined) return { stream: await connection.newStream(protocol, options), negotiated: true }
  const stream = await muxer.createStream(options)
  stream.protocol = protocol
  return { stream, negotiated: false }
}
