/**
 * `hoop sessions export <run-id> --format bundle`: a run's evidence as one archive (tar.gz) that
 * anyone can check without hoop: the run's own record (signed by the CLI that ran it: its command,
 * its prompt, the sessions it began, how it ended), every session's recording as the gateway signed
 * it and the CLI's record of it, the keys as an OpenSSH allowed-signers file, and `verify.sh`,
 * which checks all of it with `sha256sum`, `ssh-keygen`, `jq` and `zcat`: every chunk against its
 * signed manifest, the chain of chunks and the recording each names, that the run's record and the
 * gateway's agree on which sessions the run had, and that each session's CLI record and gateway
 * recording agree on its statements and their outcomes (./run-bundle-check.ts).
 *
 * @see https://man.openbsd.org/ssh-keygen#ALLOWED_SIGNERS
 */
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGzip } from 'node:zlib';
import type { RecordingKey, SessionSummary } from '../api/answers.js';
import { downloadRecording, getRecordingKeys, listSessions } from '../api-client/sessions.js';
import { ErrorCode, HoopError } from '../errors.js';
import type { CliIo } from '../io.js';
import { parseSshPublicKey } from '../recording/sshsig.js';
import { TarWriter } from '../recording/tar.js';
import { type RecordingCheck, verifyRecording } from '../recording/verify.js';
import { RECORDING_NAMESPACE } from '../recording/writer.js';
import { commandTokenProvider, type GatewayFlags } from './client-config.js';
import { refuseTerminal } from './evidence-bundle.js';
import { type RecordEntry, verifyScript } from './run-bundle-check.js';
import { verifiedClientRecord } from './recordings-fetch.js';

/** The principals the allowed-signers file names the keys by. */
const GATEWAY = 'hoop-gateway';
const CLI = 'hoop-cli';

/** Refuses a record that does not verify: a bundle holds only evidence that checks. */
function verified(check: RecordingCheck, what: string): RecordingCheck & { manifest: string; signer: string } {
  if (!check.ok || !check.manifest || !check.signer)
    throw new HoopError(ErrorCode.RECORDING_INVALID, `${what} does not verify: ${check.problems[0] ?? 'no signed manifest'}`, { hint: '`hoop sessions verify` says what is wrong', exitCode: 1 });
  return check as RecordingCheck & { manifest: string; signer: string };
}

/** Writes the bundle of run `runId` to stdout (never to a terminal). */
export async function writeRunBundle(io: CliIo, runId: string, flags: GatewayFlags): Promise<void> {
  refuseTerminal(io, runId);
  const provider = await commandTokenProvider(io, flags);
  const tmp = await mkdtemp(join(tmpdir(), 'hoop-run-bundle-'));
  try {
    const endpoint = { gateway: provider.gateway, ca: provider.ca };
    const api = { endpoint, token: (await provider.current()).token };
    const keys = await getRecordingKeys(endpoint);
    const trusted = keys.map((k) => parseSshPublicKey(k.publicKey));
    const sessions = (await listSessions(endpoint, api.token, { run: runId })).sessions.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
    const run = await verifiedClientRecord(api, 'runs', runId, join(tmp, 'run'));
    if (!run.check) {
      throw new HoopError(ErrorCode.SESSION_UNKNOWN, `run ${runId}: the gateway holds no record of it signed by its CLI${sessions.length ? '' : ', and no session of it that you may see'}`, {
        hint: "the run's CLI uploads its record when the run ends; `hoop sessions ls --run ID` lists its sessions",
      });
    }
    const records: RecordEntry[] = [{ dir: 'run', id: runId, manifest: verified(run.check, `the record of run ${runId}`).manifest, signer: CLI }];
    const signers = new Map<string, string>([[run.info!.signer!, CLI]]);
    for (const s of sessions) {
      const gateway = join(tmp, 'sessions', s.id, 'gateway');
      await mkdir(gateway, { recursive: true });
      await downloadRecording(endpoint, api.token, s.id, gateway);
      const check = verified(await verifyRecording(gateway, trusted, undefined, s.id), `the gateway's recording of session ${s.id}`);
      signers.set(gatewayKey(keys, check.signer).publicKey, GATEWAY);
      records.push({ dir: `sessions/${s.id}/gateway`, id: s.id, manifest: check.manifest, signer: GATEWAY, session: s.id });
      const client = await verifiedClientRecord(api, 'sessions', s.id, join(tmp, 'sessions', s.id, 'client'));
      if (!client.check) continue;
      const cc = verified(client.check, `the CLI's record of session ${s.id}`);
      signers.set(client.info!.signer!, CLI);
      records.push({ dir: `sessions/${s.id}/client`, id: s.id, manifest: cc.manifest, signer: CLI, session: s.id, client: true });
    }
    await writeArchive(io, `hoop-run-${runId}`, tmp, { runId, gateway: String(endpoint.gateway), sessions, records, signers });
  } finally {
    provider.close();
    await rm(tmp, { recursive: true, force: true });
  }
}

/** The published key whose fingerprint is `fingerprint`. */
function gatewayKey(keys: readonly RecordingKey[], fingerprint: string): RecordingKey {
  const key = keys.find((k) => k.fingerprint === fingerprint);
  if (!key) throw new HoopError(ErrorCode.RECORDING_INVALID, `the gateway does not publish the key that signed a recording of the run (${fingerprint})`);
  return key;
}

/** What the archive holds besides the records' files. */
interface ArchiveParts {
  runId: string;
  gateway: string;
  sessions: SessionSummary[];
  records: RecordEntry[];
  /** Public key line → principal. */
  signers: Map<string, string>;
}

/** Streams the archive: README, verify.sh, allowed_signers, each session's index entry, every record's files. */
async function writeArchive(io: CliIo, root: string, tmp: string, p: ArchiveParts): Promise<void> {
  const gz = createGzip();
  gz.pipe(io.stdout, { end: false });
  const tar = new TarWriter(gz);
  await tar.directory(root);
  await tar.bytes(`${root}/README.txt`, Buffer.from(readme(p)));
  await tar.bytes(`${root}/verify.sh`, Buffer.from(verifyScript(p.runId, p.records)));
  await tar.bytes(`${root}/allowed_signers`, Buffer.from([...p.signers].map(([key, who]) => `${who} namespaces="${RECORDING_NAMESPACE}" ${key}\n`).join('')));
  for (const s of p.sessions) await tar.bytes(`${root}/sessions/${s.id}/session.json`, Buffer.from(`${JSON.stringify(s, null, 2)}\n`));
  for (const r of p.records) {
    await tar.directory(`${root}/${r.dir}`);
    for (const name of (await readdir(join(tmp, r.dir))).sort()) {
      const path = join(tmp, r.dir, name);
      await tar.file(`${root}/${r.dir}/${name}`, path, (await stat(path)).size);
    }
  }
  await tar.end();
  gz.end();
  await once(gz, 'end');
}

/** How the bundle is laid out and checked, for someone who has only standard tools. */
function readme(p: ArchiveParts): string {
  const clients = p.records.filter((r) => r.client).length;
  return `hoop run ${p.runId}
Recorded by the gateway ${p.gateway}: ${p.sessions.length} session(s), ${clients} with the CLI's own record.

  run/                      the run's own record, signed by the CLI that ran it (hoop-cli):
                            its command, prompt, agent, the sessions it began, how it ended
  sessions/ID/gateway/      each session's recording, signed by the gateway (hoop-gateway)
  sessions/ID/client/       the CLI's record of the same session (hoop-cli), where it kept one
  sessions/ID/session.json  the gateway's index entry for the session (not signed)
  allowed_signers           the keys, for ssh-keygen -Y verify (namespace ${RECORDING_NAMESPACE})

Check it with standard tools alone (coreutils, OpenSSH 8.2 or later, jq, zcat):

  sh verify.sh

For each record it checks every chunk against the signed manifest (sha256sum -c), the manifest's
signature (ssh-keygen -Y verify), and that each chunk's first line names its recording and the
SHA-256 of the chunk before, and that the gateway's recordings and the run's record are whole (sealed:
a recording its gateway stopped before it ended verifies only up to a checkpoint, and what came after
is not evidence; sh verify.sh --accept-truncated accepts what it holds). Then that the sessions the
run's record names are the sessions here,
and that each session's CLI record and gateway recording agree on the statements sent and the
outcomes the client received. Read verify.sh before you run it: it is short, and the keys are only
as good as where they came from (compare ssh-keygen -lf allowed_signers with the gateway's
published keys, GET /v1/keys, and with the device key the person registered).

Read a record only through its signed manifest, never by a glob: a file the manifest does not name is
no part of the evidence (verify.sh fails on one). The run's own record holds events as gzip JSON lines:

  cd run && while read -r sum name; do zcat "$name"; done < SHA256SUMS

(a record cut short: the checkpoint verify.sh names instead of SHA256SUMS). A session's records keep
the messages as they crossed: after each chunk's first line, records
of [kind: 1 byte][length: 4 bytes, little-endian][time: 8 bytes][bytes], kind 1 an event as JSON;
verify.sh decodes them with jq.
`;
}
