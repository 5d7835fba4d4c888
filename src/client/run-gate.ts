/**
 * What becomes of a run's layer (../agent/layers.ts) when its command ends, and later with `hoop
 * run apply`: its changes are read and judged by the gate (../agent/gate.ts), then applied, shown
 * for review first (`--review`, or the policy's `runs.review`; on a terminal: the diff, then the
 * person says which to apply), or kept for later. What the gate refused, what it applied without
 * its special bits and what it could not apply (the person's own changes since the run began) is said,
 * each path once, and written to the run's record; so is what was applied.
 */
import { realClock } from '../clock.js';
import { closeSync, constants, openSync, readSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import type { Readable } from 'node:stream';
import type { ReadStream } from 'node:tty';
import { type Change, layerChanges } from '../agent/gate.js';
import { type Applied, applyChanges } from '../agent/gate-apply.js';
import type { Layer } from '../agent/layers.js';
import type { CliIo } from '../io.js';
import type { RecordingWriter } from '../recording/writer.js';
import { palette } from '../ui/output.js';
import { TERMINAL_RESET } from '../ui/terminal-safe.js';
import { changeDiff, type Shown, shownPath } from './change-diff.js';
import { lineSafe } from '../ui/terminal-safe.js';

/** What to do with a layer's changes. */
export type Settle = { how: 'apply' } | { how: 'review' } | { how: 'keep'; why: string };

/** Most paths said one by one in each list (refused, not applied); the record holds them all. */
const SAID_PATHS = 20;
/** Most changes the run's record lists one by one; beyond, its summary counts them. */
const RECORDED_CHANGES = 10_000;

/** The settled layer: what the gate did, and whether the layer is kept. */
export interface Settled {
  changes: Change[];
  applied?: Applied;
  kept: boolean;
}

const isTerminal = (stream: unknown): boolean => (stream as { isTTY?: boolean } | undefined)?.isTTY === true;

/** `n` and its noun, singular or plural. */
const count = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

/**
 * Settles `layer` as `settle` says (see the module documentation); `say` speaks for the run,
 * `record` is its record (when kept), `quiet` says nothing when all went through.
 */
export async function settleLayer(
  io: CliIo,
  layer: Layer,
  settle: Settle,
  o: { say: (line: string) => void; record?: RecordingWriter | undefined; quiet?: boolean; force?: boolean },
): Promise<Settled> {
  const run = layer.meta.run;
  const say = (line: string): void => o.say(`run ${run}: ${line}`);
  const changes = await layerChanges(layer, io.env);
  const shown = (c: Change): string => shownPath(c.path, io.cwd);
  const passing = changes.filter((c) => !c.refused);
  if (changes.length === 0) {
    layer.remove();
    return { changes, kept: false };
  }
  sayList(
    say,
    'refused',
    changes.filter((c) => c.refused && !c.within),
    (c) => `${shown(c)}${c.refusedUnder ? ` (and the ${count(c.refusedUnder, 'entry', 'entries')} in it)` : ''}: ${lineSafe(c.refused!)}`,
  );
  let chosen: readonly Change[] | undefined = passing;
  let how = settle;
  if (how.how === 'review' && passing.length > 0) {
    if (!isTerminal(io.stdin) || !isTerminal(io.stderr)) how = { how: 'keep', why: 'a review needs a terminal to answer on' };
    else {
      chosen = await review(io, changes, say);
      if (chosen === undefined) how = { how: 'keep', why: 'you kept them for later' };
    }
  }
  if (how.how === 'keep' && passing.length > 0) {
    await layer.update({ kept: true, pid: 0, pidStart: '' });
    say(
      `the command's ${count(passing.length, 'change')} ${passing.length === 1 ? 'is' : 'are'} kept, not applied (${how.why}): \`hoop run diff ${run}\` shows them, \`hoop run apply ${run}\` applies them, \`hoop run discard ${run}\` drops them`,
    );
    record(o.record, changes, 'kept');
    return { changes, kept: true };
  }
  const accepted = new Set(chosen ?? []);
  const declined = passing.filter((c) => !accepted.has(c));
  for (const c of declined) c.refused = 'you did not accept it';
  const applied = applyChanges(
    layer,
    changes.filter((c) => !c.refused),
    { force: o.force === true },
  );
  const went = [applied.added && `${applied.added} added`, applied.changed && `${applied.changed} changed`, applied.removed && `${applied.removed} removed`].filter(Boolean).join(', ');
  if (went && (!o.quiet || changes.some((c) => c.refused))) say(`applied what the command changed: ${went}`);
  sayList(
    say,
    'applied with fewer permissions than the command gave it (no special bit; group and others get no more than before)',
    changes.filter((c) => c.dropped && !c.refused),
    (c) => shown(c),
  );
  sayList(say, 'not applied', applied.conflicts, (c) => `${shown(c)}: ${lineSafe(c.refused!)}`);
  record(o.record, changes, 'applied', applied);
  if (applied.conflicts.length > 0) {
    await layer.update({ kept: true, pid: 0, pidStart: '' });
    say(`what was not applied is kept: \`hoop run diff ${run}\` shows it, \`hoop run apply ${run} --force\` applies it over yours, \`hoop run discard ${run}\` drops it`);
    return { changes, applied, kept: true };
  }
  layer.remove();
  return { changes, applied, kept: false };
}

/** Says each of `list` (at most {@link SAID_PATHS}), as `what`. */
function sayList(say: (line: string) => void, what: string, list: readonly Change[], line: (c: Change) => string): void {
  for (const c of list.slice(0, SAID_PATHS)) say(`${what}: ${line(c)}`);
  if (list.length > SAID_PATHS) say(`${what}: ${list.length - SAID_PATHS} more (\`hoop sessions show\` of the run lists them all)`);
}

/**
 * Shows `changes` as a diff on stdout, on a terminal put back as a reader expects it first
 * (whatever the command left it in), and asks there which to apply: all, none (kept: undefined),
 * or one by one. A change the diff shows only by name (binary, too large) is asked about on its
 * own: "all" takes only what was shown whole. Resolves those accepted.
 */
async function review(io: CliIo, changes: readonly Change[], say: (line: string) => void): Promise<readonly Change[] | undefined> {
  const paint = palette(io);
  const diff = (c: Change): Shown => changeDiff(c, { cwd: io.cwd, paint });
  io.stderr.write(TERMINAL_RESET);
  if (isTerminal(io.stdout)) io.stdout.write(TERMINAL_RESET);
  const whole = new Set<Change>();
  for (const c of changes) {
    const shown = diff(c);
    io.stdout.write(shown.text);
    if (shown.whole) whole.add(c);
  }
  const passing = changes.filter((c) => !c.refused);
  const named = passing.filter((c) => !whole.has(c));
  // What was typed before the question (into a prompt the command printed and never read) must not answer it.
  if (!clearTypeahead(io.stdin!)) {
    say('the terminal kept what was typed before (it could not be cleared), which would answer for you: the changes are kept');
    return undefined;
  }
  const ask = createInterface({ input: io.stdin!, output: io.stderr, terminal: true });
  const abort = new AbortController();
  const stop = (): void => abort.abort();
  io.signal.addEventListener('abort', stop, { once: true });
  const question = async (text: string): Promise<string | undefined> => {
    try {
      return (await ask.question(text, { signal: abort.signal })).trim().toLowerCase();
    } catch {
      return undefined; // Ctrl-C, or the terminal closed
    }
  };
  /** Asks of each of `list`, shown again: resolves those accepted, or undefined when the person stopped answering. */
  const oneByOne = async (list: readonly Change[]): Promise<Change[] | undefined> => {
    const accepted: Change[] = [];
    for (const c of list) {
      io.stdout.write(diff(c).text);
      const one = await question('hoop: apply this change? [y]es, [n]o (it is dropped), [q]uit (the rest are dropped): ');
      if (one === undefined) return undefined;
      if (one === 'q' || one === 'quit') break;
      if (one === 'y' || one === 'yes') accepted.push(c);
    }
    return accepted;
  };
  try {
    const byName = named.length === 0 ? '' : `, then asks about each of the ${count(named.length, 'change')} shown only by name`;
    for (;;) {
      const all = await question(`hoop: apply ${count(passing.length - named.length, 'change')} (the diff above${byName})? [y]es, [n]o (keep them for later), [s]elect one by one: `);
      if (all === undefined || all === 'n' || all === 'no') return undefined;
      if (all !== 'y' && all !== 'yes' && all !== 's' && all !== 'select') continue;
      const asked = await oneByOne(all.startsWith('y') ? named : passing);
      if (asked === undefined) return undefined;
      const chosen = all.startsWith('y') ? [...passing.filter((c) => whole.has(c)), ...asked] : asked;
      if (chosen.length !== passing.length) say(`you accepted ${count(chosen.length, 'change')} of ${passing.length}`);
      return chosen;
    }
  } finally {
    io.signal.removeEventListener('abort', stop);
    ask.close();
  }
}

/**
 * Throws away what waits to be read on terminal `input` (typed before now): the terminal is put
 * in raw mode, so a line not yet ended can be read too, and read without waiting through a
 * descriptor of its own. False when it could not be.
 */
function clearTypeahead(input: Readable): boolean {
  const tty = input as ReadStream;
  if (typeof tty.setRawMode !== 'function') return false;
  let fd: number | undefined;
  try {
    fd = openSync('/dev/tty', constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
    tty.setRawMode(true);
    const sink = Buffer.alloc(4096);
    for (;;) if (readSync(fd, sink, 0, sink.length, null) === 0) return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EAGAIN';
  } finally {
    if (fd !== undefined) closeSync(fd);
    tty.setRawMode(false);
  }
}

/** Writes what became of `changes` to the run's record: each (up to {@link RECORDED_CHANGES}), then the sum. */
function record(writer: RecordingWriter | undefined, changes: readonly Change[], outcome: 'applied' | 'kept', applied?: Applied): void {
  if (!writer) return;
  const at = realClock.now();
  const conflicts = new Set(applied?.conflicts ?? []);
  for (const c of changes.slice(0, RECORDED_CHANGES)) {
    writer.append({
      t: 'change',
      at,
      path: c.path,
      kind: c.kind,
      type: c.type,
      ...(c.size !== undefined ? { size: c.size } : {}),
      ...(c.sha256 ? { sha256: c.sha256 } : {}),
      ...(c.target !== undefined ? { target: c.target } : {}),
      ...(c.dropped ? { dropped: true } : {}),
      applied: outcome === 'applied' && !c.refused && !conflicts.has(c),
      ...(c.refused ? { refused: c.refused } : {}),
      ...(c.within ? { within: c.within.path } : {}),
    });
  }
  writer.append({
    t: 'gate',
    at,
    outcome,
    changes: changes.length,
    refused: changes.filter((c) => c.refused && !c.within && !conflicts.has(c)).length,
    ...(applied ? { added: applied.added, changed: applied.changed, removed: applied.removed, conflicts: applied.conflicts.length } : {}),
  });
}
