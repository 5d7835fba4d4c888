/**
 * The CLI's spool: its own records, written on this machine as the sessions and runs happen, in
 * the recording format (./writer.ts: chunks, signed checkpoints every second, a signed manifest
 * at the end; a session's record not fsynced, a run's fsynced), signed with the device key, and kept until the gateway holds them
 * (src/client/record-upload.ts). One directory per record under `<config dir>/spool/`: `<kind>-<id>/`, with
 * `spool.json` saying whose it is (gateway, process id, signer); or, for a session's record that
 * closed before its first checkpoint, the same files as one archive, `<kind>-<id>.tar` (./file-ops.ts).
 * Such an archive is held in this process's memory first ({@link Spool.hold}), listed and read as
 * if on disk, and written there only when the gateway does not hold it by the time its first
 * checkpoint would have come: a short session that goes up at once costs the disk nothing (on
 * ext4 each file made and removed made the next file's inode dearer), and a killed process loses
 * no more than it did (what a record holds reaches the disk within a checkpoint interval).
 *
 * A record is `closed` once its manifest is signed and written; `live` while the process that
 * writes it runs (or when another host wrote it: that host uploads it); `abandoned` when that
 * process is gone without closing it (killed): it verifies to its last checkpoint and is uploaded
 * as truncated by the next hoop command on the same host.
 *
 * @see docs/recording-format.md ("The CLI's records")
 */
import { realClock } from '../clock.js';
import type { KeyObject } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { writeFileAtomic } from '../durable-file.js';
import { isRecordingArchive, memoryFiles, type RecordingFiles, recordingFiles } from './recording-files.js';
import { sshPublicKeyLine } from './sshsig.js';
import { readTar } from './tar.js';
import { RecordingThread, type RecordingStream } from './thread.js';
import { MANIFEST, RECORDING_FILE, RecordingWriter } from './writer.js';

/** A record's kind, as the gateway files it: one session's CLI side, or one `hoop run`. */
export type RecordKind = 'sessions' | 'runs';

/** `spool.json`. */
export interface SpoolMeta {
  kind: RecordKind;
  id: string;
  /** The gateway's origin the record goes to. */
  gateway: string;
  pid: number;
  host: string;
  startedAt: string;
  /** The public key that signs it (`ssh-ed25519 …`). */
  signer: string;
}

/** A record in the spool. */
export interface SpoolEntry {
  /** Its directory, or its archive (read whole: its files are read from memory). */
  path: string;
  meta: SpoolMeta;
  status: 'closed' | 'live' | 'abandoned';
  files: RecordingFiles;
}

const META = 'spool.json';
/**
 * The CLI cuts a chunk of what waits every second and signs a checkpoint with each: a CLI killed
 * mid-session leaves about its last two seconds unverified. (Every half second cost each session's
 * relay about 5 µs more per transaction in `npm run bench`, for a second less at risk.) A session's
 * record is not fsynced: it outlives the CLI, not the machine (the gateway's record is the
 * durable one; see RecordingWriterOptions.durable).
 */
export const CLIENT_CHUNK_MS = 1000;
export const CLIENT_CHECKPOINT_MS = 900;

/** This host's name, as records name it (once: a session's record does not ask the kernel). */
export const HOST = hostname();

/** A record's `spool.json`, or why it is none. */
function parseMeta(text: Buffer): SpoolMeta | string {
  try {
    const meta = JSON.parse(text.toString('utf8')) as SpoolMeta;
    if (typeof meta === 'object' && meta !== null && typeof meta.startedAt === 'string' && typeof meta.gateway === 'string') return meta;
  } catch {}
  return 'its spool.json is not one hoop wrote';
}

/** Whether process `pid` runs (on this host). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A record's directory in the spool, `<kind>-<id>`, or its archive, `<kind>-<id>.tar`: the name says whose record it is. */
const RECORD_NAME = '(sessions|runs)-([A-Za-z0-9_-]{8,64})';
const SPOOL_NAME = new RegExp(`^${RECORD_NAME}(\\.tar)?$`);
/** A write's temporary file in the spool (./file-ops.ts): one older than {@link STALE_TMP_MS} was left by a process that stopped. */
const SPOOL_TMP = new RegExp(`^${RECORD_NAME}\\.tar\\.\\d+\\.[0-9a-f]+\\.tmp$`);
const STALE_TMP_MS = 60 * 60 * 1000;
/** Most files a spooled archive holds (a held record: its meta, a few chunks, a manifest and its signature). */
const ARCHIVE_FILES = 64;

/** See the module documentation. */
export class Spool {
  readonly root: string;
  /** Closed records' archives held in memory, by their name in the spool, until they leave it or go to the disk ({@link hold}). */
  readonly #memory = new Map<string, { bytes: Buffer; timer: NodeJS.Timeout; placed?: Promise<void> }>();

  constructor(root: string) {
    this.root = root;
  }

  /**
   * Holds the archive of record `kind/id`, which closed while held, in memory: the spool lists
   * and reads it as if on disk, and writes it there at `dueAt` (epoch ms) unless it left first.
   */
  hold(kind: RecordKind, id: string, archive: Buffer, dueAt: number): void {
    const name = `${kind}-${id}.tar`;
    const timer = setTimeout(() => void this.#place(name).catch(() => undefined), Math.max(0, dueAt - realClock.now())).unref();
    this.#memory.set(name, { bytes: archive, timer });
  }

  /** Writes every archive held in memory to the disk now (a command that ends). */
  async persist(): Promise<void> {
    await Promise.all([...this.#memory.keys()].map((name) => this.#place(name)));
  }

  /** Writes held archive `name` to the disk (once; a failed write is tried again by the next call), then forgets it. */
  #place(name: string): Promise<void> {
    const held = this.#memory.get(name);
    if (!held) return Promise.resolve();
    clearTimeout(held.timer);
    held.placed ??= (async () => {
      await mkdir(this.root, { recursive: true, mode: 0o700 });
      // Not synced, as a record written by the recording thread is not: it outlives the process, not the machine.
      await writeFileAtomic(join(this.root, name), held.bytes, this.root, false, false);
      if (this.#memory.get(name) === held) this.#memory.delete(name);
    })().catch((err: unknown) => {
      held.placed = undefined;
      throw err;
    });
    return held.placed;
  }

  /** The directory of a record. */
  dir(kind: RecordKind, id: string): string {
    return join(this.root, `${kind}-${id}`);
  }

  /** Creates a record's directory and its `spool.json` (fsynced: a run's record is). */
  async create(meta: Omit<SpoolMeta, 'pid' | 'host' | 'startedAt'>): Promise<string> {
    const { dir, text } = this.meta(meta);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(join(dir, META), text, dir);
    return dir;
  }

  /** A record's directory and the text of its `spool.json`, for a writer that makes them (a session's record: the recording thread). */
  meta(meta: Omit<SpoolMeta, 'pid' | 'host' | 'startedAt'>): { dir: string; name: string; text: string } {
    const full: SpoolMeta = { ...meta, pid: process.pid, host: HOST, startedAt: new Date(realClock.now()).toISOString() };
    return { dir: this.dir(meta.kind, meta.id), name: META, text: `${JSON.stringify(full)}\n` };
  }

  /** The records in the spool (of gateway `origin` when given), oldest first; what a stopped process left half written goes. */
  async entries(origin?: string): Promise<SpoolEntry[]> {
    const names = await readdir(this.root).catch(() => [] as string[]);
    for (const name of names.filter((n) => SPOOL_TMP.test(n))) {
      const file = join(this.root, name);
      const old = await stat(file).then(
        (st) => realClock.now() - st.mtimeMs > STALE_TMP_MS,
        () => false,
      );
      if (old) await rm(file, { force: true });
    }
    return this.#read([...new Set([...names, ...this.#memory.keys()])], origin);
  }

  /**
   * The records `keys` (`kind/id`) that are in the spool (of gateway `origin` when given), oldest
   * first: only theirs are read, however many records the spool holds.
   */
  async only(keys: Iterable<string>, origin?: string): Promise<SpoolEntry[]> {
    return this.#read(
      [...keys].flatMap((key) => {
        const name = key.replace('/', '-');
        // One held in memory has no directory to look for.
        return this.#memory.has(`${name}.tar`) ? [`${name}.tar`] : [`${name}.tar`, name];
      }),
      origin,
    );
  }

  /**
   * The records of the spool's names `names` (others skipped), oldest first. One that cannot be
   * a record of its name (its `spool.json` unreadable or naming another, an archive with other
   * files) is set aside, with why: it is never uploaded, nor lost.
   */
  async #read(names: string[], origin: string | undefined): Promise<SpoolEntry[]> {
    const out: SpoolEntry[] = [];
    for (const name of names) {
      const m = SPOOL_NAME.exec(name);
      if (!m) continue;
      const path = join(this.root, name);
      const entry = m[3] ? await this.#readArchive(path) : await this.#readDirectory(path);
      if (typeof entry === 'string') await this.#putAside(path, entry);
      else if (entry && (entry.meta.kind !== m[1] || entry.meta.id !== m[2])) await this.#putAside(path, `its spool.json names ${entry.meta.kind}/${entry.meta.id}`);
      else if (entry && (origin === undefined || entry.meta.gateway === origin)) out.push(entry);
    }
    return out.sort((a, b) => a.meta.startedAt.localeCompare(b.meta.startedAt));
  }

  /** A directory's record; undefined while its `spool.json` is not yet written (a run's record is made so); a string says why it is none. */
  async #readDirectory(path: string): Promise<SpoolEntry | string | undefined> {
    const files = recordingFiles(path);
    const text = await files.read(META).catch(() => undefined);
    if (!text) return undefined;
    const meta = parseMeta(text);
    if (typeof meta === 'string') return meta;
    // The writer signs, then writes the manifest: a record is closed once both are there.
    const closed = await stat(join(path, MANIFEST)).then(
      () => true,
      () => false,
    );
    // A record of another host (a shared config directory) is that host's to upload.
    const status = closed ? 'closed' : meta.host !== HOST || alive(meta.pid) ? 'live' : 'abandoned';
    return { path, meta, status, files };
  }

  /** A held record's archive: written whole when it closed (so closed), read whole here; undefined when gone meanwhile (uploaded by another command); a string says why it is none. */
  async #readArchive(path: string): Promise<SpoolEntry | string | undefined> {
    const bytes =
      this.#memory.get(basename(path))?.bytes ??
      (await readFile(path).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined;
        throw err;
      }));
    if (!bytes) return undefined;
    const held = new Map<string, Buffer>();
    const dir = `${basename(path, '.tar')}/`;
    try {
      for (const e of readTar(bytes, ARCHIVE_FILES)) {
        const name = e.name.startsWith(dir) ? e.name.slice(dir.length) : '';
        if (!(name === META || RECORDING_FILE.test(name)) || held.has(name)) return `it holds ${JSON.stringify(e.name)}, not a file of its record`;
        held.set(name, e.data);
      }
    } catch (err) {
      return `it is not a whole archive (${(err as Error).message})`;
    }
    const meta = held.get(META);
    if (!meta) return 'it holds no spool.json';
    const parsed = parseMeta(meta);
    return typeof parsed === 'string' ? parsed : { path, meta: parsed, status: 'closed', files: memoryFiles(held) };
  }

  /** The gateway holds a record: it leaves the spool. */
  async remove(entry: SpoolEntry): Promise<void> {
    const held = this.#memory.get(basename(entry.path));
    if (held) {
      this.#memory.delete(basename(entry.path));
      clearTimeout(held.timer);
      // Never written: nothing on disk to remove. Being written: removed once it is there.
      if (!held.placed) return;
      await held.placed.catch(() => undefined);
    }
    // An archive is one unlink (rm would look at it first); a directory is walked.
    if (isRecordingArchive(entry.path))
      await unlink(entry.path).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    else await rm(entry.path, { recursive: true, force: true });
  }

  /** A record the gateway will never take: kept aside (`failed/<kind>-<id>/`) with why, for a person to look at. */
  async setAside(entry: SpoolEntry, why: string): Promise<string> {
    return this.#putAside(entry.path, why);
  }

  /** Moves the record at `path` (a directory, or an archive kept as it is inside one) to `failed/`, with why in `failed.txt`. */
  async #putAside(path: string, why: string): Promise<string> {
    // One held in memory goes to the disk first: kept aside as any other.
    await this.#place(basename(path));
    const to = join(this.root, 'failed', basename(path, '.tar'));
    await mkdir(join(this.root, 'failed'), { recursive: true, mode: 0o700 });
    await rm(to, { recursive: true, force: true });
    if (isRecordingArchive(path)) {
      await mkdir(to, { mode: 0o700 });
      await rename(path, join(to, basename(path)));
    } else await rename(path, to);
    await writeFileAtomic(join(to, 'failed.txt'), `${why}\n`, to);
    return to;
  }
}

/** How a CLI writes its records into the spool. */
export interface ClientRecorderOptions {
  spool: Spool;
  /** The gateway's origin. */
  gateway: string;
  /** The device key (or an ephemeral one registered for this process), resolved once when first needed. */
  key: () => Promise<KeyObject>;
}

/**
 * Writes one CLI's records: sessions on the recording thread (the same records as the gateway's),
 * a run's few events in this thread.
 */
export class ClientRecorder {
  readonly #o: ClientRecorderOptions;
  /** Records reach the thread within a quarter second. */
  readonly #thread = new RecordingThread({ flushMs: 250 });
  #key: Promise<{ key: KeyObject; signer: string }> | undefined;

  constructor(o: ClientRecorderOptions) {
    this.#o = o;
  }

  /** The signing key and its public line, asked for once. */
  #signing(): Promise<{ key: KeyObject; signer: string }> {
    this.#key ??= this.#o.key().then((key) => ({ key, signer: sshPublicKeyLine(key) }));
    return this.#key;
  }

  /**
   * Opens the record of session `id` (the gateway's id), on the recording thread, its records read
   * by the decoder of `protocol`. The session need not wait for the thread to open
   * it: what it records meanwhile waits there, and a failure to open is the stream's `onFailure`.
   */
  async session(id: string, protocol: string): Promise<RecordingStream> {
    const { key, signer } = await this.#signing();
    // Held on the thread, unsynced, with its spool.json: a session pays no file call to start, and a short one's record, held in the spool's memory until its first checkpoint would have come, none at all.
    const { dir, name, text } = this.#o.spool.meta({ kind: 'sessions', id, gateway: this.#o.gateway, signer });
    const dueAt = realClock.now() + CLIENT_CHECKPOINT_MS;
    const onArchive = (archive: Buffer): void => this.#o.spool.hold('sessions', id, archive, dueAt);
    return this.#thread.openNow({ dir, id, key, protocol, checkpointMs: CLIENT_CHECKPOINT_MS, chunkMs: CLIENT_CHUNK_MS, durable: false, held: { name, text }, onArchive });
  }

  /** Opens the record of run `id`. */
  async run(id: string): Promise<RecordingWriter> {
    const { key, signer } = await this.#signing();
    const dir = await this.#o.spool.create({ kind: 'runs', id, gateway: this.#o.gateway, signer });
    return RecordingWriter.create({ dir, id, key, checkpointMs: CLIENT_CHECKPOINT_MS, chunkMs: CLIENT_CHUNK_MS });
  }

  /** Stops the recording thread (every record is closed). */
  stop(): Promise<void> {
    return this.#thread.stop();
  }
}
