/**
 * `hoop sessions replay`: a session's verified recording as psql would have shown it (an SSH
 * session as its terminal did), with its timing: in the player on an interactive terminal, else
 * printed (timed on a terminal). A run's sessions play one after the other, between what its own
 * record says.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { CliIo } from '../io.js';
import type { RecordingEvent } from '../recording/event-line.js';
import { playTerminal, type TerminalFrame, terminalFrames } from '../ssh/common/terminal-replay.js';
import type { TranscriptLine } from '../ui/transcript.js';
import { readEvents, refuseInvalid, type SessionsFlags, transcript, withVerifiedRecording } from './recordings-fetch.js';
import { RUN_ID, runRecordLines, sessionsOfRun } from './run-record.js';

/** The flags of `hoop sessions replay`. */
export interface ReplayFlags extends SessionsFlags {
  run?: boolean;
  speed: number;
  skipIdle?: boolean;
  tty: boolean;
}

/** What a replay found while reading its recordings: the player's title, and an SSH session's terminal frames. */
interface ReplaySeen {
  title?: string;
  /** An SSH session (not a run's): played as its terminal showed it. */
  terminalOf?: TerminalFrame[];
}

/** `hoop sessions replay`: in the player on an interactive terminal, else printed (timed on a terminal). */
export async function replaySession(io: CliIo, id: string, flags: ReplayFlags): Promise<void> {
  const terminal = flags.tty && (io.stdout as { isTTY?: boolean }).isTTY === true;
  const interactive = terminal && (io.stdin as { isTTY?: boolean } | undefined)?.isTTY === true;
  // A run's id says it is one (`hoop run` gives it as HOOP_RUN_ID).
  const ofRun = flags.run === true || RUN_ID.test(id);
  const ids = ofRun ? await sessionsOfRun(io, flags, id) : [id];
  const run = ofRun ? await runRecordLines(io, flags, id) : { head: [], tail: [] };
  const seen: ReplaySeen = {};
  const play = (emit: (line: TranscriptLine) => Promise<void>): Promise<void> => playRecordings(io, { ...flags, run: ofRun }, id, ids, run, seen, emit);
  if (interactive) {
    const all: TranscriptLine[] = [];
    await play(async (line) => void all.push(line));
    if (seen.terminalOf) return playTerminalFrames(io, flags, seen.terminalOf, terminal, interactive);
    // The player (ink and React) is loaded only to play: every other sessions command starts without it.
    const { playReplay } = await import('../ui/ReplayPlayer.js');
    await playReplay(all, {
      stdout: io.stdout as NodeJS.WriteStream,
      stdin: io.stdin as NodeJS.ReadStream,
      signal: io.signal,
      speed: flags.speed,
      skipIdle: flags.skipIdle === true,
      title: seen.title ?? id,
    });
    return;
  }
  const timed = terminal;
  let last: number | undefined;
  await play(async (line) => {
    if (timed && last !== undefined && line.at > last) {
      const wait = (line.at - last) / flags.speed;
      await sleep(flags.skipIdle ? Math.min(wait, 1000) : wait, undefined, { signal: io.signal });
    }
    last = line.at;
    io.stdout.write(`${line.text}\n`);
  });
  if (seen.terminalOf) await playTerminalFrames(io, flags, seen.terminalOf, terminal, interactive);
}

/** The run's start (its own record), each session's verified recording in turn (streamed), then how the run ended. */
async function playRecordings(
  io: CliIo,
  flags: ReplayFlags,
  id: string,
  ids: string[],
  run: { head: TranscriptLine[]; tail: TranscriptLine[] },
  seen: ReplaySeen,
  emit: (line: TranscriptLine) => Promise<void>,
): Promise<void> {
  for (const line of run.head) await emit(line);
  for (const one of ids) {
    await withVerifiedRecording(io, flags, one, async (dir, check, summary) => {
      refuseInvalid(check, summary.id, summary);
      if (summary.type === 'ssh' && !flags.run) {
        const events: RecordingEvent[] = [];
        for await (const e of readEvents(dir, check.manifest!)) events.push(e);
        seen.terminalOf = [...terminalFrames(events)];
        return;
      }
      seen.title ??= flags.run ? `run ${id} of ${summary.subject}` : `${summary.subject} on ${summary.connection}`;
      for await (const line of transcript(dir, check, summary)) await emit(line);
    });
  }
  for (const line of run.tail) await emit(line);
}

/** An SSH session's terminal: played with its timing on a terminal, else its output at once. */
async function playTerminalFrames(io: CliIo, flags: ReplayFlags, frames: TerminalFrame[], terminal: boolean, interactive: boolean): Promise<void> {
  if (terminal)
    await playTerminal(frames, {
      stdout: io.stdout as NodeJS.WriteStream,
      ...(interactive ? { stdin: io.stdin as NodeJS.ReadStream } : {}),
      speed: flags.speed,
      skipIdle: flags.skipIdle === true,
      ...(io.signal ? { signal: io.signal } : {}),
    });
  else for (const f of frames) if (f.code === 'o') io.stdout.write(f.data);
}
