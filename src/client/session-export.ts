/**
 * `hoop sessions export`: a session's verified recording for other tools (its events as JSON or
 * JSON lines, an asciicast of its terminal or its psql transcript, the evidence bundle), or a
 * run's bundle.
 */
import { getRecordingKeys } from '../api-client/sessions.js';
import type { SessionSummary } from '../api/answers.js';
import { ErrorCode, HoopError } from '../errors.js';
import type { CliIo } from '../io.js';
import { type CastVersion, castHeader, castWriter } from '../recording/asciicast.js';
import type { RecordingEvent } from '../recording/event-line.js';
import type { RecordingCheck } from '../recording/verify.js';
import { asciicast } from '../ssh/common/terminal-replay.js';
import { writeEvidenceBundle } from './evidence-bundle.js';
import { readEvents, refuseInvalid, type SessionsFlags, transcript, withVerifiedRecording } from './recordings-fetch.js';
import { RUN_ID } from './run-record.js';
import { writeRunBundle } from './run-bundle.js';
import { jsonText } from '../json-number.js';

/** The flags of `hoop sessions export`. */
export interface ExportFlags extends SessionsFlags {
  format: 'json' | 'jsonl' | 'asciicast' | 'asciicast-v3' | 'bundle';
}

/** `hoop sessions export`: the verified recording as an asciicast (an SSH session's terminal, or a transcript), or its events. */
export async function exportRecording(io: CliIo, id: string, flags: ExportFlags): Promise<void> {
  if (RUN_ID.test(id)) {
    if (flags.format !== 'bundle')
      throw new HoopError(ErrorCode.USAGE, `${id} is a run: it exports as a bundle of all its records`, { hint: `hoop sessions export ${id} --format bundle > ${id}.tar.gz` });
    return writeRunBundle(io, id, flags);
  }
  await withVerifiedRecording(io, flags, id, async (dir, check, summary, api) => {
    refuseInvalid(check, summary.id, summary);
    if (flags.format === 'bundle') return writeEvidenceBundle(io, dir, check, summary, await getRecordingKeys(api.endpoint), String(api.endpoint.gateway));
    if (flags.format === 'json' || flags.format === 'jsonl') return exportEvents(io, dir, check, flags.format);
    const version = flags.format === 'asciicast-v3' ? 3 : 2;
    if (summary.type === 'ssh') await exportTerminalAsciicast(io, dir, check, summary, version);
    else await exportTranscriptAsciicast(io, dir, check, summary, version);
  });
}

/** An SSH session's terminal as an asciicast recording. */
async function exportTerminalAsciicast(io: CliIo, dir: string, check: RecordingCheck, summary: SessionSummary, version: CastVersion): Promise<void> {
  const events: RecordingEvent[] = [];
  for await (const e of readEvents(dir, check.manifest!)) events.push(e);
  for (const line of asciicast(events, { startedAt: Date.parse(summary.startedAt), title: castTitle(summary), version })) io.stdout.write(`${line}\n`);
}

/** The psql transcript as an asciicast recording: each line of it output at its time, on a 120x40 terminal. */
async function exportTranscriptAsciicast(io: CliIo, dir: string, check: RecordingCheck, summary: SessionSummary, version: CastVersion): Promise<void> {
  const startedAt = Date.parse(summary.startedAt);
  io.stdout.write(`${castHeader(version, { cols: 120, rows: 40, startedAt, title: castTitle(summary) })}\n`);
  const line = castWriter(version, startedAt);
  for await (const l of transcript(dir, check, summary)) io.stdout.write(`${line({ at: l.at, code: 'o', data: `${l.text}\r\n` })}\n`);
}

const castTitle = (s: SessionSummary): string => `hoop session ${s.id} (${s.subject} on ${s.connection})`;

/** The recording's events, as one JSON array or as JSON lines. */
async function exportEvents(io: CliIo, dir: string, check: RecordingCheck, format: 'json' | 'jsonl'): Promise<void> {
  if (format === 'json') io.stdout.write('[');
  let first = true;
  for await (const e of readEvents(dir, check.manifest!)) {
    if (format === 'json') io.stdout.write(`${first ? '' : ','}\n${jsonText(e)}`);
    else io.stdout.write(`${jsonText(e)}\n`);
    first = false;
  }
  if (format === 'json') io.stdout.write('\n]\n');
}
