/**
 * A directory tree reached by descriptor, never by its name: the top is opened once
 * (`O_PATH|O_DIRECTORY|O_NOFOLLOW`) and checked against the identity the run recorded, and each
 * directory below it is opened from its parent's descriptor, one component at a time, refusing a
 * link. Operations then name `/proc/self/fd/<dir>/<name>`: the kernel resolves the descriptor,
 * then one name in it (what `openat` and `renameat` do, which Node does not offer), so renaming
 * or swapping a directory on the way (for a link to the person's home) while the gate writes
 * changes nothing of where it writes.
 *
 * @see https://man7.org/linux/man-pages/man2/openat.2.html
 * @see https://man7.org/linux/man-pages/man5/proc_pid_fd.5.html
 */
import { chmodSync, closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readlinkSync, rmdirSync, unlinkSync } from 'node:fs';
import type { FileId } from './descriptors.js';

/** Linux's `O_PATH` (the same on every architecture hoop runs on). */
const O_PATH = 0o10000000;
const DIRECTORY = O_PATH | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** Path `at`/`name` as bytes: a name that is not UTF-8 is named as it is. */
const joined = (at: string, name: Buffer): Buffer => Buffer.concat([Buffer.from(`${at}/`), name]);

/** The descriptor of the real directory at `path` (bytes), or undefined when it is not one. */
function openDir(path: Buffer | string): number | undefined {
  try {
    return openSync(path, DIRECTORY);
  } catch {
    return undefined;
  }
}

/** See the module documentation. */
export class TreeAt {
  readonly #fds = new Map<string, number>();

  /** Opens `top` (a real absolute path) and checks it is still `id` and reached through no link. @throws Error saying why when it is not */
  constructor(top: string, id?: FileId) {
    let fd: number;
    try {
      fd = openSync(top, DIRECTORY);
    } catch {
      throw new Error(`${top} is not a directory any more`);
    }
    const s = fstatSync(fd);
    const why = readlinkSync(`/proc/self/fd/${fd}`) !== top ? 'is reached through a link now' : id && (s.dev !== id.dev || s.ino !== id.ino) ? 'is another directory now' : undefined;
    if (why) {
      closeSync(fd);
      throw new Error(`${top} ${why}`);
    }
    this.#fds.set('', fd);
  }

  /** The descriptor path of directory `rel` (`''`: the top), each component opened from its parent; undefined when one is not a real directory. */
  dir(rel: string): string | undefined {
    const known = this.#fds.get(rel);
    if (known !== undefined) return `/proc/self/fd/${known}`;
    const slash = rel.lastIndexOf('/');
    const parent = this.dir(slash < 0 ? '' : rel.slice(0, slash));
    if (parent === undefined) return undefined;
    const fd = openDir(`${parent}/${rel.slice(slash + 1)}`);
    if (fd === undefined) return undefined;
    this.#fds.set(rel, fd);
    return `/proc/self/fd/${fd}`;
  }

  /** The path through which entry `rel` is reached: its directory's descriptor, then its own name; undefined when its directory is not a real one. */
  at(rel: string): string | undefined {
    const slash = rel.lastIndexOf('/');
    const dir = this.dir(slash < 0 ? '' : rel.slice(0, slash));
    return dir === undefined ? undefined : `${dir}/${rel.slice(slash + 1)}`;
  }

  /** Forgets directory `rel` and those below it (removed, or replaced by something else). */
  forget(rel: string): void {
    for (const [k, fd] of this.#fds) {
      if (k !== '' && (k === rel || k.startsWith(`${rel}/`))) {
        closeSync(fd);
        this.#fds.delete(k);
      }
    }
  }

  close(): void {
    for (const fd of this.#fds.values()) closeSync(fd);
    this.#fds.clear();
  }
}

/** The names (as bytes) in directory descriptor `fd`; one its owner may not list (mode 0311, 0000) is given back its owner's rights first, being removed. */
function namesIn(fd: number): Buffer[] {
  const at = `/proc/self/fd/${fd}`;
  try {
    return readdirSync(at, { encoding: 'buffer' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EACCES') throw err;
    chmodSync(at, 0o700);
    return readdirSync(at, { encoding: 'buffer' });
  }
}

/** Runs `remove` (of an entry of directory `dir`); when its owner may not write `dir` (mode 0555), gives them back the right first. */
function inWritable(dir: string, remove: () => void): void {
  try {
    remove();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EACCES') throw err;
    chmodSync(dir, (lstatSync(dir).mode & 0o7777) | 0o700);
    remove();
  }
}

/**
 * Removes `path` (a file, a link, or a directory and everything in it) without following a link
 * and without recursion (a tree thousands of levels deep is removed as any other), whatever its
 * names' bytes and modes: each directory is opened by descriptor from its parent's, then emptied
 * through it.
 */
export function removeTree(path: string): void {
  const top = lstatSync(path, { throwIfNoEntry: false });
  if (!top) return;
  const first = top.isDirectory() ? openDir(path) : undefined;
  if (first === undefined) return unlinkSync(path);
  // Depth first: each frame is an open directory, and the names still to remove in it.
  const stack: Array<{ fd: number; names: Buffer[] }> = [];
  try {
    stack.push({ fd: first, names: namesIn(first) });
  } catch (err) {
    closeSync(first);
    throw err;
  }
  try {
    while (stack.length > 0) {
      const frame = stack.at(-1)!;
      const name = frame.names.pop();
      const at = `/proc/self/fd/${frame.fd}`;
      if (name === undefined) {
        closeSync(frame.fd);
        stack.pop();
        const parent = stack.at(-1);
        if (parent) {
          const of = `/proc/self/fd/${parent.fd}`;
          const done = parent.names.pop()!;
          inWritable(of, () => rmdirSync(joined(of, done)));
        }
        continue;
      }
      const sub = openDir(joined(at, name));
      if (sub === undefined) inWritable(at, () => unlinkSync(joined(at, name)));
      else {
        frame.names.push(name); // removed once emptied
        try {
          stack.push({ fd: sub, names: namesIn(sub) });
        } catch (err) {
          closeSync(sub);
          throw err;
        }
      }
    }
  } finally {
    for (const frame of stack) closeSync(frame.fd);
  }
  inWritable(path.slice(0, path.lastIndexOf('/')) || '/', () => rmdirSync(path));
}
