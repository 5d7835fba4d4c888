/**
 * The gateway's recordings in its data directory: the Ed25519 key that signs them
 * (`keys/recording-ed25519.pem`, made on first start; older keys kept as `keys/retired-*.pem` stay
 * published so old recordings still verify), one directory per session under `recordings/`
 * (the format of src/recording/writer.ts), and the sessions index `sessions.jsonl`: one line per
 * ended session, appended and fsynced, that `hoop sessions ls` searches without opening recordings.
 *
 * @see docs/recording-format.md
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { mkdir, open, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, HoopError, describeError } from '../errors.js';
import { generateSigningKey, signingKeyFromPem, sshFingerprint, sshPublicKeyLine } from '../recording/sshsig.js';
import { RecordingWriter } from '../recording/writer.js';

const KEY_FILE = 'recording-ed25519.pem';
const INDEX_FILE = 'sessions.jsonl';
const SESSION_ID = /^[A-Za-z0-9_-]{8,64}$/;

/** A published recording key (`GET /v1/keys`). */
export interface PublishedKey {
  /** `ssh-ed25519 AAAA…`, for an allowed-signers file. */
  publicKey: string;
  fingerprint: string;
  status: 'current' | 'retired';
}

/** One ended session in the index. */
export interface SessionSummary {
  id: string;
  subject: string;
  issuer: string;
  email?: string;
  groups: string[];
  kind: 'user' | 'workload';
  connection: string;
  type: string;
  remote: string;
  client?: string;
  policyCommit?: string;
  runId?: string;
  startedAt: string;
  endedAt: string;
  reason: string;
  /** Statements the client sent (Query and Execute). */
  statements: number;
  /** Statements the policy refused. */
  refused: number;
  /** The recording could not be written (onFailure: continue / refuse), or was closed early. */
  recording: 'complete' | 'failed' | 'none';
  bytesFromClient: number;
  bytesToClient: number;
}

/** See the module documentation. */
export class GatewayRecordings {
  readonly dir: string;
  readonly key: KeyObject;
  readonly #retired: KeyObject[];

  private constructor(dir: string, key: KeyObject, retired: KeyObject[]) {
    this.dir = dir;
    this.key = key;
    this.#retired = retired;
  }

  /** Opens the recordings of the data directory `dataDir`, making the signing key on first use. */
  static async open(dataDir: string): Promise<GatewayRecordings> {
    const keys = join(dataDir, 'keys');
    try {
      await mkdir(keys, { recursive: true, mode: 0o700 });
      await mkdir(join(dataDir, 'recordings'), { recursive: true, mode: 0o700 });
      let pem: string;
      try {
        pem = await readFile(join(keys, KEY_FILE), 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        pem = generateSigningKey().pem;
        const handle = await open(join(keys, KEY_FILE), 'wx', 0o600);
        await handle.writeFile(pem);
        await handle.sync();
        await handle.close();
      }
      const retired: KeyObject[] = [];
      for (const f of (await readdir(keys)).filter((f) => /^retired-.*\.pem$/.test(f)).sort()) retired.push(signingKeyFromPem(await readFile(join(keys, f), 'utf8')));
      return new GatewayRecordings(dataDir, signingKeyFromPem(pem), retired);
    } catch (err) {
      throw new HoopError(ErrorCode.CONFIG_INVALID, `cannot use the recording key in ${keys}: ${describeError(err)}`, {
        hint: 'check the permissions of dataDir; a key file must be an Ed25519 private key in PEM',
      });
    }
  }

  /** The keys recordings are checked against: the current one, then retired ones. */
  publicKeys(): PublishedKey[] {
    return [
      { publicKey: sshPublicKeyLine(this.key), fingerprint: sshFingerprint(this.key), status: 'current' as const },
      ...this.#retired.map((k) => ({ publicKey: sshPublicKeyLine(k), fingerprint: sshFingerprint(k), status: 'retired' as const })),
    ];
  }

  /** The public halves of {@link publicKeys}, to verify with. */
  trustedKeys(): KeyObject[] {
    return [createPublicKey(this.key), ...this.#retired.map((k) => createPublicKey(k))];
  }

  /** The directory of session `id`'s recording (undefined for an id that is not one). */
  recordingDir(id: string): string | undefined {
    return SESSION_ID.test(id) ? join(this.dir, 'recordings', id) : undefined;
  }

  /** Starts the recording of session `id`. */
  start(id: string): Promise<RecordingWriter> {
    const dir = this.recordingDir(id);
    if (!dir) throw new Error(`not a session id: ${id}`);
    return RecordingWriter.create({ dir, id, key: this.key });
  }

  /** Adds an ended session to the index (one line, fsynced). */
  async index(summary: SessionSummary): Promise<void> {
    const handle = await open(join(this.dir, INDEX_FILE), 'a', 0o600);
    try {
      await handle.write(`${JSON.stringify(summary)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /** The index, newest first. */
  async sessions(): Promise<SessionSummary[]> {
    let text: string;
    try {
      text = await readFile(join(this.dir, INDEX_FILE), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: SessionSummary[] = [];
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        out.push(JSON.parse(line) as SessionSummary);
      } catch {
        /* a line cut by a crash mid-write */
      }
    }
    return out.reverse();
  }
}
