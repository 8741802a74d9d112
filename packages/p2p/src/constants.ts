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
 * Streams of one Gate protocol that may be open at once on one connection, each way. libp2p's
 * default (32 in, 64 out) would reset a burst's extra streams; the daemon's concurrency cap and
 * rate limits are the real limits. @default 1024
 */
export const MAX_STREAMS_PER_CONNECTION = 1024
