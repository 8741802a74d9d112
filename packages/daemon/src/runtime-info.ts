/** What a running daemon writes to `daemon.json` so the CLI can find it. */
export interface RuntimeInfo {
  pid: number
  node_id: string
  peer_id: string
  /** P2P multiaddrs, each ending in `/p2p/<peer_id>`. */
  p2p: string[]
  http: { host: string; port: number }
  control: { host: string; port: number }
  started_at: string
}
