import pkg from '../package.json' with { type: 'json' }

/** Gate's version: the daemon package's, which `gate --version` and `node_status` report. */
export const VERSION: string = pkg.version
