import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { writeFileAtomic } from '@gate/core'

/** Reads `control.token`, creating it (0600, 32 random bytes) on first start. */
export async function loadOrCreateControlToken(path: string): Promise<string> {
  try {
    const token = (await readFile(path, 'utf8')).trim()
    if (token) return token
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const token = randomBytes(32).toString('base64url')
  await writeFileAtomic(path, `${token}\n`, { mode: 0o600 })
  return token
}
