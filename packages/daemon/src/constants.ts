/** How long a finished request's line may wait to be written to `requests.jsonl`. @default 100 ms */
export const REQUEST_LOG_FLUSH_MS = 100
/**
 * The most requests `request_history` returns: the daemon keeps this many in memory (every one is
 * also in its `logs/requests.jsonl`). @default 1000
 */
export const REQUEST_HISTORY_SIZE = 1000
/** How much of a response's end is searched for its `usage`. @default 4096 bytes */
export const USAGE_TAIL_BYTES = 4096
/** Largest non-streaming response body held to answer it whole. @default 64 MiB */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024
/**
 * How much of a body over the limit is read and dropped after the 413, so that a client still
 * sending it reads the answer; past it the connection is cut. @default 64 MiB
 */
export const MAX_DISCARDED_BODY_BYTES = 64 * 1024 * 1024
/** Timeout of a provider health check or model discovery. @default 5000 ms */
export const HEALTH_CHECK_TIMEOUT_MS = 5000
/** Seconds a client is told to wait when the daemon is at its concurrency cap. @default 1 */
export const RETRY_AFTER_SECONDS = 1
/**
 * Events held for one `/events` subscriber while its connection is backed up (it stopped reading).
 * Past this many the subscriber is disconnected rather than let memory grow. @default 1000
 */
export const EVENTS_QUEUE_MAX = 1000
/** Longest model name taken: longer is a 400, so no record, log line or comparison holds more. @default 256 */
export const MAX_MODEL_CHARS = 256
/** Longest error message a request record keeps. @default 1000 */
export const MAX_RECORDED_ERROR_CHARS = 1000
