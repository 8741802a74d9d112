import type { Command } from 'commander'
import { cliPaths, connect, output, table } from '../context.ts'

export function registerKeysCommands(program: Command): void {
  const keys = program.command('keys').description('API keys for requests that come through a relay')

  keys
    .command('create')
    .description('make a key; it is printed once and only its hash is kept')
    .argument('<name>', 'a name for it: letters, digits, dots, dashes, underscores')
    .option('--json', 'print JSON')
    .action(async (name: string, options: { json?: boolean }) => {
      const { rpc } = await connect(cliPaths())
      const created = await rpc.call('create_api_key', { name })
      output(
        options.json,
        created,
        () => `${created.key}\n\nthe key "${created.name}": keep it now, it is not shown again`,
      )
    })

  keys
    .command('list')
    .description('the keys, when each was last used, and what each was used for')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const { rpc } = await connect(cliPaths())
      const { keys: list } = await rpc.call('list_api_keys')
      output(options.json, list, () =>
        list.length === 0
          ? 'no keys (make one with: gate keys create NAME)'
          : list
              .map((k) =>
                table([
                  ['name', k.name],
                  ['created', k.created_at],
                  ['last used', k.last_used_at ?? 'never'],
                  [
                    'usage',
                    `${k.requests} requests, ${k.prompt_tokens} prompt and ${k.completion_tokens} completion tokens`,
                  ],
                ]),
              )
              .join('\n\n'),
      )
    })

  keys
    .command('revoke')
    .description('stop accepting a key')
    .argument('<name>')
    .action(async (name: string) => {
      const { rpc } = await connect(cliPaths())
      await rpc.call('revoke_api_key', { name })
      process.stdout.write(`revoked the key "${name}"\n`)
    })
}
