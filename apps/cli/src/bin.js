#!/usr/bin/env -S node --max-semi-space-size=8 --expose-gc
// pnpm's bin shim copies these flags from this line. The first caps V8's young generation at
// 8 MB: under load it would otherwise grow to over 100 MB, which the daemon then keeps as resident
// memory long after the load is gone. The second lets the daemon hand memory back once it is idle
// (packages/daemon/src/memory.ts).
//
// This one file is JavaScript: it runs the bundle that ../build.ts makes of the TypeScript
// sources, and first makes it again when it is missing or older than any file it was made from.
// It turns on node's compile cache, so that node reuses the bundle's compiled code.
import { execFileSync } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import module from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const dist = fileURLToPath(new URL('../dist/', import.meta.url))

function stale() {
  try {
    const built = statSync(join(dist, 'main.js')).mtimeMs
    const inputs = JSON.parse(readFileSync(join(dist, 'inputs.json'), 'utf8'))
    return inputs.some((path) => statSync(join(dist, path)).mtimeMs > built)
  } catch {
    return true
  }
}

if (stale()) {
  const build = fileURLToPath(new URL('../build.ts', import.meta.url))
  try {
    execFileSync(process.execPath, [build], { stdio: ['ignore', 'ignore', 'inherit'] })
  } catch {
    process.exit(1) // build.ts has said why, in one line
  }
}
module.enableCompileCache()
const [command, ...rest] = process.argv.slice(2)
// A foreground daemon starts over with its malloc settings before its code loads; a background
// one is given them by the command that starts it.
if (command === 'daemon' && !rest.includes('--background')) {
  const { restartWithMallocTunables } = await import('../dist/malloc.js')
  restartWithMallocTunables()
}
const { main } = await import('../dist/main.js')
// Node would hold the cache it read (about 2 MB for the bundle) for the life of the process; the
// bundle is compiled now, so the cache is saved if it changed, and let go.
module.flushCompileCache()
process.exitCode = await main(process.argv)
