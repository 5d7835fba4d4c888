/**
 * The gate's last step (./gate.ts judged the changes): what passes is applied to the person's
 * tree, as the person: files written beside their place and renamed over it (never written
 * through: a hard link or a link in the tree changes nothing else), with the layer's permission
 * bits but no set-user-ID, set-group-ID or sticky bit, and its modification time, their bytes
 * checked against the hash judged; links made anew; removals deepest first; directories' modes
 * last. What the person changed since the run began (its inode's change time is later) is
 * theirs: refused as a conflict, as is a change that cannot be written.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  fchmodSync,
  futimesSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeSync,
  chmodSync,
  type Dirent,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { describeError } from '../errors.js';
import type { Change } from './gate.js';
import { type Layer, lstatOr } from './layers.js';

/** What {@link applyChanges} did. */
export interface Applied {
  added: number;
  changed: number;
  removed: number;
  /** Changes refused when they were applied: the person changed the same path since the run began, or it changed in the layer since it was judged. */
  conflicts: Change[];
}

/**
 * Applies `changes` that pass (`refused` unset) to the person's tree (see the module
 * documentation); a change refused now gets `refused` set and is in `conflicts`. `force` applies
 * over what the person changed since the run began.
 */
export function applyChanges(layer: Layer, changes: readonly Change[], o: { force?: boolean } = {}): Applied {
  const done: Applied = { added: 0, changed: 0, removed: 0, conflicts: [] };
  // With `force`, what the person changed since is the command's to replace.
  const since = o.force ? Number.POSITIVE_INFINITY : layer.meta.startedAt;
  const conflict = (c: Change, why: string): void => {
    c.refused = why;
    done.conflicts.push(c);
  };
  const theirs = (path: string): boolean => (lstatOr(path)?.ctimeMs ?? 0) > since;
  const passing = changes.filter((c) => !c.refused);
  // Each directory checked once, as it is before anything of the change is written in it.
  const parents = new Map<string, boolean>();
  const checkedParent = (c: Change): boolean => {
    const parent = dirname(c.path);
    let ok = parents.get(parent);
    if (ok === undefined) parents.set(parent, (ok = realDirectory(parent)));
    return ok;
  };
  // Removals and what a change replaces, the deepest first; then what is added or changed, outer first; then directories' modes, the deepest first.
  for (const c of [...passing].filter((c) => c.kind === 'removed' || c.replaces).sort((a, b) => b.rel.length - a.rel.length)) {
    if (theirs(c.path) || (c.type === 'dir' && changedUnder(c.path, since))) {
      conflict(c, "you changed it since the run began: it is yours, not the command's to replace");
      continue;
    }
    if (!checkedParent(c)) {
      conflict(c, 'its directory is not where the run saw it');
      continue;
    }
    try {
      rmSync(c.path, { recursive: true, force: true });
    } catch (err) {
      conflict(c, `it could not be removed: ${describeError(err)}`);
      continue;
    }
    if (c.kind === 'removed') done.removed++;
  }
  const settled = new Set(done.conflicts);
  for (const c of passing.filter((c) => c.kind !== 'removed' && !settled.has(c))) {
    if (!c.replaces && c.kind === 'changed' && c.type !== 'dir' && theirs(c.path)) {
      conflict(c, "you changed it since the run began: it is yours, not the command's to replace");
      continue;
    }
    if (c.kind === 'added' && c.type !== 'dir' && lstatOr(c.path) && !o.force) {
      conflict(c, 'you made the same path since the run began');
      continue;
    }
    if (!checkedParent(c)) {
      conflict(c, 'its directory is not where the run saw it (a link, or gone)');
      continue;
    }
    try {
      if (c.type === 'dir') {
        if (!lstatOr(c.path)) mkdirSync(c.path, { mode: 0o700 });
      } else if (c.type === 'link') replaceWith(c.path, (tmp) => symlinkSync(c.target!, tmp));
      else if (!copyIn(c)) {
        conflict(c, 'it changed in the layer after it was judged');
        continue;
      }
    } catch (err) {
      conflict(c, `it could not be written: ${describeError(err)}`);
      continue;
    }
    if (c.kind === 'added') done.added++;
    else done.changed++;
  }
  for (const c of passing.filter((c) => c.type === 'dir' && c.kind !== 'removed' && !c.refused).sort((a, b) => b.rel.length - a.rel.length)) chmodSync(c.path, c.mode!);
  return done;
}

/** Whether anything under directory `dir` changed after `since` (ms): its own entries' change times. */
function changedUnder(dir: string, since: number): boolean {
  const walk = (d: string): boolean => {
    let entries: Dirent[] = [];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return false;
    }
    return entries.some((e) => (lstatOr(join(d, e.name))?.ctimeMs ?? 0) > since || (e.isDirectory() && walk(join(d, e.name))));
  };
  return walk(dir);
}

/** Whether `dir` is a directory (not a link) whose real path is itself: where the run saw it. */
function realDirectory(dir: string): boolean {
  try {
    return lstatSync(dir).isDirectory() && realpathSync(dir) === dir;
  } catch {
    return false;
  }
}

/** Makes `path` anew: `make` writes a new name beside it, which is renamed over it. */
function replaceWith(path: string, make: (tmp: string) => void): void {
  const tmp = join(dirname(path), `.hoop-apply-${randomBytes(6).toString('hex')}`);
  make(tmp);
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** Copies file change `c` in from the layer, checking its bytes are those judged; false (nothing written) when they are not. */
function copyIn(c: Change): boolean {
  const tmp = join(dirname(c.path), `.hoop-apply-${randomBytes(6).toString('hex')}`);
  const src = openSync(c.from!, 'r');
  let out: number | undefined;
  try {
    out = openSync(tmp, 'wx', 0o600);
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(1 << 16);
    for (;;) {
      const n = readSync(src, buf, 0, buf.length, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      let w = 0;
      while (w < n) w += writeSync(out, buf, w, n - w);
    }
    if (hash.digest('hex') !== c.sha256) {
      closeSync(out);
      out = undefined;
      unlinkSync(tmp);
      return false;
    }
    fchmodSync(out, c.mode!);
    futimesSync(out, new Date(c.mtimeMs!), new Date(c.mtimeMs!));
  } catch (err) {
    if (out !== undefined) closeSync(out);
    out = undefined;
    rmSync(tmp, { force: true });
    throw err;
  } finally {
    closeSync(src);
    if (out !== undefined) closeSync(out);
  }
  renameSync(tmp, c.path);
  return true;
}
