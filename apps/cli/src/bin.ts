#!/usr/bin/env -S node --max-semi-space-size=8
// The flag caps V8's young generation at 8 MB: under load it would otherwise grow to over 100 MB,
// which the daemon then keeps as resident memory long after the load is gone. pnpm's bin shim
// copies it from this line.
import { main } from './main.ts'

process.exitCode = await main(process.argv)
