import { homedir } from 'node:os'
import { join } from 'node:path'

/** The data dir: `GATE_HOME`, else the platform's config dir (`~/.config/gate` on Linux). */
export function resolveHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.GATE_HOME) return env.GATE_HOME
  if (process.platform === 'win32') return join(env.APPDATA ?? join(homedir(), 'AppData', 'Roaming'), 'gate')
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Application Support', 'gate')
  return join(env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'gate')
}

/** Every file Gate keeps in its data dir. */
export interface GatePaths {
  home: string
  config: string
  identity: string
  peers: string
  controlToken: string
  /** Written by a running daemon: its pid and the ports it bound. */
  runtime: string
  certs: string
  logs: string
  daemonLog: string
  requestLog: string
}

export function gatePaths(home: string, configPath?: string): GatePaths {
  const logs = join(home, 'logs')
  return {
    home,
    config: configPath ?? join(home, 'config.json'),
    identity: join(home, 'identity.key'),
    peers: join(home, 'peers.json'),
    controlToken: join(home, 'control.token'),
    runtime: join(home, 'daemon.json'),
    certs: join(home, 'certs'),
    logs,
    daemonLog: join(logs, 'daemon.log'),
    requestLog: join(logs, 'requests.jsonl'),
  }
}
