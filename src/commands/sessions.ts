/**
 * `hoop sessions ls|show|verify|replay|export`: the gateway's recordings of sessions. `ls` reads
 * the gateway's index; the others download the recording and check it here, against the keys the
 * gateway publishes (`GET /v1/keys`), before showing anything of it: a recording that does not
 * verify is refused with what failed (exit 1). `verify --file DIR` checks a recording on disk.
 *
 * @see docs/recording-format.md
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { gatewayOptions } from '../client/client-config.js';
import { listSessionsFromHere, type SessionsFlags } from '../client/recordings-fetch.js';
import { exportRecording, type ExportFlags } from '../client/session-export.js';
import { type ReplayFlags, replaySession } from '../client/session-replay.js';
import { showSession } from '../client/session-show.js';
import { type VerifyFlags, verifyRecordings } from '../client/session-verify.js';
import type { CliIo } from '../io.js';
import { parseTimeBound, TIME_BOUND_HELP } from '../time-bound.js';
import { clientRecordLabel, rowsLabel, viaLabel, when } from '../ui/session-lines.js';
import { paintedTable, printJson } from '../ui/output.js';

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number');
  return n;
}

/** The flags of `hoop sessions ls`. */
interface LsFlags extends SessionsFlags {
  user?: string;
  connection?: string;
  run?: string;
  agent?: string;
  runbook?: string;
  via?: string;
  role?: string;
  since?: string;
  until?: string;
  denied?: boolean;
  table?: string;
  tool?: string;
  path?: string;
  method?: string;
  column?: string;
  minRows?: string;
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
    .option('--runbook <name>', 'only the runs of this runbook')
    .option('--agent <name>', 'only the sessions of this agent (a glob: claude*, or * for every agent)')
    .option('--via <way>', "only the sessions that came this way: connect, exec, direct (a person's own), run, mcp (an agent's)")
    .option('--role <role>', 'only the PostgreSQL sessions that signed in as this database role')
    .option('--since <time>', 'ended at or after this time: a duration back from now (30m, 1h, 2d) or a date or time (2026-11-22, 2026-11-22T10:00:00Z)', timeBound)
    .option('--until <time>', 'started at or before this time (as --since)', timeBound)
    .option('--denied', 'only sessions in which the policy refused a statement')
    .option('--table <table>', 'only sessions whose statements named this table (schema.table or table)')
    .option('--tool <name>', 'only MCP sessions whose agent called this tool, allowed or not (a glob: "write_*")')
    .option('--path <glob>', 'only HTTP sessions that requested a path this glob matches, allowed or not ("/orders/*/refund", "/admin/**")')
    .option('--method <method>', 'only HTTP sessions that made a request of this method (with --path: on such a path)')
    .option('--column <table.column>', 'only sessions whose statements read or named this column, masked or not (e.g. customers.card_number)')
    .option('--min-rows <n>', 'only sessions whose statements read or changed at least n rows in all')
    .option('--json', 'print one JSON document { sessions: [...] }')
    .action((flags: LsFlags) => listAction(io, flags));
}

/** A `--since`/`--until` as the gateway takes it: the instant, in ISO 8601 (a duration is counted back from now, here). */
function timeBound(value: string): string {
  const t = parseTimeBound(value);
  if (t === undefined) throw new InvalidArgumentError(`must be ${TIME_BOUND_HELP}`);
  return new Date(t).toISOString();
}

/** `hoop sessions ls`: uploads this machine's leftover records, then lists the sessions that match, as JSON or a table. */
async function listAction(io: CliIo, flags: LsFlags): Promise<void> {
  const filter: Record<string, string> = {};
  for (const k of ['user', 'connection', 'run', 'runbook', 'agent', 'via', 'role', 'since', 'until', 'table', 'column', 'tool', 'path', 'method'] as const)
    if (flags[k] !== undefined) filter[k] = flags[k]!;
  if (flags.denied) filter.denied = '1';
  if (flags.minRows !== undefined) filter['min-rows'] = flags.minRows;
  const { sessions, local } = await listSessionsFromHere(io, flags, filter);
  if (flags.json) {
    // A CLI record this machine still holds (not uploaded yet) is said as `local`, as the table says it.
    printJson(io, { sessions: sessions.map((s) => (local.has(`sessions/${s.id}`) ? { ...s, clientRecord: 'local' } : s)) });
    return;
  }
  if (sessions.length === 0) {
    io.stdout.write('no recorded sessions match\n');
    return;
  }
  const rows = [['ID', 'STARTED', 'USER', 'VIA', 'CONNECTION', 'STATEMENTS', 'REFUSED', 'ROWS', 'ENDED', 'RECORDING', 'CLI RECORD']];
  for (const s of sessions)
    rows.push([s.id, when(s.startedAt), s.subject, viaLabel(s), s.connection, String(s.statements), String(s.refused), rowsLabel(s), s.reason, s.recording, clientRecordLabel(s, local)]);
  io.stdout.write(paintedTable(io, rows));
}

/** Builds `hoop sessions show`. */
function showCommand(io: CliIo): Command {
  return gatewayOptions(new Command('show'))
    .argument('<id>', 'the session id, as `hoop sessions ls` lists it, `last` for your newest ended one, or a run id')
    .description(
      'the session: who, where, when, whether its recording verifies, and each statement with its decision and outcome; of a run: its command, agent and prompt, its sessions, the connections its command was refused, how it ended',
    )
    .option('--json', 'print one JSON document { session, verification, events }')
    .action((id: string, flags: SessionsFlags) => showSession(io, id, flags));
}

/** Builds `hoop sessions verify`. */
function verifyCommand(io: CliIo): Command {
  return gatewayOptions(new Command('verify'))
    .argument(
      '[id]',
      "the session id (or `last`: your newest ended one, or a run id: the run's record and every session of it); its recording is downloaded and checked against the gateway's published keys (with --file: the id the recording must be)",
    )
    .description('check a recording: every chunk against the signed manifest, the chain between chunks, and the signature; exit 1 on any failure, and on a truncated recording')
    .option('--file <path>', "check this recording instead: a directory, or the archive a gateway keeps it in (dataDir/recordings/<id>.tar); with --key, or the gateway's published keys")
    .option('--key <line>', 'trust this ssh-ed25519 public key (as in an allowed-signers file) instead of asking the gateway', (v: string, all: string[] = []) => [...all, v])
    .option('--json', 'print the verification as one JSON document')
    .option('--accept-truncated', 'accept a recording that verifies only up to its last checkpoint (its gateway stopped before the session ended)')
    .action((id: string | undefined, flags: VerifyFlags) => verifyRecordings(io, id, flags));
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
    .action((id: string, flags: ReplayFlags) => replaySession(io, id, flags));
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
    .action((id: string, flags: ExportFlags) => exportRecording(io, id, flags));
}
