import { timingSafeEqual } from 'node:crypto'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ForbiddenError, NotFoundError, PayloadTooLargeError, UnauthorizedError } from '@gate/core'
import { createRpcHandler, parseRpcBody, type RpcHandlers, toRpcError } from '@gate/rpc'
import { createAdaptorServer, type HttpBindings } from '@hono/node-server'
import { type Context, Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { streamSSE } from 'hono/streaming'
import type { Logger } from 'pino'
import { bearerToken, checkLocalRequest } from '../api/admission.ts'
import { statusOf, toGateError } from '../api/errors.ts'
import { EVENTS_QUEUE_MAX } from '../constants.ts'
import { CONTROL_MAX_CONNECTIONS } from '../descriptors.ts'
import type { EventBus, GateEvent } from '../events.ts'
import type { Metrics } from '../metrics.ts'
import { type DashboardInit, serveDashboard } from './dashboard.ts'

/** Largest JSON-RPC request body. @default 1 MiB */
const MAX_RPC_BODY_BYTES = 1024 * 1024
/** Interval of SSE keep-alive comments on `/events`. @default 15 s */
const SSE_KEEPALIVE_MS = 15_000
/**
 * How long a control client may take to send a whole request, headers and body: a client that
 * stalls would otherwise hold one of the CONTROL_MAX_CONNECTIONS for Node's default 300 s.
 * @default 10 s
 */
export const CONTROL_REQUEST_TIMEOUT_MS = 10_000

export interface ControlComponents {
  token: string
  handlers: RpcHandlers
  events: EventBus
  metrics: Metrics
  logger: Logger
  /** The dashboard, served at `/` and its page paths. */
  dashboard: DashboardInit
}

/**
 * The control port: JSON-RPC at `/rpc` and events at `/events` (both need the control token),
 * Prometheus text at `/metrics`, liveness at `/health`, and the dashboard at `/` (a page that
 * itself holds nothing secret: it asks for the token). Only loopback Hosts are served, and a
 * browser Origin must be the control port's own, so no web page can drive the daemon. Every
 * error, from a method or from the port itself, is a JSON-RPC error object.
 */
export class ControlServer {
  readonly #server: Server
  #port = 0

  constructor(c: ControlComponents) {
    const rpc = createRpcHandler(c.handlers, {
      // A caller's mistake (bad params, unknown node) is theirs; only Gate's own failures are errors here.
      onError: (err, method) => {
        const error = toGateError(err)
        if (error.code === 'internal') c.logger.error({ err, method }, 'rpc method failed')
        else c.logger.debug({ method, error: error.message }, 'rpc method refused')
      },
    })
    const token = Buffer.from(c.token)
    const authorize = (header: string | undefined): void => {
      const given = Buffer.from(bearerToken(header) ?? '')
      if (given.length !== token.length || !timingSafeEqual(given, token))
        throw new UnauthorizedError('missing or wrong control token')
    }
    const app = new Hono<{ Bindings: HttpBindings }>()
    /** Every error the port answers: a JSON-RPC error object, with the HTTP status of its kind. */
    const fail = (ctx: Context, err: unknown): Response => {
      const error = toGateError(err)
      if (error.code === 'internal') c.logger.error({ err }, 'control port request failed')
      return ctx.json(
        { jsonrpc: '2.0', id: null, error: toRpcError(error).toJSON() },
        statusOf(error.code) as 500,
      )
    }

    app.use(async (ctx, next) => {
      checkLocalRequest(ctx.req.header('host'), undefined)
      const origin = ctx.req.header('origin')
      if (
        origin !== undefined &&
        origin !== `http://127.0.0.1:${this.#port}` &&
        origin !== `http://localhost:${this.#port}`
      ) {
        throw new ForbiddenError(`Origin "${origin}" is not allowed`)
      }
      await next()
    })

    app.get('/health', (ctx) => ctx.json({ status: 'ok' }))
    app.get('/metrics', async (ctx) =>
      ctx.text(await c.metrics.registry.metrics(), 200, { 'content-type': c.metrics.registry.contentType }),
    )

    app.post(
      '/rpc',
      bodyLimit({
        maxSize: MAX_RPC_BODY_BYTES,
        onError: (ctx) =>
          fail(
            ctx,
            new PayloadTooLargeError(`request body is larger than the ${MAX_RPC_BODY_BYTES}-byte limit`),
          ),
      }),
      async (ctx) => {
        authorize(ctx.req.header('authorization'))
        const parsed = parseRpcBody(await ctx.req.text())
        const response = parsed.ok ? await rpc(parsed.value, { signal: ctx.req.raw.signal }) : parsed.response
        if (response === null) return ctx.body(null, 204)
        return ctx.json(response)
      },
    )

    app.get('/events', (ctx) => {
      authorize(ctx.req.header('authorization'))
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

    app.get('*', serveDashboard(c.dashboard))
    app.notFound((ctx) => fail(ctx, new NotFoundError(`no route ${ctx.req.method} ${ctx.req.path}`)))
    app.onError((err, ctx) => fail(ctx, err))

    this.#server = createAdaptorServer({
      fetch: app.fetch,
      serverOptions: {
        requestTimeout: CONTROL_REQUEST_TIMEOUT_MS,
        headersTimeout: CONTROL_REQUEST_TIMEOUT_MS,
        // Node looks for requests past their timeout this often (default 30 s).
        connectionsCheckingInterval: 1000,
      },
    }) as Server
    this.#server.maxConnections = CONTROL_MAX_CONNECTIONS
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject)
        const address = this.#server.address() as AddressInfo
        this.#port = address.port
        resolve(address)
      })
    })
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve())
      this.#server.closeAllConnections()
    })
  }
}
