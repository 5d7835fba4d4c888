/**
 * `hoop sessions replay` on a terminal: the session as psql showed it, played with its real timing.
 * The transcript is cut into steps (each statement and what came back); keys: space pauses and
 * resumes, → or `n` steps forward, ← or `p` steps back, `d` jumps to the next statement hoop
 * refused, `+` / `-` change the speed, `?` shows or hides the keys, `q` quits. The last lines that
 * fit are shown above a status line.
 *
 * @see https://github.com/vadimdemedes/ink
 */
import { Box, Text, useApp, useInput, useEffect, useMemo, useState } from './ink-vendor.js';
import type { TranscriptLine } from './transcript.js';
import { runInk } from './run-ink.js';

/** One step: a statement and what came back, or the session's opening or closing lines. */
export interface ReplayStep {
  at: number;
  lines: TranscriptLine[];
  denied: boolean;
}

/** Cuts transcript lines into steps: a new one at each prompt (`db=> `) line. */
export function replaySteps(lines: readonly TranscriptLine[]): ReplayStep[] {
  const steps: ReplayStep[] = [];
  for (const line of lines) {
    const last = steps.at(-1);
    if (!last || /^\S+=> /.test(line.text)) steps.push({ at: line.at, lines: [line], denied: line.denied === true });
    else {
      last.lines.push(line);
      if (line.denied) last.denied = true;
    }
  }
  return steps;
}

export interface ReplayPlayerProps {
  steps: readonly ReplayStep[];
  /** Initial speed factor. */
  speed?: number;
  /** Wait at most 1 s between steps. */
  skipIdle?: boolean;
  /** Lines of transcript shown (the terminal's height less the status line). */
  rows?: number;
  title?: string;
}

const SPEEDS = [0.25, 0.5, 1, 2, 4, 8, 16, 64];

/** The keys, as `?` lists them. */
export const REPLAY_KEYS: ReadonlyArray<readonly [string, string]> = [
  ['space', 'pause or resume'],
  ['→ or n', 'next step'],
  ['← or p', 'previous step'],
  ['d', 'next statement hoop refused'],
  ['+ / -', 'faster / slower'],
  ['?', 'show or hide these keys'],
  ['q', 'quit'],
];

/** See the module documentation. */
export function ReplayPlayer({ steps, speed: initialSpeed = 1, skipIdle = false, rows = 20, title = '' }: ReplayPlayerProps) {
  const { exit } = useApp();
  const [shown, setShown] = useState(Math.min(1, steps.length));
  const [playing, setPlaying] = useState(true);
  const [speed, setSpeed] = useState(initialSpeed);
  const [help, setHelp] = useState(false);
  const done = shown >= steps.length;

  useEffect(() => {
    if (!playing || done) return;
    const gap = Math.max(0, steps[shown]!.at - steps[shown - 1]!.at) / speed;
    const timer = setTimeout(() => setShown((n) => Math.min(steps.length, n + 1)), skipIdle ? Math.min(gap, 1000) : gap);
    return () => clearTimeout(timer);
  }, [playing, done, shown, speed, skipIdle, steps]);

  useInput((input, key) => {
    if (input === 'q' || key.escape || (key.ctrl && input === 'c')) exit();
    else if (input === '?') setHelp((h) => !h);
    else if (input === ' ') setPlaying((p) => !p);
    else if (key.rightArrow || input === 'n') setShown((n) => Math.min(steps.length, n + 1));
    else if (key.leftArrow || input === 'p') setShown((n) => Math.max(1, n - 1));
    else if (input === 'd') {
      const next = steps.findIndex((s, i) => i >= shown && s.denied);
      if (next >= 0) {
        setShown(next + 1);
        setPlaying(false);
      }
    } else if (input === '+') setSpeed((s) => SPEEDS.find((v) => v > s) ?? s);
    else if (input === '-') setSpeed((s) => [...SPEEDS].reverse().find((v) => v < s) ?? s);
  });

  const visible = useMemo(
    () =>
      steps
        .slice(0, shown)
        .flatMap((s) => s.lines)
        .slice(-(help ? Math.max(1, rows - REPLAY_KEYS.length) : rows)),
    [steps, shown, rows, help],
  );
  const state = done ? 'end' : playing ? `playing ×${speed}` : 'paused';
  return (
    <Box flexDirection="column">
      {visible.map((line, i) => (
        <Text key={i} {...(line.denied ? { color: 'red' } : {})}>
          {line.text === '' ? ' ' : line.text}
        </Text>
      ))}
      {help && REPLAY_KEYS.map(([key, what]) => <Text key={key}>{`  ${key.padEnd(8)} ${what}`}</Text>)}
      <Text inverse>{` ${title}${title ? ' · ' : ''}step ${shown}/${steps.length} · ${state} · ? keys · q quit `}</Text>
    </Box>
  );
}

/**
 * Plays `lines` in the terminal (stdout and stdin must be TTYs) until the user quits or `signal`
 * aborts.
 */
export async function playReplay(
  lines: readonly TranscriptLine[],
  o: { stdout: NodeJS.WriteStream; stdin: NodeJS.ReadStream; signal: AbortSignal; speed: number; skipIdle: boolean; title: string },
): Promise<void> {
  await runInk(<ReplayPlayer steps={replaySteps(lines)} speed={o.speed} skipIdle={o.skipIdle} rows={Math.max(5, (o.stdout.rows ?? 24) - 2)} title={o.title} />, o);
}
