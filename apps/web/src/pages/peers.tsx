import type { PeerRow, UsageTotals } from '@gate/rpc/client'
import { useState } from 'preact/hooks'
import { Cell } from '../components/cell.tsx'
import { ConfirmButton } from '../components/confirm-button.tsx'
import { CopyButton } from '../components/copy-button.tsx'
import { InviteMaker, PeerAdder } from '../components/pairing.tsx'
import { Panel } from '../components/panel.tsx'
import { ago, connectionLabel, ms, plural, shortId } from '../format.ts'
import { describe, useSession } from '../session.ts'
import { useCall } from '../use-call.ts'

export function PeersPage() {
  const peers = useCall('get_peers', undefined, {
    events: ['peer_up', 'peer_down', 'peer_capabilities', 'config_changed'],
    everyMs: 5000,
  })
  return (
    <>
      <Panel title="Trusted peers" error={peers.error} loading={!peers.data}>
        {peers.data ? <PeerTable peers={peers.data.peers} onChange={peers.reload} /> : null}
      </Panel>
      <div class="grid">
        <Panel title="Add a peer">
          <PeerAdder onAdded={peers.reload} />
        </Panel>
        <Panel title="Invite a peer">
          <p class="muted">An invite lets another machine pair with this one in one step.</p>
          <InviteMaker />
        </Panel>
      </div>
    </>
  )
}

function PeerTable({ peers, onChange }: { peers: PeerRow[]; onChange: () => void }) {
  const { rpc } = useSession()
  const [error, setError] = useState<string | null>(null)
  if (peers.length === 0)
    return <p class="muted">No trusted peers yet: add one by its node ID or an invite.</p>
  const remove = async (nodeId: string) => {
    setError(null)
    try {
      await rpc.call('remove_peer', { node_id: nodeId })
      onChange()
    } catch (err) {
      setError(describe(err))
    }
  }
  return (
    <>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      <table class="rows" data-testid="peers">
        <thead>
          <tr>
            <th scope="col">Node</th>
            <th scope="col">Status</th>
            <th scope="col">RTT</th>
            <th scope="col">Models</th>
            <th scope="col">Load</th>
            <th scope="col">Connection</th>
            <th scope="col">Last seen</th>
            <th scope="col">Exchanged</th>
            <th scope="col">
              <span class="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {peers.map((peer) => (
            <tr key={peer.node_id} data-node-id={peer.node_id}>
              <Cell label="Node">
                <span class="mono" title={peer.node_id}>
                  {shortId(peer.node_id)}
                </span>{' '}
                <CopyButton text={peer.node_id} />
              </Cell>
              <Cell label="Status">
                <span
                  class={`badge ${peer.status === 'connected' ? 'ok' : peer.status === 'failed' ? 'error' : 'warn'}`}
                >
                  {peer.status}
                </span>
                {peer.error ? <div class="muted small-text">{peer.error}</div> : null}
                {peer.next_attempt ? (
                  <div class="muted small-text">next try {ago(peer.next_attempt)}</div>
                ) : null}
              </Cell>
              <Cell label="RTT">{ms(peer.rtt_ms)}</Cell>
              <Cell label="Models" class="mono">
                {peer.models.length > 0 ? peer.models.join(', ') : '—'}
              </Cell>
              <Cell label="Load">
                {peer.load_factor === null ? '—' : `${Math.round(peer.load_factor * 100)}%`}
              </Cell>
              <Cell label="Connection">{peer.connection ? connectionLabel(peer.connection) : '—'}</Cell>
              <Cell label="Last seen">{ago(peer.last_seen)}</Cell>
              <Cell label="Exchanged">
                <div>served to it: {usage(peer.served)}</div>
                <div>consumed from it: {usage(peer.consumed)}</div>
              </Cell>
              <Cell label="">
                <ConfirmButton
                  label={`Remove peer ${shortId(peer.node_id)}`}
                  onConfirm={() => remove(peer.node_id)}
                >
                  Remove
                </ConfirmButton>
              </Cell>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  )
}

function usage(totals: UsageTotals): string {
  return `${plural(totals.requests, 'request')}, ${plural(totals.prompt_tokens + totals.completion_tokens, 'token')}`
}
