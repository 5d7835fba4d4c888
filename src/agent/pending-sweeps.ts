/**
 * Contained runs whose sweep (./tree-controls.ts) has not happened yet. `hoop run` notes what its
 * sweep needs in hoop's state directory (hidden from the command) before the command starts,
 * keeps the note fresh while it runs, and removes it once it has swept. A note whose `hoop run` is
 * gone (killed) is swept by the next hoop command the person runs ({@link sweepAbandonedRuns}):
 * what the command made before its hoop was last heard from (the note's time, and a margin) is
 * moved aside; what was born after is the person's, and stays.
 */
import { realClock } from '../clock.js';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as z from 'zod';
import { stateDir } from '../auth/paths.js';
import { type Swept, sweepTree, type TreeControls } from './tree-controls.js';

/** How often a running `hoop run` freshens its note, and how long after the last time its command may still have made something. */
const FRESH_MS = 5_000;
const MARGIN_MS = 2 * FRESH_MS;

/** What a note holds: read back with this schema, as a file any process of the person's could have written. */
const NOTE = z.strictObject({
  run: z.string().regex(/^run-[A-Za-z0-9_-]{1,64}$/),
  pid: z.number().int().positive(),
  /** The process's start, as /proc says it (a pid is reused). */
  started: z.string(),
  controls: z.strictObject({
    places: z.array(z.string().startsWith('/')),
    readOnly: z.array(z.string()),
    gitDirs: z.array(z.string()),
    missing: z.array(z.string()),
    known: z.array(z.string()),
    scannedAt: z.number(),
    quarantined: z.array(z.string()).optional(),
  }),
});
type Note = z.infer<typeof NOTE> & { controls: TreeControls };

const notesDir = (env: NodeJS.ProcessEnv): string => join(stateDir(env), 'pending-sweeps');

/** When process `pid` started (field 22 of /proc/<pid>/stat), or undefined when there is none. */
function startOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Notes run `run`'s sweep until `done` (see the module documentation). */
export function notePendingSweep(env: NodeJS.ProcessEnv, run: string, controls: TreeControls): { done(): void } {
  const dir = notesDir(env);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, `${run}.json`);
  const note: Note = { run, pid: process.pid, started: startOf(process.pid) ?? '', controls };
  writeFileSync(file, JSON.stringify(note), { mode: 0o600 });
  const timer = setInterval(() => {
    const now = new Date(realClock.now());
    try {
      utimesSync(file, now, now);
    } catch {
      /* removed meanwhile */
    }
  }, FRESH_MS).unref();
  return {
    done: () => {
      clearInterval(timer);
      rmSync(file, { force: true });
    },
  };
}

/**
 * Sweeps the runs whose `hoop run` ended without sweeping (killed); `say` tells the person what
 * was moved, and what could not be.
 */
export function sweepAbandonedRuns(env: NodeJS.ProcessEnv, say: (line: string) => void): void {
  let names: string[];
  try {
    names = readdirSync(notesDir(env)).filter((n) => n.endsWith('.json'));
  } catch {
    return;
  }
  for (const name of names) {
    const file = join(notesDir(env), name);
    let note: Note;
    let heard: number;
    try {
      const parsed = NOTE.safeParse(JSON.parse(readFileSync(file, 'utf8')));
      if (!parsed.success) {
        say(`${file} is not a note of hoop run's (${parsed.error.issues[0]?.message ?? 'unreadable'}): nothing was swept for it; remove it`);
        continue;
      }
      note = parsed.data as Note;
      heard = statSync(file).mtimeMs;
    } catch {
      continue;
    }
    if (startOf(note.pid) === note.started) continue; // its hoop run is still at work
    const swept = sweepTree(note.controls, { until: heard + MARGIN_MS });
    tellSwept(swept, say, `run ${note.run}, whose hoop run was stopped before it ended`);
    // What could not be moved is tried again by the next hoop command (what was, is not).
    if (swept.some((s) => s.error)) {
      writeFileSync(file, JSON.stringify(note), { mode: 0o600 });
      utimesSync(file, new Date(heard), new Date(heard)); // still when its hoop run was last heard from
    } else rmSync(file, { force: true });
  }
}

/** Says what a sweep of `whose` moved and could not move. */
export function tellSwept(swept: readonly Swept[], say: (line: string) => void, whose: string): void {
  for (const s of swept) {
    if (s.unread) say(`${whose}: ${s.path}: ${s.error}: look in it before you use git or hoop there`);
    else if (s.to) say(`${whose}: the command made ${s.path}, which git or hoop would act on as you: moved to ${s.to}; look at it before you move it back`);
    else say(`${whose}: the command made ${s.path}, which git or hoop would act on as you, and it could not be moved aside (${s.error}): remove it before you use git or hoop there`);
  }
}
