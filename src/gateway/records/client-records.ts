/**
 * The CLIs' own records, uploaded to the gateway: each CLI records its side of the sessions it
 * relays, and a `hoop run` records the run as one unit (command line, working directory, prompt,
 * exit code), in the recording format of src/recording/writer.ts, signed with a device key its
 * owner registered (`POST /v1/devices`). They are kept apart from the gateway's own recordings.
 *
 * Uploads are per file and idempotent: a file already held with the same bytes is answered as
 * stored, with other bytes as a conflict (a record is never written over). Only a session's owner
 * may upload its record; a run belongs to whoever uploaded to it first. When a signature arrives
 * (the final manifest's or a checkpoint's), the record is verified against the uploader's device
 * keys and must name the session or run it is uploaded as; one that does not verify is refused:
 * a record that never verified is dropped whole, otherwise only that signature is not kept. The
 * record's state then says who signed it and whether it is complete (a CLI killed mid-session
 * leaves a record that verifies to its last checkpoint: truncated).
 *
 * Where records are kept is a {@link ClientRecordStore}, as the gateway's state is: with the file
 * store, files under `client-records/<sessions|runs>/<id>/` in the data directory with a
 * `record.json` ({@link FileClientRecordStore}); with the PostgreSQL store, `hoop.client_records`
 * and `hoop.client_record_files`, shared by every replica (./client-records-postgres.ts), so
 * successive uploads of one record may reach different replicas. The rules above live here alone,
 * whichever store: each upload runs with its record held ({@link ClientRecordStore.update}: one
 * upload to a record at a time, in this process and, with the shared store, on every replica),
 * reads what the store holds, and says what to write.
 *
 * @see docs/recording-format.md ("The CLI's records")
 * @see docs/deployment.md (replicas on one PostgreSQL store)
 */
import { realClock } from '../../clock.js';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { syncData, syncDirectory, writeFileAtomic } from '../../durable-file.js';
import * as z from 'zod';
import { ErrorCode, HoopError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { lineRecord, recordObject, skipRecord, storedTime } from '../../stored-record.js';
import type { DeviceOwner } from '../store/store.js';
import { sshFingerprint, sshPublicKeyLine } from '../../recording/sshsig.js';
import type { RecordingCheck, VerifiedBefore, verifyRecording } from '../../recording/verify.js';
import { verifyOffThread } from '../../recording/verify-thread.js';
import { RECORDING_FILE, uploadOrder } from '../../recording/writer.js';
import { isRecordingArchive, type RecordingFiles, recordingFiles } from '../../recording/recording-files.js';
import { tarOf } from '../../recording/tar.js';
import { HttpError } from '../http/http-error.js';
import type { RecordKind } from '../../recording/spool.js';
import { OwnerBytes } from './owner-bytes.js';
import { LruCache } from '../../policy/sql/lru.js';

/** Device keys parsed, by their text (a record's every signature is verified with its owner's keys). */
const deviceKeys = new LruCache<string, KeyObject>(256);

/** Device key `text` as a key object. */
function deviceKey(text: string): KeyObject {
  let key = deviceKeys.get(text);
  if (!key) deviceKeys.set(text, (key = createPublicKey(text)));
  return key;
}

/** A session's or a run's id, as a record's name. */
export const RECORD_ID = /^[A-Za-z0-9_-]{8,64}$/;
const STATE_FILE = 'record.json';
/**
 * Largest file, most files and most bytes of a record, per kind: a session's chunk is cut at 256
 * KiB of events (gzip makes it smaller; one event may pass it), and keeps at most 100 rows of a
 * result, as the gateway's recording does; a run holds a few events per session.
 */
const LIMITS: Record<RecordKind, { fileBytes: number; files: number; bytes: number }> = {
  sessions: { fileBytes: 4 * 1024 * 1024, files: 20_000, bytes: 256 * 1024 * 1024 },
  runs: { fileBytes: 256 * 1024, files: 64, bytes: 1024 * 1024 },
};
/** Bytes one identity may have held in records that no signature verified yet, by default (a record verifies at its first checkpoint, within seconds). */
export const UNVERIFIED_BYTES_PER_IDENTITY = 256 * 1024 * 1024;
/** Bytes one identity may have the gateway keep in its records over a day, signed or not (a device key signs junk as well as records). */
export const DAILY_BYTES_PER_IDENTITY = 2 * 1024 * 1024 * 1024;
/** The window of {@link DAILY_BYTES_PER_IDENTITY}. */
const DAY_MS = 86_400_000;
/** How long a record may stay without a signature that verifies it before it is removed. */
export const UNVERIFIED_RECORD_TTL_MS = 24 * 3_600_000;
/** Largest request body an upload may have. */
export const MAX_RECORD_FILE_BYTES = LIMITS.sessions.fileBytes;
/** Verifications that run at once (each reads a whole record): the rest wait their turn. */
const MAX_VERIFYING = 2;

/** A record's state (`record.json` with the file store; `hoop.client_records.state` with PostgreSQL): read back with this schema. */
export const clientRecordStateSchema = recordObject({
  kind: z.enum(['sessions', 'runs']),
  id: z.string().regex(RECORD_ID),
  /** Who uploaded it (a session's owner; a run's first uploader). */
  issuer: z.string(),
  subject: z.string(),
  /**
   * `complete`: its final manifest verified; `truncated`: a checkpoint did (the CLI stopped
   * mid-session); `uploading`: no signature yet; `refused`: a signature did not verify it, so its
   * files were dropped (kept a day, its bytes counting against its owner's daily budget).
   */
  state: z.enum(['uploading', 'complete', 'truncated', 'refused']),
  /** The device key that signed it (`ssh-ed25519 …`), and its fingerprint. */
  signer: z.string().optional(),
  fingerprint: z.string().optional(),
  chunks: z.number().int().min(0).optional(),
  events: z.number().int().min(0).optional(),
  /** The signature it was last verified with. */
  verified: z.string().regex(RECORDING_FILE).endsWith('.sig').optional(),
  /** Bytes uploaded since a signature last verified it (all of them while `uploading`): what its owner's quota of unverified bytes counts. */
  pending: z.number().int().min(0).optional(),
  /** Every byte it holds, signed or not: what its owner's daily budget counts while it changed within the day. */
  bytes: z.number().int().min(0).optional(),
  updatedAt: storedTime,
});
export type ClientRecordState = z.infer<typeof clientRecordStateSchema>;

/**
 * What the record's last verification established, for the next one to start from: the chunks of
 * the manifest it verified are still the same bytes (a held file is never written over).
 */
async function verifiedBefore(record: HeldRecord, state: ClientRecordState, id: string): Promise<VerifiedBefore | undefined> {
  if (state.state === 'uploading' || state.verified === undefined || state.events === undefined) return undefined;
  const manifest = await record.read(state.verified.slice(0, -'.sig'.length));
  return manifest ? { manifest: manifest.toString('utf8'), events: state.events, id } : undefined;
}

/** A device key the uploader registered, to verify with. */
export interface UploaderKey {
  publicKey: string;
}

/**
 * A record held by {@link ClientRecordStore.update}: no other upload to it runs meanwhile. Reads
 * see the writes made through it.
 */
export interface HeldRecord {
  /** Its state, if any of it was uploaded. */
  state(): Promise<ClientRecordState | undefined>;
  /** The bytes of its file `name`, if held. */
  read(name: string): Promise<Buffer | undefined>;
  /** How many files it holds, and their bytes. */
  usage(): Promise<{ files: number; bytes: number }>;
  /** Adds the file `name` (not held yet); durable once the {@link save} that follows it is. */
  write(name: string, data: Buffer): Promise<void>;
  /** Drops these files (those not held are ignored). */
  delete(names: readonly string[]): Promise<void>;
  save(state: ClientRecordState): Promise<void>;
  /** Drops the whole record: its files and its state. */
  removeAll(): Promise<void>;
  /** A local directory holding its files as they now are, to verify ({@link verifyRecording} reads a directory). */
  local(): Promise<string>;
}

/** Where the records are kept; see the module documentation. `id` is a {@link RECORD_ID}. */
export interface ClientRecordStore {
  /**
   * Runs `fn` with the record held: no other update of it runs meanwhile, here or (with a shared
   * store) on another replica. What `fn` wrote is kept when it resolves; when it throws, the
   * PostgreSQL store drops it (the engine checks every file before it writes any, and takes back
   * what it wrote when a write fails, so the file store needs not).
   */
  update<T>(kind: RecordKind, id: string, fn: (record: HeldRecord) => Promise<T>): Promise<T>;
  /** The state of each of `ids` that has a record, by id: one lookup for a listing. */
  states(kind: RecordKind, ids: readonly string[]): Promise<Map<string, ClientRecordState>>;
  /** The names of the files it holds. */
  files(kind: RecordKind, id: string): Promise<string[]>;
  /** One file: its path (the file store) or its bytes; undefined when not held. */
  file(kind: RecordKind, id: string, name: string): Promise<string | Buffer | undefined>;
  /** The bytes `owner`'s records took since a signature last verified each ({@link ClientRecordState.pending}). */
  unverifiedBytes(owner: DeviceOwner): Promise<number>;
  /** The bytes held by `owner`'s records that changed since `since` (ms), signed or not. */
  recentBytes(owner: DeviceOwner, since: number): Promise<number>;
  /** The records still `uploading` that began before `before`. */
  unverifiedSince(before: Date): Promise<Array<{ kind: RecordKind; id: string }>>;
}

/** What an upload did: stored, or refused (after what the refusal dropped was written). */
type Outcome = { stored: boolean; state: ClientRecordState } | { refused: HttpError };

/** See the module documentation. */
export class ClientRecords {
  readonly #store: ClientRecordStore;
  /** Bytes one identity's unverified records may hold. */
  readonly #unverifiedCap: number;
  /** Updates of one record in this process run one after the other (the store holds it across replicas). */
  readonly #queues = new Map<string, Promise<unknown>>();
  #verifying = 0;
  readonly #waiting: Array<() => void> = [];

  readonly #dailyCap: number;

  private constructor(store: ClientRecordStore, unverifiedCap: number, dailyCap: number) {
    this.#store = store;
    this.#unverifiedCap = unverifiedCap;
    this.#dailyCap = dailyCap;
  }

  /** Opens the records in `store`, by default in files under `<dataDir>/client-records` (keeping `reserveBytes` of the disk free). */
  static async open(
    dataDir: string,
    log: Logger,
    store?: ClientRecordStore,
    o: { reserveBytes?: number; unverifiedBytesPerIdentity?: number; dailyBytesPerIdentity?: number } = {},
  ): Promise<ClientRecords> {
    return new ClientRecords(
      store ?? (await FileClientRecordStore.open(dataDir, log, o)),
      o.unverifiedBytesPerIdentity ?? UNVERIFIED_BYTES_PER_IDENTITY,
      o.dailyBytesPerIdentity ?? DAILY_BYTES_PER_IDENTITY,
    );
  }

  /** The state of a record, if any of it was uploaded. */
  async state(kind: RecordKind, id: string): Promise<ClientRecordState | undefined> {
    return (await this.states(kind, [id])).get(id);
  }

  /** The state of each of `ids` that has a record, by id (one lookup for a whole listing). */
  states(kind: RecordKind, ids: readonly string[]): Promise<Map<string, ClientRecordState>> {
    const valid = ids.filter((id) => RECORD_ID.test(id));
    return valid.length === 0 ? Promise.resolve(new Map()) : this.#store.states(kind, valid);
  }

  /** The files of a record held so far, sorted. */
  async files(kind: RecordKind, id: string): Promise<string[]> {
    if (!RECORD_ID.test(id)) return [];
    return (await this.#store.files(kind, id)).filter((f) => RECORDING_FILE.test(f)).sort();
  }

  /** One file of a record: a path to read, or its bytes; undefined when it holds no such file. */
  file(kind: RecordKind, id: string, name: string): Promise<string | Buffer | undefined> {
    if (!RECORD_ID.test(id) || !RECORDING_FILE.test(name)) return Promise.resolve(undefined);
    return this.#store.file(kind, id, name);
  }

  /**
   * Stores one file of a record uploaded by `owner` (the caller checked that `owner` may upload to
   * it: a session's owner). Resolves `stored: false` when the same bytes were already there.
   * Verifies the record when `name` is a signature, against `keys` (the uploader's device keys).
   *
   * @throws HttpError 403 (another's record), 409 (other bytes under a held name; a complete record), 413 (a file or the record too large), 422 (does not verify), 429 (the uploader's unverified records hold too much already), 507 (the gateway's disk keeps its last space for recordings); HoopError USAGE (not a record's file)
   */
  put(kind: RecordKind, id: string, name: string, data: Buffer, owner: DeviceOwner, keys: () => Promise<UploaderKey[]>): Promise<{ stored: boolean; state: ClientRecordState }> {
    return this.putFiles(kind, id, [{ name, data }], owner, keys);
  }

  /**
   * Stores several files of one record at once, as {@link put} would one after the other in the
   * upload order (chunks, manifest, signature), with the record's state saved once and the record
   * verified once, by the one signature they may hold. `stored`: whether any file was new.
   *
   * @throws as {@link put}; HttpError 400 for two signatures, or a file named twice
   */
  putFiles(
    kind: RecordKind,
    id: string,
    files: ReadonlyArray<{ name: string; data: Buffer }>,
    owner: DeviceOwner,
    keys: () => Promise<UploaderKey[]>,
  ): Promise<{ stored: boolean; state: ClientRecordState }> {
    const bad = files.find((f) => !RECORDING_FILE.test(f.name));
    if (!RECORD_ID.test(id) || bad || files.length === 0)
      return Promise.reject(
        new HoopError(ErrorCode.USAGE, `a record holds no file ${bad?.name ?? '(none given)'}`, {
          hint: 'upload the files hoop wrote: records-NNNNNN.gz (or events-NNNNNN.jsonl.gz), SHA256SUMS, checkpoints, and their .sig',
        }),
      );
    const ordered = uploadOrder(files);
    if (new Set(ordered.map((f) => f.name)).size !== ordered.length) return Promise.reject(new HttpError(400, `a file of the record of ${id} is named twice`));
    const signature = ordered.filter((f) => f.name.endsWith('.sig'));
    if (signature.length > 1)
      return Promise.reject(new HttpError(400, `${signature.length} signatures of the record of ${id} at once`, { hint: 'send one signed manifest with its chunks: the newest' }));
    // One upload of an identity at a time in this process, so that its quota is read and spent together.
    return this.#serialized('owner', `${owner.issuer}\n${owner.subject}`, () =>
      this.#serialized(kind, id, async () => {
        // A signature is verified holding the record: its turn to verify is taken before, so that no upload holds a record (and a store connection) waiting for one.
        const release = signature.length > 0 ? await this.#verifyTurn() : undefined;
        try {
          const outcome = await this.#store.update(kind, id, (record) => this.#put(record, kind, id, ordered, owner, keys));
          if ('refused' in outcome) throw outcome.refused;
          return outcome;
        } finally {
          release?.();
        }
      }),
    );
  }

  async #put(record: HeldRecord, kind: RecordKind, id: string, files: ReadonlyArray<{ name: string; data: Buffer }>, owner: DeviceOwner, keys: () => Promise<UploaderKey[]>): Promise<Outcome> {
    let state = await record.state();
    /** Whether it holds no file yet (none uploaded, or all dropped by a refusal). */
    const fresh = state === undefined || state.state === 'refused';
    if (state && (state.issuer !== owner.issuer || state.subject !== owner.subject)) {
      throw new HttpError(403, `the ${kind === 'runs' ? 'run' : 'session'} ${id} has a record uploaded by someone else`, { hint: 'a record is uploaded by the identity that made it' });
    }
    const limits = LIMITS[kind];
    let usage: { files: number; bytes: number } | undefined;
    let unverified: number | undefined;
    let recent: number | undefined;
    /** The signature to verify the record with, when one came that is not yet acted on. */
    let signature: string | undefined;
    // Every file is checked before any is written: a batch refused at its third file leaves nothing of the first two.
    const toWrite: Array<{ name: string; data: Buffer }> = [];
    for (const { name, data } of files) {
      if (data.length > limits.fileBytes) throw new HttpError(413, `${name} is larger than the ${limits.fileBytes / 1024} KiB a file of this record may be`);
      const held = await record.read(name);
      if (held) {
        if (!held.equals(data))
          throw new HttpError(409, `${name} of ${id} is already uploaded with other bytes; a record is never written over`, {
            hint: 'this spool does not match what was uploaded before: keep it for an investigation',
          });
        // A signature held but not yet acted on (the gateway stopped in between) is verified again.
        if (state === undefined) throw new HttpError(409, `${name} of ${id} is held without its record's state; ask the gateway's operators`);
        if (name.endsWith('.sig') && state.state !== 'complete' && state.verified !== name) signature = name;
        continue;
      }
      if (state?.state === 'complete') throw new HttpError(409, `the record of ${id} is complete; it takes no more files`);
      usage ??= await record.usage();
      if (usage.files >= limits.files) throw new HttpError(413, `the record of ${id} already holds ${limits.files} files`);
      if (usage.bytes + data.length > limits.bytes) throw new HttpError(413, `the record of ${id} would pass the ${limits.bytes / 1024 / 1024} MiB a record of this kind may hold`);
      // Every byte, signed or not, counts against its owner's budget for the day.
      recent ??= await this.#store.recentBytes(owner, realClock.now() - DAY_MS);
      if (recent + data.length > this.#dailyCap) {
        throw new HttpError(
          429,
          `${owner.subject} has had the gateway keep ${(recent / 1024 / 1024).toFixed(1)} MiB of records within a day, and may ${(this.#dailyCap / 1024 / 1024).toFixed(1)} MiB`,
          {
            hint: 'the budget frees as the day passes; if your sessions need more, ask the gateway operators',
          },
        );
      }
      recent += data.length;
      if (!name.endsWith('.sig')) {
        unverified ??= await this.#store.unverifiedBytes(owner);
        if (unverified + data.length > this.#unverifiedCap) {
          throw new HttpError(
            429,
            `${owner.subject} has ${(unverified / 1024 / 1024).toFixed(1)} MiB of records that no signature verified yet, and may have ${(this.#unverifiedCap / 1024 / 1024).toFixed(1)} MiB`,
            {
              hint: 'upload the signed manifests of the records already sent (the next hoop command does), or wait: unverified records are removed after a day',
            },
          );
        }
        unverified += data.length;
      }
      toWrite.push({ name, data });
      usage = { files: usage.files + 1, bytes: usage.bytes + data.length };
      state = {
        // A record refused before starts again, its bytes still counted for the day.
        ...(state && state.state !== 'refused' ? state : { kind, id, issuer: owner.issuer, subject: owner.subject, state: 'uploading' as const, updatedAt: new Date(realClock.now()).toISOString() }),
        pending: (state?.pending ?? 0) + data.length,
        bytes: (state?.bytes ?? 0) + data.length,
        updatedAt: new Date(realClock.now()).toISOString(),
      };
      if (name.endsWith('.sig')) signature = name;
    }
    if (!signature || !state) return { stored: await this.#write(record, toWrite, state), state: state! };
    // A record that arrives whole (a short session's, in a batch) is verified before anything of it is written: its files and its verified state are then written once.
    if (fresh) {
      const trusted = (await keys()).map((k) => deviceKey(k.publicKey));
      // Each file copied out of the request's body: the verifying thread is sent its bytes, not the body's every byte per record.
      const judged = judge(await verifyOffThread(new Map(toWrite.map((f) => [f.name, Buffer.from(f.data)])), trusted, undefined, []), id, state, signature, trusted);
      if ('refused' in judged) {
        await record.save({ ...state, state: 'refused', pending: 0 });
        return judged;
      }
      await this.#write(record, toWrite, judged.verified);
      return { stored: true, state: judged.verified };
    }
    const stored = await this.#write(record, toWrite, state);
    return this.#verify(record, id, state, signature, stored, keys);
  }

  /** Writes `files`, then the state that counts them (when there were any): a write the disk refuses takes back the ones before it. Resolves whether any was written. */
  async #write(record: HeldRecord, files: ReadonlyArray<{ name: string; data: Buffer }>, state: ClientRecordState | undefined): Promise<boolean> {
    const written: string[] = [];
    try {
      for (const { name, data } of files) {
        await record.write(name, data);
        written.push(name);
      }
    } catch (err) {
      await record.delete(written);
      throw err;
    }
    if (files.length > 0) await record.save(state!);
    return files.length > 0;
  }

  /** Verifies the record with the signature `name` it now holds: its state says so, or the upload is refused (and what it dropped, dropped). */
  async #verify(record: HeldRecord, id: string, state: ClientRecordState, name: string, stored: boolean, keys: () => Promise<UploaderKey[]>): Promise<Outcome> {
    const trusted = (await keys()).map((k) => deviceKey(k.publicKey));
    const judged = judge(await verifyOffThread(await record.local(), trusted, await verifiedBefore(record, state, id), [STATE_FILE]), id, state, name, trusted);
    if ('refused' in judged) {
      // Nothing of a record that never verified is kept but what it cost (its owner may upload the right one); of one that did, only the new manifest and signature go.
      if (state.state === 'uploading') {
        await record.removeAll();
        await record.save({ ...state, state: 'refused', pending: 0, updatedAt: new Date(realClock.now()).toISOString() });
      } else await record.delete([name, name.slice(0, -'.sig'.length)]);
      return judged;
    }
    await record.save(judged.verified);
    return { stored, state: judged.verified };
  }

  /** Removes the records that no signature verified within {@link UNVERIFIED_RECORD_TTL_MS} of their first file; resolves them. */
  async expireUnverified(now = realClock.now()): Promise<Array<{ kind: RecordKind; id: string }>> {
    const stale = await this.#store.unverifiedSince(new Date(now - UNVERIFIED_RECORD_TTL_MS));
    for (const { kind, id } of stale)
      await this.#serialized(kind, id, () => this.#store.update(kind, id, async (record) => (['uploading', 'refused'].includes((await record.state())?.state ?? '') ? record.removeAll() : undefined)));
    return stale;
  }

  /** Removes a record (retention: the session's gateway recording went). */
  async remove(kind: RecordKind, id: string): Promise<void> {
    if (!RECORD_ID.test(id)) return;
    await this.#serialized(kind, id, () => this.#store.update(kind, id, (record) => record.removeAll()));
  }

  /** Runs `fn` after the updates of the record already queued in this process. */
  #serialized<T>(kind: RecordKind | 'owner', id: string, fn: () => Promise<T>): Promise<T> {
    const key = `${kind}/${id}`;
    const run = (this.#queues.get(key) ?? Promise.resolve()).then(fn);
    const settled = run.catch(() => undefined);
    this.#queues.set(key, settled);
    void settled.then(() => {
      if (this.#queues.get(key) === settled) this.#queues.delete(key);
    });
    return run;
  }

  /** Waits for a turn to verify (at most {@link MAX_VERIFYING} at once); resolves what ends it. */
  async #verifyTurn(): Promise<() => void> {
    if (this.#verifying < MAX_VERIFYING) this.#verifying++;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve)); // handed over by the one that ends
    return () => {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#verifying--;
    };
  }
}

/**
 * Records as files in the data directory: `client-records/<sessions|runs>/<id>/` holds the
 * record's files as uploaded, and `record.json` its state; a record complete at its first save (a
 * short session's, uploaded whole in a batch) is instead one archive, `<id>.tar`, its files and
 * its state last under `<id>/` (`tar -xf` gives the directory back), written and synced once. A
 * complete record changes no more: an archive is only ever removed whole. The states are read
 * once at start (a listing reads no file). One gateway process owns the data directory, so the
 * engine's own queue is all the holding a record needs.
 */
export class FileClientRecordStore implements ClientRecordStore {
  readonly #root: string;
  /** The state of every record, by `kind/id`. */
  readonly #states = new Map<string, ClientRecordState>();
  /** The records kept as one archive, by `kind/id`. */
  readonly #archived = new Set<string>();
  /** Their bytes, by owner. */
  readonly #owners = new OwnerBytes();

  private constructor(root: string, reserveBytes: number) {
    this.#root = root;
    this.#reserve = reserveBytes;
  }

  /** Free bytes the data directory keeps for the gateway's own recordings: an upload that would leave less is refused. */
  readonly #reserve: number;

  /**
   * Opens (and creates) `<dataDir>/client-records`, reading the state of every record: one that is
   * not a record's state (or not its directory's) is skipped, said in the log; the record is then
   * as one with none uploaded.
   */
  static async open(dataDir: string, log: Logger, o: { reserveBytes?: number } = {}): Promise<FileClientRecordStore> {
    const store = new FileClientRecordStore(join(dataDir, 'client-records'), o.reserveBytes ?? DISK_RESERVE_BYTES);
    for (const kind of ['sessions', 'runs'] as const) {
      const dir = join(store.#root, kind);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const names = await readdir(dir);
      const archives = new Set(names.filter(isRecordingArchive));
      for (const name of names) {
        // What a stopped gateway left: a write's temporary file, or a record's directory its archive replaced (a removal that did not reach the disk).
        if (name.endsWith('.tmp') || archives.has(`${name}.tar`)) {
          await rm(join(dir, name), { recursive: true, force: true });
          continue;
        }
        const archived = isRecordingArchive(name);
        const id = archived ? name.slice(0, -'.tar'.length) : name;
        const file = join(dir, name, archived ? '' : STATE_FILE);
        const bytes = await (archived ? recordingFiles(file).read(STATE_FILE) : readFile(file)).catch(() => undefined);
        const state = bytes === undefined ? undefined : lineRecord(clientRecordStateSchema, bytes.toString('utf8'), "CLI's record state", { file }, log);
        if (state && (state.kind !== kind || state.id !== id)) skipRecord("CLI's record state", { file }, `it names record ${state.kind}/${state.id}`, log);
        else if (state) {
          store.#states.set(`${kind}/${id}`, state);
          if (archived) store.#archived.add(`${kind}/${id}`);
        }
      }
    }
    // Counted oldest first, as they were saved.
    const byTime = [...store.#states].map(([key, state]) => ({ key, state, at: Date.parse(state.updatedAt) || 0 })).sort((a, b) => a.at - b.at);
    for (const { key, state } of byTime) store.#owners.set(key, state);
    return store;
  }

  update<T>(kind: RecordKind, id: string, fn: (record: HeldRecord) => Promise<T>): Promise<T> {
    const dir = join(this.#root, kind, id);
    const key = `${kind}/${id}`;
    const held = (): RecordingFiles => recordingFiles(this.#archived.has(key) ? `${dir}.tar` : dir);
    /** Files written since the last save, kept until it: it writes them, then the state that counts them. */
    const written = new Map<string, Buffer>();
    const changed = (what: string): Error => new Error(`the record ${key} is complete and kept as one archive: it ${what} no more`);
    /** The names in the record's directory, listed once and kept as this update changes them (a new record's: none, for one call). */
    let listing: Promise<Set<string>> | undefined;
    const onDisk = (): Promise<Set<string>> =>
      (listing ??= readdir(dir).then(
        (names) => new Set(names),
        (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? new Set<string>() : Promise.reject(err)),
      ));
    return fn({
      state: async () => this.#states.get(key),
      read: async (name) => written.get(name) ?? (this.#archived.has(key) || (await onDisk()).has(name) ? await held().read(name) : undefined),
      usage: async () => {
        // An archive's record is complete: it takes no more files, so its usage is never asked.
        const names = [...(await onDisk())].filter((f) => RECORDING_FILE.test(f) && !written.has(f));
        let bytes = 0;
        for (const data of written.values()) bytes += data.length;
        for (const name of names)
          bytes += await stat(join(dir, name)).then(
            (st) => st.size,
            () => 0,
          );
        return { files: names.length + written.size, bytes };
      },
      write: async (name, data) => {
        if (this.#archived.has(key)) throw changed('takes');
        written.set(name, data);
      },
      delete: async (names) => {
        if (this.#archived.has(key)) throw changed('loses files');
        for (const name of names) {
          if (!written.delete(name)) await rm(join(dir, name), { force: true });
          (await onDisk()).delete(name);
        }
      },
      save: async (state) => {
        if (this.#archived.has(key)) throw changed('changes');
        const files = [...written];
        written.clear();
        // The disk the gateway records every session on: an upload never takes its last free space.
        const bytes = files.reduce((n, [, data]) => n + data.length, 0);
        if (bytes > 0) {
          const fs = await statfs(this.#root);
          if (fs.bavail * fs.bsize - bytes < this.#reserve) throw diskFull(this.#reserve);
        }
        const text = Buffer.from(`${JSON.stringify(state)}\n`);
        /** Complete at its first save: one archive. */
        const whole = state.state === 'complete' && !this.#states.has(key);
        await (whole ? this.#saveArchive(kind, id, files, text) : this.#saveFiles(dir, files, text)).catch((err: NodeJS.ErrnoException) => {
          throw err.code === 'ENOSPC' ? diskFull(this.#reserve) : err;
        });
        if (whole) this.#archived.add(key);
        else if (listing) for (const [name] of files) (await listing).add(name);
        this.#states.set(key, state);
        this.#owners.set(key, state);
      },
      removeAll: async () => {
        written.clear();
        listing = Promise.resolve(new Set());
        await rm(this.#archived.has(key) ? `${dir}.tar` : dir, { recursive: true, force: true });
        await syncDirectory(join(this.#root, kind));
        this.#archived.delete(key);
        this.#states.delete(key);
        this.#owners.set(key, undefined);
      },
      local: async () => (this.#archived.has(key) ? `${dir}.tar` : dir),
    });
  }

  /** A record complete at its first save: its files and state as one archive, placed whole and synced. */
  async #saveArchive(kind: RecordKind, id: string, files: Array<[string, Buffer]>, state: Buffer): Promise<void> {
    const archive = tarOf([...files, [STATE_FILE, state] as const].map(([name, data]) => ({ name: `${id}/${name}`, data })));
    await writeFileAtomic(join(this.#root, kind, `${id}.tar`), archive, join(this.#root, kind));
  }

  /** Files into the record's directory, synced together, then its state (whose directory's sync makes their names durable too). */
  async #saveFiles(dir: string, files: Array<[string, Buffer]>, state: Buffer): Promise<void> {
    const made = await mkdir(dir, { recursive: true, mode: 0o700 });
    const placed: string[] = [];
    try {
      for (const [name, data] of files) {
        await writeFileAtomic(join(dir, name), data, dir, false, false);
        placed.push(join(dir, name));
      }
      await syncData(placed);
      await writeFileAtomic(join(dir, STATE_FILE), state, dir);
    } catch (err) {
      // A write the disk refuses takes back the ones before it: no file is left without the state that counts it.
      for (const file of placed) await rm(file, { force: true });
      throw err;
    }
    if (made) await syncDirectory(dirname(dir));
  }

  async states(kind: RecordKind, ids: readonly string[]): Promise<Map<string, ClientRecordState>> {
    const found = new Map<string, ClientRecordState>();
    for (const id of ids) {
      const state = this.#states.get(`${kind}/${id}`);
      if (state) found.set(id, state);
    }
    return found;
  }

  async files(kind: RecordKind, id: string): Promise<string[]> {
    const dir = join(this.#root, kind, id);
    return (
      await recordingFiles(this.#archived.has(`${kind}/${id}`) ? `${dir}.tar` : dir)
        .names()
        .catch(() => [] as string[])
    ).filter((f) => RECORDING_FILE.test(f));
  }

  async file(kind: RecordKind, id: string, name: string): Promise<string | Buffer | undefined> {
    const path = join(this.#root, kind, id, name);
    if (this.#archived.has(`${kind}/${id}`)) return recordingFiles(join(this.#root, kind, `${id}.tar`)).read(name);
    return (await stat(path).then(
      (s) => s.isFile(),
      () => false,
    ))
      ? path
      : undefined;
  }

  async unverifiedBytes(owner: DeviceOwner): Promise<number> {
    return this.#owners.pending(owner);
  }

  async recentBytes(owner: DeviceOwner, since: number): Promise<number> {
    return this.#owners.savedSince(owner, since);
  }

  async unverifiedSince(before: Date): Promise<Array<{ kind: RecordKind; id: string }>> {
    return [...this.#states.values()].filter((s) => (s.state === 'uploading' || s.state === 'refused') && Date.parse(s.updatedAt) < before.getTime()).map((s) => ({ kind: s.kind, id: s.id }));
  }
}

/** Free bytes the data directory keeps for the gateway's own recordings by default. */
const DISK_RESERVE_BYTES = 1024 * 1024 * 1024;

function diskFull(reserve: number): HttpError {
  return new HttpError(507, `the gateway's disk is too full to keep this record: it keeps its last ${Math.round(reserve / 1024 / 1024)} MiB for the sessions it records`, {
    hint: "the record stays in your spool and goes up with a later command; tell the gateway's operators their data disk is full",
  });
}

function signerOf(check: RecordingCheck, trusted: KeyObject[]): KeyObject | undefined {
  return trusted.find((k) => sshFingerprint(k) === check.signer);
}

/**
 * What a check of record `id` with signature `name` says: its state, verified (complete, or
 * truncated to a checkpoint), or the refusal. It must verify with that signature, as the record
 * of this id, by a key of the uploader (the same key as its first signature).
 */
function judge(check: RecordingCheck, id: string, state: ClientRecordState, name: string, trusted: KeyObject[]): { verified: ClientRecordState } | { refused: HttpError } {
  const problems = [...check.problems];
  if (check.ok && check.id !== id) problems.push(`it is the record of ${check.id ?? 'nothing'}, not of ${id}`);
  if (check.ok && state.fingerprint !== undefined && check.signer !== state.fingerprint) problems.push(`it is signed by ${check.signer}, not by ${state.fingerprint} as it was first`);
  if (problems.length > 0 || !check.manifest || `${check.manifest}.sig` !== name) {
    return {
      refused: new HttpError(422, `the record of ${id} does not verify with ${name}: ${problems.join('; ') || `the newest signed manifest is ${check.manifest ?? 'none'}`}`, {
        hint:
          trusted.length === 0
            ? 'register the key that signs it first (`hoop login`, or hoop registers one for a token from the environment)'
            : 'upload its chunks before the manifest, signed by a device key you registered',
      }),
    };
  }
  const signer = signerOf(check, trusted);
  return {
    verified: {
      ...state,
      state: check.complete ? 'complete' : 'truncated',
      ...(signer ? { signer: sshPublicKeyLine(signer), fingerprint: sshFingerprint(signer) } : {}),
      chunks: check.chunks,
      events: check.events,
      verified: name,
      pending: 0,
      updatedAt: new Date(realClock.now()).toISOString(),
    },
  };
}
