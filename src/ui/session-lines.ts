/**
 * How `hoop sessions` says what it shows: times, a verification's verdict, the labels of a
 * session's table row, a session's details above its transcript, a cross-check's result.
 */
import type { SessionSummary } from '../api/answers.js';
import type { CrossCheckResult } from '../recording/cross-check.js';
import type { RecordingCheck } from '../recording/verify.js';

/** An ISO time as the tables show it, to the second (`2026-11-22 10:00:00Z`). */
export function when(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** What a verification says, in one line. */
export function verdict(check: RecordingCheck, running = false): string {
  if (!check.ok) return `FAILED: ${check.problems.join('; ')}`;
  const later = check.unverified.length ? ` (${check.unverified.length} later chunk(s) unverified)` : '';
  const state = check.complete ? 'complete' : running ? `running: verified to its last checkpoint${later}` : `truncated at its last checkpoint${later}`;
  return `verified: ${check.chunks} chunk(s), ${check.events} events, ${state}, signed by ${check.signer}`;
}

/** The CLI's record of a session as `ls` shows it. */
export function clientRecordLabel(s: SessionSummary, local: Set<string>): string {
  if (local.has(`sessions/${s.id}`)) return 'local';
  const state = s.clientRecord;
  return state === 'complete' ? 'signed' : typeof state === 'string' ? state : '-';
}

/** How a session came, for a table: the way in, an agent's name, a runbook's (`run claude`, `mcp claude runbook refund-order`). */
export function viaLabel(s: Record<string, unknown>): string {
  const via = typeof s.via === 'string' ? s.via : 'connect';
  const how = typeof s.agent === 'string' ? `${via} ${s.agent}` : via;
  const runbook = (s.runbook as { name?: unknown } | undefined)?.name;
  return typeof runbook === 'string' ? `${how} runbook ${runbook}` : how;
}

/** Who a session was, in words: the person, or the person's agent with its run and how it came. */
export function principalText(s: Record<string, unknown>): string {
  const via = typeof s.via === 'string' ? s.via : 'connect';
  if (typeof s.agent !== 'string') return `${String(s.subject)} via ${via}`;
  const contained = s.isolated === true ? 'contained' : s.isolated === false ? 'not contained' : undefined;
  return `${String(s.subject)}'s agent ${s.agent} via ${via} (run ${String(s.runId ?? '?')}${contained ? `, ${contained}` : ''})`;
}

/** A session's rows for `ls`: read, and changed when any (`120`, `3 read, 40 changed`); `-` when not counted. */
export function rowsLabel(s: { rowsRead?: number; rowsChanged?: number }): string {
  if (s.rowsRead === undefined) return '-';
  return s.rowsChanged ? `${s.rowsRead} read, ${s.rowsChanged} changed` : String(s.rowsRead);
}

/** The rows `hoop sessions show` prints above the transcript: who, where, when, what it touched, and the verdict. */
export function sessionDetails(check: RecordingCheck, summary: SessionSummary): string[][] {
  return [
    ['session', summary.id],
    ['user', `${summary.subject}${Array.isArray(summary.groups) && summary.groups.length ? ` (${(summary.groups as string[]).join(', ')})` : ''}`],
    ['as', principalText(summary)],
    ['connection', summary.connection],
    ['from', String(summary.remote ?? '?')],
    ['started', when(summary.startedAt)],
    [
      'ended',
      summary.endedAt ? `${when(summary.endedAt)} (${summary.reason})` : summary.reason === 'ending' ? 'not yet: its client left, and its end is being written' : 'not yet: the session is running',
    ],
    ['statements', `${summary.statements}, ${summary.refused} refused`],
    ['rows', summary.rowsRead === undefined ? '-' : `${summary.rowsRead} read, ${summary.rowsChanged ?? 0} changed`],
    [
      'tables',
      `${Array.isArray(summary.tables) && summary.tables.length ? (summary.tables as string[]).join(', ') : '-'}${Array.isArray(summary.written) && summary.written.length ? ` (written: ${(summary.written as string[]).join(', ')})` : ''}${summary.tablesComplete === false ? ' (not all statements analysed)' : ''}`,
    ],
    ['columns', summary.columns?.length ? summary.columns.join(', ') : '-'],
    [
      'masked',
      Array.isArray(summary.maskedColumns) && summary.maskedColumns.length
        ? (summary.maskedColumns as Array<{ column: string; strategy: string }>).map((m) => `${m.column} (${m.strategy})`).join(', ')
        : '-',
    ],
    ['recording', verdict(check, summary.recording === 'running')],
    ['client record', clientRecordText(summary)],
  ];
}

/** What the CLI's own record of a session is: a direct client has no hoop in its path, so it has none. */
export function clientRecordText(s: SessionSummary): string {
  if (s.direct === true) return "none: a direct client (no hoop in its path); the gateway's recording is the only one";
  const state = s.clientRecord;
  return state === 'complete' ? 'signed by the CLI (hoop sessions verify checks it against this one)' : typeof state === 'string' ? state : 'none uploaded';
}

/** What the cross-check of the gateway's and the CLI's records found, as `hoop sessions verify` prints it. */
export function crossCheckLine(cross: CrossCheckResult): string {
  return cross.agree
    ? `cross-check: the gateway's and the CLI's records agree on ${cross.statements} statement(s) and ${cross.outcomes} outcome(s)${cross.sftp ? ` and ${cross.sftp} sftp operation(s)` : ''}${cross.partial ? `; ${cross.partial}` : ''}${cross.uncompared ? `; ${cross.uncompared} later statement(s) of the gateway's record not compared` : ''}\n`
    : `cross-check: the records DIFFER:\n${cross.differences.map((d) => `  ${d}`).join('\n')}\n`;
}
