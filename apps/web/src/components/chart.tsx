import { useEffect, useRef } from 'preact/hooks'
import uPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'

/** uPlot's bar path builder (present in every build that has `paths`). */
const bars = uPlot.paths.bars?.({ size: [0.7, 12] })

export interface ChartSeries {
  label: string
  /** A CSS custom property holding its color, so that the chart follows the light or dark theme. */
  colorVar: string
  bars?: boolean
}

interface ChartProps {
  /** Names the chart for screen readers; `summary` says what it shows now. */
  label: string
  summary: string
  series: ChartSeries[]
  /** x (Unix seconds), then one array per series; null is a gap. */
  data: [number[], ...Array<Array<number | null>>]
  /** Formats the y axis's values. */
  unit: (value: number) => string
}

const HEIGHT = 160
const dark = matchMedia('(prefers-color-scheme: dark)')

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim()
}

/** A small time-series chart (uPlot, canvas) that fills its container's width and follows the theme. */
export function Chart({ label, summary, series, data, unit }: ChartProps) {
  const box = useRef<HTMLDivElement>(null)
  const plot = useRef<uPlot | null>(null)
  const latest = useRef(data)
  latest.current = data

  useEffect(() => {
    const element = box.current
    if (!element) return
    const make = () => {
      plot.current?.destroy()
      const text = cssVar('--muted')
      const grid = cssVar('--line')
      const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } }
      plot.current = new uPlot(
        {
          width: Math.max(200, element.clientWidth),
          height: HEIGHT,
          legend: { show: true, live: false },
          cursor: { show: false },
          scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.1] } },
          axes: [
            { ...axis, values: (_u, ticks) => ticks.map((t) => timeOfDay(t)) },
            { ...axis, size: 56, values: (_u, ticks) => ticks.map(unit) },
          ],
          series: [
            {},
            ...series.map((s) => {
              const color = cssVar(s.colorVar)
              return s.bars && bars
                ? { label: s.label, stroke: color, fill: color, paths: bars, points: { show: false } }
                : // Points too: a minute between two without requests has no line to be drawn with.
                  { label: s.label, stroke: color, width: 2, points: { show: true, size: 5, fill: color } }
            }),
          ],
        },
        latest.current,
        element,
      )
    }
    make()
    const resize = new ResizeObserver(() => {
      plot.current?.setSize({ width: Math.max(200, element.clientWidth), height: HEIGHT })
    })
    resize.observe(element)
    dark.addEventListener('change', make)
    return () => {
      resize.disconnect()
      dark.removeEventListener('change', make)
      plot.current?.destroy()
      plot.current = null
    }
  }, [series, unit])

  useEffect(() => {
    plot.current?.setData(data)
  }, [data])

  return (
    <figure class="chart">
      <figcaption class="visually-hidden">{`${label}: ${summary}`}</figcaption>
      <div ref={box} role="img" aria-label={`${label}: ${summary}`} />
    </figure>
  )
}

function timeOfDay(seconds: number): string {
  const date = new Date(seconds * 1000)
  return `${String(date.getHours()).padStart(2, '0')}:${String(date.getMinutes()).padStart(2, '0')}`
}
