import type { MethodResult } from '@gate/rpc/client'
import { useState } from 'preact/hooks'
import { clock } from '../format.ts'
import { describe, useSession } from '../session.ts'
import { CopyButton } from './copy-button.tsx'

/** Makes a one-time pairing code and shows how the other machine uses it. */
export function InviteMaker() {
  const { rpc } = useSession()
  const [invite, setInvite] = useState<MethodResult<'create_invite'> | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  const create = async () => {
    setBusy(true)
    setError(null)
    try {
      setInvite(await rpc.call('create_invite', {}))
    } catch (err) {
      setError(describe(err))
    } finally {
      setBusy(false)
    }
  }
  return (
    <div class="stack">
      <div>
        <button type="button" onClick={create} disabled={busy}>
          {invite ? 'Create another invite' : 'Create an invite'}
        </button>
      </div>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      {invite ? (
        <div class="stack invite">
          <label for="invite-code">Invite code (one use, until {clock(invite.expires_at * 1000)})</label>
          <textarea id="invite-code" readOnly rows={3} class="mono" value={invite.code} />
          <div class="row">
            <CopyButton text={invite.code} label="Copy code" />
          </div>
          <p class="muted">
            On the other machine, paste it in its dashboard's Peers page, or run{' '}
            <code>gate peers join &lt;code&gt;</code>. The two nodes then trust each other.
          </p>
        </div>
      ) : null}
    </div>
  )
}

/** A node ID or PeerId, as opposed to an invite code. */
const NODE_REF = /^(?:[a-z2-7]{52}|12D3Koo\w+|Qm\w+)$/

/** Adds a peer by node ID (with an optional address) or by an invite code from it. */
export function PeerAdder({ onAdded }: { onAdded: () => void }) {
  const { rpc } = useSession()
  const [ref, setRef] = useState('')
  const [address, setAddress] = useState('')
  const [message, setMessage] = useState<{ error: boolean; text: string } | null>(null)
  const [busy, setBusy] = useState(false)
  const submit = async (event: Event) => {
    event.preventDefault()
    const value = ref.trim()
    if (!value) return
    setBusy(true)
    setMessage(null)
    try {
      const { peer } = NODE_REF.test(value)
        ? await rpc.call(
            'add_peer',
            address.trim() ? { node_id: value, address: address.trim() } : { node_id: value },
          )
        : await rpc.call('join_invite', { code: value })
      setMessage({ error: false, text: `Added ${peer.node_id} (${peer.status}).` })
      setRef('')
      setAddress('')
      onAdded()
    } catch (err) {
      setMessage({ error: true, text: describe(err) })
    } finally {
      setBusy(false)
    }
  }
  return (
    <form class="stack" onSubmit={submit}>
      <div class="field">
        <label for="peer-ref">Node ID or invite code</label>
        <input
          id="peer-ref"
          class="mono"
          autocomplete="off"
          spellcheck={false}
          value={ref}
          onInput={(e) => setRef(e.currentTarget.value)}
          required
        />
      </div>
      <div class="field">
        <label for="peer-address">
          Address <span class="muted">(optional multiaddr; without one the DHT finds it)</span>
        </label>
        <input
          id="peer-address"
          class="mono"
          autocomplete="off"
          spellcheck={false}
          placeholder="/ip4/192.168.1.20/udp/41145/quic-v1"
          value={address}
          onInput={(e) => setAddress(e.currentTarget.value)}
        />
      </div>
      <div class="row">
        <button type="submit" disabled={busy}>
          {busy ? 'Adding…' : 'Add peer'}
        </button>
      </div>
      {message ? (
        <p class={message.error ? 'error' : 'ok'} role={message.error ? 'alert' : 'status'}>
          {message.text}
        </p>
      ) : null}
    </form>
  )
}
