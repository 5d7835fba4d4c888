/**
 * `hoop sessions show`: a session's verified recording (its details, then its transcript; or all
 * of it as JSON), or a run: what its CLI signed around the sessions the gateway lists for it.
 */
import { listSessions } from '../api-client/sessions.js';
import type { SessionSummary } from '../api/answers.js';
import { ErrorCode, HoopError } from '../errors.js';
import type { CliIo } from '../io.js';
import type { RecordingEvent } from '../recording/event-line.js';
import { sessionDetails, when } from '../ui/session-lines.js';
import { commandTokenProvider } from './client-config.js';
import { readEvents, refuseInvalid, type SessionsFlags, transcript, withVerifiedRecording } from './recordings-fetch.js';
import { RUN_ID, runRecordLines } from './run-record.js';
import { paintedTable, printJson } from '../ui/output.js';

/** `hoop sessions show`: the verified session as JSON, or its details and then its transcript; a run's id shows the run. */
export async function showSession(io: CliIo, id: string, flags: SessionsFlags): Promise<void> {
  if (RUN_ID.test(id)) return showRun(io, id, flags);
  await withVerifiedRecording(io, flags, id, async (dir, check, summary) => {
    refuseInvalid(check, summary.id, summary);
    if (flags.json) {
      const events: RecordingEvent[] = [];
      for await (const e of readEvents(dir, check.manifest!)) events.push(e);
      printJson(io, { session: summary, verification: check, events });
      return;
    }
    io.stdout.write(paintedTable(io, sessionDetails(check, summary)));
    io.stdout.write('\n');
    for await (const line of transcript(dir, check, summary)) io.stdout.write(`${line.text}\n`);
  });
}

/**
 * `hoop sessions show <run-id>`: the run as its CLI signed it (the command, the agent, the prompt),
 * its sessions as the gateway lists them, then how it ended (its egress, its exit).
 */
async function showRun(io: CliIo, runId: string, flags: SessionsFlags): Promise<void> {
  const run = await runRecordLines(io, flags, runId);
  const provider = await commandTokenProvider(io, flags);
  let sessions: SessionSummary[];
  try {
    ({ sessions } = await listSessions({ gateway: provider.gateway, ca: provider.ca }, (await provider.current()).token, { run: runId }));
  } finally {
    provider.close();
  }
  if (run.head.length === 0 && sessions.length === 0)
    throw new HoopError(ErrorCode.SESSION_UNKNOWN, `run ${runId}: the gateway holds no record of it and no session of it that you may see`, {
      hint: "the id is the HOOP_RUN_ID hoop run gave its command; its CLI uploads the run's record when the run ends",
    });
  sessions.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  if (flags.json) {
    printJson(io, { run: runId, record: [...run.head, ...run.tail].map((l) => l.text), sessions });
    return;
  }
  for (const line of run.head) io.stdout.write(`${line.text}\n`);
  const rows = [['SESSION', 'STARTED', 'CONNECTION', 'STATEMENTS', 'REFUSED', 'ENDED']];
  for (const s of sessions) rows.push([s.id, when(s.startedAt), s.connection, String(s.statements), String(s.refused), s.reason]);
  io.stdout.write(`\n${paintedTable(io, rows)}\n`);
  for (const line of run.tail) io.stdout.write(`${line.text}\n`);
}
