import { spawn } from 'node:child_process'
import { access, constants } from 'node:fs/promises'
import { delimiter, join } from 'node:path'
import type { Command } from 'commander'
import { CliError, cliPaths, connect, output, readText } from '../context.ts'

/** What opens a URL in the default browser, by platform. */
const OPENERS: Partial<Record<NodeJS.Platform, string>> = { darwin: 'open' }
const DEFAULT_OPENER = 'xdg-open'

export function registerDashboardCommand(program: Command): void {
  program
    .command('dashboard')
    .description("print the dashboard's sign-in URL (it carries the control token: keep it to yourself)")
    .option('--open', 'also open it in the default browser')
    .option('--json', 'print JSON')
    .action(async (options: { open?: boolean; json?: boolean }) => {
      const paths = cliPaths()
      const { rpc, runtime } = await connect(paths)
      const { config } = await rpc.call('get_config')
      if ((config as { web?: { enabled?: boolean } }).web?.enabled === false) {
        throw new CliError('the dashboard is turned off: gate config set web.enabled true')
      }
      const token = (await readText(paths.controlToken)).trim()
      // The token rides in the fragment, which the browser never sends: the page reads it and drops it.
      const url = `http://${runtime.control.host}:${runtime.control.port}/#token=${encodeURIComponent(token)}`
      output(options.json, { url }, () => url)
      if (options.open) await openInBrowser(url)
    })
}

async function openInBrowser(url: string): Promise<void> {
  const opener = OPENERS[process.platform] ?? DEFAULT_OPENER
  const path = await onPath(opener)
  if (!path) throw new CliError(`cannot open a browser here (no ${opener} on the PATH): open the URL above`)
  await new Promise<void>((resolve, reject) => {
    const child = spawn(path, [url], { detached: true, stdio: 'ignore' })
    child.once('error', (err) => reject(new CliError(`cannot open a browser with ${opener}: ${err.message}`)))
    child.once('spawn', () => {
      child.unref()
      resolve()
    })
  })
}

/** The full path of an executable on the PATH, if there is one. */
async function onPath(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue
    const candidate = join(dir, name)
    try {
      await access(candidate, constants.X_OK)
      return candidate
    } catch {}
  }
  return undefined
}
