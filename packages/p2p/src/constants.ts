/** How long reaching a peer (dial and protocol negotiation) may take. @default 10_000 ms */
export const PEER_DIAL_TIMEOUT_MS = 10_000
/** How long redeeming an invite may take to reach the node that made it. @default 25 s */
export const PAIR_TIMEOUT_MS = 25_000
/** The wait between two attempts to reach the node that made an invite. @default 500 ms */
export const PAIR_RETRY_MS = 500
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
/** How often the relay reservations are checked, and the first wait before trying a relay again. @default 2000 ms */
export const RESERVATION_CHECK_MS = 2000
/** How long one hole punch may take, from the first message to the upgraded connection. @default 10 s */
export const PUNCH_TIMEOUT_MS = 10_000
/** How long a request to a peer waits for a hole punch under way before it takes the relayed connection. @default 5 s */
export const DIRECT_UPGRADE_WAIT_MS = 5000
/**
 * What a relayed connection must have left, beyond the request body, for a request to be sent over
 * it: room for the answer (a completion is rarely larger). A relay cuts a connection that goes
 * over its data limit mid-stream. @default 1 MiB
 */
export const RELAYED_RESPONSE_ROOM_BYTES = 1024 * 1024
/** What a relayed connection must have left of its duration for a request to be sent over it. @default 60 s */
export const RELAYED_MIN_SECONDS = 60
