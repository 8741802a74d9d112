/**
 * `relay.json`, the config of `gate relay`: validated on load with messages that name the field at
 * fault, as the daemon's `config.json` is.
 */
import { isIP } from 'node:net'
import { LOG_LEVELS, parseWith } from '@gate/core'
import { z } from 'zod'

/** @default 443 */
export const DEFAULT_TLS_PORT = 443
/** @default 53 */
export const DEFAULT_DNS_PORT = 53
/** @default 41145, as a node's */
export const DEFAULT_RELAY_P2P_PORT = 41145
/** @default 9145 */
export const DEFAULT_METRICS_PORT = 9145
/** Circuit-relay reservations held at once, all peers together. @default 1024 */
export const DEFAULT_MAX_RESERVATIONS = 1024
/** Reservations for peers that are not Gate nodes. @default 4 */
export const DEFAULT_UNTRUSTED_QUOTA = 4
/** Seconds one relayed connection may last (libp2p's default of 2 minutes cuts inference streams). @default 3600 */
export const DEFAULT_CIRCUIT_DURATION = 3600
/** Bytes one relayed connection may carry, both ways (libp2p's default is 128 KiB). @default 256 MiB */
export const DEFAULT_CIRCUIT_DATA_LIMIT = 256 * 1024 * 1024
/** Relayed connections one node may have open through the relay at once, each way. @default 32 */
export const DEFAULT_MAX_CIRCUITS_PER_NODE = 32

const port = z.int({ error: 'expected integer 0–65535' }).min(0).max(65535)
const positiveInt = z.int({ error: 'expected a positive integer' }).min(1)
const positiveNumber = z.number({ error: 'expected a positive number' }).positive()
const ip = z
  .string({ error: 'expected an IPv4 or IPv6 address' })
  .refine((s) => isIP(s) !== 0, 'expected an IPv4 or IPv6 address')
const domain = z
  .string({ error: 'expected a domain name' })
  .transform((s) => s.toLowerCase().replace(/\.$/, ''))
  .refine((s) => /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/.test(s), 'expected a domain name')
const url = z
  .string({ error: 'expected an http(s) URL' })
  .refine((s) => URL.canParse(s) && /^https?:$/.test(new URL(s).protocol), 'expected an http(s) URL')

export const RelayConfigSchema = z
  .strictObject({
    node: z
      .strictObject({
        log_level: z.enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(', ')}` }).default('info'),
      })
      .prefault({}),
    network: z
      .strictObject({ p2p_port: port.default(DEFAULT_RELAY_P2P_PORT), p2p_host: ip.default('0.0.0.0') })
      .prefault({}),
    relay_server: z.strictObject({
      /** The zone the relay serves: nodes are `<node-id>.<domain>`. */
      domain,
      tls_port: port.default(DEFAULT_TLS_PORT),
      tls_host: ip.default('0.0.0.0'),
      /** The address node names resolve to: this relay's, as the internet reaches it. */
      public_ip: ip,
      dns: z
        .strictObject({
          backend: z
            .enum(['builtin', 'cloudflare'], { error: 'expected builtin or cloudflare' })
            .default('builtin'),
          port: port.default(DEFAULT_DNS_PORT),
          host: ip.default('0.0.0.0'),
          /** A CAA issuer (e.g. `letsencrypt.org`) for the zone; none when absent. */
          caa: z.string().min(1).optional(),
          cloudflare: z
            .strictObject({
              api_url: url.optional(),
              api_token: z.string().min(1),
              zone_id: z.string().min(1),
            })
            .optional(),
        })
        .prefault({}),
      limits: z
        .strictObject({
          max_connections_per_node: positiveInt.default(100),
          max_bytes_per_second_per_node: positiveInt.default(50 * 1024 * 1024),
          /** TLS connections the relay carries at once, all nodes together. */
          max_connections: positiveInt.default(8192),
          /** New TLS connections taken from one source address per second. */
          accepts_per_second_per_ip: positiveNumber.default(20),
          /** Seconds a ClientHello may take to arrive whole. */
          hello_timeout: positiveNumber.default(10),
          /** Seconds a connection may carry nothing before it is closed (none else: a stream may run for hours). */
          idle_timeout: positiveNumber.default(600),
        })
        .prefault({}),
      metrics: z
        .strictObject({ host: ip.default('127.0.0.1'), port: port.default(DEFAULT_METRICS_PORT) })
        .prefault({}),
      /** The circuit relay (libp2p circuit-relay-v2) that carries traffic between nodes behind NATs. */
      circuit: z
        .strictObject({
          enabled: z.boolean().default(true),
          max_reservations: positiveInt.default(DEFAULT_MAX_RESERVATIONS),
          /** Of those, how many peers that do not speak Gate's protocols may hold. */
          untrusted_quota: z
            .int({ error: 'expected a whole number, 0 or more' })
            .min(0)
            .default(DEFAULT_UNTRUSTED_QUOTA),
          /** Seconds one relayed connection may last. */
          duration: positiveInt.default(DEFAULT_CIRCUIT_DURATION),
          /** Bytes one relayed connection may carry, both ways together. */
          data_limit: positiveInt.default(DEFAULT_CIRCUIT_DATA_LIMIT),
          max_circuits_per_node: positiveInt.default(DEFAULT_MAX_CIRCUITS_PER_NODE),
        })
        .prefault({}),
    }),
  })
  .superRefine((config, ctx) => {
    if (config.relay_server.dns.backend === 'cloudflare' && !config.relay_server.dns.cloudflare) {
      ctx.addIssue({
        code: 'custom',
        message: 'expected the Cloudflare API settings for the cloudflare backend',
        path: ['relay_server', 'dns', 'cloudflare'],
        input: undefined,
      })
    }
  })

export type RelayConfig = z.output<typeof RelayConfigSchema>
export type RelayConfigInput = z.input<typeof RelayConfigSchema>

/** Validates a parsed relay config, filling defaults; throws ConfigError naming every bad field. */
export function parseRelayConfig(value: unknown): RelayConfig {
  return parseWith(RelayConfigSchema, value)
}
