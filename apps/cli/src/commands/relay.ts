import { constants } from 'node:os'
import type { Command } from 'commander'

export function registerRelayCommand(program: Command): void {
  program
    .command('relay')
    .description(
      'run a relay: public HTTPS at https://<node-id>.<domain> for the nodes that register with it',
    )
    .option('--config <path>', 'relay config (default: relay.json in the data dir)')
    .action(async (options: { config?: string }) => {
      // Loaded by this command alone: the relay's DNS and Cloudflare libraries are large, and no
      // other command needs them.
      const { createRelay } = await import('@gate/relay')
      const relay = createRelay({ configPath: options.config, terminal: true })
      let stopping: Promise<void> | undefined
      const done = Promise.withResolvers<void>()
      const onSignal = (signal: NodeJS.Signals) => {
        // A second signal means "now".
        if (stopping) process.exit(128 + constants.signals[signal])
        stopping = relay.stop().then(done.resolve, done.reject)
      }
      process.on('SIGINT', onSignal)
      process.on('SIGTERM', onSignal)
      await relay.start()
      const { node_id, p2p, domain, tls, dns } = relay.runtime
      process.stdout.write(
        [
          `gate relay for *.${domain}: TLS on ${tls.host}:${tls.port}${dns ? `, DNS on ${dns.host}:${dns.udp}` : ''}`,
          `node ID ${node_id}`,
          'nodes add one of these to relay.addresses:',
          ...p2p.map((a) => `  ${a}`),
          '',
        ].join('\n'),
      )
      await done.promise
      process.exit(0)
    })
}
