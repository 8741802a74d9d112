import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const BIN = fileURLToPath(new URL('../../src/bin.js', import.meta.url))
/** No CLI call in the tests may take longer than this. */
const RUN_TIMEOUT_MS = 60_000

export interface GateResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

export interface GateHome extends AsyncDisposable {
  home: string
  env: NodeJS.ProcessEnv
  /** Runs `gate …args` as a user would and waits for it to exit. */
  run(args: string[], options?: { env?: NodeJS.ProcessEnv; input?: string }): Promise<GateResult>
  /**
   * Starts `gate …args` and returns the running process (stdout and stderr piped); `fdLimit`
   * starts it with that limit on open descriptors (`ulimit -n`).
   */
  spawn(args: string[], options?: { env?: NodeJS.ProcessEnv; fdLimit?: number }): ChildProcess
}

/**
 * A fresh data dir (GATE_HOME) whose config uses random ports. Disposing it stops a daemon left
 * running there and removes the dir. With `netns`, every command runs in that network namespace.
 */
export async function gateHome(
  config: Record<string, unknown> = {},
  { netns }: { netns?: string } = {},
): Promise<GateHome> {
  const home = await mkdtemp(join(tmpdir(), 'gate-cli-'))
  const network = {
    http_port: 0,
    control_port: 0,
    p2p_port: 0,
    p2p_host: '127.0.0.1',
    ...(config.network as object),
  }
  await writeFile(join(home, 'config.json'), JSON.stringify({ ...config, network }, null, 2))
  const env = { ...process.env, GATE_HOME: home, GATE_PASSPHRASE: 'cli-test-passphrase', NO_COLOR: '1' }
  const spawnGate = (args: string[], options: { env?: NodeJS.ProcessEnv; fdLimit?: number } = {}) => {
    const command = [...(netns ? ['ip', 'netns', 'exec', netns] : []), process.execPath, BIN, ...args]
    const child =
      options.fdLimit === undefined
        ? spawn(command[0] as string, command.slice(1), { env: { ...env, ...options.env }, stdio: 'pipe' })
        : spawn('sh', ['-c', `ulimit -n ${options.fdLimit} && exec "$@"`, 'sh', ...command], {
            env: { ...env, ...options.env },
            stdio: 'pipe',
          })
    const output = { text: '' }
    outputs.set(child, output)
    child.stdout?.on('data', (d) => {
      output.text += d
    })
    return child
  }
  const run = (args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}) =>
    new Promise<GateResult>((resolve, reject) => {
      const child = spawnGate(args, options)
      let stdout = ''
      let stderr = ''
      child.stdout?.on('data', (d) => {
        stdout += d
      })
      child.stderr?.on('data', (d) => {
        stderr += d
      })
      const timer = setTimeout(() => {
        child.kill('SIGKILL')
        reject(new Error(`gate ${args.join(' ')} did not exit within ${RUN_TIMEOUT_MS} ms`))
      }, RUN_TIMEOUT_MS)
      child.on('error', reject)
      child.on('close', (code, signal) => {
        clearTimeout(timer)
        resolve({ code, signal, stdout, stderr })
      })
      child.stdin?.end(options.input ?? '')
    })
  const dispose = async () => {
    await run(['stop']).catch(() => {})
    await rm(home, { recursive: true, force: true })
  }
  return { home, env, run, spawn: spawnGate, [Symbol.asyncDispose]: dispose }
}

/** Everything each spawned process has printed on stdout so far. */
const outputs = new WeakMap<ChildProcess, { text: string }>()

/**
 * Resolves with the stdout of `child` (all of it since it started) once the part after the
 * first `after` characters matches `pattern`; rejects after `timeoutMs`.
 */
export function waitForOutput(
  child: ChildProcess,
  pattern: RegExp,
  { after = 0, timeoutMs = 20_000 }: { after?: number; timeoutMs?: number } = {},
): Promise<string> {
  const output = outputs.get(child)
  if (!output) throw new Error('not a process started by gateHome().spawn')
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!pattern.test(output.text.slice(after))) return
      cleanup()
      resolve(output.text)
    }
    const timer = setTimeout(() => {
      cleanup()
      reject(new Error(`no output matching ${pattern} within ${timeoutMs} ms; got: ${output.text}`))
    }, timeoutMs)
    const cleanup = () => {
      clearTimeout(timer)
      child.stdout?.off('data', check)
    }
    child.stdout?.on('data', check)
    check()
  })
}

/** Resolves when `child` exits, with its code and signal; rejects after `timeoutMs`. */
export function exited(
  child: ChildProcess,
  timeoutMs = 20_000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode })
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`process did not exit within ${timeoutMs} ms`)),
      timeoutMs,
    )
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal })
    })
  })
}
