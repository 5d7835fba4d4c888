/** Files that must survive a crash whole or not at all. */
import { randomBytes } from 'node:crypto';
import { closeSync, fdatasync, fsync, linkSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { link, open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { promisify } from 'node:util';

/**
 * Writes `data` to `file` atomically: a temporary file in the same directory (0600), fsync,
 * rename over the target, fsync of the directory (unless `syncDir` is false: the caller fsyncs
 * the directory before anything depends on the new name, which makes every rename before durable;
 * without `syncData`, the caller syncs the file's data too, as {@link syncData} does).
 *
 * @see https://man7.org/linux/man-pages/man2/rename.2.html (atomic replacement)
 * @see https://man7.org/linux/man-pages/man2/fsync.2.html (a directory entry needs the directory's fsync)
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, dir: string, syncDir = true, syncData = true): Promise<void> {
  await placeDurably(file, data, dir, syncDir, (tmp) => rename(tmp, file), syncData);
}

/** `fdatasync` of each of `files`, at once (the file system commits them together): for files written without it. */
export async function syncData(files: readonly string[]): Promise<void> {
  await Promise.all(
    files.map(async (file) => {
      const handle = await open(file, 'r');
      try {
        await handle.datasync();
      } finally {
        await handle.close();
      }
    }),
  );
}

/**
 * As {@link writeFileAtomic}, but never over an existing `file`: the temporary file is linked to
 * its name (which fails with EEXIST where one is), then unlinked. For evidence written once.
 *
 * @throws Error EEXIST when `file` exists (it is left as it was)
 * @see https://man7.org/linux/man-pages/man2/link.2.html
 */
export async function writeFileOnce(file: string, data: string | Uint8Array, dir: string, syncDir = true): Promise<void> {
  await placeDurably(file, data, dir, syncDir, async (tmp) => {
    await link(tmp, file);
    await unlink(tmp);
  });
}

async function placeDurably(file: string, data: string | Uint8Array, dir: string, syncDir: boolean, place: (tmp: string) => Promise<void>, syncData = true): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(data);
    if (syncData) await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await place(tmp);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  if (syncDir) await syncDirectory(dir);
}

/**
 * As {@link writeFileOnce}, for a thread of its own (the recording thread): the quick calls (open,
 * write, close, link, unlink) block, where each asynchronous one would cost a hop to libuv's pool
 * and back (a third more CPU in all, measured); only the syncs, which wait for the disk, go there,
 * so the thread goes on with its other work meanwhile. The data is `fdatasync`ed (what reading it
 * back needs) unless `syncData` is false; the directory, with `syncDir`, `fsync`ed. Without
 * either, the file still appears whole or not at all, and outlives the process (not the machine).
 *
 * @throws Error EEXIST when `file` exists (it is left as it was)
 * @see https://man7.org/linux/man-pages/man2/fdatasync.2.html
 */
export async function writeFileOnceOnThread(file: string, data: Uint8Array, dir: string, syncDir = true, syncData = true): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  await writeNewFileOnThread(tmp, data, syncData);
  try {
    linkSync(tmp, file);
  } finally {
    unlinkSync(tmp);
  }
  if (syncDir) await syncDirectory(dir);
}

/**
 * Writes `data` as the new file `file` in place, for the recording thread: no temporary name, so
 * a crash can leave it cut short. Only for a file that counts once a later one names it (a
 * recording's chunks and signature, named by its manifest, which {@link writeFileOnceOnThread}
 * places whole). `fdatasync`ed unless `syncData` is false.
 *
 * @throws Error EEXIST when `file` exists (it is left as it was)
 */
export async function writeNewFileOnThread(file: string, data: Uint8Array, syncData: boolean): Promise<void> {
  const fd = openSync(file, 'wx', 0o600);
  try {
    for (let at = 0; at < data.length; ) at += writeSync(fd, data, at, data.length - at);
    if (syncData) await fdatasyncFd(fd);
  } finally {
    closeSync(fd);
  }
}

const fdatasyncFd = promisify(fdatasync);

/**
 * Makes files written without a sync durable, together: each file's data (`fdatasync`), then each
 * directory that names them and the directories above those (`fsync`). Synced at once, many files
 * cost the disk about one wait: the file system commits them in one transaction. For the recording
 * thread: each is opened and closed on it (no wait for the disk), and only the syncs go to libuv's
 * pool.
 */
export async function syncFiles(files: readonly string[], dirs: Iterable<string>): Promise<void> {
  await Promise.all(files.map((file) => syncOnPool(file, fdatasyncFd)));
  const named = new Set(dirs);
  // A directory's fsync may fail where the file system allows none (ignored, as syncDirectory does); not opening it fails the sync.
  await Promise.all([...named, ...new Set([...named].map((d) => dirname(d)))].map((dir) => syncOnPool(dir, (fd) => fsyncFd(fd).catch(() => undefined))));
}

/** Opens `path` here, syncs it with `sync` on libuv's pool, and closes it. */
async function syncOnPool(path: string, sync: (fd: number) => Promise<void>): Promise<void> {
  const fd = openSync(path, 'r');
  try {
    await sync(fd);
  } finally {
    closeSync(fd);
  }
}

const fsyncFd = promisify(fsync);

/** `fsync` of a directory: the names made in it are durable (where the file system allows; errors ignored). */
export async function syncDirectory(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync().catch(() => undefined);
  } finally {
    await d.close();
  }
}
