/**
 * Bundles the CLI, daemon included, into `dist/main.js` with esbuild, and `src/malloc.ts` alone
 * into `dist/malloc.js`. `src/bin.js` runs this whenever `dist/` is missing or older than any file
 * it was built from (listed in `dist/inputs.json`), so there is no build step to remember.
 *
 * Why: node keeps every module's source text and records for the life of the process. Run from
 * its ~1,000 modules, an idle daemon was 113 MB resident; run from this bundle (whitespace and
 * syntax minified, names kept for stack traces), 95 MB.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, extname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build, type Loader, type Plugin } from 'esbuild'

const root = dirname(fileURLToPath(import.meta.url))
const outdir = join(root, 'dist')

/**
 * Packages keep their own location: `import.meta.url` in a module means the file it was written
 * in, not the bundle (libp2p-quic's native-addon loader resolves its addon package from it), and
 * napi-rs addon packages are loaded from where pnpm installed them.
 */
const ownLocation: Plugin = {
  name: 'own-location',
  setup(b) {
    b.onLoad({ filter: /\.[cm]?[jt]s$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8')
      if (!source.includes('import.meta.url')) return undefined
      const own = `new URL(${JSON.stringify(relative(outdir, args.path))}, import.meta.url).href`
      const loader = extname(args.path).slice(-2) as Loader
      return { contents: source.replaceAll('import.meta.url', own), loader }
    })
    b.onResolve({ filter: /^@napi-rs\/keyring-/ }, (args) => {
      try {
        const path = createRequire(join(args.resolveDir, 'index.js')).resolve(args.path)
        return { path: relative(outdir, path), external: true }
      } catch {
        // Another platform's addon, not installed: the loader moves on to the next.
        return { path: args.path, external: true }
      }
    })
  },
}

const result = await build({
  absWorkingDir: root,
  entryPoints: ['src/main.ts', 'src/malloc.ts'],
  outdir,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node24',
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  // CommonJS packages inside an ES module bundle still call `require` for node's own modules.
  banner: {
    js: "import{createRequire as __gateRequire}from'node:module';const require=__gateRequire(import.meta.url);",
  },
  plugins: [ownLocation],
  metafile: true,
  write: false,
  logLevel: 'warning',
})

// This script is an input too: a bundle made differently is stale.
const inputs = [...Object.keys(result.metafile.inputs), 'build.ts'].map((path) =>
  relative(outdir, join(root, path)),
)
const outputs = [
  ...result.outputFiles.map((file) => ({ path: file.path, contents: file.contents })),
  { path: join(outdir, 'inputs.json'), contents: JSON.stringify(inputs) },
]
await mkdir(outdir, { recursive: true })
// Each file is replaced whole, so a `gate` starting meanwhile reads the old bundle or the new one.
for (const { path, contents } of outputs) {
  await writeFile(`${path}.${process.pid}.tmp`, contents)
  await rename(`${path}.${process.pid}.tmp`, path)
}
