/**
 * An SSH session's recording as a terminal plays it: the bytes its channels wrote (output and
 * error output), the window sizes, the commands as markers and the exit statuses, with their
 * times. `hoop sessions replay` writes them to the terminal with their timing; `hoop sessions
 * export --format asciicast` writes them as an asciicast file (../../recording/asciicast.ts).
 */
import { realClock } from '../../clock.js';
import { type CastFrame, type CastVersion, castLines } from '../../recording/asciicast.js';
import type { RecordingEvent } from '../../recording/event-line.js';

/** One thing that happened on the terminal, in asciicast's event codes (`o` output, `i` input, `r` resize, `m` marker, `x` exit). */
export type TerminalFrame = CastFrame;

/** The bytes of an `ssh-data` event, as text. */
function dataOf(e: RecordingEvent): string {
  if (typeof e.data === 'string') return e.data;
  return typeof e.data64 === 'string' ? Buffer.from(e.data64, 'base64').toString('utf8') : '';
}

/** The terminal's first size: the first pty's, else 80x24. */
export function terminalSize(events: readonly RecordingEvent[]): { cols: number; rows: number } {
  const pty = events.find((e) => e.t === 'ssh-pty');
  return { cols: Number(pty?.cols) || 80, rows: Number(pty?.rows) || 24 };
}

/**
 * The frames of a session's events. Commands become markers (and, when no pty runs, a `$ command`
 * line, so a transcript of commands reads as a shell's); refusals and failures a line of output.
 */
export function* terminalFrames(events: Iterable<RecordingEvent>, withInput = false): Generator<TerminalFrame> {
  let pty = false;
  for (const e of events) {
    switch (e.t) {
      case 'ssh-pty':
        pty = true;
        yield { at: e.at, code: 'r', data: `${Number(e.cols)}x${Number(e.rows)}` };
        break;
      case 'ssh-resize':
        yield { at: e.at, code: 'r', data: `${Number(e.cols)}x${Number(e.rows)}` };
        break;
      case 'ssh-exec':
        yield { at: e.at, code: 'm', data: String(e.command) };
        if (!pty) yield { at: e.at, code: 'o', data: `$ ${String(e.command)}\r\n` };
        if (e.decision === 'deny') yield { at: e.at, code: 'o', data: `hoop: refused by ${String(e.rule ?? 'the policy')}\r\n` };
        break;
      case 'ssh-shell':
        yield { at: e.at, code: 'm', data: 'shell' };
        break;
      case 'ssh-data':
        if (e.s === 'i' && !withInput) break;
        yield { at: e.at, code: e.s === 'i' ? 'i' : 'o', data: dataOf(e) };
        break;
      case 'ssh-sftp':
        // An sftp session shows no terminal: each operation is a line of its own.
        if (e.op !== 'close' || e.read !== undefined || e.written !== undefined)
          yield {
            at: e.at,
            code: 'o',
            data: `sftp: ${String(e.op)}${e.name !== undefined ? ` ${String(e.name)}` : ''}${e.path !== undefined ? ` ${String(e.path)}` : ''}${e.to !== undefined ? ` -> ${String(e.to)}` : ''}${e.mode !== undefined ? ` (${String(e.mode)})` : ''}${e.op === 'close' ? `: read ${Number(e.read ?? 0)} B, written ${Number(e.written ?? 0)} B` : ''}${e.refused ? ': refused (read-only)' : e.failed !== undefined ? `: failed (status ${String(e.failed)})` : ''}\r\n`,
          };
        break;
      case 'ssh-upstream-failed':
        yield { at: e.at, code: 'o', data: `hoop: ${String(e.message)}\r\n` };
        break;
      case 'ssh-exit':
        yield { at: e.at, code: 'x', data: e.status !== undefined ? String(e.status) : `signal ${String(e.signal)}` };
        break;
    }
  }
}

/** The asciicast lines (header, then one event per line) of a session's events: v2 unless `version` says 3. */
export function asciicast(events: readonly RecordingEvent[], o: { startedAt: number; title: string; version?: CastVersion }): Generator<string> {
  return castLines(o.version ?? 2, { ...terminalSize(events), startedAt: o.startedAt, title: o.title }, terminalFrames(events, true));
}

/** Options of {@link playTerminal}. */
export interface PlayOptions {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  /** Keys (raw mode when a terminal): see {@link TERMINAL_PLAYER_KEYS}. */
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  speed: number;
  /** Wait at most 1 s between frames. */
  skipIdle: boolean;
  signal?: AbortSignal;
}

/** The keys of the terminal player, as `?` lists them. */
export const TERMINAL_PLAYER_KEYS = 'space pause/resume · + faster · - slower · ? these keys · q quit';

/**
 * Plays the output frames with their timing; resolves when done or quit. `?` pauses and prints the
 * keys on a line of their own (between two frames, so the replayed screen is not drawn over).
 */
export async function playTerminal(frames: readonly TerminalFrame[], o: PlayOptions): Promise<void> {
  let speed = o.speed;
  let paused = false;
  let quit = false;
  let help = false;
  let wake: (() => void) | undefined;
  const keys = o.stdin?.isTTY && o.stdin.setRawMode ? o.stdin : undefined;
  const onKey = (b: Buffer): void => {
    const k = b.toString();
    if (k === 'q' || k === '\u0003') quit = true;
    else if (k === ' ') paused = !paused;
    else if (k === '+') speed *= 2;
    else if (k === '-') speed /= 2;
    else if (k === '?') {
      paused = true;
      help = true;
    }
    wake?.();
  };
  if (keys) {
    keys.setRawMode!(true);
    keys.on('data', onKey);
    keys.resume();
  }
  /** Waits `ms`, or until a key or the signal wakes it; the signal's listener goes with the wait. */
  const wait = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        o.signal?.removeEventListener('abort', done);
        wake = undefined;
        resolve();
      }
      wake = done;
      o.signal?.addEventListener('abort', done, { once: true });
    });
  try {
    let last: number | undefined;
    for (const f of frames) {
      if (f.code !== 'o') continue;
      if (last !== undefined && f.at > last) {
        let left = (f.at - last) / speed;
        if (o.skipIdle) left = Math.min(left, 1000);
        while ((left > 0 || paused) && !quit && !o.signal?.aborted) {
          if (help) {
            help = false;
            o.stdout.write(`\r\n[hoop replay: paused · ${TERMINAL_PLAYER_KEYS}]\r\n`);
          }
          const started = realClock.now();
          await wait(paused ? 60_000 : left);
          if (!paused) left -= realClock.now() - started;
        }
      }
      if (quit || o.signal?.aborted) break;
      last = f.at;
      o.stdout.write(f.data);
    }
  } finally {
    if (keys) {
      keys.off('data', onKey);
      keys.setRawMode!(false);
      keys.pause();
    }
  }
}
