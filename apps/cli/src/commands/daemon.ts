import { type ChildProcess, spawn } from 'node:child_process'
import { constants } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { createDaemon, type RuntimeInfo } from '@gate/daemon'
import type { NatStatus } from '@gate/rpc'
import type { Command } from 'commander'
import {
  CliError,
  cliPaths,
  connect,
  findDaemon,
  isAlive,
  NOT_RUNNING,
  output,
  progress,
  table,
  tryConnect,
} from '../context.ts'

/** How long `gate daemon --background` waits for the daemon to be ready. */
const BACKGROUND_START_TIMEOUT_MS = 60_000
/** How long `gate stop` waits for the process to exit beyond the daemon's grace period. */
const STOP_MARGIN_MS = 10_000

/** What a daemon started with `--background` tells its parent over IPC. */
type StartMessage = { ready: RuntimeInfo } | { error: string }

export function registerDaemonCommands(program: Command): void {
  program
    .command('daemon')
    .description('run the Gate daemon (OpenAI API on 127.0.0.1:31145, control port on 127.0.0.1:8145)')
    .option('--config <path>', 'config file (default: config.json in the data dir)')
    .option('--background', 'start in the background and return once it is ready')
    .action(async (options: { config?: string; background?: boolean }) => {
      const paths = cliPaths(options.config)
      const existing = await findDaemon(paths)
      if (existing && existing.pid !== process.pid) {
        throw new CliError(`gate daemon is already running (pid ${existing.pid})`)
      }
      if (options.background) await startInBackground(options.config)
      else await runInForeground(options.config)
    })

  program
    .command('stop')
    .description('stop the running daemon, letting requests in flight finish')
    .action(async () => {
      const { rpc, runtime } = await connect(cliPaths())
      const { config } = await rpc.call('get_config')
      const grace = (config as { node: { shutdown_grace: number } }).node.shutdown_grace * 1000
      await rpc.call('node_shutdown')
      const timeoutMs = grace + STOP_MARGIN_MS
      const deadline = Date.now() + timeoutMs
      while (isAlive(runtime.pid)) {
        if (Date.now() > deadline) {
          throw new CliError(`gate daemon (pid ${runtime.pid}) did not stop within ${timeoutMs / 1000} s`)
        }
        await sleep(50)
      }
      process.stdout.write(`gate daemon stopped (pid ${runtime.pid})\n`)
    })

  program
    .command('status')
    .description('show whether the daemon runs, its node ID, ports and providers')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const connection = await tryConnect(cliPaths())
      if (!connection) throw new CliError(NOT_RUNNING)
      const [status, { providers }] = await Promise.all([
        connection.rpc.call('node_status'),
        connection.rpc.call('list_providers'),
      ])
      output(options.json, { ...status, p2p: connection.runtime.p2p, provider_list: providers }, () => {
        const rows: Array<[string, string]> = [
          ['node ID', status.node_id],
          ['version', status.version],
          ['pid', `${status.pid} (up ${formatDuration(status.uptime_s)})`],
          ['OpenAI API', `http://${status.http.host}:${status.http.port}/v1`],
          ['P2P', connection.runtime.p2p.join(' ')],
          ['control', `http://${status.control.host}:${status.control.port}`],
          ['requests', `${status.active_requests} in flight`],
        ]
        if (providers.length === 0) rows.push(['providers', 'none (run: gate setup)'])
        for (const p of providers) {
          const health = p.healthy === null ? 'checking' : p.healthy ? 'healthy' : `down: ${p.last_error}`
          rows.push([`provider ${p.name}`, `${p.url} ${health}, ${p.models.length} models`])
        }
        if (status.public) {
          rows.push(['public URL', status.public.url ?? 'none yet (registering with the relays)'])
          for (const relay of status.public.relays) {
            rows.push([
              `relay ${relay.address}`,
              relay.error ? `${relay.state}: ${relay.error}` : relay.state,
            ])
          }
          const cert = status.public.certificate
          if (cert) {
            const issuer = cert.self_signed ? 'self-signed' : `by ${cert.issuer}`
            const renews = cert.renews_at ? `, renewed from ${cert.renews_at}` : ''
            const state = cert.state === 'ok' ? '' : `; ${cert.state}${cert.error ? `: ${cert.error}` : ''}`
            rows.push(['certificate', `${issuer}, expires ${cert.expires_at}${renews}${state}`])
          }
        }
        rows.push(...natRows(status.nat))
        if (status.restart_required.length > 0) {
          rows.push(['restart needed', status.restart_required.join(', ')])
        }
        return `gate daemon is running\n${table(rows)}`
      })
    })
}

/** What `gate status` says of NAT traversal: reachability, and each relay's reservation. */
function natRows(nat: NatStatus): Array<[string, string]> {
  if (!nat.enabled) return [['NAT', 'traversal off (network.nat.enabled)']]
  const seen = nat.observed_address ? `, seen from outside as ${nat.observed_address}` : ''
  const rows: Array<[string, string]> = [
    ['NAT', nat.reachability === 'public' ? 'publicly reachable' : `not publicly reachable${seen}`],
  ]
  for (const relay of nat.relays) {
    const state = relay.reserved
      ? `reserved: ${relay.relayed_address}`
      : `no reservation${relay.error ? `: ${relay.error}` : ''}`
    rows.push([`circuit relay ${relay.address}`, state])
  }
  return rows
}

async function runInForeground(configPath: string | undefined): Promise<void> {
  const background = process.send !== undefined
  let stopping: Promise<void> | undefined
  const done = Promise.withResolvers<void>()
  const daemon = createDaemon({
    configPath,
    terminal: !background,
    onShutdownRequest: () => void shutdown(),
  })
  const shutdown = (): Promise<void> => {
    stopping ??= daemon.stop().then(done.resolve, done.reject)
    return stopping
  }
  const onSignal = (signal: NodeJS.Signals) => {
    // A second signal means "now": skip the grace period.
    if (stopping) process.exit(128 + constants.signals[signal])
    void shutdown()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  await daemon.start()
  if (background) {
    process.send?.({ ready: daemon.runtime } satisfies StartMessage)
    process.disconnect?.()
  }
  await done.promise
  // Everything is stopped and the logs are flushed. libp2p leaves a debounced address update
  // (a 1 s timer) behind after its stop: the process would linger that long for nothing.
  process.exit(0)
}

/** Starts `gate daemon` detached and waits until it is ready or has failed. */
async function startInBackground(configPath: string | undefined): Promise<void> {
  const bin = fileURLToPath(new URL('../bin.js', import.meta.url))
  const args = [...process.execArgv, bin, 'daemon', ...(configPath ? ['--config', configPath] : [])]
  const child = spawn(process.execPath, args, {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
  })
  progress('starting gate daemon in the background…')
  try {
    const message = await startMessage(child)
    if ('error' in message) throw new CliError(message.error)
    const { pid, http, control } = message.ready
    process.stdout.write(
      `gate daemon started (pid ${pid}): OpenAI API on http://${http.host}:${http.port}/v1, control on http://${control.host}:${control.port}\n`,
    )
  } finally {
    if (child.connected) child.disconnect()
    child.unref()
  }
}

function startMessage(child: ChildProcess): Promise<StartMessage> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new CliError(`gate daemon did not become ready within ${BACKGROUND_START_TIMEOUT_MS / 1000} s`))
    }, BACKGROUND_START_TIMEOUT_MS)
    child.once('message', (message) => {
      clearTimeout(timer)
      resolve(message as StartMessage)
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new CliError(`gate daemon exited while starting (${signal ?? `exit code ${code}`})`))
    })
  })
}

function formatDuration(seconds: number): string {
  const s = Math.floor(seconds)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`
}
