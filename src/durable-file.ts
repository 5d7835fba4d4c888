/** Files that must survive a crash whole or not at all. */
import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';

/**
 * Writes `data` to `file` atomically: a temporary file in the same directory (0600), fsync,
 * rename over the target, fsync of the directory (unless `syncDir` is false: the caller fsyncs
 * the directory before anything depends on the new name, which makes every rename before durable).
 *
 * @see https://man7.org/linux/man-pages/man2/rename.2.html (atomic replacement)
 * @see https://man7.org/linux/man-pages/man2/fsync.2.html (a directory entry needs the directory's fsync)
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, dir: string, syncDir = true): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  if (!syncDir) return;
  const d = await open(dir, 'r');
  try {
    await d.sync().catch(() => undefined);
  } finally {
    await d.close();
  }
}
