/**
 * Reading the gateway's recordings from the CLI: session `id`'s recording downloaded to a
 * temporary directory and verified against the gateway's published keys, a CLI's own record
 * verified against the device key it was uploaded with, and their events read (a CLI's `wire`
 * events through the protocol's encoder). `hoop sessions` and `hoop policy test` read them so.
 *
 * @see ../../docs/recording-format.md
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { downloadClientRecord } from '../api-client/records.js';
import { downloadRecording, getRecordingKeys, getSession, listSessions } from '../api-client/sessions.js';
import type { ClientRecordInfo, SessionSummary } from '../api/answers.js';
import type { GatewayEndpoint } from '../api-client/request.js';
import { ErrorCode, HoopError, isHoopError } from '../errors.js';
import type { CliIo } from '../io.js';
import { createRecordEncoder as postgresRecordEncoder } from '../postgres/pipeline/recording/encoder.js';
import { readEvents as readRecording } from '../recording/read.js';
import type { RecordKind } from '../recording/spool.js';
import { parseSshPublicKey } from '../recording/sshsig.js';
import { verifyRecording, type RecordingCheck } from '../recording/verify.js';
import { uploadLeftovers } from './client-records.js';
import { commandTokenProvider, type GatewayFlags } from './client-config.js';

/** The encoders that read a CLI record's `wire` events (src/recording/wire.ts), by the protocol its start names. */
const WIRE_DECODERS = { postgres: { createRecordEncoder: postgresRecordEncoder } };

/** A verified recording's events (a gateway's or a CLI's), in one shape. */
export function readEvents(dir: string, manifest: string): ReturnType<typeof readRecording> {
  return readRecording(dir, manifest, WIRE_DECODERS);
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
    if (id === 'last') {
      // The newest session that ended (a running one is named by its id).
      const newest = (await listSessions(endpoint, token)).sessions.find((s) => s.endedAt !== undefined);
      if (!newest) throw new HoopError(ErrorCode.SESSION_UNKNOWN, 'you have no ended sessions yet', { hint: '`hoop sessions ls` lists them, running ones too' });
      id = newest.id;
    }
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
