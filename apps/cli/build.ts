/**
 * Bundles the CLI, daemon included, into `dist/main.js` with esbuild, and `src/malloc.ts` alone
 * into `dist/malloc.js`. `src/bin.js` runs this whenever `dist/` is missing or older than any file
 * it was built from (listed in `dist/inputs.json`), so there is no build step to remember.
 *
 * Why: node keeps every module's source text and records for the life of the process. Run from
 * its ~1,000 modules, an idle daemon was 113 MB resident; run from this bundle (whitespace and
 * syntax minified, names kept for stack traces), 93 MB.
 *
 * In the bundle, CommonJS modules have no `__dirname`: a pino transport, which needs it to find
 * its worker, would not work (Gate's logger uses none).
 */
import { mkdir, readFile, rename, utimes, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, extname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build, type Loader, type Plugin } from 'esbuild'

const root = dirname(fileURLToPath(import.meta.url))
const outdir = join(root, 'dist')
/**
 * Inputs esbuild does not list: `pnpm install` rewrites `.modules.yaml` each time, so a bundle
 * made before a dependency or one of `patches/` changed is stale. And this script.
 */
const ALSO_INPUTS = ['build.ts', '../../node_modules/.modules.yaml', '../../tsconfig.json']

/** `path`, relative to `dist/`, as a relative URL: each segment percent-encoded. */
function urlFromDist(path: string): string {
  return relative(outdir, path).split(/[\\/]/).map(encodeURIComponent).join('/')
}

/**
 * Packages keep their own location: `import.meta.url` in a module means the file it was written
 * in, not the bundle (libp2p-quic's native-addon loader resolves its addon package from it, and
 * the daemon loads koffi from it), and napi-rs addon packages are loaded from where pnpm
 * installed them.
 */
const ownLocation: Plugin = {
  name: 'own-location',
  setup(b) {
    b.onLoad({ filter: /\.[cm]?[jt]s$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8')
      if (!source.includes('import.meta.url')) return undefined
      const own = `const __gateOwnUrl = new URL(${JSON.stringify(urlFromDist(args.path))}, import.meta.url).href;\n`
      const loader = extname(args.path).slice(-2) as Loader
      return { contents: own + source.replaceAll('import.meta.url', '__gateOwnUrl'), loader }
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

async function bundle(): Promise<void> {
  const started = new Date()
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
    logLevel: 'silent',
  })
  const inputs = [...Object.keys(result.metafile.inputs), ...ALSO_INPUTS].map((path) =>
    relative(outdir, join(root, path)),
  )
  const main = join(outdir, 'main.js')
  const outputs = [
    { path: join(outdir, 'inputs.json'), contents: JSON.stringify(inputs) },
    // main.js last: its time is the bundle's, which bin.js compares with its inputs'.
    ...result.outputFiles
      .map((file) => ({ path: file.path, contents: file.contents }))
      .sort((x, y) => Number(x.path === main) - Number(y.path === main)),
  ]
  await mkdir(outdir, { recursive: true })
  // Each file is replaced whole, so a `gate` starting meanwhile reads the old bundle or the new one.
  for (const { path, contents } of outputs) {
    await writeFile(`${path}.${process.pid}.tmp`, contents)
    await rename(`${path}.${process.pid}.tmp`, path)
  }
  // Dated when esbuild started reading: a source saved during the build leaves the bundle stale.
  await utimes(main, started, started)
}

try {
  await bundle()
} catch (err) {
  const failure = err as { errors?: Array<{ text: string; location: { file: string; line: number } | null }> }
  const first = failure.errors?.[0]
  const where = first?.location ? ` (${first.location.file}:${first.location.line})` : ''
  process.stderr.write(`error: could not bundle gate: ${first ? first.text + where : String(err)}\n`)
  process.exitCode = 1
}
