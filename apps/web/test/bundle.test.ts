import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { gzipSync } from 'node:zlib'
import { WEB_DIST } from '../index.ts'

/** The dashboard's JavaScript budget, gzipped. */
const JS_BUDGET_BYTES = 100 * 1024

describe('the built dashboard (apps/web/dist, made by the install step)', () => {
  it('loads only its own files, no inline script, within the JavaScript budget', async () => {
    const html = await readFile(join(WEB_DIST, 'index.html'), 'utf8')
    assert.doesNotMatch(html, /(?:src|href)="(?:https?:)?\/\//, 'nothing from another host')
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script')
    assert.doesNotMatch(html, /\sstyle=/, 'no inline style')
    const scripts = [...html.matchAll(/<script[^>]*\bsrc="\/([^"]+)"/g)].map((m) => m[1] as string)
    assert.ok(scripts.length > 0)
    let gzipped = 0
    for (const script of scripts) {
      const code = await readFile(join(WEB_DIST, script))
      gzipped += gzipSync(code, { level: 9 }).length
      // What a stray import of server code would bring in.
      for (const marker of ['node:', 'zod', 'ZodError', 'createRpcHandler', 'rotating-file-stream']) {
        assert.ok(!code.includes(marker), `${script} contains "${marker}"`)
      }
    }
    assert.ok(
      gzipped < JS_BUDGET_BYTES,
      `${gzipped} bytes of JavaScript gzipped, over the ${JS_BUDGET_BYTES}-byte budget`,
    )
  })
})
