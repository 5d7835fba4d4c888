/**
 * `hoop sessions verify`: a recording directory or a gateway's archive of one (`--file`), a session's recording with the CLI's
 * record of it and how the two agree, or a run (its own record, then every session of it). Each
 * verification is printed as it is made; any failure fails the command (exit 1).
 *
 * @see docs/recording-format.md
 */
import { mkdtemp, open, opendir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { getRecordingKeys } from '../api-client/sessions.js';
import type { SessionSummary } from '../api/answers.js';
import { describeError, ErrorCode, ExitCode, HoopError, isHoopError, systemErrorOf } from '../errors.js';
import type { CliIo } from '../io.js';
import { crossCheck, type CrossCheckResult } from '../recording/cross-check.js';
import { parseSshPublicKey } from '../recording/sshsig.js';
import { type RecordingCheck, verifyRecording } from '../recording/verify.js';
import { isRecordingArchive } from '../recording/recording-files.js';
import { crossCheckLine, verdict } from '../ui/session-lines.js';
import { spoolOf } from './client-records.js';
import { commandTokenProvider } from './client-config.js';
import { type ClientRecordCheck, type GatewayApi, readEvents, type SessionsFlags, verifiedClientRecord, withVerifiedRecording } from './recordings-fetch.js';
import { RUN_ID, sessionsOfRun } from './run-record.js';
import { printJson } from '../ui/output.js';

/** The flags of `hoop sessions verify`. */
export interface VerifyFlags extends SessionsFlags {
  file?: string;
  key?: string[];
  /** Accept a recording that verifies up to a checkpoint only (its gateway stopped before the session ended). */
  acceptTruncated?: boolean;
}

/** Fails (exit 1) unless `check` verified. */
function mustVerify(check: RecordingCheck, what: string): void {
  if (!check.ok) throw new HoopError(ErrorCode.RECORDING_INVALID, `${what} does not verify`, { hint: check.problems[0] ?? 'see above', exitCode: 1 });
}

/** Fails (exit 1) unless `check` verified whole: a truncated one only with --accept-truncated, a running one as far as it goes. Said last, after all else is checked. */
function mustBeWhole(check: RecordingCheck, what: string, flags: VerifyFlags, running: boolean): void {
  if (!check.complete && !running && !flags.acceptTruncated)
    throw new HoopError(ErrorCode.RECORDING_INVALID, `${what} verifies only up to its last checkpoint: it is truncated, and what came after is not evidence`, {
      hint: 'the gateway (or the CLI) stopped before the session ended; hoop sessions verify --accept-truncated accepts what it holds',
      exitCode: 1,
    });
}

/**
 * What the gateway's index says of a session that its signed start does not (who and their groups,
 * where from, to which connection, when, in which run, by which agent and how, direct or not): the
 * index is a copy of what was signed,
 * and `hoop sessions show` and `ls` print it; undefined when every field agrees.
 */
export function indexDiffers(summary: SessionSummary, start: Record<string, unknown> | undefined): string | undefined {
  if (start === undefined) return 'it started, but its signed recording holds no start';
  const who = (start.identity ?? {}) as Record<string, unknown>;
  const fields: Array<[string, unknown, unknown]> = [
    ['subject', summary.subject, who.subject],
    ['issuer', summary.issuer, who.issuer],
    ['email', summary.email, who.email],
    ['groups', JSON.stringify(summary.groups), JSON.stringify(who.groups ?? [])],
    ['kind', summary.kind, who.kind ?? 'user'],
    ['connection', summary.connection, start.connection],
    ['type', summary.type, start.type ?? 'postgres'],
    ['remote', summary.remote, start.remote],
    ['client', summary.client, start.client],
    ['policy commit', summary.policyCommit, start.policyCommit],
    ['run', summary.runId, start.runId],
    ['via', summary.via, start.via],
    ['agent', summary.agent, start.agent],
    ['isolated', summary.isolated, start.isolated],
    ['direct', summary.direct, start.direct === true ? true : undefined],
    ['started', Date.parse(summary.startedAt), start.at],
  ];
  const wrong = fields.find(([, listed, signed]) => listed !== signed);
  return wrong && `${wrong[0]} ${JSON.stringify(wrong[1])} where its signed recording says ${JSON.stringify(wrong[2])}`;
}

/** Prints a verification (as JSON with --json, else in one line) and fails (exit 1) when it failed. */
type ReportCheck = (check: RecordingCheck, what: string, running?: boolean) => void;

/** `hoop sessions verify`: a recording directory (--file), or a session's recording and the CLI's record of it. */
export async function verifyRecordings(io: CliIo, id: string | undefined, flags: VerifyFlags): Promise<void> {
  if (id === undefined && flags.file === undefined)
    throw new HoopError(ErrorCode.USAGE, 'give a session id or --file DIR', { hint: 'hoop sessions verify <id>, or hoop sessions verify --file ./recording [<id>] --key "ssh-ed25519 AAAA..."' });
  const report: ReportCheck = (check, what, running = false) => {
    if (flags.json) printJson(io, check);
    else io.stdout.write(`${what}: ${verdict(check, running)}\n`);
    mustVerify(check, what);
  };
  if (flags.file !== undefined) {
    await verifyFile(io, id, flags, flags.file, report);
    return;
  }
  if (RUN_ID.test(id!)) return verifyRun(io, id!, flags, report);
  await verifySession(io, id!, flags, report);
}

/** `hoop sessions verify <id>`: the gateway's recording, then the CLI's record of it and how the two agree; of run `runId`, its signed start must say so. */
async function verifySession(io: CliIo, id: string, flags: VerifyFlags, report: ReportCheck, runId?: string): Promise<void> {
  await withVerifiedRecording(io, flags, id, async (dir, check, summary, api) => {
    if (!flags.json) report(check, `session ${summary.id}`, summary.recording === 'running');
    if (check.manifest !== undefined) {
      let start: Record<string, unknown> | undefined;
      for await (const e of readEvents(dir, check.manifest)) {
        if (e.t !== 'start') continue;
        start = e as Record<string, unknown>;
        break;
      }
      if (runId !== undefined && start?.runId !== runId)
        throw new HoopError(
          ErrorCode.RECORDING_INVALID,
          `session ${summary.id} is listed under run ${runId}, but its signed recording says ${typeof start?.runId === 'string' ? `run ${start.runId}` : 'no run'}`,
          {
            hint: "the gateway's index was altered: the recording is what was signed",
            exitCode: 1,
          },
        );
      const differs = indexDiffers(summary, start);
      if (differs)
        throw new HoopError(ErrorCode.RECORDING_INVALID, `session ${summary.id}: the gateway's index says ${differs}`, {
          hint: "the gateway's index was altered: the recording is what was signed (hoop sessions export shows it)",
          exitCode: 1,
        });
    }
    await verifyClientRecord(io, flags, dir, check, summary, api);
    mustBeWhole(check, `session ${summary.id}`, flags, summary.recording === 'running');
  });
}

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
  for (const id of listed) if (named !== undefined && !named.includes(id)) failures.push(`the gateway lists session ${id} under run ${runId}, which the run's record does not name`);
  for (const id of listed) await attempt(() => verifySession(io, id, flags, report, runId));
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
    mustBeWhole(check, `run ${runId}'s record`, flags, false);
    const sessions: string[] = [];
    for await (const e of readEvents(dir, check.manifest!)) if (e.t === 'session') sessions.push(String(e.id));
    return sessions;
  } finally {
    provider.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Refuses a recording (a directory, or a gateway's archive) that cannot be read at all, as the system says why (exit 66: no such file): the user's input, not evidence that fails. */
async function mustBeReadable(dir: string): Promise<void> {
  try {
    await (isRecordingArchive(dir) ? await open(dir) : await opendir(dir)).close();
  } catch (err) {
    const e = systemErrorOf(err);
    if (e?.exitCode !== ExitCode.NOINPUT) throw e ?? err;
    throw new HoopError(e.code, e.message, {
      hint: 'give a recording directory (the recording/ of an unpacked `hoop sessions export ID --format bundle`) or the archive a gateway keeps one in (its dataDir/recordings/<id>.tar)',
      exitCode: e.exitCode,
      cause: err,
    });
  }
}

/** `hoop sessions verify --file DIR [id]`: against the --key keys, or else the gateway's published ones. */
async function verifyFile(io: CliIo, id: string | undefined, flags: VerifyFlags, file: string, report: ReportCheck): Promise<void> {
  await mustBeReadable(resolve(io.cwd, file));
  let keys;
  if (flags.key?.length)
    keys = flags.key.map((k) => {
      try {
        return parseSshPublicKey(k);
      } catch (err) {
        throw new HoopError(ErrorCode.USAGE, `--key ${JSON.stringify(k.length > 60 ? `${k.slice(0, 57)}...` : k)} is not an ssh-ed25519 public key: ${describeError(err)}`, {
          hint: 'pass the key as an allowed-signers file or `GET /v1/keys` shows it: "ssh-ed25519 AAAA..." (hoop sessions verify --file DIR --key "ssh-ed25519 AAAA...")',
        });
      }
    });
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
  mustBeWhole(check, `${file} (recording ${check.id ?? 'of no id'})`, flags, false);
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
      printJson(io, { ...check, client: client.check ?? null, clientRecord: client.info, ...(cross ? { crossCheck: cross } : {}) });
      mustVerify(check, `session ${summary.id}`);
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
