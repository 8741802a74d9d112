/** JSON-RPC 2.0 envelope types, shared by the server and the client. */
import type { RpcErrorObject } from './errors.ts'

export type JsonRpcId = string | number | null

export interface JsonRpcRequest {
  jsonrpc: '2.0'
  method: string
  params?: Record<string, unknown>
  /** Absent for a notification, which gets no response. */
  id?: JsonRpcId
}

export interface JsonRpcSuccess<R = unknown> {
  jsonrpc: '2.0'
  id: JsonRpcId
  result: R
}

export interface JsonRpcFailure {
  jsonrpc: '2.0'
  id: JsonRpcId
  error: RpcErrorObject
}

export type JsonRpcResponse<R = unknown> = JsonRpcSuccess<R> | JsonRpcFailure
