/**
 * Files only the user may read: written atomically (temporary file, fsync, rename) with mode
 * 0600, in directories made with mode 0700.
 *
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/functions/rename.html (atomic replace)
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Makes `dir` (and its parents) if missing; `dir` itself gets mode 0700. With `enforce`, an
 * existing `dir` is set to 0700 too.
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/functions/mkdir.html
 */
export async function ensurePrivateDir(dir: string, enforce = false): Promise<void> {
  const created = await mkdir(dir, { recursive: true, mode: 0o700 });
  if (created !== undefined || enforce) await chmod(dir, 0o700);
}

/**
 * Replaces `file` with `data` atomically, mode 0600; its directory is made 0700 if missing.
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/functions/rename.html
 */
export async function writePrivateFile(file: string, data: string, options: { enforceDir?: boolean } = {}): Promise<void> {
  await ensurePrivateDir(dirname(file), options.enforceDir ?? false);
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.chmod(0o600);
    await handle.writeFile(data, 'utf8');
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * The text of `file`, or undefined when it does not exist.
 * @see https://nodejs.org/api/fs.html#fspromisesreadfilepath-options
 */
export async function readOptionalFile(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
