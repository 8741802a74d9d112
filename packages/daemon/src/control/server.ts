import { timingSafeEqual } from 'node:crypto'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { RpcHandlers } from '@gate/rpc'
import { createRpcHandler, parseRpcBody } from '@gate/rpc'
import { createAdaptorServer, type HttpBindings } from '@hono/node-server'
import { Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { streamSSE } from 'hono/streaming'
import type { Logger } from 'pino'
import { checkLocalRequest } from '../api/guards.ts'
import { EVENTS_QUEUE_MAX } from '../constants.ts'
import type { EventBus, GateEvent } from '../events.ts'
import type { Metrics } from '../metrics.ts'

/** Largest JSON-RPC request body. @default 1 MiB */
const MAX_RPC_BODY_BYTES = 1024 * 1024
/** Interval of SSE keep-alive comments on `/events`. @default 15 s */
const SSE_KEEPALIVE_MS = 15_000

export interface ControlComponents {
  token: string
  handlers: RpcHandlers
  events: EventBus
  metrics: Metrics
  logger: Logger
}

/**
 * The control port: JSON-RPC at `/rpc` and events at `/events` (both need the control token),
 * Prometheus text at `/metrics`, liveness at `/health`. Only loopback Hosts are served, and a
 * browser Origin must be the control port's own, so no web page can drive the daemon.
 */
export function createControlServer(c: ControlComponents): {
  listen(host: string, port: number): Promise<AddressInfo>
  close(): Promise<void>
} {
  const rpc = createRpcHandler(c.handlers, {
    onError: (err, method) => c.logger.error({ err, method }, 'rpc method failed'),
  })
  const token = Buffer.from(c.token)
  const app = new Hono<{ Bindings: HttpBindings }>()
  let port = 0

  app.use(async (ctx, next) => {
    try {
      checkLocalRequest(ctx.req.header('host'), undefined)
    } catch (err) {
      return ctx.json({ error: (err as Error).message }, 403)
    }
    const origin = ctx.req.header('origin')
    if (
      origin !== undefined &&
      origin !== `http://127.0.0.1:${port}` &&
      origin !== `http://localhost:${port}`
    ) {
      return ctx.json({ error: `Origin "${origin}" is not allowed` }, 403)
    }
    await next()
  })

  const authorized = (header: string | undefined): boolean => {
    const given = Buffer.from(/^Bearer\s+(.+)$/i.exec(header ?? '')?.[1]?.trim() ?? '')
    return given.length === token.length && timingSafeEqual(given, token)
  }
  const unauthorized = {
    jsonrpc: '2.0',
    id: null,
    error: { code: -32001, message: 'missing or wrong control token' },
  }

  app.get('/health', (ctx) => ctx.json({ status: 'ok' }))
  app.get('/metrics', async (ctx) => {
    return ctx.text(await c.metrics.registry.metrics(), 200, {
      'content-type': c.metrics.registry.contentType,
    })
  })

  app.post(
    '/rpc',
    bodyLimit({
      maxSize: MAX_RPC_BODY_BYTES,
      onError: (ctx) =>
        ctx.json(
          { jsonrpc: '2.0', id: null, error: { code: -32600, message: 'request body too large' } },
          413,
        ),
    }),
    async (ctx) => {
      if (!authorized(ctx.req.header('authorization'))) return ctx.json(unauthorized, 401)
      const parsed = parseRpcBody(await ctx.req.text())
      const response = parsed.ok ? await rpc(parsed.value) : parsed.response
      if (response === null) return ctx.body(null, 204)
      return ctx.json(response)
    },
  )

  app.get('/events', (ctx) => {
    if (!authorized(ctx.req.header('authorization'))) return ctx.json(unauthorized, 401)
    return streamSSE(ctx, async (stream) => {
      const queue: GateEvent[] = []
      let wake: (() => void) | undefined
      const unsubscribe = c.events.subscribe((event) => {
        if (queue.length < EVENTS_QUEUE_MAX) {
          queue.push(event)
          wake?.()
          return
        }
        // The subscriber stopped reading: drop it whole rather than hold events without bound or
        // skip some. Destroying the connection frees what is buffered for it and ends the loop.
        unsubscribe()
        queue.length = 0
        c.logger.warn({ queued: EVENTS_QUEUE_MAX }, 'closing an /events subscriber that stopped reading')
        ctx.env.outgoing.destroy()
        stream.abort()
        wake?.()
      })
      const keepalive = setInterval(() => wake?.(), SSE_KEEPALIVE_MS)
      stream.onAbort(() => wake?.())
      try {
        await stream.writeSSE({ event: 'hello', data: '{}' })
        while (!stream.aborted && !stream.closed) {
          const event = queue.shift()
          if (event) await stream.writeSSE({ event: event.type, data: JSON.stringify(event.data) })
          else {
            await new Promise<void>((resolve) => {
              wake = resolve
            })
            wake = undefined
            if (queue.length === 0 && !stream.aborted) await stream.write(': keepalive\n\n')
          }
        }
      } finally {
        clearInterval(keepalive)
        unsubscribe()
      }
    })
  })

  app.notFound((ctx) => ctx.json({ error: 'not found' }, 404))

  const server = createAdaptorServer({ fetch: app.fetch }) as Server
  return {
    listen: (host, wanted) =>
      new Promise((resolve, reject) => {
        server.once('error', reject)
        server.listen(wanted, host, () => {
          server.off('error', reject)
          const address = server.address() as AddressInfo
          port = address.port
          resolve(address)
        })
      }),
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
