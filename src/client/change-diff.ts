/**
 * A run's changes (../agent/gate.ts) as `git diff --no-index` prints two trees: for each file and
 * link a `diff --git` header (new, deleted, mode changes), then its hunks with three lines of
 * context, and `Binary files … differ` for a file with a NUL byte in its first 8,000 (as git
 * decides). The sides are the person's file as it is now and the bytes the gate judged (their
 * SHA-256 is on the `index` line, so what was shown is what is applied). A directory made or
 * removed is one line; a change the gate refuses is shown too, headed by why. Names and lines are
 * shown terminal-safe (../ui/terminal-safe.ts): nothing the command wrote can hide a line of it.
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
import { terminalSafe } from '../ui/terminal-safe.js';

/** Sides larger than this are named, not shown line by line. */
const SHOWN_BYTES = 1024 * 1024;
/** How far a diff's edit may go before the file is named instead (a diff's cost grows with it). */
const MAX_EDIT = 20_000;

/** Text the command chose (a name, a link's target), on one line and unable to steer the terminal. */
export const oneLine = (text: string): string => terminalSafe(text).replace(/\n/g, '\\n');

/** How `path` is named in a diff and in what the gate says: relative to `cwd` when it is in it, else as it is (without its first `/`); on one line, terminal-safe. */
export function shownPath(path: string, cwd: string): string {
  const rel = relative(cwd, path);
  return oneLine(rel !== '' && !rel.startsWith('..') && !rel.startsWith(sep) ? rel.split(sep).join('/') : path.replace(/^\/+/, ''));
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

/** Git's mode word of a change's side. */
const gitMode = (type: 'file' | 'link', mode = 0o644): string => (type === 'link' ? '120000' : mode & 0o111 ? '100755' : '100644');

/** The text of one side: a file's content, a link's target, nothing for none. */
function side(kind: 'file' | 'link' | undefined, path: string | undefined): string {
  if (!kind || !path) return '';
  return kind === 'link' ? readlinkSync(path) : readFileSync(path, 'utf8');
}

/** One change's part of the diff (see the module documentation). */
export function changeDiff(c: Change, o: { cwd: string; paint?: Palette }): string {
  const p = o.paint;
  const old = lstatOr(c.path);
  const name = shownPath(c.path, o.cwd);
  const out: string[] = [];
  if (c.refused) out.push((p?.bad ?? String)(`# hoop refuses this change: ${oneLine(c.refused)}`));
  if (c.type === 'dir') {
    out.push(
      c.kind === 'removed'
        ? `deleted directory ${name}/ (${c.entries ?? 0} entr${c.entries === 1 ? 'y' : 'ies'} in it)`
        : c.kind === 'added'
          ? `new directory ${name}/`
          : `directory ${name}/: mode ${c.mode!.toString(8)}`,
    );
    return `${out.join('\n')}\n`;
  }
  if (c.type === 'other') {
    out.push(`${name}: not a file, a directory or a link`);
    return `${out.join('\n')}\n`;
  }
  const was = c.kind === 'added' ? undefined : c.replaces ? (c.replaces === 'file' || c.replaces === 'link' ? c.replaces : undefined) : (c.type as 'file' | 'link');
  const now = c.kind === 'removed' ? undefined : (c.type as 'file' | 'link');
  out.push((p?.header ?? String)(`diff --git a/${name} b/${name}`));
  if (!was && now) out.push(`new file mode ${gitMode(now, c.mode)}`);
  else if (was && !now) out.push(`deleted file mode ${gitMode(was, old?.mode)}`);
  else if (was && now && gitMode(was, old?.mode) !== gitMode(now, c.mode)) out.push(`old mode ${gitMode(was, old?.mode)}`, `new mode ${gitMode(now, c.mode)}`);
  if (c.sha256) out.push(`index ${c.sha256.slice(0, 12)} (sha256 of what is applied: ${c.sha256})`);
  const from = was ? `a/${name}` : '/dev/null';
  const to = now ? `b/${name}` : '/dev/null';
  const tooBig = (c.size ?? 0) > SHOWN_BYTES || (was === 'file' && (old?.size ?? 0) > SHOWN_BYTES);
  if (now === 'file' && binary(head(c.from!))) return `${[...out, `Binary files ${from} and ${to} differ`].join('\n')}\n`;
  if (was === 'file' && binary(head(c.path))) return `${[...out, `Binary files ${from} and ${to} differ`].join('\n')}\n`;
  if (tooBig) return `${[...out, `${from} and ${to} differ: too large to show here (${c.size ?? 0} bytes)`].join('\n')}\n`;
  const before = side(was, was ? c.path : undefined);
  const after = now === 'link' ? c.target! : side(now, c.from);
  const patch = structuredPatch(from, to, before, after, undefined, undefined, { context: 3, maxEditLength: MAX_EDIT });
  if (!patch) return `${[...out, `${from} and ${to} differ: too many changes to show here`].join('\n')}\n`;
  if (patch.hunks.length === 0) return `${out.join('\n')}\n`;
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
  return `${out.join('\n')}\n`;
}
