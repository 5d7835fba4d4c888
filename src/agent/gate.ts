/**
 * The one gate between a run's layer (./layers.ts) and its person's tree: what the command
 * changed, read from the layer as the kernel's overlay shows it, judged by ./gate-rules.ts, and
 * applied as data.
 *
 * - **Read** ({@link layerChanges}): each entry of a directory's upper layer is an addition, a
 *   change or (a whiteout) a removal of the place's entry; a directory the command removed and
 *   made anew hides what was under it, which the overlay's merged view says (one probe per such
 *   directory, ./layers.ts's `existInMerged`). A file the layer holds unchanged (opened for
 *   writing, copied up, left as it was) is no change. A shared file's copy is compared with it.
 * - **Judged**: by type, link, control, the run's read-only and hidden paths, and size
 *   ({@link GATE_LIMITS}); each refusal says why. A file's bytes are hashed as judged: what is
 *   applied (and what a review showed) is exactly that.
 * - **Applied** by ./gate-apply.ts, as data.
 *
 * @see https://docs.kernel.org/filesystems/overlayfs.html (whiteouts and opaque directories)
 */
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, type Dirent, lstatSync, openSync, readdirSync, readlinkSync, readSync } from 'node:fs';
import { join, posix } from 'node:path';
import { ErrorCode, HoopError } from '../errors.js';
import { within } from '../tree-file.js';
import { fileIdOf } from './descriptors.js';
import { allowedControl, controlOf, linkLeavesTree } from './gate-rules.js';
import { existInMerged, isWhiteout, type Layer, lstatOr } from './layers.js';

/** What an entry is. */
export type EntryType = 'file' | 'dir' | 'link' | 'other';

/** One change the command made to its person's tree. */
export interface Change {
  /** Which place of the layer, and the path in it (`/`-separated); the path in the person's tree. */
  place: number;
  rel: string;
  path: string;
  kind: 'added' | 'changed' | 'removed';
  /** What it is now (added, changed) or was (removed). */
  type: EntryType;
  /** What stood there before and is replaced (a file made where a directory was). */
  replaces?: EntryType;
  /** A file's bytes and their SHA-256 as judged, a link's target, a directory's or file's permission bits (s-bits dropped). */
  size?: number;
  sha256?: string;
  target?: string;
  mode?: number;
  /** The layer's file (or link) it is applied from; its modification time. */
  from?: string;
  mtimeMs?: number;
  /** The set-user-ID, set-group-ID or sticky bits the command set, which are not applied. */
  dropped?: boolean;
  /** For a removed directory: the files and directories under it. */
  entries?: number;
  /** Why the gate refuses it (undefined: it passes). */
  refused?: string;
  /** Refused as part of this refused directory (the change that says why). */
  within?: Change;
  /** For a refused directory: how many changes under it are refused with it. */
  refusedUnder?: number;
  /** Its name is not UTF-8 text: hoop cannot spell it to apply it. */
  unnamed?: true;
}

/** What one run's changes may weigh: per file, in all, and entries in all. */
export const GATE_LIMITS = { fileBytes: 256 * 1024 * 1024, totalBytes: 2 * 1024 * 1024 * 1024, entries: 200_000 };

/** What the gate is told besides the layer. */
export interface GateOptions {
  /** Paths the command could not change in its sandbox (read-only, hidden): refused as protected (real paths). */
  protectedPaths: readonly string[];
  /** Controls the policy lets through by path (`runs.applyControls`). */
  allowControls: readonly string[];
  limits?: typeof GATE_LIMITS;
}

const typeOf = (s: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): EntryType => (s.isFile() ? 'file' : s.isDirectory() ? 'dir' : s.isSymbolicLink() ? 'link' : 'other');

/** Permission bits only: what is applied. */
const PERMISSIONS = 0o777;
const SPECIAL = 0o7000;

/** The SHA-256 of file `path`, and whether its bytes equal those of `other` (read side by side); `other` undefined: just the hash. */
function hashAndCompare(path: string, other?: string): { sha256: string; same: boolean } {
  const hash = createHash('sha256');
  const a = openSync(path, 'r');
  const b = other === undefined ? undefined : openSync(other, 'r');
  const bufA = Buffer.allocUnsafe(1 << 16);
  const bufB = Buffer.allocUnsafe(1 << 16);
  let same = b !== undefined;
  try {
    for (;;) {
      const n = readSync(a, bufA, 0, bufA.length, null);
      if (b !== undefined && same) {
        let m = 0;
        while (m < n) {
          const k = readSync(b, bufB, m, n - m, null);
          if (k === 0) break;
          m += k;
        }
        if (m !== n || !bufA.subarray(0, n).equals(bufB.subarray(0, n))) same = false;
      }
      if (n === 0) break;
      hash.update(bufA.subarray(0, n));
    }
    if (b !== undefined && same && readSync(b, bufB, 0, 1, null) !== 0) same = false;
  } finally {
    closeSync(a);
    if (b !== undefined) closeSync(b);
  }
  return { sha256: hash.digest('hex'), same };
}

/** A directory whose lower entries are hidden if the command removed and made it anew: a name of them to probe, and them all. */
interface Probe {
  dir: string;
  hidden: string[];
}

/** Reads the changes of directory place `n` (see the module documentation), unjudged. */
async function dirChanges(layer: Layer, n: number, limits: typeof GATE_LIMITS): Promise<Change[]> {
  const place = layer.meta.places[n]!;
  const upper = layer.upper(n);
  const changes: Change[] = [];
  const probes: Probe[] = [];
  let seen = 0;
  const tooMany = (): HoopError =>
    new HoopError(ErrorCode.USAGE, `the run changed more than ${limits.entries} entries in ${place.path}: the gate applies none of them`, {
      hint: `\`hoop run discard ${layer.meta.run}\` removes them; a run that must make that many writes them where it is not layered (--apply live)`,
    });
  const change = (c: Omit<Change, 'place' | 'path'>): void => void changes.push({ place: n, path: join(place.path, c.rel), ...c });
  const walk = (rel: string): void => {
    const entries = opened(join(upper, rel), () => readdirSync(join(upper, rel), { withFileTypes: true }));
    if ((seen += entries.length) > limits.entries) throw tooMany();
    for (const e of entries) entry(rel === '' ? e.name : `${rel}/${e.name}`);
    // The place itself is the overlay's root, never removed and made anew: nothing of it is hidden.
    const lowerDir = join(place.path, rel);
    if (rel === '' || lstatOr(lowerDir)?.isDirectory() !== true) return;
    const named = new Set(entries.map((e) => e.name));
    let lower: Dirent[] = [];
    try {
      lower = readdirSync(lowerDir, { withFileTypes: true });
    } catch {
      /* gone since: nothing of it to hide */
    }
    // The probe must be a name the view can be asked about: one that is UTF-8 (none: nothing is taken for removed).
    const hidden = lower.map((e) => e.name).filter((name) => !named.has(name));
    const probe = hidden.find((name) => !name.includes('\uFFFD'));
    if (probe !== undefined) probes.push({ dir: rel, hidden: [probe, ...hidden.filter((h) => h !== probe)] });
  };
  const entry = (rel: string): void => {
    const u = lstatOr(join(upper, rel));
    // A name that is not UTF-8 reads back changed (U+FFFD): it cannot be named to apply it.
    if (!u) return change({ rel, kind: 'added', type: 'other', unnamed: true });
    const l = lstatOr(join(place.path, rel));
    const was = l ? typeOf(l) : undefined;
    if (isWhiteout(u)) {
      if (was) change({ rel, kind: 'removed', type: was, ...(was === 'dir' ? { entries: countUnder(join(place.path, rel)) } : {}) });
      return;
    }
    const type = typeOf(u);
    const mode = u.mode & PERMISSIONS;
    const dropped = (u.mode & SPECIAL) !== 0;
    const kind = was ? 'changed' : 'added';
    const replaces = was && was !== type ? { replaces: was } : {};
    if (type === 'dir') {
      if (was !== 'dir' || (l!.mode & PERMISSIONS) !== mode) change({ rel, kind, type, mode, ...replaces, ...(dropped ? { dropped } : {}) });
      walk(rel);
    } else if (type === 'file') {
      const from = join(upper, rel);
      // Over the bound, it is refused by its size alone: not read.
      if (u.size > limits.fileBytes) return change({ rel, kind, type, size: u.size, mode, from, ...replaces });
      const { sha256, same } = opened(from, () => hashAndCompare(from, was === 'file' && l!.size === u.size ? join(place.path, rel) : undefined));
      if (same && (l!.mode & PERMISSIONS) === mode) return;
      change({ rel, kind, type, size: u.size, sha256, mode, from, mtimeMs: u.mtimeMs, ...replaces, ...(dropped ? { dropped } : {}) });
    } else if (type === 'link') {
      const target = readlinkSync(join(upper, rel));
      if (was === 'link' && readlinkSync(join(place.path, rel)) === target) return;
      change({ rel, kind, type, target, ...replaces });
    } else change({ rel, kind, type, ...replaces });
  };
  walk('');
  // A directory the command removed and made anew (opaque in the overlay) hides what was in it: the merged view says which.
  const shown = await existInMerged(
    layer,
    n,
    probes.map((p) => (p.dir === '' ? p.hidden[0]! : `${p.dir}/${p.hidden[0]!}`)),
  );
  probes.forEach((p, i) => {
    if (shown[i]) return;
    for (const name of p.hidden) {
      const rel = p.dir === '' ? name : `${p.dir}/${name}`;
      const l = lstatOr(join(place.path, rel));
      if (!l) continue; // not UTF-8, or gone since: left as it is
      const was = typeOf(l);
      change({ rel, kind: 'removed', type: was, ...(was === 'dir' ? { entries: countUnder(join(place.path, rel)) } : {}) });
    }
  });
  return changes;
}

/**
 * `read()` of the layer's `path`; when the command took away its owner's right to read it (mode
 * 0311, 0000), the right is given back first (the layer is hoop's: its mode in the person's tree
 * is the one the gate read before).
 */
function opened<T>(path: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EACCES') throw err;
    chmodSync(path, (lstatSync(path).mode & 0o7777) | 0o500);
    return read();
  }
}

/** The entries under directory `dir` (not through links). */
function countUnder(dir: string): number {
  let n = 0;
  const walk = (d: string): void => {
    let entries: Dirent[] = [];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      n++;
      if (e.isDirectory()) walk(join(d, e.name));
    }
  };
  walk(dir);
  return n;
}

/** The change of shared file place `n`: its copy in the layer against the file (none when they are the same). */
function fileChange(layer: Layer, n: number): Change[] {
  const place = layer.meta.places[n]!;
  const from = layer.upper(n);
  const u = lstatSync(from);
  const l = lstatOr(place.path);
  const { sha256, same } = hashAndCompare(from, l?.isFile() ? place.path : undefined);
  if (same && (l!.mode & PERMISSIONS) === (u.mode & PERMISSIONS)) return [];
  const rel = posix.basename(place.path);
  return [
    {
      place: n,
      rel,
      path: place.path,
      kind: l ? 'changed' : 'added',
      type: 'file',
      size: u.size,
      sha256,
      mode: u.mode & PERMISSIONS,
      from,
      mtimeMs: u.mtimeMs,
      ...((u.mode & SPECIAL) !== 0 ? { dropped: true } : {}),
    },
  ];
}

/**
 * The changes of `layer`'s run, judged (see the module documentation): each with `refused` set
 * where the gate refuses it, in the order they apply (each place's, outer first).
 * @throws HoopError when a place is no longer where the run left it, or the layer cannot be read
 */
export async function layerChanges(layer: Layer, o: GateOptions): Promise<Change[]> {
  const limits = o.limits ?? GATE_LIMITS;
  const all: Change[] = [];
  for (const [n, place] of layer.meta.places.entries()) {
    const now = fileIdOf(place.path);
    if (place.dir && (now?.dev !== place.dev || now?.ino !== place.ino)) {
      throw new HoopError(ErrorCode.USAGE, `${place.path} is not the directory run ${layer.meta.run} worked on any more (it was moved or replaced): nothing was applied`, {
        hint: `put it back where it was, or \`hoop run discard ${layer.meta.run}\``,
      });
    }
    all.push(...(place.dir ? await dirChanges(layer, n, limits) : fileChange(layer, n)));
  }
  judge(layer, all, o, limits);
  return all.sort((a, b) => a.place - b.place || (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
}

/** Sets `refused` on each change the gate refuses (see the module documentation). */
function judge(layer: Layer, changes: Change[], o: GateOptions, limits: typeof GATE_LIMITS): void {
  const byPlace = new Map<number, Change[]>();
  for (const c of changes) byPlace.set(c.place, [...(byPlace.get(c.place) ?? []), c]);
  let total = 0;
  for (const [n, list] of byPlace) {
    const place = layer.meta.places[n]!;
    if (!place.dir) {
      for (const c of list)
        c.refused =
          refusal(
            c,
            place.path,
            o,
            limits,
            () => false,
            () => false,
          ) ?? sizeRefusal(c, (total += c.size ?? 0), limits);
      continue;
    }
    const after = namesAfter(place.path, list);
    const gitDir = (dir: string): boolean => {
      const names = after(dir);
      return names.has('head') && ((names.has('objects') && names.has('refs')) || names.has('commondir'));
    };
    const links = new Set(list.filter((c) => c.type === 'link' && c.kind !== 'removed').map((c) => c.rel));
    const throughLink = (rel: string): boolean => linkOnTheWay(place.path, rel, links);
    const refusedDirs: Change[] = [];
    for (const c of list.sort((a, b) => (a.rel < b.rel ? -1 : 1))) {
      const inside = refusedDirs.find((d) => c.rel.startsWith(`${d.rel}/`));
      if (inside) {
        c.within = inside;
        inside.refusedUnder = (inside.refusedUnder ?? 0) + 1;
        c.refused = `it is inside ${inside.rel}, which is refused (${inside.refused})`;
        continue;
      }
      c.refused = refusal(c, place.path, o, limits, gitDir, throughLink) ?? sizeRefusal(c, (total += c.size ?? 0), limits);
      if (c.refused && c.type === 'dir' && c.kind !== 'removed') refusedDirs.push(c);
    }
  }
}

/** Why one change is refused by its kind (not its size); undefined when it passes. */
function refusal(c: Change, top: string, o: GateOptions, limits: typeof GATE_LIMITS, gitDir: (dir: string) => boolean, throughLink: (rel: string) => boolean): string | undefined {
  if (c.unnamed) return 'its name is not UTF-8 text, which hoop cannot name to apply it';
  if (c.type === 'other') return 'it is not a file, a directory or a link (a FIFO, a socket or a device is never applied)';
  const prot = o.protectedPaths.find((p) => within(c.path, p) || (c.kind === 'removed' && within(p, c.path)));
  if (prot) return `it was ${prot === c.path ? '' : `inside ${prot}, `}read-only or hidden in the run (what runs as you later, or what you kept from it)`;
  if (c.type === 'link' && c.kind !== 'removed') {
    const out = linkLeavesTree(top, c.rel, c.target!);
    if (out) return `a symbolic link: ${out}`;
    if (throughLink(posix.join(posix.dirname(c.rel), c.target!))) return 'a symbolic link that leads through another link';
  }
  const control =
    (c.kind === 'added' && c.type === 'dir' && posix.basename(c.rel).toLowerCase() === '.git'
      ? 'it is a repository the command made (git init, git clone): the gate applies no git directory it made, whose controls would run as you'
      : undefined) ??
    controlOf(c.rel, c.type, gitDir) ??
    (c.kind === 'removed' && c.type === 'dir' && (posix.basename(c.rel).toLowerCase() === '.git' || holdsGitDir(c.path))
      ? 'it is or holds a repository, whose history the gate does not remove'
      : undefined);
  if (control && !allowedControl(c.rel, o.allowControls)) return control;
  if (c.type === 'file' && (c.size ?? 0) > limits.fileBytes) return `it is larger than ${limits.fileBytes / 1024 / 1024} MiB`;
  return undefined;
}

/** Why a file that would pass is refused for the run's total size. */
function sizeRefusal(c: Change, total: number, limits: typeof GATE_LIMITS): string | undefined {
  return c.type === 'file' && total > limits.totalBytes ? `the run's changes pass ${limits.totalBytes / 1024 / 1024 / 1024} GiB with it` : undefined;
}

/** Whether directory `dir` holds a `.git` at any depth (not through links). */
function holdsGitDir(dir: string): boolean {
  const walk = (d: string): boolean => {
    let entries: Dirent[] = [];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return false;
    }
    return entries.some((e) => e.name.toLowerCase() === '.git' || (e.isDirectory() && walk(join(d, e.name))));
  };
  return walk(dir);
}

/** The names (lower case) each directory of place `top` holds once `changes` apply, as a function of the directory (relative). */
function namesAfter(top: string, changes: readonly Change[]): (dir: string) => Set<string> {
  const memo = new Map<string, Set<string>>();
  return (dir) => {
    let names = memo.get(dir);
    if (names) return names;
    names = new Set<string>();
    try {
      for (const e of readdirSync(join(top, dir))) names.add(e.toLowerCase());
    } catch {
      /* a directory the run makes */
    }
    for (const c of changes) {
      if (posix.dirname(c.rel) !== (dir === '' ? '.' : dir)) continue;
      const name = posix.basename(c.rel).toLowerCase();
      if (c.kind === 'removed') names.delete(name);
      else names.add(name);
    }
    memo.set(dir, names);
    return names;
  };
}

/** Whether a link on the way to `rel` (relative to `top`: its directories, not itself) is a link in the tree or one the run makes. */
function linkOnTheWay(top: string, rel: string, links: ReadonlySet<string>): boolean {
  const parts = posix.normalize(rel).split('/');
  for (let i = 1; i < parts.length; i++) {
    const prefix = parts.slice(0, i).join('/');
    if (links.has(prefix) || lstatOr(join(top, prefix))?.isSymbolicLink()) return true;
  }
  return false;
}
