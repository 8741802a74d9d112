import { readFile } from 'node:fs/promises'
import { extname, join } from 'node:path'
import { NotFoundError } from '@gate/core'
import type { Context } from 'hono'

export interface DashboardInit {
  /** The built app: `index.html` and `assets/` (`@gate/web`'s `WEB_DIST`). */
  dist: string
  /** `web.enabled`, read per request so that turning it off applies at once. */
  enabled: () => boolean
}

/** The app's pages: each is its own path, so links and reloads work; all are `index.html`. */
export const DASHBOARD_PAGES: ReadonlySet<string> = new Set([
  '/',
  '/peers',
  '/providers',
  '/config',
  '/logs',
  '/setup',
])

/**
 * Everything the page may load is its own origin's: no inline script or style, no other host, no
 * frame around it (clickjacking), no form posted elsewhere.
 */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ')

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
}

/** Paths of files the build makes: plain names, no dot-files, no `..`. */
const ASSET_PATH = /^\/(?:[\w-][\w.-]*\/)*[\w-][\w.-]*$/

const NOT_BUILT =
  'The dashboard is not built. Run the install step in the checkout (npx -y pnpm@10 install), which builds it, then reload.\n'

/** Serves the dashboard's pages and assets, or 404 when `web.enabled` is false. */
export function serveDashboard(init: DashboardInit): (ctx: Context) => Promise<Response> {
  return async (ctx) => {
    const path = ctx.req.path
    const page = DASHBOARD_PAGES.has(path)
    const file = page ? 'index.html' : path.slice(1)
    const type = CONTENT_TYPES[extname(file)]
    const missing = new NotFoundError(`no route ${ctx.req.method} ${path}`)
    if (type === undefined || (!page && !ASSET_PATH.test(path))) throw missing
    if (!init.enabled()) throw new NotFoundError('the dashboard is turned off (web.enabled is false)')
    let body: Buffer
    try {
      body = await readFile(join(init.dist, file))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      if (page) return ctx.text(NOT_BUILT, 503)
      throw missing
    }
    return ctx.body(new Uint8Array(body), 200, {
      'content-type': type,
      'content-security-policy': DASHBOARD_CSP,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      // Assets carry a content hash in their names; the page itself is asked for afresh each time.
      'cache-control': path.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
    })
  }
}
