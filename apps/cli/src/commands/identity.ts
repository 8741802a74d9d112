import {
  createOsKeyring,
  exportIdentity,
  type KeyStoreInit,
  loadOrCreateIdentity,
  nodeIdToPeerId,
  parseExportedIdentity,
  readNodeIdFromKeyFile,
  saveIdentity,
  writeFileAtomic,
} from '@gate/core'
import type { Command } from 'commander'
import { CliError, cliPaths, findDaemon, output, readText, table, tryConnect } from '../context.ts'

export function registerIdentityCommands(program: Command): void {
  const identity = program.command('identity').description("show, export or import this node's key pair")

  identity
    .command('show')
    .description('print the node ID and PeerId (no unlocking needed)')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const path = cliPaths().identity
      const nodeId = await existingNodeId(path)
      // Addresses are known while the daemon runs (its ports may be chosen at start).
      const running = await findDaemon(cliPaths())
      const addresses = running?.node_id === nodeId ? running.p2p : []
      const shown = { node_id: nodeId, peer_id: nodeIdToPeerId(nodeId), addresses, key_file: path }
      output(options.json, shown, () =>
        table([
          ['node ID', shown.node_id],
          ['PeerId', shown.peer_id],
          ['addresses', addresses.join(' ') || 'none (the daemon is not running)'],
          ['key file', shown.key_file],
        ]),
      )
    })

  identity
    .command('export')
    .description('write the private key in the clear (to stdout, or to a 0600 file with --output)')
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .action(async (options: { output?: string }) => {
      const paths = cliPaths()
      const connection = await tryConnect(paths)
      let text: string
      if (connection) {
        text = (await connection.rpc.call('export_identity')).identity
      } else {
        await existingNodeId(paths.identity)
        text = exportIdentity((await loadOrCreateIdentity(keyStore(paths.identity))).identity)
      }
      process.stderr.write('this is the private key in the clear: keep it secret\n')
      if (options.output) await writeFileAtomic(options.output, `${text}\n`, { mode: 0o600 })
      else process.stdout.write(`${text}\n`)
    })

  identity
    .command('import')
    .description('replace this node\'s key pair with an exported one ("-" reads stdin)')
    .argument('<file>', 'what gate identity export wrote')
    .option('--force', 'replace an existing, different identity')
    .action(async (file: string, options: { force?: boolean }) => {
      const paths = cliPaths()
      const text = file === '-' ? await readStdin() : await readText(file)
      const imported = parseExportedIdentity(text)
      const current = await readNodeIdFromKeyFile(paths.identity)
      if (current !== null && current !== imported.nodeId && !options.force) {
        throw new CliError(`this node already has identity ${current}; pass --force to replace it`)
      }
      const connection = await tryConnect(paths)
      if (connection) {
        const { restart_required } = await connection.rpc.call('import_identity', { identity: text })
        const note = restart_required.length > 0 ? ' (restart the daemon to use it)' : ''
        process.stdout.write(`imported node ${imported.nodeId}${note}\n`)
      } else {
        const { protection } = await saveIdentity({ ...keyStore(paths.identity), identity: imported })
        process.stdout.write(`imported node ${imported.nodeId} (key stored: ${protection})\n`)
      }
    })
}

/** Where the CLI keeps keys when no daemon does it: the OS keyring, else GATE_PASSPHRASE. */
function keyStore(path: string): KeyStoreInit {
  return {
    path,
    keyring: createOsKeyring(),
    passphrase: process.env.GATE_PASSPHRASE,
    onWarning: (msg) => process.stderr.write(`warning: ${msg}\n`),
  }
}

async function existingNodeId(path: string): Promise<string> {
  const nodeId = await readNodeIdFromKeyFile(path)
  if (nodeId === null)
    throw new CliError(`no identity at ${path} yet: gate daemon creates one on first start`)
  return nodeId
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}
