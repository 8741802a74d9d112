/**
 * @gate/web — the dashboard: a single-page app that the daemon serves on its control port. The
 * install step builds it (`vite build`, this package's postinstall) into `dist/`; the daemon
 * serves that folder and never imports the app's sources.
 *
 * @example
 * ```ts
 * import { WEB_DIST } from '@gate/web'
 * const html = await readFile(join(WEB_DIST, 'index.html'), 'utf8')
 * ```
 */
import { fileURLToPath } from 'node:url'

/** The built dashboard: `index.html` and its assets. */
export const WEB_DIST = fileURLToPath(new URL('./dist/', import.meta.url))
