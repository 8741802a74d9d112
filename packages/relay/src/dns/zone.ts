/** The relay's DNS behind one interface: the built-in server and Cloudflare's API both implement it. */

/** Where the relay publishes the names it holds. */
export interface ZoneBackend {
  start(): Promise<void>
  stop(): Promise<void>
  /** `name` (a node's full name) resolves to the relay's public address. */
  addAddress(name: string): Promise<void>
  removeAddress(name: string): Promise<void>
  /** A TXT value at `name` (an `_acme-challenge` name), with a short TTL. */
  addTxt(name: string, value: string): Promise<void>
  removeTxt(name: string, value: string): Promise<void>
}

/** TTL of the records the relay publishes: short, as names come and go with their nodes. @default 60 s */
export const RECORD_TTL_S = 60
/** TTL of challenge records: validated once, then removed. @default 10 s */
export const CHALLENGE_TTL_S = 10

/** A DNS name as the relay keeps it: lower-case, no trailing dot (resolvers randomise case). */
export function normalizeName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '')
}
