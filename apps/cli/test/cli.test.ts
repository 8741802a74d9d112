import assert from 'node:assert/strict'
import { execFile, execFileSync } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import OpenAI from 'openai'
import { startFakeEngine } from '../../../packages/daemon/test/utils/fake-engine.ts'
import { waitFor } from '../../../packages/daemon/test/utils/wait.ts'
import { exited, type GateResult, gateHome, waitForOutput } from './utils/gate.ts'

const NOT_RUNNING = 'error: gate daemon is not running (start it with: gate daemon)\n'

/** A failed command: non-zero exit, nothing on stdout, exactly one line on stderr, no stack trace. */
function assertOneLineError(result: GateResult, pattern: RegExp): void {
  assert.notEqual(result.code, 0, `expected a failure, got: ${result.stdout}`)
  assert.equal(result.stdout, '')
  const lines = result.stderr.trimEnd().split('\n')
  assert.equal(lines.length, 1, `expected one line, got:\n${result.stderr}`)
  assert.match(lines[0] ?? '', pattern)
  assert.doesNotMatch(result.stderr, /\n\s+at /)
}

/** The official SDK pointed at a daemon's API, once the daemon lists a model. */
async function readyClient(baseURL: string): Promise<OpenAI> {
  const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0 })
  await waitFor(async () => (await client.models.list()).data.length > 0, { timeoutMs: 10_000 })
  return client
}

/** A system Node older than 24, if there is one: the Node a user may have on the PATH. */
const OLD_NODE = ['/usr/bin/node', '/usr/local/bin/node'].find((path) => {
  try {
    const out = execFileSync(path, ['--version'], { encoding: 'utf8' })
    return Number(/^v(\d+)/.exec(out)?.[1]) < 24
  } catch {
    return false
  }
})

/** Every file under `dir`'s `apps` and `packages` (but their node_modules) with its size and time. */
async function listing(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const top of ['apps', 'packages']) {
    for (const entry of await readdir(join(dir, top), { recursive: true, withFileTypes: true })) {
      const path = join(entry.parentPath, entry.name)
      if (path.includes('node_modules') || !entry.isFile()) continue
      const { size, mtimeMs } = await stat(path)
      out.push(`${path} ${size} ${mtimeMs}`)
    }
  }
  return out.sort()
}

describe('gate CLI without a daemon', () => {
  it('says plainly that the daemon is not running', async () => {
    await using gate = await gateHome()
    for (const args of [['status'], ['status', '--json'], ['stop']]) {
      const result = await gate.run(args)
      assert.equal(result.code, 1, args.join(' '))
      assert.equal(result.stderr, NOT_RUNNING)
      assert.equal(result.stdout, '')
    }
  })

  it('runs from its TypeScript sources with no build step, and writes nothing into the checkout', async () => {
    await using gate = await gateHome()
    const root = fileURLToPath(new URL('../../../', import.meta.url))
    const before = await listing(root)
    const version = await gate.run(['--version'])
    assert.equal(version.code, 0, version.stderr)
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/)
    assert.equal((await gate.run(['config', 'validate'])).code, 0)
    assert.deepEqual(await listing(root), before, 'no file of the checkout was made or changed')
  })

  it('names the Node it needs, in one line, when run on an older one', {
    skip: !OLD_NODE && 'no Node older than 24 on this machine',
  }, async () => {
    const bin = fileURLToPath(new URL('../src/bin.js', import.meta.url))
    const result = await promisify(execFile)(OLD_NODE as string, [bin, 'status']).then(
      () => assert.fail('gate ran on an old Node'),
      (err: { code: number; stdout: string; stderr: string }) => err,
    )
    assertOneLineError(
      { code: result.code, signal: null, stdout: result.stdout, stderr: result.stderr },
      /^error: gate needs Node\.js 24 or newer, and this is Node\.js v?\d+\.\d+\.\d+: run it as `pnpm gate`/,
    )
  })

  it('validates config files, naming the bad field', async () => {
    await using gate = await gateHome()
    const valid = await gate.run(['config', 'validate'])
    assert.equal(valid.code, 0)
    assert.match(valid.stdout, /config\.json is valid/)

    const bad = join(gate.home, 'bad.json')
    await writeFile(
      bad,
      JSON.stringify({ network: { http_port: 'abc' }, providers: [{ name: 'x', kind: 'vllm' }] }),
    )
    const result = await gate.run(['config', 'validate', bad])
    assertOneLineError(result, /network\.http_port: expected integer 0–65535, got "abc"/)
    assert.match(result.stderr, /providers\[0\]\.kind: expected one of ollama, lmstudio, openai, got "vllm"/)
    assert.match(result.stderr, /providers\[0\]\.url: expected an http\(s\) URL, got nothing/)

    const json = await gate.run(['config', 'validate', bad, '--json'])
    assert.equal(json.code, 1)
    const parsed = JSON.parse(json.stdout) as { valid: boolean; errors: string[] }
    assert.equal(parsed.valid, false)
    assert.equal(parsed.errors.length, 3)

    await writeFile(bad, '{"network": {')
    assertOneLineError(await gate.run(['config', 'validate', bad]), /config is not valid JSON/)
    assertOneLineError(
      await gate.run(['config', 'validate', join(gate.home, 'nope.json')]),
      /cannot read .*nope\.json: ENOENT/,
    )
  })

  it('sets config fields in the file, refuses invalid values and shows keys redacted', async () => {
    await using gate = await gateHome()
    const path = join(gate.home, 'config.json')
    const set = await gate.run(['config', 'set', 'security.api_keys', '["sk-very-secret"]'])
    assert.equal(set.code, 0, set.stderr)
    assert.match(set.stdout, /applies at next start/)
    assert.equal((await gate.run(['config', 'set', 'node.log_level', 'debug'])).code, 0)

    const before = await readFile(path, 'utf8')
    assert.deepEqual(JSON.parse(before).security.api_keys, ['sk-very-secret'])
    assert.equal(JSON.parse(before).node.log_level, 'debug')
    assert.equal((await stat(path)).mode & 0o777, 0o600)

    assertOneLineError(
      await gate.run(['config', 'set', 'network.http_port', 'abc']),
      /^error: network\.http_port: expected integer 0–65535, got "abc"$/,
    )
    assertOneLineError(
      await gate.run(['config', 'set', 'network.nope', '1']),
      /network: unknown field "nope"/,
    )
    assert.equal(await readFile(path, 'utf8'), before, 'a refused change leaves the file as it was')
    assert.equal(JSON.parse(before).providers, undefined, 'no defaults written in')

    await writeFile(path, '{"node": {')
    assertOneLineError(
      await gate.run(['config', 'set', 'node.log_level', 'warn']),
      /config is not valid JSON at line 1, column 11/,
    )
    assert.equal(await readFile(path, 'utf8'), '{"node": {', 'a broken file is not overwritten')
    await writeFile(path, before)

    const shown = await gate.run(['config', 'show', '--json'])
    assert.equal(shown.code, 0)
    assert.doesNotMatch(shown.stdout, /sk-very-secret/)
    const config = JSON.parse(shown.stdout)
    assert.deepEqual(config.security.api_keys, ['[redacted]'])
    assert.equal(config.network.control_port, 0)
    assert.equal(config.security.max_concurrent_requests, 64, 'defaults are filled in')
  })

  it('detects an engine with gate setup and adds it once', async () => {
    await using gate = await gateHome()
    await using engine = await startFakeEngine({ kind: 'ollama', models: ['llama3.2:1b', 'qwen3:4b'] })
    await using nothing = await startFakeEngine()
    await nothing.stop() // a port where nothing listens any more
    const args = ['setup', '--ollama-url', engine.url, '--lmstudio-url', nothing.url, '--json']

    const first = await gate.run(args)
    assert.equal(first.code, 0, first.stderr)
    const { engines } = JSON.parse(first.stdout) as {
      engines: Array<{ name: string; ok: boolean; action: string; models: string[]; error: string | null }>
    }
    assert.deepEqual(
      engines.map((e) => [e.name, e.ok, e.action]),
      [
        ['ollama', true, 'added'],
        ['lmstudio', false, 'not found'],
      ],
    )
    assert.deepEqual(engines[0]?.models, ['llama3.2:1b', 'qwen3:4b'])
    assert.match(engines[1]?.error ?? '', /ECONNREFUSED/)

    const config = JSON.parse(await readFile(join(gate.home, 'config.json'), 'utf8'))
    assert.deepEqual(config.providers, [{ name: 'ollama', kind: 'ollama', url: `${engine.url}/v1` }])

    const again = await gate.run(args.slice(0, -1))
    assert.equal(again.code, 0)
    assert.match(again.stdout, /✓ ollama at .*: 2 models \(already configured\)/)
    assert.match(again.stdout, /✗ lmstudio at .*: not found/)
    const after = JSON.parse(await readFile(join(gate.home, 'config.json'), 'utf8'))
    assert.equal(after.providers.length, 1)
  })

  it('answers unknown commands and options with one line and a non-zero exit', async () => {
    await using gate = await gateHome()
    assertOneLineError(await gate.run(['frobnicate']), /unknown command 'frobnicate'/)
    assertOneLineError(await gate.run(['logs', '--level', 'loud']), /Allowed choices are trace, debug/)
    assertOneLineError(await gate.run(['logs', '--lines', '0']), /expected an integer 1–10000/)
    assertOneLineError(await gate.run(['identity', 'show']), /no identity at .* yet/)
  })
})

describe('gate CLI with a daemon', () => {
  it('starts in the background, reports status, changes config live, shows logs and stops', async () => {
    await using gate = await gateHome()
    await using engine = await startFakeEngine({ models: ['llama3.2:1b'] })

    const started = await gate.run(['daemon', '--background'])
    assert.equal(started.code, 0, started.stderr)
    assert.match(
      started.stdout,
      /gate daemon started \(pid \d+\): OpenAI API on http:\/\/127\.0\.0\.1:\d+\/v1/,
    )
    assertOneLineError(
      await gate.run(['daemon', '--background']),
      /gate daemon is already running \(pid \d+\)/,
    )

    const status = JSON.parse((await gate.run(['status', '--json'])).stdout)
    const identity = JSON.parse((await gate.run(['identity', 'show', '--json'])).stdout)
    assert.equal(status.node_id, identity.node_id)
    assert.match(identity.peer_id, /^12D3KooW/)
    // libp2p-quic's native addon loads: the node listens on QUIC as well as TCP.
    assert.ok(
      status.p2p.some((addr: string) => addr.includes('/quic-v1/')),
      status.p2p.join(' '),
    )
    assert.deepEqual(status.provider_list, [])

    const provider = JSON.stringify([{ name: 'engine', kind: 'openai', url: engine.url }])
    const set = await gate.run(['config', 'set', 'providers', provider])
    assert.equal(set.code, 0, set.stderr)
    assert.match(set.stdout, /\(applied\)/)

    const client = await readyClient(`http://127.0.0.1:${status.http.port}/v1`)
    const reply = await client.chat.completions.create({
      model: 'llama3.2:1b',
      messages: [{ role: 'user', content: 'hello' }],
    })
    assert.ok(reply.choices[0]?.message.content)

    const readable = await gate.run(['status'])
    assert.match(readable.stdout, new RegExp(`node ID\\s+${status.node_id}`))
    assert.match(readable.stdout, /provider engine\s+http:\/\/127\.0\.0\.1:\d+\/v1 healthy, 1 models/)

    const logs = await gate.run(['logs', '--json', '--level', 'info'])
    const lines = logs.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string; level: number })
    assert.ok(lines.some((l) => l.msg.startsWith('gate daemon ready')))
    assert.ok(lines.every((l) => l.level >= 30))
    assert.doesNotMatch(logs.stdout, /cli-test-passphrase/)

    const follow = gate.spawn(['logs', '--follow', '--lines', '1'])
    try {
      const tail = await waitForOutput(follow, /INFO/)
      assert.equal((await gate.run(['config', 'set', 'node.log_level', 'debug'])).code, 0)
      await waitForOutput(follow, /config reloaded/, { after: tail.length })
    } finally {
      follow.kill('SIGINT')
    }
    assert.equal((await exited(follow)).code, 0)

    const stopped = await gate.run(['stop'])
    assert.equal(stopped.code, 0, stopped.stderr)
    assert.match(stopped.stdout, new RegExp(`gate daemon stopped \\(pid ${status.pid}\\)`))
    assert.throws(() => process.kill(status.pid, 0), /ESRCH/)
    assert.equal((await gate.run(['status'])).stderr, NOT_RUNNING)
  })

  it('in the foreground, stops gracefully on SIGTERM, and at once on a second signal', async () => {
    await using gate = await gateHome()
    await using engine = await startFakeEngine({ models: ['m'], chunks: 100, chunkDelayMs: 100 })
    await gate.run([
      'config',
      'set',
      'providers',
      JSON.stringify([{ name: 'e', kind: 'openai', url: engine.url }]),
    ])

    const quiet = gate.spawn(['daemon'])
    await waitForOutput(quiet, /gate daemon ready/)
    quiet.kill('SIGTERM')
    assert.deepEqual(await exited(quiet), { code: 0, signal: null })

    const busy = gate.spawn(['daemon'])
    try {
      const ready = await waitForOutput(busy, /gate daemon ready: OpenAI API on (http:\S+)/)
      const client = await readyClient(/OpenAI API on (http:\S+)/.exec(ready)?.[1] as string)
      // A 10-second stream keeps the first SIGTERM's graceful stop waiting.
      const stream = await client.chat.completions.create({
        model: 'm',
        stream: true,
        messages: [{ role: 'user', content: 'long' }],
      })
      const reading = (async () => {
        for await (const _ of stream) {
        }
      })().catch(() => {})
      await waitFor(() => engine.requests.some((r) => r.path.endsWith('/chat/completions')))
      busy.kill('SIGTERM')
      await waitForOutput(busy, /gate daemon stopping/)
      const start = Date.now()
      busy.kill('SIGTERM')
      assert.deepEqual(await exited(busy, 5000), { code: 143, signal: null })
      assert.ok(Date.now() - start < 2000, 'the second signal does not wait for the stream')
      await reading
    } finally {
      busy.kill('SIGKILL')
    }
  })

  it('answers bodies over the limit with a 413 that the openai SDK reads while it is still sending', async () => {
    await using gate = await gateHome()
    const started = await gate.run(['daemon', '--background'])
    assert.equal(started.code, 0, started.stderr)
    const { http } = JSON.parse(await readFile(join(gate.home, 'daemon.json'), 'utf8'))
    const client = new OpenAI({
      baseURL: `http://127.0.0.1:${http.port}/v1`,
      apiKey: 'unused',
      maxRetries: 0,
    })
    // A daemon that closed the connection while the SDK was still sending made it report
    // `APIConnectionError: Connection error.` instead, about one time in three.
    for (const size of [20e6, 60e6, 150e6]) {
      for (let i = 0; i < 4; i++) {
        const content = 'x'.repeat(size)
        await assert.rejects(
          client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content }] }),
          (err) => {
            assert.ok(err instanceof OpenAI.APIError && err.status === 413, `${size} bytes: ${err}`)
            assert.equal((err.error as { type?: string }).type, 'invalid_request_error')
            return true
          },
        )
      }
    }
    assert.equal((await client.models.list()).data.length, 0, 'the daemon serves on')
    assert.equal((await gate.run(['stop'])).code, 0)
  })

  it('writes control.token, identity.key and daemon.json for the owner only (0600)', async () => {
    await using gate = await gateHome()
    // With the usual umask a file written without an explicit mode would be 0644.
    const umask = process.umask(0o022)
    try {
      const started = await gate.run(['daemon', '--background'])
      assert.equal(started.code, 0, started.stderr)
    } finally {
      process.umask(umask)
    }
    for (const file of ['control.token', 'identity.key', 'daemon.json']) {
      assert.equal((await stat(join(gate.home, file))).mode & 0o777, 0o600, file)
    }
    // The token is the one the control port takes: `gate status` reads it to connect.
    assert.match(await readFile(join(gate.home, 'control.token'), 'utf8'), /^[\w-]{43}\n$/)
    assert.equal((await gate.run(['status'])).code, 0)
  })

  it('reads its config from --config, keeping its other files in the data dir', async () => {
    await using gate = await gateHome()
    await using engine = await startFakeEngine({ models: ['llama3.2:1b'] })
    await using nothing = await startFakeEngine()
    await nothing.stop() // a free port, for the HTTP port the other config names
    const elsewhere = await mkdtemp(join(tmpdir(), 'gate-cli-config-'))
    try {
      const path = join(elsewhere, 'gate.json')
      await writeFile(
        path,
        JSON.stringify({
          network: { http_port: nothing.port, control_port: 0, p2p_port: 0, p2p_host: '127.0.0.1' },
          providers: [{ name: 'elsewhere', kind: 'openai', url: engine.url }],
        }),
      )
      const inHome = await readFile(join(gate.home, 'config.json'), 'utf8')

      const started = await gate.run(['daemon', '--background', '--config', path])
      assert.equal(started.code, 0, started.stderr)
      assert.match(started.stdout, new RegExp(`OpenAI API on http://127\\.0\\.0\\.1:${nothing.port}/v1`))
      const status = JSON.parse((await gate.run(['status', '--json'])).stdout)
      assert.equal(status.http.port, nothing.port)
      assert.deepEqual(
        status.provider_list.map((p: { name: string }) => p.name),
        ['elsewhere'],
      )
      const client = await readyClient(`http://127.0.0.1:${nothing.port}/v1`)
      const reply = await client.chat.completions.create({
        model: 'llama3.2:1b',
        messages: [{ role: 'user', content: 'elsewhere' }],
      })
      assert.ok(reply.choices[0]?.message.content)

      // A change made through the daemon goes to that file, not to the data dir's.
      const set = await gate.run(['config', 'set', 'node.log_level', 'debug'])
      assert.equal(set.code, 0, set.stderr)
      assert.equal(JSON.parse(await readFile(path, 'utf8')).node.log_level, 'debug')
      assert.equal(await readFile(join(gate.home, 'config.json'), 'utf8'), inHome)
      // Only the config moved: the key, token and runtime files are in the data dir.
      assert.deepEqual(await readdir(elsewhere), ['gate.json'])
      for (const file of ['identity.key', 'control.token', 'daemon.json']) await stat(join(gate.home, file))
      assert.equal((await gate.run(['stop'])).code, 0)
    } finally {
      await gate.run(['stop'])
      await rm(elsewhere, { recursive: true, force: true })
    }
  })

  it('refuses to start on a broken config.json with one line naming the fault, and leaves the file', async () => {
    await using gate = await gateHome()
    const path = join(gate.home, 'config.json')
    const network = { control_port: 0, p2p_port: 0, p2p_host: '127.0.0.1' }
    const cases: Array<[string, RegExp]> = [
      ['{"network": {', /^error: \/.*\/config\.json: config is not valid JSON at line 1, column 14$/],
      [
        JSON.stringify({ network: { ...network, http_port: 'abc' } }, null, 2),
        /^error: \/.*\/config\.json: network\.http_port: expected integer 0–65535, got "abc"$/,
      ],
    ]
    for (const [text, pattern] of cases) {
      await writeFile(path, text)
      // In the background first: a daemon that starts anyway fails the test at once.
      for (const args of [['daemon', '--background'], ['daemon']]) {
        assertOneLineError(await gate.run(args), pattern)
        assert.deepEqual(await readFile(path), Buffer.from(text), `${args.join(' ')} left the file as it was`)
      }
    }
    assert.equal((await gate.run(['status'])).stderr, NOT_RUNNING)
    await assert.rejects(stat(join(gate.home, 'daemon.json')), /ENOENT/)
  })

  it('refuses to start on a port another daemon holds, naming the field, and says so in daemon.log', async () => {
    await using first = await gateHome()
    assert.equal((await first.run(['daemon', '--background'])).code, 0)
    const runtime = JSON.parse(await readFile(join(first.home, 'daemon.json'), 'utf8')) as {
      p2p: string[]
      http: { port: number }
      control: { port: number }
    }
    const p2pPort = Number(/\/ip4\/127\.0\.0\.1\/tcp\/(\d+)/.exec(runtime.p2p.join(' '))?.[1])
    const cases: Array<[string, number]> = [
      ['p2p_port', p2pPort],
      ['http_port', runtime.http.port],
      ['control_port', runtime.control.port],
    ]
    for (const [field, port] of cases) {
      await using second = await gateHome({ network: { [field]: port } })
      const pattern = new RegExp(`^error: network\\.${field}: 127\\.0\\.0\\.1:${port} is in use`)
      assertOneLineError(await second.run(['daemon', '--background']), pattern)
      const log = await readFile(join(second.home, 'logs', 'daemon.log'), 'utf8')
      assert.match(log, new RegExp(`network\\.${field}: .*"msg":"gate daemon could not start"`), field)
      assert.equal((await second.run(['status'])).stderr, NOT_RUNNING)
    }
    assert.equal((await first.run(['status'])).code, 0, 'the first daemon still runs')
  })

  it('refuses to start with a wrong passphrase and keeps the identity it has', async () => {
    await using gate = await gateHome()
    assert.equal((await gate.run(['daemon', '--background'])).code, 0)
    assert.equal((await gate.run(['stop'])).code, 0)
    const nodeId = JSON.parse((await gate.run(['identity', 'show', '--json'])).stdout).node_id as string
    const path = join(gate.home, 'identity.key')
    const key = await readFile(path)
    assert.match(key.toString(), /"protection": "passphrase"/)

    for (const args of [['daemon', '--background'], ['daemon']]) {
      assertOneLineError(
        await gate.run(args, { env: { GATE_PASSPHRASE: 'wrong' } }),
        /^error: wrong passphrase for identity\.key$/,
      )
      assert.deepEqual(await readFile(path), key, `${args.join(' ')} left identity.key as it was`)
    }
    assertOneLineError(
      await gate.run(['daemon', '--background'], { env: { GATE_PASSPHRASE: undefined } }),
      /^error: identity\.key is encrypted with a passphrase: set GATE_PASSPHRASE$/,
    )
    assert.deepEqual(await readFile(path), key)
    assert.equal((await gate.run(['status'])).stderr, NOT_RUNNING)

    // The right passphrase still opens it: the same node starts.
    assert.equal((await gate.run(['daemon', '--background'])).code, 0)
    assert.equal(JSON.parse((await gate.run(['status', '--json'])).stdout).node_id, nodeId)
  })

  it('exports and imports identities; a wrong passphrase is a clear error', async () => {
    await using a = await gateHome()
    await using b = await gateHome()
    assert.equal((await a.run(['daemon', '--background'])).code, 0)
    assert.equal((await a.run(['stop'])).code, 0)
    const nodeA = JSON.parse((await a.run(['identity', 'show', '--json'])).stdout).node_id as string

    const keyFile = await readFile(join(a.home, 'identity.key'), 'utf8')
    assert.match(keyFile, /"protection": "passphrase"/)

    const file = join(a.home, 'exported.json')
    const exported = await a.run(['identity', 'export', '--output', file])
    assert.equal(exported.code, 0, exported.stderr)
    assert.match(exported.stderr, /keep it secret/)
    assert.equal((await stat(file)).mode & 0o777, 0o600)
    const { node_id, private_key } = JSON.parse(await readFile(file, 'utf8'))
    assert.equal(node_id, nodeA)
    assert.ok(!keyFile.includes(private_key), 'the key file does not hold the key in the clear')

    assertOneLineError(
      await a.run(['identity', 'export'], { env: { GATE_PASSPHRASE: 'wrong' } }),
      /passphrase/i,
    )

    const imported = await b.run(['identity', 'import', '-'], { input: await readFile(file, 'utf8') })
    assert.equal(imported.code, 0, imported.stderr)
    assert.match(imported.stdout, new RegExp(`imported node ${nodeA}`))
    assert.equal(JSON.parse((await b.run(['identity', 'show', '--json'])).stdout).node_id, nodeA)

    // B starts with A's identity; importing a different one needs --force.
    assert.equal((await b.run(['daemon', '--background'])).code, 0)
    assert.equal(JSON.parse((await b.run(['status', '--json'])).stdout).node_id, nodeA)
    const other = join(b.home, 'other.json')
    await writeFile(other, JSON.stringify({ private_key: Buffer.alloc(32, 7).toString('base64') }))
    assertOneLineError(await b.run(['identity', 'import', other]), /already has identity .*--force/)
    const forced = await b.run(['identity', 'import', other, '--force'])
    assert.equal(forced.code, 0, forced.stderr)
    assert.match(forced.stdout, /restart the daemon to use it/)
    assertOneLineError(await b.run(['identity', 'import', join(b.home, 'missing.json')]), /cannot read/)
    await writeFile(other, 'not json')
    assertOneLineError(await b.run(['identity', 'import', other]), /not an exported Gate identity/)
  })
})

describe('gate peers', () => {
  it('adds, lists and removes a peer between two running daemons', async () => {
    await using a = await gateHome()
    await using b = await gateHome()
    assert.equal((await a.run(['peers', 'list'])).stderr, NOT_RUNNING)
    assert.equal((await a.run(['daemon', '--background'])).code, 0)
    assert.equal((await b.run(['daemon', '--background'])).code, 0)
    const idB = JSON.parse((await b.run(['identity', 'show', '--json'])).stdout) as {
      node_id: string
      addresses: string[]
    }
    const tcp = idB.addresses.find((x) => x.includes('/tcp/'))
    assert.ok(tcp, idB.addresses.join())

    const added = await a.run(['peers', 'add', idB.node_id, tcp, '--json'])
    assert.equal(added.code, 0, added.stderr)
    const peer = JSON.parse(added.stdout)
    assert.equal(peer.node_id, idB.node_id)
    assert.equal(peer.status, 'connected')

    const list = JSON.parse((await a.run(['peers', 'list', '--json'])).stdout) as Array<{ node_id: string }>
    assert.deepEqual(
      list.map((p) => p.node_id),
      [idB.node_id],
    )
    assert.match(
      (await a.run(['peers', 'list'])).stdout,
      new RegExp(`node ID\\s+${idB.node_id}\\nstatus\\s+connected`),
    )

    assertOneLineError(await a.run(['peers', 'add', 'not-a-node']), /not a node ID or PeerId/)
    const removed = await a.run(['peers', 'remove', idB.node_id])
    assert.equal(removed.code, 0)
    assert.equal(removed.stdout, `removed ${idB.node_id}\n`)
    assert.match((await a.run(['peers', 'list'])).stdout, /no trusted peers/)
  })
})

describe('a peer whose process is killed mid-stream', () => {
  for (const transport of ['quic', 'tcp'] as const) {
    it(`ends the stream at the requester with an error event and no [DONE], over ${transport}`, async () => {
      await using engine = await startFakeEngine({ models: ['m'], chunks: 1000, chunkDelayMs: 20 })
      await using a = await gateHome()
      await using b = await gateHome({ providers: [{ name: 'e', kind: 'openai', url: engine.url }] })
      for (const gate of [a, b]) assert.equal((await gate.run(['daemon', '--background'])).code, 0)
      const ids = await Promise.all(
        [a, b].map(async (gate) => {
          const id = JSON.parse((await gate.run(['identity', 'show', '--json'])).stdout)
          return {
            node_id: id.node_id as string,
            address: (id.addresses as string[]).find((x) =>
              x.includes(transport === 'quic' ? '/quic-v1/' : '/tcp/'),
            ) as string,
          }
        }),
      )
      const [idA, idB] = ids as [(typeof ids)[number], (typeof ids)[number]]
      assert.equal((await a.run(['peers', 'add', idB.node_id, idB.address])).code, 0)
      assert.equal((await b.run(['peers', 'add', idA.node_id, idA.address])).code, 0)
      const runtime = async (gate: typeof a) =>
        JSON.parse(await readFile(join(gate.home, 'daemon.json'), 'utf8'))
      const res = await fetch(`http://127.0.0.1:${(await runtime(a)).http.port}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-target-node': idB.node_id },
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'long' }], stream: true }),
      })
      assert.equal(res.status, 200)
      const reader = res.body?.getReader()
      assert.ok(reader)
      let text = new TextDecoder().decode((await reader.read()).value)
      const killed = Date.now()
      process.kill((await runtime(b)).pid, 'SIGKILL')
      for (let r = await reader.read(); !r.done; r = await reader.read())
        text += new TextDecoder().decode(r.value)
      const after = Date.now() - killed
      // QUIC has no connection close from a killed process: its 10 s idle timeout tells.
      assert.ok(after < 20_000, `the stream ended ${after} ms after the kill`)
      assert.match(text, /data: \{"error":\{"message":"[^"]*","type":"api_error"/)
      assert.ok(!text.includes('[DONE]'))
      // A keeps serving.
      assert.equal((await fetch(`http://127.0.0.1:${(await runtime(a)).http.port}/health`)).status, 200)
    })
  }
})

describe('gate peers invite and join', () => {
  it('pairs two nodes with a one-time code', async () => {
    await using a = await gateHome()
    await using b = await gateHome()
    assert.equal((await a.run(['daemon', '--background'])).code, 0)
    assert.equal((await b.run(['daemon', '--background'])).code, 0)
    const idA = JSON.parse((await a.run(['identity', 'show', '--json'])).stdout).node_id as string
    const idB = JSON.parse((await b.run(['identity', 'show', '--json'])).stdout).node_id as string

    const invite = await a.run(['peers', 'invite', '--json'])
    assert.equal(invite.code, 0, invite.stderr)
    const { code, node_id } = JSON.parse(invite.stdout) as { code: string; node_id: string }
    assert.equal(node_id, idA)

    const joined = await b.run(['peers', 'join', code, '--json'])
    assert.equal(joined.code, 0, joined.stderr)
    assert.equal(JSON.parse(joined.stdout).node_id, idA)
    const trustedBy = async (gate: typeof a) =>
      (JSON.parse((await gate.run(['peers', 'list', '--json'])).stdout) as Array<{ node_id: string }>).map(
        (p) => p.node_id,
      )
    assert.deepEqual(await trustedBy(b), [idA])
    assert.deepEqual(await trustedBy(a), [idB])

    assertOneLineError(
      await b.run(['peers', 'join', code]),
      /refused the invite: invite expired, used or unknown/,
    )
    assertOneLineError(await b.run(['peers', 'join', 'garbage']), /not an invite code/)
    assertOneLineError(
      await a.run([
        'peers',
        'join',
        (JSON.parse((await a.run(['peers', 'invite', '--json'])).stdout) as { code: string }).code,
      ]),
      /from this node/,
    )
  })
})
