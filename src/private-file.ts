/**
 * Files only the user may read: written atomically (temporary file, fsync, rename) with mode
 * 0600, in directories made with mode 0700 that hoop checks are the user's own before it reads
 * or writes in them: a directory another user made first (in a shared temp directory, say), one
 * that is a symbolic link, or one others may write to is refused, naming it.
 *
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/functions/rename.html (atomic replace)
 */
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ErrorCode, HoopError } from './errors.js';

/**
 * Refuses `dir` unless it is a directory (not a symbolic link) of this user that no other user may
 * write to; one only others may read is made 0700. A missing `dir` passes (nothing to trust yet).
 * Skipped where there are no POSIX owners (Windows).
 *
 * @throws HoopError CONFIG_INVALID naming the directory and what is wrong with it
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/functions/lstat.html
 */
export async function checkPrivateDir(dir: string, hint = 'remove it (or point XDG_RUNTIME_DIR, HOOP_CONFIG_DIR or TMPDIR at a directory of your own), then run hoop again'): Promise<void> {
  if (typeof process.getuid !== 'function') return;
  let st;
  try {
    st = await lstat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const refuse = (why: string): HoopError => new HoopError(ErrorCode.CONFIG_INVALID, `hoop will not use ${dir}: ${why}`, { hint });
  if (st.isSymbolicLink()) throw refuse('it is a symbolic link, not a directory of its own');
  if (!st.isDirectory()) throw refuse('it is not a directory');
  if (st.uid !== process.getuid()) throw refuse(`it belongs to another user (uid ${st.uid}), who could read or replace what hoop keeps there`);
  if ((st.mode & 0o022) !== 0) throw refuse(`other users may write to it (mode ${(st.mode & 0o777).toString(8)})`);
  if ((st.mode & 0o077) !== 0) await chmod(dir, 0o700);
}

/**
 * Makes `dir` (and its parents) if missing, with mode 0700, and checks it is the user's own
 * ({@link checkPrivateDir}).
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/functions/mkdir.html
 */
export async function ensurePrivateDir(dir: string, hint?: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await checkPrivateDir(dir, hint);
}

/**
 * Replaces `file` with `data` atomically, mode 0600; its directory is made 0700 if missing.
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/functions/rename.html
 */
export async function writePrivateFile(file: string, data: string): Promise<void> {
  await ensurePrivateDir(dirname(file));
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
