/**
 * The gate's last step (./gate.ts judged the changes): what passes is applied to the person's
 * tree, as the person, through descriptors (./tree-at.ts: each directory opened from its parent,
 * refusing a link, the place checked to be the one the run worked on), so a directory swapped for
 * a link while the gate writes changes nothing of where it writes. Files are written beside their
 * place and renamed over it (never written through: a hard link or a link in the tree changes
 * nothing else), with the permission bits judged and the layer's modification time, their bytes
 * checked against the hash judged; links made anew; removals deepest first; directories' modes
 * last. What the person changed since the run began (its inode's change time is later) is
 * theirs: refused as a conflict, as is a change that cannot be written.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fchmodSync, futimesSync, mkdirSync, openSync, readSync, renameSync, rmSync, symlinkSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, posix } from 'node:path';
import { describeError } from '../errors.js';
import type { Change } from './gate.js';
import { entriesUnder, type Layer, lstatOr } from './layers.js';
import { removeTree, TreeAt } from './tree-at.js';

/** What {@link applyChanges} did. */
export interface Applied {
  added: number;
  changed: number;
  removed: number;
  /** Changes refused when they were applied: the person changed the same path since the run began, or it changed in the layer since it was judged. */
  conflicts: Change[];
}

const THEIRS = "you changed it since the run began: it is yours, not the command's to replace";

/**
 * Applies `changes` that pass (`refused` unset) to the person's tree (see the module
 * documentation); a change refused now gets `refused` set and is in `conflicts`. `force` applies
 * over what the person changed since the run began.
 */
export function applyChanges(layer: Layer, changes: readonly Change[], o: { force?: boolean } = {}): Applied {
  const done: Applied = { added: 0, changed: 0, removed: 0, conflicts: [] };
  const conflict = (c: Change, why: string): void => {
    c.refused = why;
    done.conflicts.push(c);
  };
  for (const [n, place] of layer.meta.places.entries()) {
    const passing = changes.filter((c) => c.place === n && !c.refused);
    if (passing.length === 0) continue;
    let tree: TreeAt;
    try {
      tree = place.dir ? new TreeAt(place.path, place) : new TreeAt(dirname(place.path));
    } catch (err) {
      for (const c of passing) conflict(c, `its place is not where the run saw it (${describeError(err)})`);
      continue;
    }
    try {
      applyPlace(tree, passing, o.force ? Number.POSITIVE_INFINITY : layer.meta.startedAt, done, conflict);
    } finally {
      tree.close();
    }
  }
  return done;
}

/** Applies one place's passing changes through `tree` (see {@link applyChanges}); what the person changed after `since` (ms) is theirs. */
function applyPlace(tree: TreeAt, passing: readonly Change[], since: number, done: Applied, conflict: (c: Change, why: string) => void): void {
  const at = (c: Change): string | undefined => tree.at(c.rel);
  const theirs = (path: string): boolean => (lstatOr(path)?.ctimeMs ?? 0) > since;
  // Removals and what a change replaces, the deepest first; then what is added or changed, outer first; then directories' modes, the deepest first.
  for (const c of passing.filter((c) => c.kind === 'removed' || c.replaces).sort((a, b) => b.rel.length - a.rel.length)) {
    const path = at(c);
    if (path === undefined) {
      conflict(c, 'its directory is not where the run saw it (a link, or gone)');
      continue;
    }
    if (theirs(path) || (c.type === 'dir' && changedUnder(path, since))) {
      conflict(c, THEIRS);
      continue;
    }
    try {
      removeTree(path);
      tree.forget(c.rel);
    } catch (err) {
      conflict(c, `it could not be removed: ${describeError(err)}`);
      continue;
    }
    if (c.kind === 'removed') done.removed++;
  }
  const settled = new Set<Change>(passing.filter((c) => c.refused));
  for (const c of passing.filter((c) => c.kind !== 'removed' && !settled.has(c))) {
    const path = at(c);
    if (path === undefined) {
      conflict(c, 'its directory is not where the run saw it (a link, or gone)');
      continue;
    }
    const now = lstatOr(path);
    if (!c.replaces && c.kind === 'changed' && c.type !== 'dir' && (now?.ctimeMs ?? 0) > since) {
      conflict(c, THEIRS);
      continue;
    }
    if (c.kind === 'added' && c.type !== 'dir' && now && since !== Number.POSITIVE_INFINITY) {
      conflict(c, 'you made the same path since the run began');
      continue;
    }
    try {
      if (c.type === 'dir') {
        if (!now) mkdirSync(path, { mode: 0o700 });
      } else if (c.type === 'link') replaceWith(path, (tmp) => symlinkSync(c.target!, tmp));
      else if (!copyIn(c, path)) {
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
  for (const c of passing.filter((c) => c.type === 'dir' && c.kind !== 'removed' && !c.refused).sort((a, b) => b.rel.length - a.rel.length)) {
    const dir = tree.dir(c.rel);
    if (dir === undefined) conflict(c, 'it is not a directory any more');
    else chmodSync(dir, c.mode!);
  }
}

/** Whether anything under directory `dir` changed after `since` (ms): its entries' change times, not through links. */
function changedUnder(dir: string, since: number): boolean {
  for (const { path } of entriesUnder(dir)) if ((lstatOr(path)?.ctimeMs ?? 0) > since) return true;
  return false;
}

/** A new name beside `path` (in its directory, as reached by descriptor). */
const besides = (path: string): string => `${posix.dirname(path)}/.hoop-apply-${randomBytes(6).toString('hex')}`;

/** Makes `path` anew: `make` writes a new name beside it, which is renamed over it. */
function replaceWith(path: string, make: (tmp: string) => void): void {
  const tmp = besides(path);
  make(tmp);
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** Copies file change `c` in from the layer to `path`, checking its bytes are those judged; false (nothing written) when they are not. */
function copyIn(c: Change, path: string): boolean {
  const tmp = besides(path);
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
  renameSync(tmp, path);
  return true;
}
