import { ForbiddenError, UnauthorizedError } from '@gate/core'

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]'])

/** The host part of a Host header or origin authority, without its port. */
function hostname(authority: string): string {
  const end = authority.startsWith('[') ? authority.indexOf(']') + 1 : authority.lastIndexOf(':')
  return (end > 0 ? authority.slice(0, end) : authority).toLowerCase()
}

export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.')
}

/**
 * Refuses requests a web page could have made: a Host that is not a loopback name (DNS
 * rebinding) or an Origin that is not on this machine (CSRF). Clients that send no Origin
 * (SDKs, curl) pass.
 */
export function checkLocalRequest(host: string | undefined, origin: string | undefined): void {
  if (host === undefined || !LOOPBACK_HOSTS.has(hostname(host))) {
    throw new ForbiddenError(`Host "${host ?? ''}" is not allowed: use localhost or 127.0.0.1`)
  }
  if (origin !== undefined && !isLoopbackOrigin(origin)) {
    throw new ForbiddenError(`Origin "${origin}" is not allowed`)
  }
}

export function isLoopbackOrigin(origin: string): boolean {
  if (!URL.canParse(origin)) return false
  const url = new URL(origin)
  return (url.protocol === 'http:' || url.protocol === 'https:') && LOOPBACK_HOSTS.has(url.hostname)
}

/** Checks `Authorization: Bearer <key>` against the configured API keys. */
export function checkApiKey(authorization: string | undefined, keys: readonly string[]): string {
  const match = /^Bearer\s+(.+)$/i.exec(authorization ?? '')
  const key = match?.[1]?.trim()
  if (!key) throw new UnauthorizedError('an API key is required: Authorization: Bearer <key>')
  if (!keys.includes(key)) throw new UnauthorizedError('invalid API key')
  return key
}
