/**
 * Reading the gateway's recordings from the CLI: session `id`'s recording downloaded to a
 * temporary directory and verified against the gateway's published keys, a CLI's own record
 * verified against the device key it was uploaded with, and their events read (a CLI's `wire`
 * events through the protocol's decoder), a recording's transcript, and the sessions listed as
 * this machine knows them. `hoop sessions` and `hoop policy test` read them so.
 *
 * @see ../../docs/recording-format.md
 */
import { realClock } from '../clock.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { downloadClientRecord } from '../api-client/records.js';
import { downloadRecording, getRecordingKeys, getSession, listSessions } from '../api-client/sessions.js';
import type { ClientRecordInfo, SessionSummary } from '../api/answers.js';
import type { GatewayEndpoint } from '../api-client/request.js';
import { ErrorCode, HoopError, isHoopError } from '../errors.js';
import type { CliIo } from '../io.js';
import { RECORD_DECODERS } from '../lanes/record-decoders.js';
import { readEvents as readRecording } from '../recording/read.js';
import type { RecordKind } from '../recording/spool.js';
import { parseSshPublicKey } from '../recording/sshsig.js';
import { verifyRecording, type RecordingCheck } from '../recording/verify.js';
import { TranscriptRenderer, type TranscriptLine } from '../ui/transcript.js';
import { uploadLeftovers } from './client-records.js';
import { commandTokenProvider, type GatewayFlags } from './client-config.js';

/** A verified recording's events (a gateway's or a CLI's), in one shape. */
export function readEvents(dir: string, manifest: string): ReturnType<typeof readRecording> {
  return readRecording(dir, manifest, RECORD_DECODERS);
}

/** The flags every `hoop sessions` subcommand takes. */
export interface SessionsFlags extends GatewayFlags {
  json?: boolean;
}

/**
 * The sessions `hoop sessions ls` lists: this machine's leftover records uploaded first, then the
 * sessions that match `filter`, and (`local`) those whose CLI record this machine still holds.
 */
export async function listSessionsFromHere(io: CliIo, flags: GatewayFlags, filter: Record<string, string>): Promise<{ sessions: SessionSummary[]; local: Set<string> }> {
  const provider = await commandTokenProvider(io, flags);
  try {
    const local = await uploadLeftovers(io, provider);
    const { sessions } = await listSessions({ gateway: provider.gateway, ca: provider.ca }, (await provider.current()).token, filter);
    return { sessions, local };
  } finally {
    provider.close();
  }
}

/** How a command that already holds a token reaches the gateway. */
export interface GatewayApi {
  endpoint: GatewayEndpoint;
  token: string;
}

/** The CLI's record of a session (or a run) checked: downloaded, verified against the key that signed it. */
export interface ClientRecordCheck {
  /** What the gateway holds of it (null: nothing uploaded). */
  info: ClientRecordInfo['record'];
  check?: RecordingCheck;
}

/**
 * Downloads the CLI's record of a session or run into `dir` and verifies it against the device
 * key the gateway accepted it with (registered to its uploader, who is the session's owner).
 */
export async function verifiedClientRecord(api: GatewayApi, kind: RecordKind, id: string, dir: string): Promise<ClientRecordCheck> {
  let info: ClientRecordInfo;
  try {
    info = await downloadClientRecord(api.endpoint, api.token, kind, id, dir);
  } catch (err) {
    if (kind === 'runs' && isHoopError(err, ErrorCode.SESSION_UNKNOWN)) return { info: null };
    throw err;
  }
  if (!info.record?.signer) return { info: info.record };
  return { info: info.record, check: await verifyRecording(dir, [parseSshPublicKey(info.record.signer)], undefined, id) };
}

/**
 * Downloads session `id`'s recording to a temporary directory, verifies it against the gateway's
 * published keys, and hands it to `use` (the directory is removed after).
 */
export async function withVerifiedRecording<T>(
  io: CliIo,
  flags: GatewayFlags,
  id: string,
  use: (dir: string, check: RecordingCheck, summary: SessionSummary, api: GatewayApi) => Promise<T>,
): Promise<T> {
  const provider = await commandTokenProvider(io, flags);
  const dir = await mkdtemp(join(tmpdir(), 'hoop-recording-'));
  try {
    const endpoint = { gateway: provider.gateway, ca: provider.ca };
    const { token } = await provider.current();
    if (id === 'last') id = await lastEnded(endpoint, token, io.signal);
    await uploadLeftovers(io, provider).catch(() => undefined);
    const summary = await getSession(endpoint, token, id);
    await downloadRecording(endpoint, token, id, dir);
    const keys = (await getRecordingKeys(endpoint)).map((k) => parseSshPublicKey(k.publicKey));
    const check = await verifyRecording(dir, keys, undefined, id);
    return await use(dir, check, summary, { endpoint, token });
  } finally {
    provider.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** How long `last` waits for the end of a session whose client has left (its recording being cut). */
const ENDING_WAIT_MS = 30_000;

/**
 * The newest session that ended, or whose client has left and whose end the gateway is writing
 * (waited for: `hoop exec …; hoop sessions replay last` names the exec's session); a running one is
 * named by its id.
 */
async function lastEnded(endpoint: GatewayEndpoint, token: string, signal: AbortSignal): Promise<string> {
  const { sessions } = await listSessions(endpoint, token);
  let newest: SessionSummary | undefined;
  for (const s of sessions) if ((s.endedAt !== undefined || s.reason === 'ending') && (!newest || s.startedAt > newest.startedAt)) newest = s;
  if (!newest) throw new HoopError(ErrorCode.SESSION_UNKNOWN, 'you have no ended sessions yet', { hint: '`hoop sessions ls` lists them, running ones too' });
  const deadline = realClock.now() + ENDING_WAIT_MS;
  while (newest.endedAt === undefined) {
    if (realClock.now() > deadline) {
      throw new HoopError(ErrorCode.SESSION_UNKNOWN, `session ${newest.id} is still ending: its recording is not written yet`, {
        hint: `try again in a moment, or name it: \`hoop sessions replay ${newest.id}\``,
      });
    }
    await sleep(100, undefined, { signal });
    newest = await getSession(endpoint, token, newest.id);
  }
  return newest.id;
}

/** Refuses a recording that does not verify (one of a running session without a signed checkpoint yet, saying so): nothing of it is shown. */
export function refuseInvalid(check: RecordingCheck, id: string, summary: SessionSummary): void {
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

/** A verified recording as psql would have shown it, line by line with its time; then whether it is still running or was cut short. */
export async function* transcript(dir: string, check: RecordingCheck, summary: SessionSummary): AsyncGenerator<TranscriptLine> {
  const renderer = new TranscriptRenderer();
  for await (const e of readEvents(dir, check.manifest!)) yield* renderer.render(e);
  if (summary.recording === 'running') yield { at: realClock.now(), text: '-- the session is still running: this is its recording to its last checkpoint' };
  else if (check.truncated) yield { at: realClock.now(), text: '-- the recording ends here: the session was cut short (its last checkpoint)' };
}
