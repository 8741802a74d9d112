import type { Overview, RequestRecord, TrafficMinute, UsageTotals } from '@gate/rpc/client'
import { useEffect, useMemo, useState } from 'preact/hooks'
import { Cell } from '../components/cell.tsx'
import { Chart, type ChartSeries } from '../components/chart.tsx'
import { CopyButton } from '../components/copy-button.tsx'
import { Panel } from '../components/panel.tsx'
import { clock, count, duration, ms, outcome, plural, routeTaken, tokens } from '../format.ts'
import { Link, navigate } from '../router.tsx'
import { useSession } from '../session.ts'
import { useCall } from '../use-call.ts'

/** Rows in the live list of requests. */
const RECENT = 50
/** Set once the Setup page was offered on a first run, so that it is offered once per session. */
const SETUP_OFFERED = 'gate.setup-offered'

const REQUEST_SERIES: ChartSeries[] = [
  { label: 'requests', colorVar: '--chart-1', bars: true },
  { label: 'errors', colorVar: '--chart-error', bars: true },
]
const LATENCY_SERIES: ChartSeries[] = [
  { label: 'p50', colorVar: '--chart-1' },
  { label: 'p95', colorVar: '--chart-2' },
]
const perMinute = (value: number) => String(Math.round(value))

export function OverviewPage() {
  const overview = useCall(
    'get_overview',
    { recent: RECENT },
    { events: ['request', 'config_changed'], everyMs: 30_000 },
  )
  const data = overview.data
  useEffect(() => {
    if (data?.first_run && !sessionStorage.getItem(SETUP_OFFERED)) {
      sessionStorage.setItem(SETUP_OFFERED, '1')
      navigate('/setup')
    }
  }, [data?.first_run])
  return (
    <>
      {data?.first_run ? (
        <p class="notice">
          This node has no provider and no peer yet. <Link href="/setup">Set it up</Link>.
        </p>
      ) : null}
      {data && data.status.restart_required.length > 0 ? (
        <p class="notice">Restart the daemon to apply: {data.status.restart_required.join(', ')}.</p>
      ) : null}
      <div class="grid">
        <Panel title="Node" error={overview.error} loading={!data}>
          {data ? <NodePanel overview={data} /> : null}
        </Panel>
        <Panel title="Tokens" error={overview.error} loading={!data}>
          {data ? <TokensPanel overview={data} /> : null}
        </Panel>
      </div>
      <div class="grid">
        <Panel title="Requests per minute" error={overview.error} loading={!data}>
          {data ? <RequestsChart traffic={data.traffic} /> : null}
        </Panel>
        <Panel title="Latency" error={overview.error} loading={!data}>
          {data ? <LatencyChart traffic={data.traffic} /> : null}
        </Panel>
      </div>
      <RecentRequests recent={data?.recent} self={data?.status.node_id} error={overview.error} />
    </>
  )
}

function NodePanel({ overview }: { overview: Overview }) {
  const { status, p2p } = overview
  const since = useMemo(() => Date.now() - status.uptime_s * 1000, [status.uptime_s])
  const now = useNow(1000)
  const p2pPorts = [...new Set(p2p.map((a) => /\/(?:tcp|udp)\/(\d+)/.exec(a)?.[1]).filter(Boolean))]
  return (
    <dl class="facts">
      <dt>Node ID</dt>
      <dd class="node-id">
        <code class="mono wrap" data-testid="node-id">
          {status.node_id}
        </code>
        <CopyButton text={status.node_id} label="Copy node ID" />
      </dd>
      <dt>Version</dt>
      <dd>{status.version}</dd>
      <dt>Uptime</dt>
      <dd>{duration((now - since) / 1000)}</dd>
      <dt>Ports</dt>
      <dd>
        API {status.http.port} · control {status.control.port}
        {p2pPorts.length > 0 ? ` · P2P ${p2pPorts.join(', ')}` : ''}
      </dd>
      <dt>Providers</dt>
      <dd>
        <Link href="/providers">
          {status.providers.healthy} of {status.providers.total} healthy
        </Link>
      </dd>
      <dt>In flight</dt>
      <dd>{status.active_requests}</dd>
    </dl>
  )
}

function TokensPanel({ overview }: { overview: Overview }) {
  const { served, consumed } = overview.tokens
  return (
    <dl class="facts">
      <dt>Served here</dt>
      <dd>
        <Totals totals={served} />
      </dd>
      <dt>Consumed from peers</dt>
      <dd>
        <Totals totals={consumed} />
      </dd>
    </dl>
  )
}

function Totals({ totals }: { totals: UsageTotals }) {
  return (
    <>
      {plural(totals.prompt_tokens + totals.completion_tokens, 'token')}
      <span class="muted">
        {` (${count(totals.prompt_tokens)} in, ${count(totals.completion_tokens)} out, ${plural(totals.requests, 'request')})`}
      </span>
    </>
  )
}

const seconds = (traffic: TrafficMinute[]) => traffic.map((m) => Date.parse(m.minute) / 1000)

function RequestsChart({ traffic }: { traffic: TrafficMinute[] }) {
  const data = useMemo(
    () =>
      // Errors drawn over the total, from zero: the bar reads as errors below, the rest above.
      [seconds(traffic), traffic.map((m) => m.requests || null), traffic.map((m) => m.errors || null)] as [
        number[],
        Array<number | null>,
        Array<number | null>,
      ],
    [traffic],
  )
  const total = traffic.reduce((n, m) => n + m.requests, 0)
  const last = traffic.at(-1)
  return (
    <Chart
      label="Requests per minute, last hour"
      summary={`${total} requests in the last hour, ${last?.requests ?? 0} this minute`}
      series={REQUEST_SERIES}
      data={data}
      unit={perMinute}
    />
  )
}

function LatencyChart({ traffic }: { traffic: TrafficMinute[] }) {
  const data = useMemo(
    () =>
      [seconds(traffic), traffic.map((m) => m.p50_ms), traffic.map((m) => m.p95_ms)] as [
        number[],
        Array<number | null>,
        Array<number | null>,
      ],
    [traffic],
  )
  const last = [...traffic].reverse().find((m) => m.requests > 0)
  return (
    <Chart
      label="Latency p50 and p95, last hour"
      summary={
        last ? `latest minute with requests: p50 ${ms(last.p50_ms)}, p95 ${ms(last.p95_ms)}` : 'no requests'
      }
      series={LATENCY_SERIES}
      data={data}
      unit={ms}
    />
  )
}

/** The latest requests: the last answer, with each new one from the event stream on top at once. */
function RecentRequests({
  recent,
  self,
  error,
}: {
  recent: RequestRecord[] | undefined
  self: string | undefined
  error: string | undefined
}) {
  const { live } = useSession()
  const [arrived, setArrived] = useState<RequestRecord[]>([])
  useEffect(
    () =>
      live.on('request', (record) =>
        setArrived((list) => [record as RequestRecord, ...list].slice(0, RECENT)),
      ),
    [live],
  )
  const rows = useMemo(() => {
    const seen = new Set<string>()
    return [...arrived, ...(recent ?? [])]
      .filter((r) => !seen.has(r.id) && seen.add(r.id))
      .sort((a, b) => Date.parse(b.time) - Date.parse(a.time))
      .slice(0, RECENT)
  }, [arrived, recent])
  return (
    <Panel title="Recent requests" error={error} loading={recent === undefined}>
      {rows.length === 0 ? (
        <p class="muted">No requests yet. Point an OpenAI client at this node's API to see them here.</p>
      ) : (
        <table class="rows" data-testid="recent-requests">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Model</th>
              <th scope="col">Route</th>
              <th scope="col">Status</th>
              <th scope="col">Latency</th>
              <th scope="col">Tokens</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.id} data-request-id={r.id}>
                <Cell label="Time">{clock(r.time)}</Cell>
                <Cell label="Model" class="mono">
                  {r.model ?? '—'}
                </Cell>
                <Cell label="Route" title={r.node ?? undefined}>
                  {routeTaken(r, self ?? '')}
                </Cell>
                <Cell label="Status">
                  <span class={`badge ${outcome(r.status)}`} title={r.error ?? undefined}>
                    {r.status}
                  </span>
                </Cell>
                <Cell label="Latency">{ms(r.latency_ms)}</Cell>
                <Cell label="Tokens">{tokens(r)}</Cell>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Panel>
  )
}

/** The time now, updated every `everyMs` (for clocks that tick, like uptime). */
function useNow(everyMs: number): number {
  const [now, setNow] = useState(Date.now())
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), everyMs)
    return () => clearInterval(timer)
  }, [everyMs])
  return now
}
