/**
 * `hoop sessions export <id> --format bundle`: a session's evidence as one archive (tar.gz) that
 * anyone can check without hoop: the recording as the gateway signed it, the key that signed it as
 * an OpenSSH allowed-signers file, the session as the index lists it, and a README saying how to
 * check it with `sha256sum` and `ssh-keygen -Y verify` alone.
 *
 * @see https://man.openbsd.org/ssh-keygen#ALLOWED_SIGNERS
 * @see https://www.rfc-editor.org/rfc/rfc1952 (gzip)
 */
import { once } from 'node:events';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createGzip } from 'node:zlib';
import type { RecordingKey, SessionSummary } from '../api/answers.js';
import { ErrorCode, HoopError } from '../errors.js';
import type { CliIo } from '../io.js';
import { TarWriter } from '../recording/tar.js';
import type { RecordingCheck } from '../recording/verify.js';

/** The principal the allowed-signers file names the gateway's key by (`-I` of `ssh-keygen -Y verify`). */
const SIGNER = 'hoop-gateway';
/** The signatures' namespace (`-n`). */
const NAMESPACE = 'hoop-recording';

/** Refuses to write the bundle of `id` to a terminal. */
export function refuseTerminal(io: CliIo, id: string): void {
  if ((io.stdout as { isTTY?: boolean }).isTTY) {
    throw new HoopError(ErrorCode.USAGE, 'the bundle is a tar.gz archive, not for a terminal', { hint: `write it to a file: hoop sessions export ${id} --format bundle > ${id}.tar.gz` });
  }
}

/** Writes the bundle of a verified recording in `dir` to stdout (never to a terminal). */
export async function writeEvidenceBundle(io: CliIo, dir: string, check: RecordingCheck, summary: SessionSummary, keys: readonly RecordingKey[], gateway: string): Promise<void> {
  refuseTerminal(io, summary.id);
  const key = keys.find((k) => k.fingerprint === check.signer);
  if (!key || !check.manifest) {
    throw new HoopError(ErrorCode.RECORDING_INVALID, `the gateway does not publish the key that signed session ${summary.id}'s recording (${check.signer ?? 'none'})`, {
      hint: '`hoop sessions verify` says which key signed it',
    });
  }
  const root = `hoop-session-${summary.id}`;
  const gz = createGzip();
  gz.pipe(io.stdout, { end: false });
  const tar = new TarWriter(gz);
  await tar.directory(root);
  await tar.bytes(`${root}/README.txt`, Buffer.from(readme(summary, check, key, gateway)));
  await tar.bytes(`${root}/allowed_signers`, Buffer.from(`${SIGNER} namespaces="${NAMESPACE}" ${key.publicKey}\n`));
  await tar.bytes(`${root}/session.json`, Buffer.from(`${JSON.stringify(summary, null, 2)}\n`));
  await tar.directory(`${root}/recording`);
  for (const name of (await readdir(dir)).sort()) {
    const path = join(dir, name);
    const { size } = await stat(path);
    await tar.file(`${root}/recording/${name}`, path, size);
  }
  await tar.end();
  gz.end();
  await once(gz, 'end');
}

/** How to check the bundle, for someone who has only coreutils and OpenSSH. */
function readme(s: SessionSummary, check: RecordingCheck, key: RecordingKey, gateway: string): string {
  const m = check.manifest!;
  const state = check.complete ? 'complete' : `cut short: signed up to ${m}, ${check.unverified.length} chunk(s) after it unverified`;
  return `hoop session ${s.id}
${s.subject} on ${s.connection}, ${s.startedAt} to ${s.endedAt ?? '(running)'}
Recorded by the gateway ${gateway}; signed with ${key.fingerprint} (${key.status}); ${check.chunks} chunks, ${check.events} events; ${state}.

Check it with standard tools alone (coreutils, OpenSSH 8.2 or later):

  cd recording
  sha256sum -c ${m}
  ssh-keygen -Y verify -f ../allowed_signers -I ${SIGNER} -n ${NAMESPACE} -s ${m}.sig < ${m}

The first checks that every chunk is the one the manifest names; the second that the manifest was
signed by the key in allowed_signers. Neither checks for files the manifest does not name: they are
no part of the evidence (hoop sessions verify --file refuses them), so read the chunks through it,
in recording/: while read -r sum name; do zcat "$name"; done < ${m}

That key is only as good as where it came from: compare its fingerprint
(ssh-keygen -lf allowed_signers) with the one the gateway publishes (GET /v1/keys) or with your own
copy of it.

Each chunk is gzip: a first line of JSON that names the SHA-256 of the chunk before (which hoop
sessions verify --file also checks), then either the session's events as JSON lines
(events-*.jsonl.gz) or its records (records-*.gz): the protocol's messages as they crossed, and the
gateway's own events as JSON, each [kind: 1 byte][length: 4 bytes, little-endian][time: 8 bytes,
a little-endian double of milliseconds][bytes], kind 1 being an event (docs/recording-format.md
in hoop's source describes the rest). A recording closed in full ends with the event
{"t":"sealed","chunks":N} in its last chunk, N the chunks the manifest names: without it (a
checkpoint renamed), what came after is missing.
session.json is the gateway's index entry for the session (not signed).
`;
}
