import type { RequestRecord } from '@gate/rpc/client'
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks'
import { Panel } from '../components/panel.tsx'
import { clock, ms, routeTaken, tokens } from '../format.ts'
import { isRefused, RECONNECTED } from '../live.ts'
import { describe, useSession } from '../session.ts'

/** Lines kept in memory: the oldest go first. */
const MAX_LINES = 1000
const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const
type Level = (typeof LEVELS)[number]
/** pino's numbers for the level names. */
const LEVEL_NUMBER: Record<Level, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 }
/** Fields every daemon line has, shown in their own columns or not at all. */
const HIDDEN_FIELDS = new Set(['level', 'time', 'msg', 'pid', 'hostname'])

/** One row of the tail: a daemon log line, or a finished request (from `requests.jsonl`'s records). */
interface Line {
  key: string
  time: number
  level: number
  source: 'daemon' | 'request'
  text: string
  details: string
}

function levelName(level: number): Level {
  return [...LEVELS].reverse().find((name) => level >= LEVEL_NUMBER[name]) ?? 'trace'
}

function fromLog(entry: Record<string, unknown>): Line {
  const details = Object.entries(entry)
    .filter(([key, value]) => !HIDDEN_FIELDS.has(key) && value !== null)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ')
  const time = typeof entry.time === 'number' ? entry.time : Date.now()
  const level = typeof entry.level === 'number' ? entry.level : 30
  const text = String(entry.msg ?? '')
  // The same line from the tail and from the stream (logged while the tail was read) is shown once.
  return { key: `l${time}:${level}:${text}:${details}`, time, level, source: 'daemon', text, details }
}

function fromRequest(record: RequestRecord, self: string): Line {
  const level = record.status >= 500 || record.status === 499 ? 50 : record.status >= 400 ? 40 : 30
  return {
    key: `r${record.id}`,
    time: Date.parse(record.time) + record.latency_ms,
    level,
    source: 'request',
    text: `${record.method} ${record.route} ${record.model ?? ''} → ${record.status} in ${ms(record.latency_ms)}`,
    details: `id=${record.id} route=${routeTaken(record, self)} tokens=${tokens(record)}${record.error ? ` error=${record.error}` : ''}`,
  }
}

export function LogsPage() {
  const { rpc, live, signOut, nodeId } = useSession()
  const [level, setLevel] = useState<Level>('info')
  const [source, setSource] = useState<'all' | Line['source']>('all')
  const [search, setSearch] = useState('')
  const [lines, setLines] = useState<Line[]>([])
  const [error, setError] = useState<string | null>(null)
  const [loading, setLoading] = useState(true)
  const [reloads, setReloads] = useState(0)

  useEffect(() => live.on(RECONNECTED, () => setReloads((n) => n + 1)), [live])

  // The tail at this level, then every new line and request as the daemon sends them.
  useEffect(() => {
    const controller = new AbortController()
    const min = LEVEL_NUMBER[level]
    // Lines that arrive while the tail loads wait for it, so that they come after it.
    const pending: Line[] = []
    let ready = false
    const append = (line: Line) => {
      if (line.level < min) return
      pending.push(line)
      if (ready) setLines((list) => [...list, ...pending.splice(0)].slice(-MAX_LINES))
    }
    const offLog = live.on('log', (entry) => append(fromLog(entry as Record<string, unknown>)))
    const offRequest = live.on('request', (record) => append(fromRequest(record as RequestRecord, nodeId)))
    setLoading(true)
    rpc
      .call('get_logs', { lines: MAX_LINES, level, requests: true }, { signal: controller.signal })
      .then((tail) => {
        const first = [
          ...tail.lines.map(fromLog),
          ...(tail.requests ?? []).map((r) => fromRequest(r, nodeId)).filter((l) => l.level >= min),
        ].sort((a, b) => a.time - b.time)
        ready = true
        const keys = new Set(first.map((l) => l.key))
        setLines([...first, ...pending.splice(0).filter((l) => !keys.has(l.key))].slice(-MAX_LINES))
        setError(null)
      })
      .catch((err) => {
        if (controller.signal.aborted) return
        if (isRefused(err)) signOut('The daemon no longer accepts this token: sign in again.')
        else setError(describe(err))
        ready = true
      })
      .finally(() => {
        if (!controller.signal.aborted) setLoading(false)
      })
    return () => {
      controller.abort()
      offLog()
      offRequest()
    }
  }, [level, reloads])

  const shown = useMemo(() => {
    const needle = search.trim().toLowerCase()
    return lines.filter(
      (l) =>
        (source === 'all' || l.source === source) &&
        (needle === '' || l.text.toLowerCase().includes(needle) || l.details.toLowerCase().includes(needle)),
    )
  }, [lines, source, search])

  // Follows the tail while the view is scrolled to its end, as `tail -f` does; stays put otherwise.
  const box = useRef<HTMLDivElement>(null)
  const atEnd = useRef(true)
  useLayoutEffect(() => {
    const element = box.current
    if (element && atEnd.current) element.scrollTop = element.scrollHeight
  }, [shown])

  return (
    <Panel title="Live tail" error={error ?? undefined}>
      <div class="row filters">
        <div class="field">
          <label for="log-level">Level</label>
          <select id="log-level" value={level} onChange={(e) => setLevel(e.currentTarget.value as Level)}>
            {LEVELS.map((l) => (
              <option key={l} value={l}>
                {l} and above
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="log-source">Source</label>
          <select
            id="log-source"
            value={source}
            onChange={(e) => setSource(e.currentTarget.value as typeof source)}
          >
            <option value="all">daemon and requests</option>
            <option value="daemon">daemon only</option>
            <option value="request">requests only</option>
          </select>
        </div>
        <div class="field grow">
          <label for="log-search">Search</label>
          <input
            id="log-search"
            type="search"
            value={search}
            onInput={(e) => setSearch(e.currentTarget.value)}
          />
        </div>
      </div>
      <p class="muted small-text" aria-live="polite">
        {loading ? 'Loading…' : `${shown.length} of ${lines.length} lines (the latest ${MAX_LINES} are kept)`}
      </p>
      <div
        ref={box}
        class="log"
        // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region takes focus so that the keyboard can scroll it
        tabIndex={0}
        role="log"
        aria-label="Log lines"
        data-testid="log"
        onScroll={(e) => {
          const el = e.currentTarget
          atEnd.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24
        }}
      >
        {shown.map((line) => (
          <div key={line.key} class={`log-line ${levelName(line.level)}`}>
            <span class="log-time">{clock(line.time, true)}</span>
            <span class={`log-level ${levelName(line.level)}`}>
              {line.source === 'request' ? 'req' : levelName(line.level)}
            </span>
            <span class="log-text">{line.text}</span>
            {line.details ? <span class="log-details">{line.details}</span> : null}
          </div>
        ))}
      </div>
    </Panel>
  )
}
