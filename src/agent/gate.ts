/**
 * The one gate between a run's layer (./layers.ts) and its person's tree: what the command
 * changed, read from the layer as the kernel's overlay shows it, judged by ./gate-rules.ts, and
 * applied as data by ./gate-apply.ts.
 *
 * - **Read** ({@link layerChanges}): each entry of a directory's upper layer is an addition, a
 *   change or (a whiteout) a removal of the place's entry; a directory the command removed and
 *   made anew hides what was under it, which the overlay's merged view says (one probe per such
 *   directory, ./layers.ts's `existInMerged`). A file the layer holds unchanged (opened for
 *   writing, copied up, left as it was) is no change. A shared file's copy is compared with it.
 *   An entry that cannot be read is a refused change of its own, never the end of the gate.
 * - **Judged**, in time linear in the changes: by type, link, control (./gate-rules.ts, and what
 *   the person's git configuration names: `gitConfigNames`), the run's read-only and hidden paths,
 *   and size ({@link GATE_LIMITS}); each refusal says why, and what lies inside a refused directory
 *   is refused with it. A file's bytes are hashed as judged: what is applied (and what a review
 *   showed) is exactly that. Permission bits never give group or others more than the person's
 *   entry did (a new one: than their umask does) but execute, nor a special bit but the person's
 *   own on a directory.
 *
 * @see https://docs.kernel.org/filesystems/overlayfs.html (whiteouts and opaque directories)
 */
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, lstatSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, type Stats } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { describeError, ErrorCode, HoopError } from '../errors.js';
import { within } from '../tree-file.js';
import { fileIdOf } from './descriptors.js';
import { allowedControl, controlIn, type GitPlace, gitPlaceOf, type Judged, MADE_REPOSITORY, resolveLink } from './gate-rules.js';
import { entriesUnder, existInMerged, isWhiteout, type Layer, lstatOr } from './layers.js';
import { gitConfigNames } from './tree-controls.js';

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
  /** A file's bytes and their SHA-256 as judged, a link's target, the permission bits applied. */
  size?: number;
  sha256?: string;
  target?: string;
  mode?: number;
  /** The layer's file it is applied from; its modification time. */
  from?: string;
  mtimeMs?: number;
  /** Bits the command set that are not applied (see {@link appliedMode}). */
  dropped?: boolean;
  /** For a removed directory (or one a change replaces): the files and directories under it. */
  entries?: number;
  /** Why the gate refuses it (undefined: it passes). */
  refused?: string;
  /** Refused as part of this refused directory (the change that says why). */
  within?: Change;
  /** For a refused directory: how many changes under it are refused with it. */
  refusedUnder?: number;
  /** What kept the gate from reading it (a name that is not UTF-8, an error): refused so. */
  unread?: string;
}

/** What one run's changes may weigh: per file, in all, and entries in all. */
export const GATE_LIMITS = { fileBytes: 256 * 1024 * 1024, totalBytes: 2 * 1024 * 1024 * 1024, entries: 200_000 };

const typeOf = (s: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): EntryType => (s.isFile() ? 'file' : s.isDirectory() ? 'dir' : s.isSymbolicLink() ? 'link' : 'other');

/** This process's file mode creation mask (/proc's, which reading does not change), or 022 when it cannot be read. */
function umask(): number {
  try {
    const m = /^Umask:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    return m === undefined ? 0o022 : Number.parseInt(m, 8);
  } catch {
    return 0o022;
  }
}

/** The person's mask, read once. */
let personMask: number | undefined;

/**
 * The permission bits applied for layer entry `u` over the person's `l`: the owner's as the
 * command left them; for group and others, read and write only where the person's entry had them
 * (a new one: as the person's umask gives them) and execute where the umask allows; the person's
 * own set-group-ID and sticky bits on a directory kept; no other special bit.
 */
function appliedMode(u: Stats, l: Stats | undefined): { mode: number; dropped: boolean } {
  personMask ??= umask();
  const readWrite = l ? u.mode & l.mode & 0o066 : u.mode & 0o066 & ~personMask;
  const special = l?.isDirectory() && u.isDirectory() ? l.mode & 0o3000 : 0;
  const mode = (u.mode & 0o700) | (u.mode & 0o011 & ~personMask) | readWrite | special;
  return { mode, dropped: (u.mode & 0o7777 & ~mode) !== 0 };
}

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

/**
 * `read()` of the layer's `path`; when the command took away its owner's right to read it (mode
 * 0311, 0000), the right is given back first (the layer is hoop's: the mode applied is the one
 * read before).
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

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** `bytes` as UTF-8 text; undefined when they are not. */
function utf8(bytes: Buffer): string | undefined {
  try {
    return UTF8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** How many entries are under directory `dir` (not through links). */
function countUnder(dir: string): number {
  let n = 0;
  for (const _ of entriesUnder(dir)) n++;
  return n;
}

/** Whether `dir` is or holds a `.git` at any depth (not through links). */
function holdsGitDir(dir: string): boolean {
  for (const { entry } of entriesUnder(dir)) if (entry.name.toLowerCase() === '.git') return true;
  return false;
}

/** Reads the changes of directory place `n` (see the module documentation), unjudged, into `changes`. */
async function dirChanges(layer: Layer, n: number, limits: typeof GATE_LIMITS, changes: Change[]): Promise<void> {
  const place = layer.meta.places[n]!;
  const upper = layer.upper(n);
  const change = (c: Omit<Change, 'place' | 'path'>): void => void changes.push({ place: n, path: join(place.path, c.rel), ...c });
  /** Directories whose lower entries are hidden if the command made them anew: a name to probe first, then the rest. */
  const probes: Array<{ dir: string; hidden: string[] }> = [];
  let seen = 0;
  const entry = (rel: string, dirs: string[]): void => {
    const u = lstatSync(join(upper, rel));
    const l = lstatOr(join(place.path, rel));
    const was = l ? typeOf(l) : undefined;
    if (isWhiteout(u)) {
      if (was) change({ rel, kind: 'removed', type: was, ...(was === 'dir' ? { entries: countUnder(join(place.path, rel)) } : {}) });
      return;
    }
    const type = typeOf(u);
    const { mode, dropped } = appliedMode(u, l);
    const kind = was ? 'changed' : 'added';
    const replaces = was && was !== type ? { replaces: was, ...(was === 'dir' ? { entries: countUnder(join(place.path, rel)) } : {}) } : {};
    const bits = dropped ? { dropped } : {};
    if (type === 'dir') {
      if (was !== 'dir' || (l!.mode & 0o7777) !== mode) change({ rel, kind, type, mode, ...replaces, ...bits });
      dirs.push(rel);
    } else if (type === 'file') {
      const from = join(upper, rel);
      // Over the bound, it is refused by its size alone: not read.
      if (u.size > limits.fileBytes) return change({ rel, kind, type, size: u.size, mode, from, ...replaces });
      const { sha256, same } = opened(from, () => hashAndCompare(from, was === 'file' && l!.size === u.size ? join(place.path, rel) : undefined));
      if (same && (l!.mode & 0o7777) === mode) return;
      change({ rel, kind, type, size: u.size, sha256, mode, from, mtimeMs: u.mtimeMs, ...replaces, ...bits });
    } else if (type === 'link') {
      const target = readlinkSync(join(upper, rel));
      if (was === 'link' && readlinkSync(join(place.path, rel)) === target) return;
      change({ rel, kind, type, target, ...replaces });
    } else change({ rel, kind, type, ...replaces });
  };
  // Depth first, without recursion: a tree thousands of levels deep is read as any other.
  const dirs = [''];
  for (let rel = dirs.pop(); rel !== undefined; rel = dirs.pop()) {
    let raw: Buffer[];
    try {
      raw = opened(join(upper, rel), () => readdirSync(join(upper, rel), { encoding: 'buffer' }));
    } catch (err) {
      change({ rel, kind: 'added', type: 'other', unread: `it could not be read (${describeError(err)})` });
      continue;
    }
    if ((seen += raw.length) > limits.entries) {
      throw new HoopError(ErrorCode.USAGE, `the run changed more than ${limits.entries} entries in ${place.path}: the gate applies none of them`, {
        hint: `\`hoop run discard ${layer.meta.run}\` removes them; a run that must make that many writes them where it is not layered (--apply live)`,
      });
    }
    const names: string[] = [];
    for (const bytes of raw) {
      const name = utf8(bytes);
      const child = rel === '' ? (name ?? bytes.toString()) : `${rel}/${name ?? bytes.toString()}`;
      // A name that is not UTF-8 cannot be named to apply it (Node's paths are text).
      if (name === undefined) {
        change({ rel: child, kind: 'added', type: 'other', unread: 'its name is not UTF-8 text, which hoop cannot name to apply it' });
        continue;
      }
      names.push(name);
      try {
        entry(child, dirs);
      } catch (err) {
        change({ rel: child, kind: 'added', type: 'other', unread: `it could not be read (${describeError(err)})` });
      }
    }
    // The place itself is the overlay's root, never removed and made anew: nothing of it is hidden.
    if (rel === '' || lstatOr(join(place.path, rel))?.isDirectory() !== true) continue;
    const named = new Set(names);
    let lower: string[] = [];
    try {
      lower = readdirSync(join(place.path, rel));
    } catch {
      /* gone since: nothing of it to hide */
    }
    // The probe must be a name the view can be asked about: one that is UTF-8 (none: nothing is taken for removed).
    const hidden = lower.filter((name) => !named.has(name));
    const probe = hidden.find((name) => !name.includes('\uFFFD'));
    if (probe !== undefined) probes.push({ dir: rel, hidden: [probe, ...hidden.filter((h) => h !== probe)] });
  }
  // A directory the command removed and made anew (opaque in the overlay) hides what was in it: the merged view says which.
  const shown = await existInMerged(
    layer,
    n,
    probes.map((p) => `${p.dir}/${p.hidden[0]!}`),
  );
  probes.forEach((p, i) => {
    if (shown[i]) return;
    for (const name of p.hidden) {
      const rel = `${p.dir}/${name}`;
      const l = lstatOr(join(place.path, rel));
      if (!l) continue; // not UTF-8, or gone since: left as it is
      const was = typeOf(l);
      change({ rel, kind: 'removed', type: was, ...(was === 'dir' ? { entries: countUnder(join(place.path, rel)) } : {}) });
    }
  });
}

/** The change of shared file place `n`: its copy in the layer against the file (none when they are the same). */
function fileChange(layer: Layer, n: number, changes: Change[]): void {
  const place = layer.meta.places[n]!;
  const from = layer.upper(n);
  const rel = posix.basename(place.path);
  try {
    const u = lstatSync(from);
    const l = lstatOr(place.path);
    const { sha256, same } = opened(from, () => hashAndCompare(from, l?.isFile() ? place.path : undefined));
    const { mode, dropped } = appliedMode(u, l);
    if (same && (l!.mode & 0o7777) === mode) return;
    changes.push({ place: n, rel, path: place.path, kind: l ? 'changed' : 'added', type: 'file', size: u.size, sha256, mode, from, mtimeMs: u.mtimeMs, ...(dropped ? { dropped } : {}) });
  } catch (err) {
    changes.push({ place: n, rel, path: place.path, kind: 'changed', type: 'other', unread: `it could not be read (${describeError(err)})` });
  }
}

/**
 * The changes of `layer`'s run, judged (see the module documentation): each with `refused` set
 * where the gate refuses it, in the order they apply (each place's, outer first).
 * @throws HoopError when a place is no longer where the run left it, or the layer cannot be read
 */
export async function layerChanges(layer: Layer, env: NodeJS.ProcessEnv, limits = GATE_LIMITS): Promise<Change[]> {
  const all: Change[] = [];
  for (const [n, place] of layer.meta.places.entries()) {
    const now = fileIdOf(place.path);
    if (place.dir && (now?.dev !== place.dev || now?.ino !== place.ino)) {
      throw new HoopError(ErrorCode.USAGE, `${place.path} is not the directory run ${layer.meta.run} worked on any more (it was moved or replaced): nothing was applied`, {
        hint: `put it back where it was, or \`hoop run discard ${layer.meta.run}\``,
      });
    }
    if (place.dir) await dirChanges(layer, n, limits, all);
    else fileChange(layer, n, all);
  }
  all.sort((a, b) => a.place - b.place || (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  new Judge(layer, all, env, limits).judgeAll();
  return all;
}

/**
 * What `dir` (absolute) inherits, from `memo` or worked out from the top: `step(parent's value,
 * dir)` for each directory not known yet, outermost first (the root's parent's value undefined).
 * Each directory is worked out once, whatever its depth, without recursion.
 */
function inherited<T>(memo: Map<string, T>, dir: string, step: (parent: T | undefined, dir: string) => T): T {
  const todo: string[] = [];
  let d = dir;
  while (!memo.has(d)) {
    todo.push(d);
    const up = dirname(d);
    if (up === d) break;
    d = up;
  }
  let value = memo.get(d);
  for (let i = todo.length - 1; i >= 0; i--) {
    const here = todo[i]!;
    value = step(here === dirname(here) ? undefined : memo.get(dirname(here)), here);
    memo.set(here, value);
  }
  return value as T;
}

/** Judges a run's changes (see the module documentation), each once, in time linear in them. */
class Judge {
  readonly #layer: Layer;
  readonly #changes: readonly Change[];
  readonly #env: NodeJS.ProcessEnv;
  readonly #limits: typeof GATE_LIMITS;
  /** The changes by their absolute path, and by the absolute path of their directory. */
  readonly #at = new Map<string, Change>();
  readonly #inDir = new Map<string, Change[]>();
  /** By directory: whether it is a git directory, where it stands toward git, the refused directory it is in, what git's configuration names around it. */
  readonly #gitDirs = new Map<string, boolean>();
  readonly #places = new Map<string, GitPlace | null>();
  readonly #refusedIn = new Map<string, Change | null>();
  readonly #named = new Map<string, readonly string[]>();
  readonly #refusedDirs = new Map<string, Change>();

  constructor(layer: Layer, changes: readonly Change[], env: NodeJS.ProcessEnv, limits: typeof GATE_LIMITS) {
    this.#layer = layer;
    this.#changes = changes;
    this.#env = env;
    this.#limits = limits;
    for (const c of changes) {
      this.#at.set(c.path, c);
      const d = dirname(c.path);
      const list = this.#inDir.get(d);
      if (list) list.push(c);
      else this.#inDir.set(d, [c]);
    }
  }

  /** Judges every change, outer ones before what is in them (the order they were read in). */
  judgeAll(): void {
    let total = 0;
    for (const c of this.#changes) {
      // Inside a refused directory: refused with it (the nearest one).
      const inside = inherited(this.#refusedIn, dirname(c.path), (up, d) => this.#refusedDirs.get(d) ?? up ?? null);
      if (inside) {
        c.within = inside;
        inside.refusedUnder = (inside.refusedUnder ?? 0) + 1;
        c.refused = `it is inside ${inside.rel}, which is refused (${inside.refused})`;
        continue;
      }
      c.refused = this.#refusal(c);
      if (!c.refused && c.type === 'file' && (total += c.size ?? 0) > this.#limits.totalBytes) c.refused = `the run's changes pass ${this.#limits.totalBytes / 1024 / 1024 / 1024} GiB with it`;
      if (c.refused && c.type === 'dir' && c.kind !== 'removed') this.#refusedDirs.set(c.path, c);
    }
  }

  /** Why one change is refused by its kind (not the run's total size); undefined when it passes. */
  #refusal(c: Change): string | undefined {
    if (c.unread) return c.unread;
    if (c.type === 'other') return 'it is not a file, a directory or a link (a FIFO, a socket or a device is never applied)';
    const place = this.#layer.meta.places[c.place]!;
    const prot = this.#layer.meta.protectedPaths.find((p) => within(c.path, p) || (c.kind === 'removed' && within(p, c.path)));
    if (prot) return `it was ${prot === c.path ? '' : `inside ${prot}, `}read-only or hidden in the run (what runs as you later, or what you kept from it)`;
    const added = c.kind === 'added' || c.replaces !== undefined;
    let control = this.#control(c.path, { type: c.type, removed: c.kind === 'removed', added });
    if (!control && c.type === 'dir' && added && this.#gitDir(c.path)) control = MADE_REPOSITORY;
    if (!control && c.type === 'link' && c.kind !== 'removed') {
      const top = place.dir ? place.path : dirname(place.path);
      const to = resolveLink(top, place.dir ? c.rel : posix.basename(c.rel), c.target!, (rel) => this.#isLink(`${top}/${rel}`));
      if ('why' in to) return `a symbolic link: ${to.why}`;
      const at = this.#control(to.path, { type: 'file' });
      if (at) return `a symbolic link to ${to.path}, where ${at}`;
    }
    control ??= c.kind === 'removed' && c.type === 'dir' && holdsGitDir(c.path) ? 'it is or holds a repository, whose history the gate does not remove' : undefined;
    control ??= this.#namedByGit(c.path);
    if (control && !allowedControl(c.rel, c.path, this.#layer.meta.allowControls)) return control;
    if (c.type === 'file' && (c.size ?? 0) > this.#limits.fileBytes) return `it is larger than ${this.#limits.fileBytes / 1024 / 1024} MiB`;
    return undefined;
  }

  /** ./gate-rules.ts's `controlIn` of absolute `path`, its directory's place toward git known once per directory. */
  #control(path: string, c: Judged): string | undefined {
    const dir = dirname(path);
    const place = inherited(this.#places, dir, (up, d) => (d === dirname(d) ? null : (gitPlaceOf(up ?? undefined, posix.basename(d), this.#gitDir(dirname(d))) ?? null)));
    return controlIn(place ?? undefined, path, c, this.#gitDir(dir));
  }

  /** Whether absolute `path` names something once the changes apply (a change's addition or removal, else what is on disk). */
  #exists(path: string): boolean {
    const c = this.#at.get(path);
    return c ? c.kind !== 'removed' : lstatOr(path) !== undefined;
  }

  /** Whether absolute `path` is a link once the changes apply. */
  #isLink(path: string): boolean {
    const c = this.#at.get(path);
    return c ? c.kind !== 'removed' && c.type === 'link' : lstatOr(path)?.isSymbolicLink() === true;
  }

  /** Whether absolute directory `dir` is a git directory once the changes apply: `HEAD` beside `objects` and `refs`, or a `commondir` (names case-folded). */
  #gitDir(dir: string): boolean {
    let is = this.#gitDirs.get(dir);
    if (is !== undefined) return is;
    const added = new Set((this.#inDir.get(dir) ?? []).filter((c) => c.kind !== 'removed').map((c) => posix.basename(c.path).toLowerCase()));
    const has = (name: string): boolean => added.has(name) || this.#exists(join(dir, name)) || this.#exists(join(dir, name.toUpperCase()));
    is = has('head') && ((has('objects') && has('refs')) || has('commondir'));
    this.#gitDirs.set(dir, is);
    return is;
  }

  /**
   * Why `path` is what the person's git configuration (of the nearest repository around it once
   * the changes apply, and their global one) names as a file it reads or a program it runs;
   * undefined when it is not.
   */
  #namedByGit(path: string): string | undefined {
    const named = inherited(this.#named, dirname(path), (up, d) => (this.#exists(join(d, '.git')) ? gitConfigNames(join(d, '.git'), this.#env) : (up ?? [])));
    const hit = named.find((n) => within(path, n));
    return hit ? `your git configuration names ${hit} (a hook's place, an included file or a program), which git runs or reads as you` : undefined;
  }
}
