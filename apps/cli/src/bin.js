#!/usr/bin/env node
// Plain JavaScript that any Node can parse, so that it can say which Node `gate` needs before
// loading the TypeScript sources, which Node 24 runs as they are.
const NEEDED = 24
const major = Number(process.versions.node.split('.')[0])
if (major < NEEDED) {
  process.stderr.write(
    `error: gate needs Node.js ${NEEDED} or newer, and this is Node.js ${process.versions.node}: ` +
      'run it as `pnpm gate` from the checkout after `npx -y pnpm@10 install`, which brings Node 24\n',
  )
  process.exit(1)
}
const { main } = await import('./main.ts')
process.exitCode = await main(process.argv)
