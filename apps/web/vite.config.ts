import { builtinModules } from 'node:module'
import { defineConfig, type Plugin } from 'vite'

/** Modules that are server code: the dashboard talks to the daemon over HTTP only. */
const SERVER_CODE = [
  /[/\\]node_modules[/\\](?:\.pnpm[/\\])?zod[@/\\]/,
  /[/\\]packages[/\\](?:core|daemon|p2p)[/\\]/,
  /[/\\]packages[/\\]rpc[/\\]src[/\\](?:index|server|methods)\.ts$/,
]
const BUILTINS = new Set(builtinModules)

/**
 * Fails the build when the bundle would take in server code or a Node built-in, which a stray
 * import (not `import type`) of `@gate/rpc`'s index or of `@gate/core` would do.
 */
function browserOnly(): Plugin {
  return {
    name: 'gate-browser-only',
    enforce: 'pre',
    resolveId(source, importer) {
      if (source.startsWith('node:') || BUILTINS.has(source))
        this.error(`${importer ?? 'the app'} imports the Node built-in "${source}"`)
      return null
    },
    load(id) {
      if (SERVER_CODE.some((pattern) => pattern.test(id)))
        this.error(`${id} is server code: the dashboard imports only @gate/rpc/client`)
      return null
    },
  }
}

export default defineConfig({
  plugins: [browserOnly()],
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // No data: URIs: the Content-Security-Policy allows the page's own files only.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
  logLevel: 'warn',
})
