/**
 * A daemon in its own process under what a hostile peer or a careless client can do to it: run
 * out of descriptors, be stopped mid-stream, be flooded with streams by a node it does not trust.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { createRpcClient } from '@gate/rpc'
import { startFakeEngine } from '../../../packages/daemon/test/utils/fake-engine.ts'
import { waitFor } from '../../../packages/daemon/test/utils/wait.ts'
import { exited, gateHome, waitForOutput } from './utils/gate.ts'

const FLOOD = fileURLToPath(new URL('./utils/flood.ts', import.meta.url))

interface Runtime {
  pid: number
  p2p: string[]
  http: { port: number }
  control: { port: number }
}

const chat = (content: string, stream = false) =>
  JSON.stringify({ model: 'llama3.2:1b', messages: [{ role: 'user', content }], stream })

async function runtimeOf(home: string): Promise<Runtime> {
  await waitFor(async () => (await readFile(join(home, 'daemon.json'), 'utf8').catch(() => '')) !== '', {
    timeoutMs: 30_000,
  })
  return JSON.parse(await readFile(join(home, 'daemon.json'), 'utf8'))
}

/** The daemon's JS heap in use, in MB, from its `/metrics`. */
async function heapUsedMb(controlPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${controlPort}/metrics`)).text()
  return Number(/^nodejs_heap_size_used_bytes (\S+)/m.exec(text)?.[1]) / 2 ** 20
}

/** Resident memory of `pid` in MB. */
async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]) / 1024
}

async function chatLatencyMs(port: number): Promise<number> {
  const start = performance.now()
  const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: chat('ping'),
  })
  assert.equal(res.status, 200)
  await res.text()
  return performance.now() - start
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
}

describe('a daemon under pressure', () => {
  it('caps local connections below its descriptor limit, says so, and keeps the control port and its engine', async () => {
    await using engine = await startFakeEngine()
    await using gate = await gateHome({
      providers: [{ name: 'engine', kind: 'openai', url: engine.url, health_check_interval: 1 }],
    })
    const daemon = gate.spawn(['daemon'], { fdLimit: 256 })
    try {
      const runtime = await runtimeOf(gate.home)
      // The API takes half the descriptors: 128 connections; these 300 are more than the process could hold.
      const sockets: Socket[] = []
      for (let i = 0; i < 300; i++) {
        const socket = connect(runtime.http.port, '127.0.0.1')
        socket.on('error', () => {})
        sockets.push(socket)
      }
      await Promise.all(sockets.map((s) => once(s, 'connect').catch(() => {})))
      await waitFor(
        async () =>
          (await readFile(join(gate.home, 'logs', 'daemon.log'), 'utf8')).includes('at its connection cap'),
        { timeoutMs: 10_000, label: 'a log line about the cap' },
      )
      await sleep(2500) // two health checks of the engine, at 1 s
      const rpc = createRpcClient({
        url: `http://127.0.0.1:${runtime.control.port}`,
        token: await token(gate.home),
      })
      const { providers } = await rpc.call('list_providers')
      assert.equal(providers[0]?.healthy, true, `the engine is not marked down: ${providers[0]?.last_error}`)
      const lines = (await readFile(join(gate.home, 'logs', 'daemon.log'), 'utf8')).split('\n')
      assert.ok(
        lines.filter((l) => l.includes('at its connection cap')).length <= 2,
        'the log line is throttled',
      )
      for (const socket of sockets) socket.destroy()
      await waitFor(async () => (await chatLatencyMs(runtime.http.port).catch(() => -1)) > 0, {
        timeoutMs: 10_000,
        label: 'the API serves again',
      })
    } finally {
      daemon.kill('SIGKILL')
    }
  })

  it('ends a stream still running at the grace deadline with an SSE error event, and exits within a second of it', async () => {
    await using engine = await startFakeEngine({ chunks: 100, chunkDelayMs: 100 })
    await using gate = await gateHome({
      node: { shutdown_grace: 1 },
      providers: [{ name: 'engine', kind: 'openai', url: engine.url }],
    })
    const daemon = gate.spawn(['daemon'])
    try {
      await waitForOutput(daemon, /gate daemon ready/)
      const runtime = await runtimeOf(gate.home)
      await waitFor(
        async () =>
          (await fetch(`http://127.0.0.1:${runtime.http.port}/v1/models`).then((r) => r.json())).data.length >
          0,
      )
      const res = await fetch(`http://127.0.0.1:${runtime.http.port}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: chat('a long answer', true),
      })
      const reader = (res.body as ReadableStream<Uint8Array>).getReader()
      let text = new TextDecoder().decode((await reader.read()).value)
      const signalled = performance.now()
      daemon.kill('SIGTERM')
      const exit = exited(daemon).then((r) => ({ ...r, after: performance.now() - signalled }))
      for (let r = await reader.read(); !r.done; r = await reader.read())
        text += new TextDecoder().decode(r.value)
      assert.match(
        text,
        /data: \{"error":\{"message":"the node is shutting down","type":"api_error","code":"unavailable"/,
      )
      assert.ok(!text.includes('[DONE]'))
      const { code, after } = await exit
      assert.equal(code, 0)
      assert.ok(after < 2000, `exited ${Math.round(after)} ms after SIGTERM, with a 1 s grace period`)
    } finally {
      daemon.kill('SIGKILL')
    }
  })

  it('holds bounded memory and keeps serving local clients while an untrusted peer floods it with streams', async () => {
    await using engine = await startFakeEngine()
    await using gate = await gateHome({ providers: [{ name: 'engine', kind: 'openai', url: engine.url }] })
    assert.equal((await gate.run(['daemon', '--background'])).code, 0)
    const runtime = await runtimeOf(gate.home)
    await waitFor(async () => (await chatLatencyMs(runtime.http.port).catch(() => -1)) > 0)
    for (let i = 0; i < 20; i++) await chatLatencyMs(runtime.http.port)
    const before = await rssMb(runtime.pid)
    const heapBefore = await heapUsedMb(runtime.control.port)
    const tcp = runtime.p2p.find((a) => a.includes('/tcp/')) as string
    const flood = spawn(process.execPath, [FLOOD, tcp, '30'], { stdio: ['ignore', 'pipe', 'inherit'] })
    try {
      let output = ''
      flood.stdout.on('data', (d) => {
        output += d
      })
      await waitFor(() => output.includes('connections'), { timeoutMs: 60_000, label: 'the flood connected' })
      const connections = Number(/connections (\d+)/.exec(output)?.[1])
      const latencies: number[] = []
      let peak = before
      let heapPeak = heapBefore
      for (let i = 0; i < 100 || !output.includes('done'); i++) {
        latencies.push(await chatLatencyMs(runtime.http.port))
        if (i % 10 === 0) {
          peak = Math.max(peak, await rssMb(runtime.pid))
          heapPeak = Math.max(heapPeak, await heapUsedMb(runtime.control.port))
        }
        if (i > 2000) assert.fail('the flood did not end')
      }
      peak = Math.max(peak, await rssMb(runtime.pid))
      heapPeak = Math.max(heapPeak, await heapUsedMb(runtime.control.port))
      const p99 = percentile(latencies, 99)
      console.log(
        `flood: ${connections} connections held; RSS ${before.toFixed(0)} → peak ${peak.toFixed(0)} MB, ` +
          `heap in use ${heapBefore.toFixed(0)} → peak ${heapPeak.toFixed(0)} MB; ` +
          `${latencies.length} local chats, p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms`,
      )
      assert.ok(p99 < 100, `local chat p99 ${p99.toFixed(1)} ms under the flood`)
      // What one untrusted connection can make the node hold: a few MiB (it was 36 MB).
      const perConnection = (heapPeak - heapBefore) / connections
      assert.ok(perConnection < 6, `${perConnection.toFixed(1)} MB of heap per connection`)
      assert.ok(peak - before < 250, `RSS grew by ${(peak - before).toFixed(0)} MB`)
      assert.ok(
        connections > 0 && connections <= 64,
        'untrusted nodes hold at most a quarter of max_connections',
      )
    } finally {
      flood.kill('SIGKILL')
    }
    assert.ok((await chatLatencyMs(runtime.http.port)) < 1000, 'the daemon serves on')
  })
})

async function token(home: string): Promise<string> {
  return (await readFile(join(home, 'control.token'), 'utf8')).trim()
}
