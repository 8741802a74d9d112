/**
 * JSON-RPC requests of the control port (parseRpcBody and createRpcHandler, packages/rpc): bodies
 * that are not JSON or nested thousands deep; envelopes with a field wrong; every method with
 * params of the right shape, with one wrong, or positional; batches of all of it. The handlers
 * are stand-ins that answer at once, so what runs is the envelope and params validation.
 *
 * Properties: the handler settles with a JSON-RPC 2.0 response (or none, for notifications), one
 * per request in a batch, that serialises; every error has a code from the table and echoes the
 * request's id when it had a valid one; a handler runs only with params its schema accepts; and
 * nothing comes out as an internal error, since no stand-in handler fails.
 */
import fc from 'fast-check'
import {
  createRpcHandler,
  type JsonRpcResponse,
  METHODS,
  type MethodName,
  parseRpcBody,
  RPC_ERROR_CODES,
  type RpcHandlers,
} from '../packages/rpc/src/index.ts'
import {
  anyJson,
  awkwardString,
  crash,
  deepJson,
  ensure,
  type Mutation,
  mutate,
  mutation,
  type Target,
  wrongType,
} from './lib.ts'

const NAMES = Object.keys(METHODS) as MethodName[]
const CODES = new Set<number>(Object.values(RPC_ERROR_CODES))

const url = fc.oneof(
  fc.constantFrom(
    'http://localhost:11434/v1',
    'https://user:pw@api.example.com/v1?key=k',
    'ftp://x',
    'http://[::1]:1/',
  ),
  awkwardString,
)

/** Params each method takes, mostly valid, to start the mutations from. */
const VALID_PARAMS: Record<MethodName, fc.Arbitrary<Record<string, unknown>>> = {
  node_status: fc.constant({}),
  node_shutdown: fc.constant({}),
  node_restart: fc.constant({}),
  get_config: fc.record({ reveal_secrets: fc.boolean() }, { requiredKeys: [] }),
  update_config: fc.record({ config: fc.dictionary(awkwardString, anyJson, { maxKeys: 3 }) }),
  validate_config: fc.record({ config: anyJson }),
  list_providers: fc.constant({}),
  add_provider: fc.record(
    {
      name: awkwardString,
      kind: fc.constantFrom('ollama', 'lmstudio', 'openai'),
      url,
      api_key: awkwardString,
      enabled: fc.boolean(),
      models: fc.array(awkwardString, { maxLength: 3 }),
      health_check_interval: fc.double({ min: 0.001, max: 1e6, noNaN: true }),
    },
    { requiredKeys: ['name', 'kind', 'url'] },
  ),
  remove_provider: fc.record({ name: awkwardString }),
  test_provider: fc.record(
    { name: awkwardString, kind: fc.constantFrom('ollama', 'lmstudio', 'openai'), url },
    { requiredKeys: [] },
  ),
  get_metrics: fc.constant({}),
  get_logs: fc.record(
    { lines: fc.integer({ min: 0, max: 10_001 }), level: fc.constantFrom('trace', 'info', 'warn', 'loud') },
    { requiredKeys: [] },
  ),
  request_history: fc.record({ limit: fc.integer({ min: 0, max: 1001 }) }, { requiredKeys: [] }),
  add_peer: fc.record({ node_id: awkwardString, address: awkwardString }, { requiredKeys: ['node_id'] }),
  remove_peer: fc.record({ node_id: awkwardString }),
  list_peers: fc.constant({}),
  peer_info: fc.record({ node_id: awkwardString }),
  network_state: fc.constant({}),
  create_invite: fc.record({ ttl_s: fc.integer({ min: 0, max: 100_000 }) }, { requiredKeys: [] }),
  join_invite: fc.record({ code: awkwardString }),
  generate_keypair: fc.record({ save: fc.boolean() }, { requiredKeys: [] }),
  export_identity: fc.constant({}),
  import_identity: fc.record({ identity: awkwardString }),
  create_api_key: fc.record({ name: awkwardString }),
  list_api_keys: fc.constant({}),
  revoke_api_key: fc.record({ name: awkwardString }),
  get_overview: fc.record({ recent: fc.integer({ min: -1, max: 1001 }) }, { requiredKeys: [] }),
  get_peers: fc.constant({}),
  detect_engines: fc.constant({}),
}

/** A method and its params: valid, with one field wrong, positional, or not an object. */
const call: fc.Arbitrary<{ method: unknown; params?: unknown }> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .tuple(
        fc.oneof(...NAMES.map((m) => fc.record({ method: fc.constant(m), params: VALID_PARAMS[m] }))),
        mutation,
      )
      .map(([{ method, params }, change]) => ({ method, params: mutate(params, change) })),
  },
  { weight: 1, arbitrary: fc.record({ method: fc.constantFrom(...NAMES) }) },
  {
    weight: 1,
    arbitrary: fc.record({ method: fc.constantFrom(...NAMES), params: fc.array(anyJson, { maxLength: 3 }) }),
  },
  { weight: 1, arbitrary: fc.record({ method: fc.oneof(awkwardString, wrongType), params: wrongType }) },
)

/** A request, its envelope valid or with one field wrong; `id` absent makes a notification. */
const request: fc.Arbitrary<Record<string, unknown>> = fc
  .tuple(
    call,
    fc.option(
      fc.oneof(
        { weight: 6, arbitrary: fc.integer() },
        { weight: 2, arbitrary: awkwardString },
        fc.constant(null),
        wrongType,
      ),
      { freq: 5, nil: undefined },
    ),
    // Mostly a valid envelope: the params carry their own mutation.
    fc.oneof({ weight: 3, arbitrary: fc.constant<Mutation>({ op: 'keep' }) }, mutation),
  )
  .map(([c, id, change]) => mutate({ jsonrpc: '2.0', ...(id === undefined ? {} : { id }), ...c }, change))

const body: fc.Arbitrary<string> = fc.oneof(
  { weight: 120, arbitrary: request.map((r) => JSON.stringify(r)) },
  {
    weight: 40,
    arbitrary: fc.array(fc.oneof(request, anyJson), { maxLength: 5 }).map((b) => JSON.stringify(b)),
  },
  { weight: 20, arbitrary: fc.string({ maxLength: 64 }) },
  // Costly to parse (tens of ms at 20,000 deep): rare.
  { weight: 1, arbitrary: deepJson },
  {
    weight: 20,
    arbitrary: fc.tuple(request, fc.nat()).map(([r, cut]) => {
      const text = JSON.stringify(r)
      return text.slice(0, cut % (text.length + 1))
    }),
  },
)

export async function createTarget(): Promise<Target<string>> {
  const calls: Array<{ method: MethodName; params: unknown }> = []
  const handlers = Object.fromEntries(
    NAMES.map((method) => [
      method,
      async (params: unknown) => {
        calls.push({ method, params })
        return { ok: true }
      },
    ]),
  ) as unknown as RpcHandlers
  const handle = createRpcHandler(handlers)

  return {
    arbitrary: body,
    async check(text) {
      calls.length = 0
      const parsed = parseRpcBody(text)
      let response: JsonRpcResponse | JsonRpcResponse[] | null
      try {
        response = parsed.ok ? await handle(parsed.value) : parsed.response
      } catch (err) {
        throw crash(err)
      }
      try {
        JSON.stringify(response)
      } catch (err) {
        throw crash(err)
      }
      const requests =
        parsed.ok && Array.isArray(parsed.value) ? parsed.value : [parsed.ok ? parsed.value : null]
      const responses = response === null ? [] : Array.isArray(response) ? response : [response]
      if (parsed.ok && Array.isArray(parsed.value) && parsed.value.length > 0)
        ensure(
          responses.length <= requests.length,
          `${responses.length} responses to ${requests.length} requests`,
        )
      for (const r of responses) {
        ensure(r.jsonrpc === '2.0', 'a response without jsonrpc 2.0')
        if ('error' in r) {
          ensure(CODES.has(r.error.code), `error code ${r.error.code} is not in the table`)
          ensure(r.error.code !== RPC_ERROR_CODES.internal_error, `an internal error: ${r.error.message}`)
          ensure(typeof r.error.message === 'string', 'an error without a message')
        }
      }
      for (const call of calls)
        ensure(
          METHODS[call.method].safeParse(call.params).success,
          `${call.method} ran with params its schema refuses`,
        )
      // A request with a valid id is answered with that id.
      if (
        !Array.isArray(parsed.ok ? parsed.value : null) &&
        isRecord(requests[0]) &&
        responses.length === 1
      ) {
        const { id } = requests[0]
        if (typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id)))
          ensure((responses[0] as JsonRpcResponse).id === id, 'the response does not echo the id')
      }
    },
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
