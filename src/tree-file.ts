/**
 * Files a person names that hoop reads or writes in a working tree (`--prompt-file`, `hoop exec
 * -f`, `--policy-dir`, `.hoop.yaml`, an MCP client's project file), taken as what they may be: the
 * work of an agent that ran there. Inside the tree, the file itself is never a symbolic link (it is
 * opened with `O_NOFOLLOW`) and the links on its way stay inside the tree; anywhere, it is never in
 * one of hoop's own places (its logins, tokens, runtime and spool directories), which the caller
 * names in `private`.
 *
 * @see https://man7.org/linux/man-pages/man2/open.2.html (O_NOFOLLOW)
 */
import { constants } from 'node:fs';
import { type FileHandle, lstat, open, readlink, realpath, stat } from 'node:fs/promises';
import { basename, dirname, resolve, sep } from 'node:path';
import { ErrorCode, HoopError } from './errors.js';

/** Largest file hoop reads from a tree (a prompt, a statements file, a project's configuration). */
export const MAX_TREE_FILE_BYTES = 64 * 1024 * 1024;

/** Where a file is judged: the working tree, and hoop's own places (files or directories) it may never be in. */
export interface TreePlaces {
  tree: string;
  private: readonly string[];
}

/** Whether `path` is `dir` or inside it (both absolute and normal). */
export function within(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith(sep) ? dir : `${dir}${sep}`);
}

/** `path` with every link resolved, or `path` as it is when it does not exist. */
const realOr = (path: string): Promise<string> => realpath(path).catch(() => path);

/** The error for `shown`, which hoop will not take because `why`. */
const refused = (shown: string, why: string): HoopError =>
  new HoopError(ErrorCode.USAGE, `hoop will not use ${shown}: ${why}`, {
    hint: 'a file in a working tree may be the work of an agent that ran there: look at it, and name a regular file of your own',
  });

/**
 * Checks that `real` (where `path` really is) is not in hoop's own places and, when `path` is named
 * inside the tree, is inside the tree too.
 */
async function judge(path: string, real: string, shown: string, places: TreePlaces): Promise<void> {
  for (const p of places.private) {
    if (within(real, await realOr(p)) || within(real, p)) throw refused(shown, `it is in hoop's own ${p}, which holds your login and tokens`);
  }
  if (within(path, places.tree) && !within(real, await realOr(places.tree))) throw refused(shown, `a symbolic link on its way leads out of ${places.tree}, to ${real}`);
}

/**
 * Opens `path` (relative to the tree) for reading as a file of the tree: a regular file, never a
 * link in the tree, never in hoop's own places.
 *
 * @throws HoopError USAGE naming the file and why it is refused (ENOENT as it came, for the caller)
 */
export async function openTreeFile(path: string, places: TreePlaces): Promise<FileHandle> {
  const abs = resolve(places.tree, path);
  const inTree = within(abs, places.tree);
  // Named outside the tree, a pipe is the person's (a shell's `-f <(…)`): read as it comes, blocking.
  const pipe =
    !inTree &&
    (await stat(abs).then(
      (st) => st.isFIFO(),
      () => false,
    ));
  let handle: FileHandle;
  try {
    handle = await open(abs, constants.O_RDONLY | (pipe ? 0 : constants.O_NONBLOCK) | (inTree ? constants.O_NOFOLLOW : 0));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw refused(path, 'it is a symbolic link');
    throw err;
  }
  try {
    const st = await handle.stat();
    // In the tree only a regular file: a FIFO planted there would hang hoop.
    if (!st.isFile() && !(pipe && st.isFIFO())) throw refused(path, 'it is not a regular file');
    if (st.size > MAX_TREE_FILE_BYTES) throw refused(path, `it is larger than ${MAX_TREE_FILE_BYTES / 1024 / 1024} MiB`);
    // Where the open file really is (Linux names it); elsewhere, where its path resolves.
    const real = await readlink(`/proc/self/fd/${handle.fd}`).catch(() => realOr(abs));
    await judge(abs, real, path, places);
    return handle;
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** Reads `path` as a file of the tree ({@link openTreeFile}), as UTF-8. */
export async function readTreeFile(path: string, places: TreePlaces): Promise<string> {
  const handle = await openTreeFile(path, places);
  try {
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/**
 * Checks `dir` (relative to the tree) as a directory hoop reads from: not a link in the tree, its
 * real place inside the tree when named there, and never in hoop's own places.
 */
export async function checkTreeDir(dir: string, places: TreePlaces): Promise<string> {
  const abs = resolve(places.tree, dir);
  if (within(abs, places.tree) && (await lstat(abs).catch(() => undefined))?.isSymbolicLink()) throw refused(dir, 'it is a symbolic link');
  await judge(abs, await realOr(abs), dir, places);
  return abs;
}

/**
 * Checks where `path` (relative to the tree) would be written: its directory judged as
 * {@link checkTreeDir}, and the file itself not a link when it is in the tree.
 */
export async function checkTreeTarget(path: string, places: TreePlaces): Promise<void> {
  const abs = resolve(places.tree, path);
  await judge(abs, resolve(await realOr(dirname(abs)), basename(abs)), path, places);
  try {
    await (await openTreeFile(abs, places)).close();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** Reads a file the person named on the command line ({@link readTreeFile}); any failure is a usage error that names it. */
export function readNamedFile(path: string, places: TreePlaces): Promise<string> {
  return readTreeFile(path, places).catch((err: Error) => Promise.reject(err instanceof HoopError ? err : new HoopError(ErrorCode.USAGE, `cannot read ${path}: ${err.message}`)));
}
