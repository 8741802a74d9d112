/**
 * Crash-safe file writes: a reader sees either the old file or the new one, never a half-written
 * file, and a file holding secrets never exists, even briefly, with looser permissions.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, open, rename, rm } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

/** @default 0o644 */
export const DEFAULT_FILE_MODE = 0o644
/** Gate's data dir holds the identity key and control token. @default 0o700 */
export const DEFAULT_DIR_MODE = 0o700

/** Replaces `path` atomically: temp file in the same dir, fsync, chmod, rename, fsync the dir. */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: { mode?: number } = {},
): Promise<void> {
  const mode = options.mode ?? DEFAULT_FILE_MODE
  const dir = dirname(path)
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
  try {
    // Created 0600 so secrets are never readable by others; the final mode is set below.
    const file = await open(tmp, 'wx', 0o600)
    try {
      await file.writeFile(data)
      await file.sync()
      // chmod, not the open mode, so the umask cannot loosen or tighten the result.
      await file.chmod(mode)
    } finally {
      await file.close()
    }
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
  await syncDir(dir)
}

/** Creates `path` and its parents if missing; existing dirs keep their mode. */
export async function ensureDir(path: string, mode: number = DEFAULT_DIR_MODE): Promise<void> {
  await mkdir(path, { recursive: true, mode })
}

/** Makes the rename durable. Windows and some filesystems cannot fsync a directory. */
async function syncDir(dir: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>> | undefined
  try {
    handle = await open(dir, 'r')
    await handle.sync()
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (process.platform !== 'win32' && code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EISDIR')
      throw err
  } finally {
    await handle?.close()
  }
}
