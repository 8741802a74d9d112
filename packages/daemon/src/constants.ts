/** Consecutive failures that open a provider's circuit breaker. @default 3 */
export const BREAKER_FAILURE_THRESHOLD = 3
/** How long an open breaker waits before letting one probe request through. @default 10_000 ms */
export const BREAKER_COOLDOWN_MS = 10_000
/** How long in-flight requests may run after a shutdown signal before they are cancelled. @default 10_000 ms */
export const SHUTDOWN_GRACE_MS = 10_000
/** How long the API must be quiet, after serving requests, before the daemon hands memory back. @default 10_000 ms */
export const IDLE_TRIM_MS = 10_000
/** How long a finished request's line may wait to be written to `requests.jsonl`. @default 100 ms */
export const REQUEST_LOG_FLUSH_MS = 100
/** How much of a response's end is searched for its `usage`. @default 4096 bytes */
export const USAGE_TAIL_BYTES = 4096
/** Largest non-streaming response body held to answer it whole. @default 64 MiB */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024
/** Timeout of a provider health check or model discovery. @default 5000 ms */
export const HEALTH_CHECK_TIMEOUT_MS = 5000
/** Seconds a client is told to wait when the daemon is at its concurrency cap. @default 1 */
export const RETRY_AFTER_SECONDS = 1
/** How long reaching a peer (dial and protocol negotiation) may take. @default 10_000 ms */
export const PEER_DIAL_TIMEOUT_MS = 10_000
/** How often trusted peers are reached, their capabilities refreshed and ours pushed if changed. @default 2000 ms */
export const PEER_REFRESH_MS = 2000
/** The longest wait between attempts to reach an unreachable trusted peer. @default 60_000 ms */
export const PEER_BACKOFF_MAX_MS = 60_000
/**
 * Events held for one `/events` subscriber while its connection is backed up (it stopped reading).
 * Past this many the subscriber is disconnected rather than let memory grow. @default 1000
 */
export const EVENTS_QUEUE_MAX = 1000
