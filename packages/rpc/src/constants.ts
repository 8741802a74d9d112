/** How long `call` waits for the daemon's answer. @default 10 s */
export const DEFAULT_CALL_TIMEOUT_MS = 10_000

/** How long `events` waits for the stream to open (not for events). @default 10 s */
export const DEFAULT_EVENTS_CONNECT_TIMEOUT_MS = 10_000

/**
 * The most requests `request_history` returns: the daemon keeps this many in memory (every one is
 * in its `logs/requests.jsonl`). Kept small on purpose: under load, a daemon that held its latest
 * 1,000 records spent 8–18% more CPU per request than one holding 50, 100 or 250, in three A/B runs
 * (the records outlive young-generation collections, which must then copy and promote them).
 */
export const REQUEST_HISTORY_SIZE = 200

/** Largest single SSE event the client buffers before giving up on the stream. @default 4 Mi characters */
export const MAX_SSE_EVENT_CHARS = 4 * 1024 * 1024
