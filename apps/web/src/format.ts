import type { PeerConnection, RequestRecord } from '@gate/rpc/client'

/** A node ID cut to its head and tail, as shown in lists (the full ID is in the title and copy button). */
export function shortId(id: string): string {
  return id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id
}

export function duration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds))
  const d = Math.floor(s / 86_400)
  const h = Math.floor((s % 86_400) / 3600)
  const m = Math.floor((s % 3600) / 60)
  if (d > 0) return `${d}d ${h}h`
  if (h > 0) return `${h}h ${m}m`
  if (m > 0) return `${m}m ${s % 60}s`
  return `${s}s`
}

export function ms(value: number | null | undefined): string {
  if (value === null || value === undefined) return '—'
  if (value < 10) return `${value.toFixed(1)} ms`
  if (value < 1000) return `${Math.round(value)} ms`
  return `${(value / 1000).toFixed(value < 10_000 ? 2 : 1)} s`
}

const compact = new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 1 })

export function count(value: number): string {
  return value < 10_000 ? String(value) : compact.format(value)
}

/** `1 model`, `3 models`. */
export function plural(value: number, word: string): string {
  return `${count(value)} ${word}${value === 1 ? '' : 's'}`
}

/** How long ago (or, in the future, how soon) an ISO time is, in the largest unit that fits. */
export function ago(iso: string | null, now = Date.now()): string {
  if (iso === null) return 'never'
  const delta = Math.round((now - Date.parse(iso)) / 1000)
  const seconds = Math.abs(delta)
  const span =
    seconds < 60
      ? `${seconds} s`
      : seconds < 3600
        ? `${Math.floor(seconds / 60)} min`
        : seconds < 86_400
          ? `${Math.floor(seconds / 3600)} h`
          : `${Math.floor(seconds / 86_400)} d`
  return delta < 0 ? `in ${span}` : `${span} ago`
}

/** Local wall-clock time of an ISO time or epoch milliseconds, to the second. */
export function clock(time: string | number, millis = false): string {
  const date = new Date(time)
  const hms = date.toLocaleTimeString(undefined, { hour12: false })
  return millis ? `${hms}.${String(date.getMilliseconds()).padStart(3, '0')}` : hms
}

/** Where a request went: this node's engine, a peer, or (for a peer's request) served here for it. */
export function routeTaken(record: RequestRecord, self: string): string {
  const via = record.consumer.startsWith('key:') ? 'relayed → ' : ''
  if (record.consumer.startsWith('peer:')) {
    const provider = record.provider ? ` · ${record.provider}` : ''
    return `for peer ${shortId(record.consumer.slice('peer:'.length))}${provider}`
  }
  if (record.node === null || (record.node === self && record.provider === null)) return `${via}not routed`
  if (record.node === self) return `${via}local · ${record.provider}`
  return `${via}peer ${shortId(record.node)}`
}

export function tokens(record: RequestRecord): string {
  if (record.usage === null) return '—'
  return `${record.usage.prompt_tokens} → ${record.usage.completion_tokens}`
}

/** The status a request ended with, as a word a person reads before the number. */
export function outcome(status: number): 'ok' | 'warn' | 'error' {
  if (status >= 500 || status === 499) return 'error'
  return status >= 400 ? 'warn' : 'ok'
}

/** How a peer is reached: `direct · QUIC`, `hole-punched · TCP`, `relayed via 3f7a…`. */
export function connectionLabel(connection: PeerConnection): string {
  if (connection.type === 'relayed')
    return connection.relay ? `relayed via ${shortId(connection.relay)}` : 'relayed'
  const transport = connection.transport === 'quic' ? 'QUIC' : connection.transport === 'tcp' ? 'TCP' : ''
  return transport ? `${connection.type} · ${transport}` : connection.type
}
