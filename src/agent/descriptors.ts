/**
 * Paths the sandbox mounts, opened once and checked on the descriptor: a path is opened with
 * `O_PATH|O_NOFOLLOW` (a link at its end is opened as the link, and refused), and the descriptor
 * must name the same real path and the same file (device and inode) that the sandbox's layout
 * was worked out on (./sandbox.ts). bubblewrap then binds the descriptor (`--bind-fd`,
 * `--ro-bind-fd`), and fails rather than mount anything else, so a name swapped between the check
 * and the mount (for a link to the person's home) changes nothing but the run's start: it is
 * refused, saying so.
 *
 * @see https://man7.org/linux/man-pages/man2/open.2.html (O_PATH)
 * @see https://github.com/containers/bubblewrap/blob/main/bwrap.xml (--bind-fd)
 */
import { closeSync, fstatSync, lstatSync, openSync, readlinkSync } from 'node:fs';
import { ErrorCode, HoopError } from '../errors.js';

/** Linux's `O_PATH` (the same on every architecture hoop runs on); Node names no constant for it. */
const O_PATH = 0o10000000;
const O_NOFOLLOW = 0o400000;

/** A file's identity: its device and inode. */
export interface FileId {
  dev: number;
  ino: number;
}

/** The identity of `path` itself (a link is not followed), or undefined when there is none. */
export function fileIdOf(path: string): FileId | undefined {
  try {
    const s = lstatSync(path);
    return { dev: s.dev, ino: s.ino };
  } catch {
    return undefined;
  }
}

/**
 * Opens `path` (a real path) by descriptor and checks it is still what `expected` says it was.
 * @throws HoopError CONFIG_INVALID naming the path when it is gone, a link, or another file now
 */
export function openChecked(path: string, expected: FileId | undefined): number {
  let fd: number;
  try {
    fd = openSync(path, O_PATH | O_NOFOLLOW);
  } catch (err) {
    throw changed(path, `it cannot be opened now (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    const s = fstatSync(fd);
    if (s.isSymbolicLink()) throw changed(path, 'it is a symbolic link now');
    if (readlinkSync(`/proc/self/fd/${fd}`) !== path) throw changed(path, `it leads to ${readlinkSync(`/proc/self/fd/${fd}`)} now`);
    if (expected && (s.dev !== expected.dev || s.ino !== expected.ino)) throw changed(path, 'another file stands at its name now');
    return fd;
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** The refusal of a path that changed between the sandbox's layout and its mount. */
function changed(path: string, why: string): HoopError {
  return new HoopError(ErrorCode.CONFIG_INVALID, `hoop run did not start the command: ${path} changed while the run began (${why})`, {
    hint: 'something renamed or replaced it meanwhile; nothing was mounted; look at what changes it, then start the run again',
  });
}

/** What a path named when it was opened: the path the kernel gives the object, its identity, whether it is a directory. */
export interface Pinned {
  path: string;
  id: FileId;
  dir: boolean;
}

/**
 * Opens real path `path` once (`O_PATH|O_NOFOLLOW`) and says what it found, named as the kernel
 * names the object it opened: what is judged of a place (is it the home?) and what is later bound
 * are then the same object, whatever is renamed meanwhile. Undefined when nothing is there.
 * @throws HoopError CONFIG_INVALID when a link stands at its end now
 */
export function pinPath(path: string): Pinned | undefined {
  let fd: number;
  try {
    fd = openSync(path, O_PATH | O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    const s = fstatSync(fd);
    if (s.isSymbolicLink()) throw changed(path, 'it is a symbolic link now');
    return { path: readlinkSync(`/proc/self/fd/${fd}`), id: { dev: s.dev, ino: s.ino }, dir: s.isDirectory() };
  } finally {
    closeSync(fd);
  }
}
