/**
 * @gate/rpc — JSON-RPC 2.0 for Gate's control port: the method table (params schemas and result
 * types), the error-code table, a transport-agnostic request handler for the daemon, and an
 * HTTP client (calls and the SSE event stream) for the CLI and tools.
 *
 * @example
 * ```ts
 * import { createRpcClient, RpcTransportError } from '@gate/rpc'
 * const rpc = createRpcClient({ url: 'http://127.0.0.1:8145', token })
 * try {
 *   const status = await rpc.call('node_status')
 *   const { lines } = await rpc.call('get_logs', { lines: 50, level: 'warn' })
 *   for await (const { event, data } of rpc.events({ signal })) console.log(event, data)
 * } catch (err) {
 *   if (err instanceof RpcTransportError) console.error('the daemon is not running')
 * }
 *
 * // In the daemon: one handler per method, then feed it parsed request bodies.
 * const handle = createRpcHandler(handlers, { onError: (err, method) => log.error({ err, method }) })
 * const parsed = parseRpcBody(await request.text())
 * const response = parsed.ok ? await handle(parsed.value, { signal: request.signal }) : parsed.response
 * ```
 */
export type { CallOptions, EventsOptions, RpcClient, RpcClientInit, RpcEvent } from './client.ts'
export { createRpcClient } from './client.ts'
export { DEFAULT_CALL_TIMEOUT_MS, DEFAULT_EVENTS_CONNECT_TIMEOUT_MS, MAX_HISTORY_LIMIT } from './constants.ts'
export type { RpcErrorName, RpcErrorObject } from './errors.ts'
export { RPC_ERROR_CODES, RpcError, RpcTimeoutError, RpcTransportError } from './errors.ts'
export type {
  ApiKeyInfo,
  CertificateStatus,
  DetectedEngine,
  HandlerParams,
  MethodName,
  MethodParams,
  MethodResult,
  MethodResults,
  MetricsSnapshot,
  NatStatus,
  NodeStatus,
  Overview,
  PeerConnection,
  PeerInfo,
  PeerRow,
  ProviderStatus,
  PublicStatus,
  RelayStatus,
  RequestRecord,
  TrafficMinute,
  UsageTotals,
} from './methods.ts'
export { METHODS } from './methods.ts'
export type {
  JsonRpcFailure,
  JsonRpcId,
  JsonRpcRequest,
  JsonRpcResponse,
  JsonRpcSuccess,
} from './protocol.ts'
export type {
  ParsedRpcBody,
  RpcHandler,
  RpcHandlerContext,
  RpcHandlerOptions,
  RpcHandlers,
} from './server.ts'
export { createRpcHandler, parseRpcBody, toRpcError } from './server.ts'
