/** How long reaching a peer (dial and protocol negotiation) may take. @default 10_000 ms */
export const PEER_DIAL_TIMEOUT_MS = 10_000
/** How often trusted peers are reached, their capabilities refreshed and ours pushed if changed. @default 2000 ms */
export const PEER_REFRESH_MS = 2000
/** The longest wait between attempts to reach an unreachable trusted peer. @default 60_000 ms */
export const PEER_BACKOFF_MAX_MS = 60_000
/** How long a peer may take to send a whole `/gate/http` request before its stream is reset. @default 30 s */
export const REQUEST_READ_TIMEOUT_MS = 30_000
/** How long a `/gate/control` request may take to arrive. @default 10 s */
export const CONTROL_READ_TIMEOUT_MS = 10_000
/**
 * Streams a peer may have open at once on one connection: all protocols, negotiated or not (yamux
 * resets the ones past it; QUIC makes the opener wait), and `/gate/http` ones. It bounds what one
 * connection can make a node hold (about 9 KB a stream that is never negotiated); the daemon's
 * concurrency cap and rate limits are the limits on requests. @default 256
 */
export const MAX_STREAMS_PER_CONNECTION = 128
/** Request bytes read and dropped from a refused requester (an untrusted peer) before its stream is reset. @default 64 KiB */
export const REFUSED_REQUEST_BYTES = 64 * 1024
/** The share of `network.max_connections` that nodes this node does not trust may hold. @default 1/8 */
export const UNTRUSTED_CONNECTION_SHARE = 0.125
