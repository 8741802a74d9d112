#!/usr/bin/env -S node --max-semi-space-size=8 --expose-gc
// pnpm's bin shim copies these flags from this line. The first caps V8's young generation at
// 8 MB: under load it would otherwise grow to over 100 MB, which the daemon then keeps as resident
// memory long after the load is gone. The second lets the daemon hand memory back once it is idle
// (packages/daemon/src/memory.ts).
//
// This one file is JavaScript so that it can turn on node's compile cache before the TypeScript
// sources load: with the cache warm, node reuses their stripped code and never loads its
// TypeScript stripper, which would keep about 13 MB resident for the life of the daemon.
import module from 'node:module'

module.enableCompileCache()
const [command, ...rest] = process.argv.slice(2)
// A foreground daemon starts over with its malloc settings before its code loads; a background
// one is given them by the command that starts it.
if (command === 'daemon' && !rest.includes('--background')) {
  const { restartWithMallocTunables } = await import('./malloc.ts')
  restartWithMallocTunables()
}
const { main } = await import('./main.ts')
process.exitCode = await main(process.argv)
