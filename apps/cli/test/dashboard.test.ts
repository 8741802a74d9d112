import assert from 'node:assert/strict'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { waitFor } from '../../../packages/daemon/test/utils/wait.ts'
import { gateHome } from './utils/gate.ts'

describe('gate dashboard', () => {
  it('prints the sign-in URL, opens it with --open, and says when it cannot', async () => {
    await using gate = await gateHome()
    const notRunning = await gate.run(['dashboard'])
    assert.equal(notRunning.code, 1)
    assert.match(notRunning.stderr, /gate daemon is not running/)

    assert.equal((await gate.run(['daemon', '--background'])).code, 0)
    const token = (await readFile(join(gate.home, 'control.token'), 'utf8')).trim()
    const runtime = JSON.parse(await readFile(join(gate.home, 'daemon.json'), 'utf8'))
    const url = `http://127.0.0.1:${runtime.control.port}/#token=${encodeURIComponent(token)}`
    const printed = await gate.run(['dashboard'])
    assert.equal(printed.code, 0, printed.stderr)
    assert.equal(printed.stdout, `${url}\n`)
    assert.deepEqual(JSON.parse((await gate.run(['dashboard', '--json'])).stdout), { url })

    // An xdg-open that notes what it was asked to open.
    const bin = await mkdtemp(join(tmpdir(), 'gate-bin-'))
    try {
      const opened = join(bin, 'opened')
      await writeFile(join(bin, 'xdg-open'), `#!/bin/sh\nprintf '%s' "$1" > '${opened}'\n`)
      await chmod(join(bin, 'xdg-open'), 0o755)
      const open = await gate.run(['dashboard', '--open'], { env: { PATH: bin } })
      assert.equal(open.code, 0, open.stderr)
      assert.equal(open.stdout, `${url}\n`)
      await waitFor(async () => (await readFile(opened, 'utf8').catch(() => '')) === url)

      const cannot = await gate.run(['dashboard', '--open'], { env: { PATH: join(bin, 'empty') } })
      assert.equal(cannot.code, 1)
      assert.equal(cannot.stdout, `${url}\n`, 'the URL is printed all the same')
      assert.equal(
        cannot.stderr,
        'error: cannot open a browser here (no xdg-open on the PATH): open the URL above\n',
      )
    } finally {
      await rm(bin, { recursive: true, force: true })
    }

    assert.equal((await gate.run(['config', 'set', 'web.enabled', 'false'])).code, 0)
    const off = await gate.run(['dashboard'])
    assert.equal(off.code, 1)
    assert.equal(off.stderr, 'error: the dashboard is turned off: gate config set web.enabled true\n')
  })
})
