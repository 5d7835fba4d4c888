/**
 * The CLIs' own records, uploaded to the gateway: each CLI records its side of the sessions it
 * relays, and a `hoop run` records the run as one unit (command line, working directory, prompt,
 * exit code), in the recording format of src/recording/writer.ts, signed with a device key its
 * owner registered (`POST /v1/devices`). They are kept apart from the gateway's own recordings,
 * under `client-records/sessions/<id>` and `client-records/runs/<id>` in the data directory.
 *
 * Uploads are per file and idempotent: a file already held with the same bytes is answered as
 * stored, with other bytes as a conflict (a record is never written over). Only a session's owner
 * may upload its record; a run belongs to whoever uploaded to it first. When a signature arrives
 * (the final manifest's or a checkpoint's), the record is verified against the uploader's device
 * keys and must name the session or run it is uploaded as; one that does not verify is refused:
 * a record that never verified is dropped whole, otherwise only that signature is not kept. `record.json` then says who signed it and whether it is complete
 * (a CLI killed mid-session leaves a record that verifies to its last checkpoint: truncated).
 *
 * @see docs/recording-format.md ("The CLI's records")
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../durable-file.js';
import { ErrorCode, HoopError } from '../errors.js';
import type { DeviceOwner } from './store.js';
import { sshFingerprint, sshPublicKeyLine } from '../recording/sshsig.js';
import { verifyRecording, type RecordingCheck } from '../recording/verify.js';
import { RECORDING_FILE } from '../recording/writer.js';
import { HttpError } from './http-error.js';
import type { RecordKind } from '../recording/spool.js';


const ID = /^[A-Za-z0-9_-]{8,64}$/;
const STATE_FILE = 'record.json';
/**
 * Largest file and most files of a record, per kind: a session's chunk is cut at 256 KiB of
 * events (gzip makes it smaller; one event may pass it); a run holds a few events per session.
 */
const LIMITS: Record<RecordKind, { fileBytes: number; files: number }> = {
  sessions: { fileBytes: 4 * 1024 * 1024, files: 20_000 },
  runs: { fileBytes: 256 * 1024, files: 64 },
};
/** Largest request body an upload may have. */
export const MAX_RECORD_FILE_BYTES = LIMITS.sessions.fileBytes;
/** Verifications that run at once (each reads a whole record): the rest wait their turn. */
const MAX_VERIFYING = 2;

/** What `record.json` holds. */
export interface ClientRecordState {
  kind: RecordKind;
  id: string;
  /** Who uploaded it (a session's owner; a run's first uploader). */
  issuer: string;
  subject: string;
  /** `complete`: its final manifest verified; `truncated`: a checkpoint did (the CLI stopped mid-session); `uploading`: no signature yet. */
  state: 'uploading' | 'complete' | 'truncated';
  /** The device key that signed it (`ssh-ed25519 …`), and its fingerprint. */
  signer?: string;
  fingerprint?: string;
  chunks?: number;
  events?: number;
  /** The signature it was last verified with. */
  verified?: string;
  updatedAt: string;
}

/** A device key the uploader registered, to verify with. */
export interface UploaderKey {
  publicKey: string;
}

/** See the module documentation. */
export class ClientRecords {
  readonly #root: string;
  /** The state of every record, by `kind/id`, for listings without a disk read per session. */
  readonly #states = new Map<string, ClientRecordState>();
  /** Uploads to one record run one after the other. */
  readonly #queues = new Map<string, Promise<unknown>>();
  #verifying = 0;
  readonly #waiting: Array<() => void> = [];

  private constructor(root: string) {
    this.#root = root;
  }

  /** Opens (and creates) `<dataDir>/client-records`, reading the state of every record. */
  static async open(dataDir: string): Promise<ClientRecords> {
    const records = new ClientRecords(join(dataDir, 'client-records'));
    for (const kind of ['sessions', 'runs'] as const) {
      const dir = join(records.#root, kind);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      for (const id of await readdir(dir)) {
        const state = await readFile(join(dir, id, STATE_FILE), 'utf8').then((t) => JSON.parse(t) as ClientRecordState, () => undefined);
        if (state) records.#states.set(`${kind}/${id}`, state);
      }
    }
    return records;
  }

  /** The state of a record, if any of it was uploaded. */
  state(kind: RecordKind, id: string): ClientRecordState | undefined {
    return this.#states.get(`${kind}/${id}`);
  }

  /** The directory of a record (undefined for an id that is not one). */
  dir(kind: RecordKind, id: string): string | undefined {
    return ID.test(id) ? join(this.#root, kind, id) : undefined;
  }

  /** The files of a record held so far, sorted. */
  async files(kind: RecordKind, id: string): Promise<string[]> {
    const dir = this.dir(kind, id);
    if (!dir) return [];
    return (await readdir(dir).catch(() => [])).filter((f) => RECORDING_FILE.test(f)).sort();
  }

  /**
   * Stores one file of a record uploaded by `owner` (the caller checked that `owner` may upload to
   * it: a session's owner). Resolves `stored: false` when the same bytes were already there.
   * Verifies the record when `name` is a signature, against `keys` (the uploader's device keys).
   *
   * @throws HttpError 403 (another's record), 409 (other bytes under a held name; a complete record), 413, 422 (does not verify); HoopError USAGE (not a record's file)
   */
  put(kind: RecordKind, id: string, name: string, data: Buffer, owner: DeviceOwner, keys: () => Promise<UploaderKey[]>): Promise<{ stored: boolean; state: ClientRecordState }> {
    const key = `${kind}/${id}`;
    const run = (this.#queues.get(key) ?? Promise.resolve()).then(() => this.#put(kind, id, name, data, owner, keys));
    const settled = run.catch(() => undefined);
    this.#queues.set(key, settled);
    void settled.then(() => {
      if (this.#queues.get(key) === settled) this.#queues.delete(key);
    });
    return run;
  }

  async #put(kind: RecordKind, id: string, name: string, data: Buffer, owner: DeviceOwner, keys: () => Promise<UploaderKey[]>): Promise<{ stored: boolean; state: ClientRecordState }> {
    const dir = this.dir(kind, id);
    if (!dir || !RECORDING_FILE.test(name)) throw new HoopError(ErrorCode.USAGE, `a record holds no file ${name}`, { hint: 'upload the files hoop wrote: events-NNNNNN.jsonl.gz, SHA256SUMS, checkpoints, and their .sig' });
    let state = this.state(kind, id);
    if (state && (state.issuer !== owner.issuer || state.subject !== owner.subject)) {
      throw new HttpError(403, `the ${kind === 'runs' ? 'run' : 'session'} ${id} has a record uploaded by someone else`, { hint: 'a record is uploaded by the identity that made it' });
    }
    const limits = LIMITS[kind];
    if (data.length > limits.fileBytes) throw new HttpError(413, `${name} is larger than the ${limits.fileBytes / 1024} KiB a file of this record may be`);
    const file = join(dir, name);
    const held = await readFile(file).catch(() => undefined);
    if (held) {
      if (!held.equals(data)) throw new HttpError(409, `${name} of ${id} is already uploaded with other bytes; a record is never written over`, { hint: 'this spool does not match what was uploaded before: keep it for an investigation' });
      // A signature held but not yet acted on (the gateway stopped in between) is verified again.
      if (state === undefined) throw new HttpError(409, `${name} of ${id} is held without its record's state; ask the gateway's operators`);
      if (!name.endsWith('.sig') || state.state === 'complete' || state.verified === name) return { stored: false, state };
    } else {
      if (state?.state === 'complete') throw new HttpError(409, `the record of ${id} is complete; it takes no more files`);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      if (!state) {
        state = { kind, id, issuer: owner.issuer, subject: owner.subject, state: 'uploading', updatedAt: new Date().toISOString() };
        await this.#save(dir, state);
      }
      if ((await readdir(dir)).length >= limits.files) throw new HttpError(413, `the record of ${id} already holds ${limits.files} files`);
      await writeFileAtomic(file, data, dir);
      if (!name.endsWith('.sig')) return { stored: true, state };
    }

    // A signature: the record must verify with it, as the record of this id, by a key of the uploader (the same key as its first signature).
    const trusted = (await keys()).map((k) => createPublicKey(k.publicKey));
    const check = await this.#verify(dir, trusted);
    const problems = [...check.problems];
    if (check.ok && check.id !== id) problems.push(`it is the record of ${check.id ?? 'nothing'}, not of ${id}`);
    if (check.ok && state.fingerprint !== undefined && check.signer !== state.fingerprint) problems.push(`it is signed by ${check.signer}, not by ${state.fingerprint} as it was first`);
    if (problems.length > 0 || !check.manifest || `${check.manifest}.sig` !== name) {
      // Nothing of a record that never verified is kept (its owner may upload the right one); of one that did, only the new manifest and signature go.
      if (state.state === 'uploading') await this.remove(kind, id);
      else {
        await rm(file, { force: true });
        await rm(file.slice(0, -'.sig'.length), { force: true });
      }
      throw new HttpError(422, `the record of ${id} does not verify with ${name}: ${problems.join('; ') || `the newest signed manifest is ${check.manifest ?? 'none'}`}`, {
        hint: trusted.length === 0 ? 'register the key that signs it first (`hoop login`, or hoop registers one for a token from the environment)' : 'upload its chunks before the manifest, signed by a device key you registered',
      });
    }
    const signer = signerOf(check, trusted);
    state = {
      ...state,
      state: check.complete ? 'complete' : 'truncated',
      ...(signer ? { signer: sshPublicKeyLine(signer), fingerprint: sshFingerprint(signer) } : {}),
      chunks: check.chunks,
      events: check.events,
      verified: name,
      updatedAt: new Date().toISOString(),
    };
    await this.#save(dir, state);
    return { stored: !held, state };
  }

  /** Verifies a record, at most {@link MAX_VERIFYING} at once. */
  async #verify(dir: string, trusted: KeyObject[]): Promise<RecordingCheck> {
    if (this.#verifying >= MAX_VERIFYING) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.#verifying++;
    try {
      return await verifyRecording(dir, trusted);
    } finally {
      this.#verifying--;
      this.#waiting.shift()?.();
    }
  }

  async #save(dir: string, state: ClientRecordState): Promise<void> {
    await writeFileAtomic(join(dir, STATE_FILE), `${JSON.stringify(state)}\n`, dir);
    this.#states.set(`${state.kind}/${state.id}`, state);
  }

  /** Removes a record (retention: the session's gateway recording went). */
  async remove(kind: RecordKind, id: string): Promise<void> {
    const dir = this.dir(kind, id);
    if (!dir || !(await stat(dir).then(() => true, () => false))) return;
    await rm(dir, { recursive: true, force: true });
    this.#states.delete(`${kind}/${id}`);
  }
}

function signerOf(check: RecordingCheck, trusted: KeyObject[]): KeyObject | undefined {
  return trusted.find((k) => sshFingerprint(k) === check.signer);
}
