/**
 * `hoop sessions ls|show|verify|replay|export`: the gateway's recordings of sessions. `ls` reads
 * the gateway's index; the others download the recording and check it here, against the keys the
 * gateway publishes (`GET /v1/keys`), before showing anything of it: a recording that does not
 * verify is refused with what failed (exit 1). `verify --file DIR` checks a recording on disk.
 *
 * @see docs/recording-format.md
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { getRecordingKeys, listSessions } from '../api-client/sessions.js';
import type { SessionSummary } from '../api/answers.js';
import { readEvents, verifiedClientRecord, withVerifiedRecording, type ClientRecordCheck, type GatewayApi } from '../client/recordings-fetch.js';
import { writeRunBundle } from '../client/run-bundle.js';
import { crossCheck, type CrossCheckResult } from '../recording/cross-check.js';
import { spoolOf, uploadLeftovers } from '../client/client-records.js';
import { commandTokenProvider, gatewayOptions, type GatewayFlags } from '../client/client-config.js';
import { columns, shellQuote } from '../text-format.js';
import { ErrorCode, HoopError, describeError, isHoopError } from '../errors.js';
import type { CliIo } from '../io.js';
import { TranscriptRenderer, type TranscriptLine } from '../ui/transcript.js';
import { parseSshPublicKey } from '../recording/sshsig.js';
import { verifyRecording, type RecordingCheck } from '../recording/verify.js';
import { playReplay } from '../ui/ReplayPlayer.js';
import { asciicast, playTerminal, terminalFrames, type TerminalFrame } from '../ssh/common/terminal-replay.js';
import { type CastVersion, castHeader, castWriter } from '../recording/asciicast.js';
import { writeEvidenceBundle } from '../client/evidence-bundle.js';
import type { RecordingEvent } from '../recording/event-line.js';

interface CommonFlags extends GatewayFlags {
  json?: boolean;
}

/** Rows as `hoop connections` lays them out, as one text. */
const table = (rows: string[][]): string => `${columns(rows).join('\n')}\n`;

function when(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** What a verification says, in one line. */
function verdict(check: RecordingCheck, running = false): string {
  if (!check.ok) return `FAILED: ${check.problems.join('; ')}`;
  const later = check.unverified.length ? ` (${check.unverified.length} later chunk(s) unverified)` : '';
  const state = check.complete ? 'complete' : running ? `running: verified to its last checkpoint${later}` : `truncated at its last checkpoint${later}`;
  return `verified: ${check.chunks} chunk(s), ${check.events} events, ${state}, signed by ${check.signer}`;
}

/** The CLI's record of a session as `ls` shows it. */
function clientRecordLabel(s: SessionSummary, local: Set<string>): string {
  if (local.has(`sessions/${s.id}`)) return 'local';
  const state = s.clientRecord;
  return state === 'complete' ? 'signed' : typeof state === 'string' ? state : '-';
}

/**
 * The run's own record (signed by the CLI that ran it), as lines before and after its sessions:
 * who ran what, where, with which prompt; then where it connected and was refused, and how the command ended. Nothing when no record of the
 * run was uploaded; an error when one was and does not verify.
 */
async function runRecordLines(io: CliIo, flags: GatewayFlags, runId: string): Promise<{ head: TranscriptLine[]; tail: TranscriptLine[] }> {
  const provider = await commandTokenProvider(io, flags);
  const dir = await mkdtemp(join(tmpdir(), 'hoop-run-'));
  try {
    const { check, info } = await verifiedClientRecord({ endpoint: { gateway: provider.gateway, ca: provider.ca }, token: (await provider.current()).token }, 'runs', runId, dir);
    if (!check) return { head: [], tail: [] };
    if (!check.ok)
      throw new HoopError(ErrorCode.RECORDING_INVALID, `the record of run ${runId} does not verify: ${check.problems.join('; ')}`, { hint: 'it was altered or damaged after the CLI signed it' });
    const head: TranscriptLine[] = [];
    const tail: TranscriptLine[] = [];
    const quoted = (v: unknown): string => JSON.stringify(String(v ?? ''));
    const sessions: string[] = [];
    /** Connections through the egress proxy, by destination: refused, and let through. */
    const egress = { refused: new Map<string, number>(), allowed: new Map<string, number>() };
    const egressLines = (at: number): TranscriptLine[] =>
      (['refused', 'allowed'] as const)
        .filter((k) => egress[k].size > 0)
        .map((k) => ({
          at,
          text: `-- the run's command ${k === 'refused' ? 'was refused connections to' : 'connected through its egress proxy to'} ${[...egress[k]].map(([to, n]) => `${to} (${n})`).join(', ')}`,
        }));
    for await (const e of readEvents(dir, check.manifest!)) {
      if (e.t === 'start') {
        const command = Array.isArray(e.command) ? (e.command as unknown[]).map((a) => shellQuote(String(a))).join(' ') : '';
        // Who: the identity that uploaded it (the gateway authenticated it), not what the record says.
        head.push({ at: e.at, text: `-- run ${runId} by ${info?.subject ?? '?'} on ${String(e.host ?? '?')} (signed by its CLI, ${check.signer}): ${quoted(command)} in ${quoted(e.cwd)}` });
        if (typeof e.agent === 'string')
          head.push({ at: e.at, text: `-- the agent: ${e.agent}, ${e.isolation === 'none' ? 'not contained (isolation: none)' : `contained (${String(e.isolation)})`}` });
        if (typeof e.prompt === 'string') head.push({ at: e.at, text: `-- the run's prompt: ${quoted(e.prompt)}` });
      } else if (e.t === 'session') {
        sessions.push(String(e.id));
      } else if (e.t === 'egress') {
        const to = `${String(e.host)}:${String(e.port)}`;
        const seen = e.allowed === true ? egress.allowed : egress.refused;
        seen.set(to, (seen.get(to) ?? 0) + 1);
      } else if (e.t === 'swept') {
        const what = `${quoted(e.path)}, which the command made and git or hoop would act on`;
        tail.push({ at: e.at, text: e.to ? `-- hoop moved ${what}, to ${quoted(e.to)}` : `-- hoop could not move ${what} (${String(e.error)})` });
      } else if (e.t === 'end') {
        if (sessions.length > 0) tail.push({ at: e.at, text: `-- the run's tunnels carried ${sessions.length} session(s): ${sessions.join(', ')}` });
        tail.push(...egressLines(e.at));
        egress.refused.clear();
        egress.allowed.clear();
        tail.push({
          at: e.at,
          text: `-- the run's command exited with ${String(e.exitCode)}${typeof e.signal === 'string' ? ` (${e.signal})` : ''}${typeof e.reason === 'string' ? `: ${e.reason}` : ''} after ${((Number(e.durationMs) || 0) / 1000).toFixed(1)} s`,
        });
      }
    }
    tail.push(...egressLines(Date.now()));
    if (check.truncated) tail.push({ at: Date.now(), text: "-- the run's record ends here: its CLI was stopped before the command ended" });
    return { head, tail };
  } finally {
    provider.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The sessions of run `runId` the caller may see, the first first. */
async function sessionsOfRun(io: CliIo, flags: GatewayFlags, runId: string): Promise<string[]> {
  const provider = await commandTokenProvider(io, flags);
  try {
    const { sessions } = await listSessions({ gateway: provider.gateway, ca: provider.ca }, (await provider.current()).token, { run: runId });
    if (sessions.length === 0)
      throw new HoopError(ErrorCode.SESSION_UNKNOWN, `no sessions of run ${runId} that you may see`, {
        hint: '`hoop sessions ls --run ID` lists them; the id is the HOOP_RUN_ID hoop run gave its command',
      });
    return sessions.sort((a, b) => a.startedAt.localeCompare(b.startedAt)).map((s) => s.id);
  } finally {
    provider.close();
  }
}

function refuseInvalid(check: RecordingCheck, id: string, summary: SessionSummary): void {
  if (!check.ok && summary.recording === 'running' && check.manifest === undefined) {
    throw new HoopError(ErrorCode.RECORDING_INVALID, `session ${id} is running and its recording has no signed checkpoint yet`, {
      hint: 'the gateway signs one at least every recording.checkpointSeconds (1 s by default): try again in a moment',
    });
  }
  if (!check.ok) {
    throw new HoopError(ErrorCode.RECORDING_INVALID, `the recording of session ${id} does not verify: ${check.problems.join('; ')}`, {
      hint: 'it was altered or damaged after the gateway signed it; `hoop sessions verify` says what failed',
    });
  }
}

async function* transcript(dir: string, check: RecordingCheck, summary: SessionSummary): AsyncGenerator<TranscriptLine> {
  const renderer = new TranscriptRenderer();
  for await (const e of readEvents(dir, check.manifest!)) yield* renderer.render(e);
  if (summary.recording === 'running') yield { at: Date.now(), text: '-- the session is still running: this is its recording to its last checkpoint' };
  else if (check.truncated) yield { at: Date.now(), text: '-- the recording ends here: the session was cut short (its last checkpoint)' };
}

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number');
  return n;
}

/** How a session came, for a table: the way in, and an agent's name (`run claude`). */
function viaLabel(s: Record<string, unknown>): string {
  const via = typeof s.via === 'string' ? s.via : 'connect';
  return typeof s.agent === 'string' ? `${via} ${s.agent}` : via;
}

/** Who a session was, in words: the person, or the person's agent with its run and how it came. */
function principalText(s: Record<string, unknown>): string {
  const via = typeof s.via === 'string' ? s.via : 'connect';
  if (typeof s.agent !== 'string') return `${String(s.subject)} via ${via}`;
  const contained = s.isolated === true ? 'contained' : s.isolated === false ? 'not contained' : undefined;
  return `${String(s.subject)}'s agent ${s.agent} via ${via} (run ${String(s.runId ?? '?')}${contained ? `, ${contained}` : ''})`;
}

/** The flags of `hoop sessions ls`. */
interface LsFlags extends CommonFlags {
  user?: string;
  connection?: string;
  run?: string;
  agent?: string;
  via?: string;
  role?: string;
  since?: string;
  until?: string;
  denied?: boolean;
  table?: string;
  column?: string;
  minRows?: string;
}

/** The flags of `hoop sessions verify`. */
interface VerifyFlags extends CommonFlags {
  file?: string;
  key?: string[];
}

/** The flags of `hoop sessions replay`. */
interface ReplayFlags extends CommonFlags {
  run?: boolean;
  speed: number;
  skipIdle?: boolean;
  tty: boolean;
}

/** The flags of `hoop sessions export`. */
interface ExportFlags extends CommonFlags {
  format: 'json' | 'jsonl' | 'asciicast' | 'asciicast-v3' | 'bundle';
}

/** A session's rows for `ls`: read, and changed when any (`120`, `3 read, 40 changed`); `-` when not counted. */
function rowsLabel(s: { rowsRead?: number; rowsChanged?: number }): string {
  if (s.rowsRead === undefined) return '-';
  return s.rowsChanged ? `${s.rowsRead} read, ${s.rowsChanged} changed` : String(s.rowsRead);
}

/** Builds the `sessions` command. */
export function sessionsCommand(io: CliIo): Command {
  const cmd = new Command('sessions').description('list, show, verify, replay and export the recordings of sessions through the gateway');
  cmd.addCommand(lsCommand(io));
  cmd.addCommand(showCommand(io));
  cmd.addCommand(verifyCommand(io));
  cmd.addCommand(replayCommand(io));
  cmd.addCommand(exportCommand(io));
  return cmd;
}

/** Builds `hoop sessions ls`. */
function lsCommand(io: CliIo): Command {
  return gatewayOptions(new Command('ls'))
    .description("list the sessions you may see (your own; everyone's for an auditor): running ones first, then ended ones, newest first")
    .option('--user <subject>', 'only this subject (or email)')
    .option('--connection <name>', 'only this connection')
    .option('--run <id>', 'only the sessions of this `hoop run` (its HOOP_RUN_ID)')
    .option('--agent <name>', 'only the sessions of this agent (a glob: claude*, or * for every agent)')
    .option('--via <way>', "only the sessions that came this way: connect, exec, direct (a person's own), run, mcp (an agent's)")
    .option('--role <role>', 'only the PostgreSQL sessions that signed in as this database role')
    .option('--since <time>', 'ended at or after this date or time (e.g. 2026-11-22 or 2026-11-22T10:00:00Z)')
    .option('--until <time>', 'started at or before this date or time')
    .option('--denied', 'only sessions in which the policy refused a statement')
    .option('--table <table>', 'only sessions whose statements named this table (schema.table or table)')
    .option('--column <table.column>', 'only sessions whose statements read or named this column, masked or not (e.g. customers.card_number)')
    .option('--min-rows <n>', 'only sessions whose statements read or changed at least n rows in all')
    .option('--json', 'print one JSON document { sessions: [...] }')
    .action((flags: LsFlags) => listAction(io, flags));
}

/** `hoop sessions ls`: uploads this machine's leftover records, then lists the sessions that match, as JSON or a table. */
async function listAction(io: CliIo, flags: LsFlags): Promise<void> {
  const provider = await commandTokenProvider(io, flags);
  try {
    const filter: Record<string, string> = {};
    for (const k of ['user', 'connection', 'run', 'agent', 'via', 'role', 'since', 'until', 'table', 'column'] as const) if (flags[k] !== undefined) filter[k] = flags[k]!;
    if (flags.denied) filter.denied = '1';
    if (flags.minRows !== undefined) filter['min-rows'] = flags.minRows;
    const local = await uploadLeftovers(io, provider);
    const { sessions } = await listSessions({ gateway: provider.gateway, ca: provider.ca }, (await provider.current()).token, filter);
    for (const s of sessions) if (local.has(`sessions/${s.id}`)) s.clientRecord = 'local';
    if (flags.json) {
      io.stdout.write(`${JSON.stringify({ sessions })}\n`);
      return;
    }
    if (sessions.length === 0) {
      io.stdout.write('no recorded sessions match\n');
      return;
    }
    const rows = [['ID', 'STARTED', 'USER', 'VIA', 'CONNECTION', 'STATEMENTS', 'REFUSED', 'ROWS', 'ENDED', 'RECORDING', 'CLI RECORD']];
    for (const s of sessions)
      rows.push([s.id, when(s.startedAt), s.subject, viaLabel(s), s.connection, String(s.statements), String(s.refused), rowsLabel(s), s.reason, s.recording, clientRecordLabel(s, local)]);
    io.stdout.write(table(rows));
  } finally {
    provider.close();
  }
}

/** Builds `hoop sessions show`. */
function showCommand(io: CliIo): Command {
  return gatewayOptions(new Command('show'))
    .argument('<id>', 'the session id, as `hoop sessions ls` lists it, `last` for your newest ended one, or a run id')
    .description(
      'the session: who, where, when, whether its recording verifies, and each statement with its decision and outcome; of a run: its command, agent and prompt, its sessions, the connections its command was refused, how it ended',
    )
    .option('--json', 'print one JSON document { session, verification, events }')
    .action((id: string, flags: CommonFlags) => showAction(io, id, flags));
}

/** `hoop sessions show`: the verified session as JSON, or its details and then its transcript; a run's id shows the run. */
async function showAction(io: CliIo, id: string, flags: CommonFlags): Promise<void> {
  if (RUN_ID.test(id)) return showRun(io, id, flags);
  await withVerifiedRecording(io, flags, id, async (dir, check, summary) => {
    refuseInvalid(check, summary.id, summary);
    if (flags.json) {
      const events: RecordingEvent[] = [];
      for await (const e of readEvents(dir, check.manifest!)) events.push(e);
      io.stdout.write(`${JSON.stringify({ session: summary, verification: check, events })}\n`);
      return;
    }
    io.stdout.write(table(sessionDetails(check, summary)));
    io.stdout.write('\n');
    for await (const line of transcript(dir, check, summary)) io.stdout.write(`${line.text}\n`);
  });
}

/**
 * `hoop sessions show <run-id>`: the run as its CLI signed it (the command, the agent, the prompt),
 * its sessions as the gateway lists them, then how it ended (its egress, its exit).
 */
async function showRun(io: CliIo, runId: string, flags: CommonFlags): Promise<void> {
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
    io.stdout.write(`${JSON.stringify({ run: runId, record: [...run.head, ...run.tail].map((l) => l.text), sessions })}\n`);
    return;
  }
  for (const line of run.head) io.stdout.write(`${line.text}\n`);
  const rows = [['SESSION', 'STARTED', 'CONNECTION', 'STATEMENTS', 'REFUSED', 'ENDED']];
  for (const s of sessions) rows.push([s.id, when(s.startedAt), s.connection, String(s.statements), String(s.refused), s.reason]);
  io.stdout.write(`\n${table(rows)}\n`);
  for (const line of run.tail) io.stdout.write(`${line.text}\n`);
}

/** The rows `hoop sessions show` prints above the transcript: who, where, when, what it touched, and the verdict. */
function sessionDetails(check: RecordingCheck, summary: SessionSummary): string[][] {
  return [
    ['session', summary.id],
    ['user', `${summary.subject}${Array.isArray(summary.groups) && summary.groups.length ? ` (${(summary.groups as string[]).join(', ')})` : ''}`],
    ['as', principalText(summary)],
    ['connection', summary.connection],
    ['from', String(summary.remote ?? '?')],
    ['started', when(summary.startedAt)],
    ['ended', summary.endedAt ? `${when(summary.endedAt)} (${summary.reason})` : 'not yet: the session is running'],
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
function clientRecordText(s: SessionSummary): string {
  if (s.direct === true) return "none: a direct client (no hoop in its path); the gateway's recording is the only one";
  const state = s.clientRecord;
  return state === 'complete' ? 'signed by the CLI (hoop sessions verify checks it against this one)' : typeof state === 'string' ? state : 'none uploaded';
}

/** Builds `hoop sessions verify`. */
function verifyCommand(io: CliIo): Command {
  return gatewayOptions(new Command('verify'))
    .argument(
      '[id]',
      "the session id (or `last`: your newest ended one, or a run id: the run's record and every session of it); its recording is downloaded and checked against the gateway's published keys (with --file: the id the recording must be)",
    )
    .description('check a recording: every chunk against the signed manifest, the chain between chunks, and the signature; exit 1 on any failure')
    .option('--file <dir>', "check this recording directory instead (with --key, or the gateway's published keys)")
    .option('--key <line>', 'trust this ssh-ed25519 public key (as in an allowed-signers file) instead of asking the gateway', (v: string, all: string[] = []) => [...all, v])
    .option('--json', 'print the verification as one JSON document')
    .action((id: string | undefined, flags: VerifyFlags) => verifyAction(io, id, flags));
}

/** Prints a verification (as JSON with --json, else in one line) and fails (exit 1) when it failed. */
type ReportCheck = (check: RecordingCheck, what: string, running?: boolean) => void;

/** `hoop sessions verify`: a recording directory (--file), or a session's recording and the CLI's record of it. */
async function verifyAction(io: CliIo, id: string | undefined, flags: VerifyFlags): Promise<void> {
  if (id === undefined && flags.file === undefined)
    throw new HoopError(ErrorCode.USAGE, 'give a session id or --file DIR', { hint: 'hoop sessions verify <id>, or hoop sessions verify --file ./recording [<id>] --key "ssh-ed25519 AAAA..."' });
  const report: ReportCheck = (check, what, running = false) => {
    if (flags.json) io.stdout.write(`${JSON.stringify(check)}\n`);
    else io.stdout.write(`${what}: ${verdict(check, running)}\n`);
    if (!check.ok) throw new HoopError(ErrorCode.RECORDING_INVALID, `${what} does not verify`, { hint: check.problems[0] ?? 'see above', exitCode: 1 });
  };
  if (flags.file !== undefined) {
    await verifyFile(io, id, flags, flags.file, report);
    return;
  }
  if (RUN_ID.test(id!)) return verifyRun(io, id!, flags, report);
  await verifySession(io, id!, flags, report);
}

/** `hoop sessions verify <id>`: the gateway's recording, then the CLI's record of it and how the two agree. */
async function verifySession(io: CliIo, id: string, flags: VerifyFlags, report: ReportCheck): Promise<void> {
  await withVerifiedRecording(io, flags, id, async (dir, check, summary, api) => {
    if (!flags.json) report(check, `session ${summary.id}`, summary.recording === 'running');
    await verifyClientRecord(io, flags, dir, check, summary, api);
  });
}

/** A run's id, as `hoop run` gives its command (`HOOP_RUN_ID`). */
const RUN_ID = /^run-[A-Za-z0-9_-]{16,64}$/;

/**
 * `hoop sessions verify <run-id>`: the run's own record (signed by the CLI that ran it), then every
 * session of the run as `verify <id>` checks it, and that the sessions the run's record names are
 * the ones the gateway lists. Every failure is said; the exit status is 1 when any.
 */
async function verifyRun(io: CliIo, runId: string, flags: VerifyFlags, report: ReportCheck): Promise<void> {
  const failures: string[] = [];
  const attempt = async (check: () => Promise<void>): Promise<void> => {
    try {
      await check();
    } catch (err) {
      if (!isHoopError(err, ErrorCode.RECORDING_INVALID)) throw err;
      failures.push(err.message);
    }
  };
  let named = undefined as string[] | undefined;
  await attempt(async () => {
    named = await runRecordSessions(io, flags, runId, report);
  });
  const listed: string[] = await sessionsOfRun(io, flags, runId).catch((err: unknown) => {
    if (isHoopError(err, ErrorCode.SESSION_UNKNOWN)) return [];
    throw err;
  });
  if (named === undefined && listed.length === 0)
    throw new HoopError(ErrorCode.SESSION_UNKNOWN, `run ${runId}: the gateway holds no record of it and no session of it that you may see`, {
      hint: "`hoop sessions ls --run ID` lists a run's sessions; the id is the HOOP_RUN_ID hoop run gave its command",
    });
  for (const id of named ?? []) if (!listed.includes(id)) failures.push(`the record of run ${runId} names session ${id}, which the gateway does not list`);
  for (const id of listed) await attempt(() => verifySession(io, id, flags, report));
  if (!flags.json) io.stdout.write(`run ${runId}: ${failures.length === 0 ? `verified: its record and ${listed.length} session(s)` : `${failures.length} problem(s)`}\n`);
  if (failures.length > 0) throw new HoopError(ErrorCode.RECORDING_INVALID, `run ${runId} does not verify: ${failures.join('; ')}`, { hint: 'each line above says what failed', exitCode: 1 });
}

/** The run's own record verified and reported; the sessions it names (undefined when no record of the run was uploaded). */
async function runRecordSessions(io: CliIo, flags: VerifyFlags, runId: string, report: ReportCheck): Promise<string[] | undefined> {
  const provider = await commandTokenProvider(io, flags);
  const dir = await mkdtemp(join(tmpdir(), 'hoop-run-'));
  try {
    const { check } = await verifiedClientRecord({ endpoint: { gateway: provider.gateway, ca: provider.ca }, token: (await provider.current()).token }, 'runs', runId, dir);
    if (!check) {
      if (!flags.json) io.stdout.write(`run ${runId}: no record of the run was uploaded (its CLI may still be running, or was stopped before it could)\n`);
      return undefined;
    }
    report(check, `run ${runId} (the record its CLI signed, ${check.signer ?? 'no signer'})`);
    const sessions: string[] = [];
    for await (const e of readEvents(dir, check.manifest!)) if (e.t === 'session') sessions.push(String(e.id));
    return sessions;
  } finally {
    provider.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** `hoop sessions verify --file DIR [id]`: against the --key keys, or else the gateway's published ones. */
async function verifyFile(io: CliIo, id: string | undefined, flags: VerifyFlags, file: string, report: ReportCheck): Promise<void> {
  let keys;
  if (flags.key?.length) keys = flags.key.map((k) => parseSshPublicKey(k));
  else {
    const provider = await commandTokenProvider(io, flags);
    try {
      keys = (await getRecordingKeys({ gateway: provider.gateway, ca: provider.ca })).map((k) => parseSshPublicKey(k.publicKey));
    } finally {
      provider.close();
    }
  }
  // The recording's id is said: a directory proves nothing of whose it is unless the id it must be is given.
  const check = await verifyRecording(resolve(io.cwd, file), keys, undefined, id);
  report(check, `${file} (recording ${check.id ?? 'of no id'})`);
}

/** The CLI's own record of the session, when one was uploaded: verified, then checked against the gateway's recording (in `dir`). */
async function verifyClientRecord(io: CliIo, flags: VerifyFlags, dir: string, check: RecordingCheck, summary: SessionSummary, api: GatewayApi): Promise<void> {
  const clientDir = `${dir}-client`;
  try {
    const client = await verifiedClientRecord(api, 'sessions', summary.id, clientDir);
    let cross: CrossCheckResult | undefined;
    if (check.ok && client.check?.ok) {
      cross = await crossCheck((side) => (side === 'gateway' ? readEvents(dir, check.manifest!) : readEvents(clientDir, client.check!.manifest!)), {
        gateway: !check.complete,
        client: !client.check.complete,
      }).catch((err: unknown) => {
        // Signed, yet not readable (bytes that do not decode, a protocol this hoop does not know): it tells nothing that can be checked.
        throw new HoopError(ErrorCode.RECORDING_INVALID, `the records of session ${summary.id} cannot be compared: ${describeError(err)}`, {
          hint: 'keep both for an investigation; a newer hoop may read them',
          exitCode: 1,
        });
      });
    }
    if (flags.json) {
      io.stdout.write(`${JSON.stringify({ ...check, client: client.check ?? null, clientRecord: client.info, ...(cross ? { crossCheck: cross } : {}) })}\n`);
      if (!check.ok) throw new HoopError(ErrorCode.RECORDING_INVALID, `session ${summary.id} does not verify`, { hint: check.problems[0] ?? 'see above', exitCode: 1 });
    } else await writeClientRecordLine(io, client, summary.id);
    if (client.check && !client.check.ok)
      throw new HoopError(ErrorCode.RECORDING_INVALID, `the CLI's record of session ${summary.id} does not verify`, { hint: client.check.problems[0] ?? 'see above', exitCode: 1 });
    if (cross && !flags.json) io.stdout.write(crossCheckLine(cross));
    if (cross && !cross.agree)
      throw new HoopError(ErrorCode.RECORDING_INVALID, `the gateway's and the CLI's records of session ${summary.id} differ`, {
        hint: 'one of them does not tell what happened: keep both for an investigation',
        exitCode: 1,
      });
  } finally {
    await rm(clientDir, { recursive: true, force: true });
  }
}

/** The `CLI record:` line of `hoop sessions verify`: none uploaded (and whether this machine holds it), not signed yet, or its verdict. */
async function writeClientRecordLine(io: CliIo, client: ClientRecordCheck, sessionId: string): Promise<void> {
  if (!client.info) {
    io.stdout.write(
      `CLI record: none uploaded${(await spoolOf(io).entries()).some((e) => e.meta.kind === 'sessions' && e.meta.id === sessionId) ? ' (this machine holds it; it is uploaded by the next hoop command that reaches the gateway)' : ' (the session was not made through hoop connect or hoop run, or their record is still on the machine that made it)'}\n`,
    );
  } else if (!client.check) {
    io.stdout.write(`CLI record: ${client.info.state}, not signed yet: nothing of it can be verified\n`);
  } else {
    io.stdout.write(`CLI record: ${verdict(client.check)}\n`);
  }
}

/** What the cross-check of the gateway's and the CLI's records found, as `hoop sessions verify` prints it. */
function crossCheckLine(cross: CrossCheckResult): string {
  return cross.agree
    ? `cross-check: the gateway's and the CLI's records agree on ${cross.statements} statement(s) and ${cross.outcomes} outcome(s)${cross.sftp ? ` and ${cross.sftp} sftp operation(s)` : ''}${cross.partial ? `; ${cross.partial}` : ''}${cross.uncompared ? `; ${cross.uncompared} later statement(s) of the gateway's record not compared` : ''}\n`
    : `cross-check: the records DIFFER:\n${cross.differences.map((d) => `  ${d}`).join('\n')}\n`;
}

/** Builds `hoop sessions replay`. */
function replayCommand(io: CliIo): Command {
  return gatewayOptions(new Command('replay'))
    .argument('<id>', 'the session id, `last` for your newest ended one, or a run id (its sessions in order, its prompt first)')
    .description('the session as psql would have shown it, with its timing: on a terminal a player (space pause, ←/→ step, d next refused, +/- speed, ? keys, q quit); else the transcript')
    .option(
      '--run',
      "the id is a `hoop run`'s (its HOOP_RUN_ID; said by the id itself): its sessions one after the other, from the first, with what the run said it was for (its prompt) at the start of each",
    )
    .option('--speed <factor>', 'play this many times faster (default 1)', positive, 1)
    .option('--skip-idle', 'wait at most 1 s between lines')
    .addOption(new Option('--no-tty', 'print the transcript at once, without timing (the default when stdout is not a terminal)'))
    .action((id: string, flags: ReplayFlags) => replayAction(io, id, flags));
}

/** What a replay found while reading its recordings: the player's title, and an SSH session's terminal frames. */
interface ReplaySeen {
  title?: string;
  /** An SSH session (not a run's): played as its terminal showed it. */
  terminalOf?: TerminalFrame[];
}

/** `hoop sessions replay`: in the player on an interactive terminal, else printed (timed on a terminal). */
async function replayAction(io: CliIo, id: string, flags: ReplayFlags): Promise<void> {
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

/** Builds `hoop sessions export`. */
function exportCommand(io: CliIo): Command {
  return gatewayOptions(new Command('export'))
    .argument('<id>', 'the session id, `last` for your newest ended one, or a run id (with --format bundle)')
    .description(
      "the recording for other tools: its events as JSON or JSON lines, what the terminal showed (an SSH session) or the psql transcript as an asciicast recording, or the evidence bundle (tar.gz: the signed recording, the key, how to check them with sha256sum and ssh-keygen; of a run: the run's record, every session's recordings and a verify.sh)",
    )
    .addOption(
      new Option('--format <format>', 'json, jsonl, asciicast (v2: asciinema 2 and 3 play it), asciicast-v3 or bundle')
        .choices(['json', 'jsonl', 'asciicast', 'asciicast-v3', 'bundle'])
        .default('jsonl'),
    )
    .action((id: string, flags: ExportFlags) => exportAction(io, id, flags));
}

/** `hoop sessions export`: the verified recording as an asciicast (an SSH session's terminal, or a transcript), or its events. */
async function exportAction(io: CliIo, id: string, flags: ExportFlags): Promise<void> {
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
    if (format === 'json') io.stdout.write(`${first ? '' : ','}\n${JSON.stringify(e)}`);
    else io.stdout.write(`${JSON.stringify(e)}\n`);
    first = false;
  }
  if (format === 'json') io.stdout.write('\n]\n');
}
