import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ConfigError, NotFoundError, RateLimitedError, UnavailableError } from '@gate/core'
import { RPC_ERROR_CODES, RpcError } from '../src/errors.ts'
import type { JsonRpcResponse } from '../src/protocol.ts'
import type { RpcHandlers } from '../src/server.ts'
import { createRpcHandler, parseRpcBody } from '../src/server.ts'

const calls: Array<{ method: string; params: unknown }> = []

const handlers: Partial<RpcHandlers> = {
  node_shutdown: async () => {
    calls.push({ method: 'node_shutdown', params: {} })
    return { ok: true }
  },
  get_logs: async (params) => {
    calls.push({ method: 'get_logs', params })
    return { lines: [{ msg: 'hello', level: params.level ?? 'info' }] }
  },
  request_history: async () => ({ requests: [] }),
  add_provider: async (params) => ({
    provider: {
      name: params.name,
      kind: params.kind,
      url: params.url,
      enabled: params.enabled,
      healthy: null,
      models: params.models ?? [],
      breaker: 'closed',
      last_error: null,
      last_checked: null,
      latency_ms: null,
    },
  }),
  test_provider: async () => ({ ok: true, models: [], latency_ms: 1, error: null }),
  get_config: async () => {
    throw new NotFoundError('no config file at /tmp/x/config.json')
  },
  update_config: async () => {
    throw new ConfigError(['network.http_port: expected integer 0–65535, got "abc"'])
  },
  validate_config: async () => {
    throw new Error('ENOENT: secret path /home/me/.gate/identity.key leaked')
  },
  node_status: async () => {
    throw new RateLimitedError('slow down', 3)
  },
  export_identity: async () => {
    throw new RpcError(-32099, 'custom', { data: { why: 'test' } })
  },
  import_identity: async () => {
    throw 'a string, not an Error'
  },
  generate_keypair: async () => {
    throw new UnavailableError('no keyring')
  },
}

const onErrors: Array<{ err: unknown; method: string }> = []
const handle = createRpcHandler(handlers, { onError: (err, method) => onErrors.push({ err, method }) })

/** Calls one request and asserts a single response came back. */
async function one(request: unknown): Promise<JsonRpcResponse> {
  const response = await handle(request)
  assert.ok(response !== null && !Array.isArray(response), 'expected one response')
  return response
}

async function errorOf(request: unknown) {
  const response = await one(request)
  assert.ok('error' in response, `expected an error, got ${JSON.stringify(response)}`)
  return { id: response.id, ...response.error }
}

describe('parseRpcBody', () => {
  it('returns the parsed value', () => {
    assert.deepEqual(parseRpcBody('{"jsonrpc":"2.0","id":1,"method":"node_status"}'), {
      ok: true,
      value: { jsonrpc: '2.0', id: 1, method: 'node_status' },
    })
  })

  for (const text of ['{"jsonrpc":', '', 'not json']) {
    it(`answers -32700 with a null id for ${JSON.stringify(text)}`, () => {
      const parsed = parseRpcBody(text)
      assert.equal(parsed.ok, false)
      if (parsed.ok) return
      assert.equal(parsed.response.id, null)
      assert.equal(parsed.response.jsonrpc, '2.0')
      assert.equal(parsed.response.error.code, -32700)
      assert.match(parsed.response.error.message, /^parse error/)
    })
  }
})

describe('envelope', () => {
  const cases: Array<[string, unknown, RegExp, string | number | null]> = [
    ['a non-object', 42, /expected a JSON-RPC request object/, null],
    ['null', null, /expected a JSON-RPC request object/, null],
    ['a missing jsonrpc', { id: 1, method: 'node_shutdown' }, /"jsonrpc" must be "2.0"/, 1],
    ['jsonrpc 1.0', { jsonrpc: '1.0', id: 'a', method: 'node_shutdown' }, /"jsonrpc" must be "2.0"/, 'a'],
    ['a numeric method', { jsonrpc: '2.0', id: 2, method: 7 }, /"method" must be a string/, 2],
    ['an object id', { jsonrpc: '2.0', id: {}, method: 'node_shutdown' }, /"id" must be/, null],
    ['string params', { jsonrpc: '2.0', id: 3, method: 'node_shutdown', params: 'x' }, /"params"/, 3],
    ['null params', { jsonrpc: '2.0', id: 4, method: 'node_shutdown', params: null }, /"params"/, 4],
  ]
  for (const [name, request, message, id] of cases) {
    it(`answers -32600 for ${name}`, async () => {
      const error = await errorOf(request)
      assert.equal(error.code, RPC_ERROR_CODES.invalid_request)
      assert.match(error.message, message)
      assert.equal(error.id, id)
    })
  }

  it('answers an invalid request even without an id (it is not a valid notification)', async () => {
    const error = await errorOf({ jsonrpc: '2.0', method: 1 })
    assert.equal(error.code, -32600)
    assert.equal(error.id, null)
  })

  it('answers -32602 for positional params', async () => {
    const error = await errorOf({ jsonrpc: '2.0', id: 5, method: 'get_logs', params: [10] })
    assert.equal(error.code, -32602)
    assert.match(error.message, /named params/)
  })

  it('answers -32601 for an unknown method, naming it', async () => {
    const error = await errorOf({ jsonrpc: '2.0', id: 6, method: 'no_such_method' })
    assert.deepEqual(error, { id: 6, code: -32601, message: 'method not found: "no_such_method"' })
  })

  it('answers -32601 for a known method without a handler', async () => {
    const error = await errorOf({ jsonrpc: '2.0', id: 7, method: 'list_providers' })
    assert.equal(error.code, -32601)
  })

  it('does not resolve methods through the prototype chain', async () => {
    for (const method of ['toString', '__proto__', 'constructor', 'hasOwnProperty']) {
      const error = await errorOf({ jsonrpc: '2.0', id: 8, method })
      assert.equal(error.code, -32601, method)
    }
  })

  it('answers a success with the same id, string or number or null', async () => {
    for (const id of ['abc', 0, 12.5, null]) {
      assert.deepEqual(await one({ jsonrpc: '2.0', id, method: 'node_shutdown' }), {
        jsonrpc: '2.0',
        id,
        result: { ok: true },
      })
    }
  })
})

describe('params', () => {
  it('treats omitted params as {} and applies defaults', async () => {
    calls.length = 0
    const response = await one({ jsonrpc: '2.0', id: 1, method: 'get_logs' })
    assert.ok('result' in response)
    assert.deepEqual(calls, [{ method: 'get_logs', params: { lines: 200 } }])
  })

  it('passes validated params to the handler', async () => {
    calls.length = 0
    await one({ jsonrpc: '2.0', id: 1, method: 'get_logs', params: { lines: 5, level: 'warn' } })
    assert.deepEqual(calls, [{ method: 'get_logs', params: { lines: 5, level: 'warn' } }])
  })

  const invalid: Array<[string, unknown, string]> = [
    ['get_logs', { lines: 0 }, 'params.lines: expected integer 1–10000, got 0'],
    ['get_logs', { lines: 10_001 }, 'params.lines: expected integer 1–10000, got 10001'],
    ['get_logs', { lines: 2.5 }, 'params.lines: expected integer 1–10000, got 2.5'],
    ['get_logs', { lines: '5' }, 'params.lines: expected integer 1–10000, got "5"'],
    [
      'get_logs',
      { level: 'loud' },
      'params.level: expected one of trace, debug, info, warn, error, fatal, got "loud"',
    ],
    ['request_history', { limit: 1001 }, 'params.limit: expected integer 1–1000, got 1001'],
    ['node_shutdown', { force: true }, 'params: unknown parameter "force"'],
    [
      'add_provider',
      { kind: 'ollama', url: 'http://localhost:11434' },
      'params.name: expected a non-empty string, got nothing',
    ],
    [
      'add_provider',
      { name: 'x', kind: 'vllm', url: 'http://localhost:8000' },
      'params.kind: expected one of ollama, lmstudio, openai, got "vllm"',
    ],
    [
      'add_provider',
      { name: 'x', kind: 'ollama', url: 'ftp://host' },
      'params.url: expected an http(s) URL, got "ftp://host"',
    ],
    [
      'add_provider',
      { name: 'x', kind: 'ollama', url: 'ftp://user:sk-secret@host/' },
      'params.url: expected an http(s) URL, got "ftp://host/"',
    ],
    [
      'add_provider',
      { name: 'x', kind: 'openai', url: 'http://h', api_key: ['sk-secret'] },
      'params.api_key: expected a string, got [redacted array]',
    ],
    [
      'add_provider',
      { name: 'x', kind: 'ollama', url: 'http://h', models: ['a', ''] },
      'params.models[1]: expected a non-empty string, got ""',
    ],
    [
      'test_provider',
      { kind: 'ollama' },
      'params: expected "name" of a configured provider, or "kind" and "url" of a new one',
    ],
    ['update_config', { config: [1] }, 'params.config: expected an object (a partial config), got an array'],
    ['validate_config', {}, 'params.config: expected the config object to check, got nothing'],
    ['import_identity', { identity: 5 }, 'params.identity: expected a non-empty string, got 5'],
  ]
  for (const [method, params, message] of invalid) {
    it(`${method} ${JSON.stringify(params)} → ${message}`, async () => {
      const error = await errorOf({ jsonrpc: '2.0', id: 9, method, params })
      assert.equal(error.code, RPC_ERROR_CODES.invalid_params)
      assert.equal(error.message, message)
      assert.deepEqual(error.data, { issues: [message] })
    })
  }

  it('lists every issue at once', async () => {
    const error = await errorOf({
      jsonrpc: '2.0',
      id: 9,
      method: 'get_logs',
      params: { lines: 0, level: 'x' },
    })
    assert.equal((error.data as { issues: string[] }).issues.length, 2)
    assert.match(error.message, /params\.lines: .*; params\.level: /)
  })

  it('cuts a long input short in the message', async () => {
    const error = await errorOf({
      jsonrpc: '2.0',
      id: 9,
      method: 'get_logs',
      params: { level: 'x'.repeat(500) },
    })
    assert.ok(error.message.length < 200, error.message)
  })

  it('accepts a test_provider by name, or by kind and url', async () => {
    for (const params of [{ name: 'ollama' }, { kind: 'lmstudio', url: 'http://localhost:1234/v1' }]) {
      const response = await one({ jsonrpc: '2.0', id: 1, method: 'test_provider', params })
      assert.ok('result' in response, JSON.stringify(response))
    }
  })

  it('fills add_provider defaults from the core provider schema', async () => {
    const response = await one({
      jsonrpc: '2.0',
      id: 1,
      method: 'add_provider',
      params: { name: 'local', kind: 'ollama', url: 'http://localhost:11434/v1' },
    })
    assert.ok('result' in response)
    assert.equal((response.result as { provider: { enabled: boolean } }).provider.enabled, true)
  })
})

describe('handler errors', () => {
  it('maps a GateError to its code and keeps its message', async () => {
    assert.deepEqual(await errorOf({ jsonrpc: '2.0', id: 1, method: 'get_config' }), {
      id: 1,
      code: RPC_ERROR_CODES.not_found,
      message: 'no config file at /tmp/x/config.json',
    })
    const unavailable = await errorOf({ jsonrpc: '2.0', id: 2, method: 'generate_keypair' })
    assert.equal(unavailable.code, -32005)
  })

  it('adds retry_after_s for a RateLimitedError', async () => {
    const error = await errorOf({ jsonrpc: '2.0', id: 1, method: 'node_status' })
    assert.equal(error.code, -32029)
    assert.deepEqual(error.data, { retry_after_s: 3 })
  })

  it('maps a ConfigError to -32602 with its issues', async () => {
    const error = await errorOf({ jsonrpc: '2.0', id: 1, method: 'update_config', params: { config: {} } })
    assert.equal(error.code, -32602)
    assert.deepEqual(error.data, { issues: ['network.http_port: expected integer 0–65535, got "abc"'] })
    assert.match(error.message, /network\.http_port/)
  })

  it('passes an RpcError through unchanged', async () => {
    assert.deepEqual(await errorOf({ jsonrpc: '2.0', id: 1, method: 'export_identity' }), {
      id: 1,
      code: -32099,
      message: 'custom',
      data: { why: 'test' },
    })
  })

  it('hides a plain Error behind -32603 "internal error" and reports it to onError', async () => {
    onErrors.length = 0
    const response = await one({ jsonrpc: '2.0', id: 1, method: 'validate_config', params: { config: {} } })
    assert.deepEqual(response, { jsonrpc: '2.0', id: 1, error: { code: -32603, message: 'internal error' } })
    assert.doesNotMatch(JSON.stringify(response), /ENOENT|identity\.key|stack|at /)
    assert.equal(onErrors.length, 1)
    const [reported] = onErrors
    assert.equal(reported?.method, 'validate_config')
    assert.ok(reported.err instanceof Error)
    assert.match(reported.err.message, /ENOENT/)
  })

  it('hides a thrown non-Error too', async () => {
    const error = await errorOf({
      jsonrpc: '2.0',
      id: 1,
      method: 'import_identity',
      params: { identity: 'x' },
    })
    assert.deepEqual(error, { id: 1, code: -32603, message: 'internal error' })
  })

  it('survives an onError that throws', async () => {
    const fragile = createRpcHandler(handlers, {
      onError: () => {
        throw new Error('logger down')
      },
    })
    const response = await fragile({ jsonrpc: '2.0', id: 1, method: 'get_config' })
    assert.deepEqual(response, {
      jsonrpc: '2.0',
      id: 1,
      error: { code: -32004, message: 'no config file at /tmp/x/config.json' },
    })
  })

  it('hands the handler the signal it was given', async () => {
    const controller = new AbortController()
    let seen: AbortSignal | undefined
    const withSignal = createRpcHandler({
      node_restart: async (_params, ctx) => {
        seen = ctx.signal
        return { ok: true }
      },
    })
    await withSignal({ jsonrpc: '2.0', id: 1, method: 'node_restart' }, { signal: controller.signal })
    assert.equal(seen, controller.signal)
  })
})

describe('batches and notifications', () => {
  it('answers -32600 for an empty batch', async () => {
    assert.deepEqual(await handle([]), {
      jsonrpc: '2.0',
      id: null,
      error: { code: -32600, message: 'invalid request: empty batch' },
    })
  })

  it('answers each request of a batch in order, skipping notifications', async () => {
    const response = await handle([
      { jsonrpc: '2.0', id: 1, method: 'node_shutdown' },
      { jsonrpc: '2.0', method: 'node_shutdown' },
      { jsonrpc: '2.0', id: 2, method: 'nope' },
      1,
      { jsonrpc: '2.0', id: 3, method: 'get_logs', params: { lines: 0 } },
      { jsonrpc: '2.0', id: 4, method: 'get_config' },
    ])
    assert.ok(Array.isArray(response))
    assert.deepEqual(
      response.map((r) => [r.id, 'error' in r ? r.error.code : 'ok']),
      [
        [1, 'ok'],
        [2, -32601],
        [null, -32600],
        [3, -32602],
        [4, -32004],
      ],
    )
  })

  it('runs a notification but sends nothing back', async () => {
    calls.length = 0
    assert.equal(await handle({ jsonrpc: '2.0', method: 'node_shutdown' }), null)
    assert.deepEqual(calls, [{ method: 'node_shutdown', params: {} }])
  })

  it('sends nothing back for failing notifications', async () => {
    assert.equal(await handle({ jsonrpc: '2.0', method: 'get_config' }), null)
    assert.equal(await handle({ jsonrpc: '2.0', method: 'nope' }), null)
    assert.equal(await handle({ jsonrpc: '2.0', method: 'get_logs', params: { lines: -1 } }), null)
  })

  it('answers null for an all-notification batch', async () => {
    assert.equal(
      await handle([
        { jsonrpc: '2.0', method: 'node_shutdown' },
        { jsonrpc: '2.0', method: 'get_logs' },
      ]),
      null,
    )
  })
})
