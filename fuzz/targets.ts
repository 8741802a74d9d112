import type { Target } from './lib.ts'

/** Every fuzz target, by the name `pnpm fuzz --target` takes, in the order they run. */
export const TARGETS: Record<string, () => Promise<{ createTarget(): Promise<Target<unknown>> }>> = {
  frames: () => import('./frames.ts'),
  control: () => import('./control.ts'),
  'gate-http': () => import('./gate-http.ts'),
  rpc: () => import('./rpc.ts'),
  admission: () => import('./admission.ts'),
  config: () => import('./config.ts'),
  invites: () => import('./invites.ts'),
  punch: () => import('./punch.ts'),
  'client-hello': () => import('./client-hello.ts'),
  relay: () => import('./relay.ts'),
  http: () => import('./http.ts'),
}
