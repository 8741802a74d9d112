/** How long `call` waits for the daemon's answer. @default 10 s */
export const DEFAULT_CALL_TIMEOUT_MS = 10_000

/** How long `events` waits for the stream to open (not for events). @default 10 s */
export const DEFAULT_EVENTS_CONNECT_TIMEOUT_MS = 10_000

/** The most records one `request_history` call may ask for (every request is also in `logs/requests.jsonl`). */
export const MAX_HISTORY_LIMIT = 1000

/** Largest single SSE event the client buffers before giving up on the stream. @default 4 Mi characters */
export const MAX_SSE_EVENT_CHARS = 4 * 1024 * 1024
