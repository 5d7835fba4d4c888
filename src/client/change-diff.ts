/**
 * A run's changes (../agent/gate.ts) as `git diff --no-index` prints two trees: for each file and
 * link a `diff --git` header (new, deleted, mode changes), then its hunks with three lines of
 * context, and `Binary files … differ` for a file with a NUL byte in its first 8,000 (as git
 * decides). The sides are the person's file as it is now and the bytes the gate judged (their
 * SHA-256 is on the `index` line, so what was shown is what is applied). A directory made or
 * removed is one line, as is what a change replaces (a directory and how many entries it held); a
 * change the gate refuses is shown too, headed by why. Names and lines are shown terminal-safe
 * (../ui/terminal-safe.ts): nothing the command wrote can hide a line of it. A change shown only
 * by name (binary, too large, too many edits, a line too long to read) is said to be so: a review
 * does not take it as read.
 *
 * @see https://git-scm.com/docs/diff-format (the "git diff" patch format)
 * @see https://github.com/kpdecker/jsdiff#readme (structuredPatch)
 */
import { closeSync, openSync, readFileSync, readlinkSync, readSync } from 'node:fs';
import { relative, sep } from 'node:path';
import { structuredPatch } from 'diff';
import type { Change } from '../agent/gate.js';
import { lstatOr } from '../agent/layers.js';
import type { Palette } from '../ui/output.js';
import { lineSafe, terminalSafe } from '../ui/terminal-safe.js';

/** Sides larger than this are named, not shown line by line. */
const SHOWN_BYTES = 256 * 1024;
/** How far a diff's edit may go, and how long it may take (ms), before the file is named instead (a diff's cost grows with its edit's square). */
const MAX_EDIT = 2_000;
const MAX_DIFF_MS = 200;
/** A line longer than this cannot be read in a review (a minified file's): the file is named instead. */
const MAX_LINE = 1_000;

/** How `path` is named in a diff and in what the gate says: relative to `cwd` when it is in it, else as it is (without its first `/`); on one line, terminal-safe. */
export function shownPath(path: string, cwd: string): string {
  const rel = relative(cwd, path);
  return lineSafe(rel !== '' && !rel.startsWith('..') && !rel.startsWith(sep) ? rel.split(sep).join('/') : path.replace(/^\/+/, ''));
}

/** The first 8,000 bytes of `path`, or the whole when smaller; empty when it cannot be read. */
function head(path: string): Buffer {
  try {
    const fd = openSync(path, 'r');
    try {
      const b = Buffer.alloc(8000);
      return b.subarray(0, readSync(fd, b, 0, b.length, 0));
    } finally {
      closeSync(fd);
    }
  } catch {
    return Buffer.alloc(0);
  }
}

const binary = (b: Buffer): boolean => b.includes(0);

/** Permission bits as `ls -l` shows them (`rwxr-x---`, `s` and `t` for the special ones). */
export function permissions(mode: number): string {
  const bit = (b: number, c: string): string => (mode & b ? c : '-');
  const x = (b: number, special: number, on: string): string => (mode & special ? (mode & b ? on : on.toUpperCase()) : bit(b, 'x'));
  return `${bit(0o400, 'r')}${bit(0o200, 'w')}${x(0o100, 0o4000, 's')}${bit(0o40, 'r')}${bit(0o20, 'w')}${x(0o10, 0o2000, 's')}${bit(0o4, 'r')}${bit(0o2, 'w')}${x(0o1, 0o1000, 't')}`;
}

/** The line that says what a change does to permissions, when git's mode lines do not say it all; undefined when it does nothing to them. */
function permissionsLine(old: number | undefined, now: number | undefined): string | undefined {
  if (now === undefined) return undefined;
  if (old === undefined) return now === 0o644 || now === 0o755 ? undefined : `permissions ${permissions(now)}`;
  return (old & 0o7777) === now ? undefined : `permissions ${permissions(old & 0o7777)} -> ${permissions(now)}`;
}

/** Git's mode word of a change's side. */
const gitMode = (type: 'file' | 'link', mode = 0o644): string => (type === 'link' ? '120000' : mode & 0o111 ? '100755' : '100644');

/** The text of one side: a file's content, a link's target, nothing for none. */
function side(kind: 'file' | 'link' | undefined, path: string | undefined): string {
  if (!kind || !path) return '';
  return kind === 'link' ? readlinkSync(path) : readFileSync(path, 'utf8');
}

/** One change as the diff shows it: its text, and whether that shows it whole (not only by name). */
export interface Shown {
  text: string;
  whole: boolean;
}

const entries = (n = 0): string => `${n} entr${n === 1 ? 'y' : 'ies'} in it`;

/** One change's part of the diff (see the module documentation). */
export function changeDiff(c: Change, o: { cwd: string; paint?: Palette }): Shown {
  const p = o.paint;
  const old = lstatOr(c.path);
  const name = shownPath(c.path, o.cwd);
  const out: string[] = [];
  const done = (whole: boolean, ...last: string[]): Shown => ({ text: `${[...out, ...last].join('\n')}\n`, whole });
  if (c.refused) out.push((p?.bad ?? String)(`# hoop refuses this change: ${lineSafe(c.refused)}`));
  if (c.replaces === 'dir') out.push((p?.bad ?? String)(`deleted directory ${name}/ (${entries(c.entries)}), replaced by the ${c.type} below`));
  else if (c.replaces && c.type === 'dir') out.push((p?.bad ?? String)(`deleted ${c.replaces === 'link' ? 'link' : c.replaces} ${name} (${old?.size ?? 0} bytes), replaced by a directory`));
  if (c.type === 'dir') {
    if (c.kind === 'removed') return done(true, `deleted directory ${name}/ (${entries(c.entries)})`);
    const fresh = c.kind === 'added' || c.replaces !== undefined;
    return done(true, `${fresh ? 'new directory' : 'directory'} ${name}/: ${permissionsLine(fresh ? undefined : old?.mode, c.mode) ?? `permissions ${permissions(c.mode!)}`}`);
  }
  if (c.type === 'other') return done(true, `${name}: not a file, a directory or a link`);
  const was = c.kind === 'added' ? undefined : c.replaces ? (c.replaces === 'file' || c.replaces === 'link' ? c.replaces : undefined) : (c.type as 'file' | 'link');
  const now = c.kind === 'removed' ? undefined : (c.type as 'file' | 'link');
  out.push((p?.header ?? String)(`diff --git a/${name} b/${name}`));
  if (!was && now) out.push(`new file mode ${gitMode(now, c.mode)}`);
  else if (was && !now) out.push(`deleted file mode ${gitMode(was, old?.mode)}`);
  else if (was && now && gitMode(was, old?.mode) !== gitMode(now, c.mode)) out.push(`old mode ${gitMode(was, old?.mode)}`, `new mode ${gitMode(now, c.mode)}`);
  const perms = now === 'file' ? permissionsLine(was === 'file' ? old?.mode : undefined, c.mode) : undefined;
  if (perms) out.push(perms);
  if (c.sha256) out.push(`index ${c.sha256.slice(0, 12)} (sha256 of what is applied: ${c.sha256})`);
  const from = was ? `a/${name}` : '/dev/null';
  const to = now ? `b/${name}` : '/dev/null';
  const tooBig = (c.size ?? 0) > SHOWN_BYTES || (was === 'file' && (old?.size ?? 0) > SHOWN_BYTES);
  if ((now === 'file' && binary(head(c.from!))) || (was === 'file' && binary(head(c.path)))) return done(false, `Binary files ${from} and ${to} differ`);
  if (tooBig) return done(false, `${from} and ${to} differ: too large to show here (${c.size ?? 0} bytes)`);
  const before = side(was, was ? c.path : undefined);
  const after = now === 'link' ? c.target! : side(now, c.from);
  const patch = structuredPatch(from, to, before, after, undefined, undefined, { context: 3, maxEditLength: MAX_EDIT, timeout: MAX_DIFF_MS });
  if (!patch) return done(false, `${from} and ${to} differ: too many changes to show here`);
  if (patch.hunks.length === 0) return done(true);
  let longest = 0;
  for (const h of patch.hunks) for (const l of h.lines) longest = Math.max(longest, l.length);
  if (longest > MAX_LINE) return done(false, `${from} and ${to} differ: a line of ${longest - 1} characters, too long to read here`);
  out.push(`--- ${from}`, `+++ ${to}`);
  for (const h of patch.hunks) {
    // An empty side's range starts at the line before it, as diff and git say it (`@@ -0,0 +1,2 @@`).
    const range = (start: number, lines: number): string => `${lines === 0 ? start - 1 : start},${lines}`;
    out.push((p?.dim ?? String)(`@@ -${range(h.oldStart, h.oldLines)} +${range(h.newStart, h.newLines)} @@`));
    // What the command wrote is shown as it is, but never steers the reviewer's terminal (an escape that erases a line, a bidirectional override).
    for (const raw of h.lines) {
      const line = terminalSafe(raw);
      out.push(line.startsWith('+') ? (p?.good ?? String)(line) : line.startsWith('-') ? (p?.bad ?? String)(line) : line);
    }
  }
  return done(true);
}
