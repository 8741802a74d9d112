/**
 * A small internet inside network namespaces, for NAT traversal tests and benchmarks: a "public"
 * network (a bridge) where the relay runs, and homes, each behind its own router that masquerades
 * the home's private network onto the public one, as a home router does. Private address ranges
 * only; nothing is routed out of the machine. Needs root, `ip` (iproute2) and `iptables`.
 *
 *   public  172.31.0.0/24  bridge 172.31.0.1 (relay) ── router 1 172.31.0.2 ── home 1 10.71.1.2
 *                                                    └─ router 2 172.31.0.3 ── home 2 10.71.2.2 …
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** The relay's address in the public network; router i (from 0) is 172.31.0.(2 + i). */
export const PUBLIC_NET = { relay: '172.31.0.1' }

/** How a home's router maps its private addresses. */
export type NatKind =
  /** Keeps a connection's source port for every destination (endpoint-independent mapping). */
  | 'endpoint-independent'
  /** A new random port for each destination (`MASQUERADE --random-fully`): a symmetric NAT. */
  | 'symmetric'

export interface NatLab extends AsyncDisposable {
  /** Namespace names: the public network's, and each home's, in the order asked for. */
  ns: { public: string; homes: string[] }
  /** Starts `command` in namespace `ns`; stopped (and its namespace emptied) when the lab is disposed. */
  spawn(ns: string, command: readonly string[], options?: { env?: NodeJS.ProcessEnv }): ChildProcess
}

/**
 * Why namespace tests cannot run here, or undefined when they can. Probes by making (and
 * removing) a namespace, a veth pair and a NAT rule, not by guessing from the user.
 */
export async function natLabUnavailable(): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'network namespaces are Linux only'
  if (process.getuid?.() !== 0) return 'needs root (ip netns, veth pairs, iptables)'
  const probe = `gate-probe-${randomBytes(3).toString('hex')}`
  try {
    await run('ip', ['netns', 'add', probe])
    await run('ip', ['-n', probe, 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'p1'])
    await run('ip', [
      'netns',
      'exec',
      probe,
      'iptables',
      '-t',
      'nat',
      '-A',
      'POSTROUTING',
      '-o',
      'p0',
      '-j',
      'MASQUERADE',
    ])
    return undefined
  } catch (err) {
    return `cannot make network namespaces with NAT here (${(err as Error).message.split('\n')[0]}); .ci/run installs iproute2 and iptables`
  } finally {
    await run('ip', ['netns', 'del', probe]).catch(() => {})
  }
}

/** Builds the lab: a home behind a router of each kind given. Always dispose it, failures included. */
export async function startNatLab(nats: readonly NatKind[]): Promise<NatLab> {
  const prefix = `gate-${randomBytes(3).toString('hex')}`
  const pub = `${prefix}-public`
  const homes = nats.map((nat, i) => ({
    nat,
    router: `${prefix}-r${i + 1}`,
    home: `${prefix}-h${i + 1}`,
    port: `w${i + 1}`,
    wan: `172.31.0.${i + 2}`,
    lan: `10.71.${i + 1}`,
  }))
  const names = [pub, ...homes.flatMap((h) => [h.router, h.home])]
  const children = new Set<ChildProcess>()
  const lab: NatLab = {
    ns: { public: pub, homes: homes.map((h) => h.home) },
    spawn(ns, command, options = {}) {
      const child = spawn('ip', ['netns', 'exec', ns, ...command], {
        env: options.env ?? process.env,
        stdio: 'pipe',
      })
      children.add(child)
      child.once('exit', () => children.delete(child))
      return child
    },
    async [Symbol.asyncDispose]() {
      for (const child of children) child.kill('SIGTERM')
      await Promise.all(
        [...children].map(
          (child) =>
            new Promise<void>((resolve) => {
              const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
              child.once('exit', () => {
                clearTimeout(timer)
                resolve()
              })
              if (child.exitCode !== null || child.signalCode !== null) resolve()
            }),
        ),
      )
      // Anything still inside (a daemon started in the background) goes with its namespace.
      for (const ns of names) {
        const { stdout } = await run('ip', ['netns', 'pids', ns]).catch(() => ({ stdout: '' }))
        for (const pid of stdout.split('\n').filter(Boolean)) {
          try {
            process.kill(Number(pid), 'SIGKILL')
          } catch {}
        }
        await run('ip', ['netns', 'del', ns]).catch(() => {})
      }
    },
  }
  try {
    const ip = (...args: string[]) => run('ip', args)
    const inNs = (ns: string, ...args: string[]) => run('ip', ['netns', 'exec', ns, ...args])
    for (const ns of names) {
      await ip('netns', 'add', ns)
      await ip('-n', ns, 'link', 'set', 'lo', 'up')
    }
    await ip('-n', pub, 'link', 'add', 'br0', 'type', 'bridge')
    await ip('-n', pub, 'addr', 'add', `${PUBLIC_NET.relay}/24`, 'dev', 'br0')
    await ip('-n', pub, 'link', 'set', 'br0', 'up')
    for (const h of homes) {
      await ip('link', 'add', 'wan', 'netns', h.router, 'type', 'veth', 'peer', 'name', h.port, 'netns', pub)
      await ip('-n', pub, 'link', 'set', h.port, 'master', 'br0', 'up')
      await ip('-n', h.router, 'addr', 'add', `${h.wan}/24`, 'dev', 'wan')
      await ip('-n', h.router, 'link', 'set', 'wan', 'up')
      await ip(
        'link',
        'add',
        'lan',
        'netns',
        h.router,
        'type',
        'veth',
        'peer',
        'name',
        'eth0',
        'netns',
        h.home,
      )
      await ip('-n', h.router, 'addr', 'add', `${h.lan}.1/24`, 'dev', 'lan')
      await ip('-n', h.router, 'link', 'set', 'lan', 'up')
      await ip('-n', h.home, 'addr', 'add', `${h.lan}.2/24`, 'dev', 'eth0')
      await ip('-n', h.home, 'link', 'set', 'eth0', 'up')
      await ip('-n', h.home, 'route', 'add', 'default', 'via', `${h.lan}.1`)
      await inNs(h.router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1')
      const masquerade = ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'wan', '-j', 'MASQUERADE']
      await inNs(h.router, 'iptables', ...masquerade, ...(h.nat === 'symmetric' ? ['--random-fully'] : []))
      // Home routers drop what nobody inside asked for, rather than answer it: a router that
      // reset an unexpected SYN itself would also reset the first SYN of a hole punch.
      await inNs(h.router, 'iptables', '-A', 'INPUT', '-i', 'wan', '-j', 'DROP')
    }
    return lab
  } catch (err) {
    await lab[Symbol.asyncDispose]()
    throw err
  }
}
