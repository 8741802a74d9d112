/**
 * A fake engine as a process of its own, for a test that needs one inside a network namespace:
 * `node engine-process.ts '<FakeEngineOptions as JSON>'` prints `{"url": …}` once it listens and
 * runs until SIGTERM.
 */
import { startFakeEngine } from '../../../../packages/daemon/test/utils/fake-engine.ts'

const engine = await startFakeEngine(JSON.parse(process.argv[2] ?? '{}'))
process.stdout.write(`${JSON.stringify({ url: engine.url })}\n`)
process.once('SIGTERM', () => void engine.stop().then(() => process.exit(0)))
