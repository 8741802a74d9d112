#!/usr/bin/env -S node --max-semi-space-size=8 --expose-gc
// pnpm's bin shim copies these flags from this line. The first caps V8's young generation at
// 8 MB: under load it would otherwise grow to over 100 MB, which the daemon then keeps as resident
// memory long after the load is gone. The second lets the daemon hand memory back once it is idle
// (packages/daemon/src/memory.ts).
import { main } from './main.ts'

process.exitCode = await main(process.argv)
