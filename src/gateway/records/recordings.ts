/**
 * The gateway's recordings in its data directory: the Ed25519 key that signs them
 * (`keys/recording-ed25519.pem`, made on first start; older keys kept as `keys/retired-*.pem` stay
 * published so old recordings still verify), one archive per session, `recordings/<id>.tar`
 * (src/recording/recording-files.ts; a directory `recordings/<id>/` from before is read as well),
 * and the sessions index `sessions.jsonl`: one line per
 * ended session, appended and fsynced, that `hoop sessions ls` searches without opening recordings.
 *
 * @see docs/recording-format.md
 */
import { realClock } from '../../clock.js';
import { SESSION_ID, sessionSummarySchema, type RecordingKey, type SessionSummary } from '../../api/answers.js';
import * as z from 'zod';
import { VIAS, type Via } from '../../policy/principal.js';
import type { Logger } from '../../log.js';
import { recordObject } from '../../stored-record.js';
import { createHash, type KeyObject } from 'node:crypto';
import { close as closeFile, open as openFile } from 'node:fs';
import { mkdir, open, readdir, readFile, rm, stat, truncate } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { ErrorCode, HoopError, describeError } from '../../errors.js';
import { generateSigningKey, signingKeyFromPem, sshFingerprint, sshPublicKeyLine } from '../../recording/sshsig.js';
import { tablesTouched, type TablesTouchedBy } from '../../policy/touched.js';
import { analyzeSql, loadSqlParser } from '../../policy/sql/analyze.js';
import { recoverJournals } from '../../recording/journal-recovery.js';
import { readEvents } from '../../recording/read.js';
import { cutRecording } from '../../recording/record-chunks.js';
import { type JournalListener, RecordingThread, type RecordingStream } from '../../recording/thread.js';
import { MANIFEST, RECORDING_FILE } from '../../recording/writer.js';
import { RECORD_DECODERS } from '../../lanes/record-decoders.js';
import { verifyRecording } from '../../recording/verify.js';
import { isRecordingArchive, recordingFiles } from '../../recording/recording-files.js';
import { SessionIndexFile } from './session-index-file.js';
import { syncFiles } from '../../durable-file.js';

const KEY_FILE = 'recording-ed25519.pem';
/** The recording thread's journals, under the data directory. */
const JOURNAL_DIR = 'journal';
/** Snapshots of running sessions' recordings, under the data directory; one a second at most per session. */
const SNAPSHOT_DIR = 'snapshots';
const SNAPSHOT_EVERY_MS = 1000;

/** A running session's recording, and its snapshots: how many, the last one's time, and its making. */
interface LiveRecording {
  stream: RecordingStream;
  snapshots: number;
  takenAt: number;
  taking?: boolean;
  taken?: Promise<void>;
}
const INDEX_FILE = 'sessions.jsonl';
/**
 * A line of the index, an ended session's summary: one that says `running` (which only a live
 * session is, and the index holds none) is read as `truncated`, so an edited line cannot waive the
 * check `hoop sessions verify` makes of an ended recording.
 */
const endedSummarySchema = sessionSummarySchema.transform((s) => (s.recording === 'running' ? { ...s, recording: 'truncated' as const } : s));

/** A published recording key (`GET /v1/keys`). */
export type PublishedKey = RecordingKey;

const KEY_PART = z.number().int().min(0).max(0xffffffff);
/** The cancel key of a session's upstream PostgreSQL backend (kept in `hoop.sessions.upstream` while it runs). */
export const upstreamKeySchema = recordObject({ processId: KEY_PART, secretKey: KEY_PART });
export type UpstreamKey = z.infer<typeof upstreamKeySchema>;

/**
 * Where a gateway keeps its sessions index and its recordings' files once written: the data
 * directory ({@link FileSessionArchive}), or a store shared by replicas (./recordings-postgres.ts).
 * Recordings are always written first to the data directory, by the recording thread.
 */
export interface SessionArchive {
  /** A session started (a shared store lists it as running on every replica). */
  started(summary: SessionSummary): void;
  /** A file of session `id`'s recording is durable in the data directory (`data`: its bytes, when they came with it), or was removed there. */
  fileWritten?(id: string, name: string, removed: boolean, data?: Buffer): void;
  /**
   * The recording thread's journal `name` committed `data` (gzip) from `offset`, or was removed
   * (every session in it is cut, and its files told of): a shared store keeps a copy while it is
   * there, for a replica that takes this one over to cut the sessions it held.
   */
  journal?: JournalListener;
  /** Running session `id`'s upstream PostgreSQL cancel key (a shared store keeps it, out of every listing, for a replica that takes this one over). */
  upstream?(id: string, key: UpstreamKey): void;
  /** Adds an ended session to the index (a shared store: queues it; see {@link SessionArchive.indexedLater}). */
  index(summary: SessionSummary): Promise<void>;
  /**
   * For an archive whose {@link SessionArchive.index} resolves before {@link SessionArchive.session}
   * answers with the line (a shared store, written in batches and kept queued while it is down):
   * settles once it does. Undefined when nothing waits for session `id`.
   */
  indexedLater?(id: string): Promise<void> | undefined;
  /** Every session of the index, newest first. */
  sessions(): Promise<SessionSummary[]>;
  /** Session `id` as the index has it. */
  session(id: string): Promise<SessionSummary | undefined>;
  /** Whether the index holds a session other than `except` of this identity's agent on this connection (its agent used it before). */
  agentUsed(q: { subject: string; issuer: string; agent: string; connection: string; except: string }): Promise<boolean>;
  /** Whether session `id` was ever recorded (its id is never given to another session). */
  recorded(id: string): Promise<boolean>;
  /** Claims session id `id` for a new session, atomically: false when it was claimed or recorded before, here or on any replica sharing the archive. */
  claim(id: string): Promise<boolean>;
  /** The files of session `id`'s recording. */
  files(id: string): Promise<string[]>;
  /** One file of it: a path in the data directory, or its bytes; undefined when there is none. */
  file(id: string, name: string): Promise<string | Buffer | undefined>;
  /** Deletes the recordings of sessions that ended more than `days` days before `now`; resolves their ids. */
  prune(days: number, now: number): Promise<string[]>;
  /** The recording keys published at `/v1/keys` (the replica's own `key` among them). */
  publicKeys(own: PublishedKey[]): Promise<PublishedKey[]>;
  /** Indexes what a gateway that stopped without ending its sessions left behind; resolves how many. */
  recover(): Promise<number>;
  /** Waits for what is still to be written (bounded), then stops. */
  close(): Promise<void>;
}

/** See the module documentation. */
export class GatewayRecordings {
  readonly dir: string;
  readonly key: KeyObject;
  /** The key of the hashes secrets in requests are recorded as: derived from the signing key, so it never leaves the gateway and changes with it. */
  get redactionKey(): Buffer {
    return (this.#redactionKey ??= createHash('sha256')
      .update('hoop-redaction\0')
      .update(this.key.export({ format: 'der', type: 'pkcs8' }))
      .digest());
  }
  #redactionKey: Buffer | undefined;
  readonly archive: SessionArchive;
  readonly #retired: KeyObject[];
  /** Where recordings are written, off the event loop that relays sessions. */
  readonly #thread: RecordingThread;
  /** Whether {@link recoverUnindexed} found journals of the last run here (then a store's copy of them is not needed). */
  journalsFound = false;
  /** The recordings of running sessions, for their snapshots. */
  readonly #live = new Map<string, LiveRecording>();

  readonly #log: Logger;

  private constructor(dir: string, key: KeyObject, retired: KeyObject[], archive: SessionArchive, log: Logger) {
    this.#log = log;
    this.dir = dir;
    this.key = key;
    this.#retired = retired;
    this.archive = archive;
    this.#thread = new RecordingThread(archive.journal ? { onJournal: archive.journal } : {});
  }

  /**
   * Opens the recordings of the data directory `dataDir`, making the signing key on first use;
   * the index and the files written go to `archive` (default: the data directory, its index's
   * unreadable lines said in `log`).
   */
  static async open(dataDir: string, log: Logger, archive?: (dir: string) => SessionArchive): Promise<GatewayRecordings> {
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
      return new GatewayRecordings(dataDir, signingKeyFromPem(pem), retired, (archive ?? ((dir) => new FileSessionArchive(dir, log)))(dataDir), log);
    } catch (err) {
      throw new HoopError(ErrorCode.CONFIG_INVALID, `cannot use the recording key in ${keys}: ${describeError(err)}`, {
        hint: 'check the permissions of dataDir; a key file must be an Ed25519 private key in PEM',
      });
    }
  }

  /** This gateway's keys: the current one, then retired ones. */
  ownKeys(): PublishedKey[] {
    return [
      { publicKey: sshPublicKeyLine(this.key), fingerprint: sshFingerprint(this.key), status: 'current' as const },
      ...this.#retired.map((k) => ({ publicKey: sshPublicKeyLine(k), fingerprint: sshFingerprint(k), status: 'retired' as const })),
    ];
  }

  /** The keys recordings are checked against: this gateway's, and with a shared store every replica's. */
  publicKeys(): Promise<PublishedKey[]> {
    return this.archive.publicKeys(this.ownKeys());
  }

  /** Whether session `id` was recorded (its recording is never written over). */
  recorded(id: string): Promise<boolean> {
    return SESSION_ID.test(id) ? this.archive.recorded(id) : Promise.resolve(false);
  }

  /** Claims `id` for a new session ({@link SessionArchive.claim}): false for an id that is not a session id, or taken. */
  claim(id: string): Promise<boolean> {
    return SESSION_ID.test(id) ? this.archive.claim(id) : Promise.resolve(false);
  }

  /**
   * Starts the recording of session `id` on the recording thread: its records go to the journal
   * (src/recording/journal.ts), committed at least every `checkpointMs`, and are cut into
   * `recordings/<id>.tar` when it closes, for the decoder of `protocol` to read.
   */
  async start(id: string, protocol: string, checkpointMs = 1000): Promise<RecordingStream> {
    if (!SESSION_ID.test(id)) throw new Error(`not a session id: ${id}`);
    const archive = this.archive;
    const stream = await this.#thread.open({
      dir: archivePath(this.dir, id),
      id,
      key: this.key,
      journal: join(this.dir, JOURNAL_DIR),
      protocol,
      checkpointMs,
      ...(archive.fileWritten ? { onFile: (name, removed, data) => archive.fileWritten!(id, name, removed, data) } : {}),
    });
    this.#live.set(id, { stream, snapshots: 0, takenAt: 0 });
    return stream;
  }

  /**
   * The files of session `id`'s recording: once it ended, the archive's; while it runs here, a
   * snapshot of what its journal holds, signed as a truncated recording, in
   * `snapshots/<id>/<snapshot>/` (its number goes with the list, so that the files fetched next are
   * that snapshot's, whatever another viewer asks for meanwhile).
   */
  async files(id: string): Promise<{ files: string[]; snapshot?: number }> {
    const live = this.#liveRecording(id);
    if (!live) return { files: await this.archive.files(id) };
    // One snapshot at a time, and one a second at most, however many ask: the others get the last one.
    if (!live.taking && realClock.now() - live.takenAt >= SNAPSHOT_EVERY_MS) {
      live.taking = true;
      live.taken = (async () => {
        const snapshot = live.snapshots + 1;
        await live.stream.snapshot(join(this.dir, SNAPSHOT_DIR, id, String(snapshot)));
        live.snapshots = snapshot;
        // The one before may still be read by a viewer that listed it: older ones go.
        await rm(join(this.dir, SNAPSHOT_DIR, id, String(snapshot - 2)), { recursive: true, force: true });
      })().finally(() => {
        live.taking = false;
        live.takenAt = realClock.now();
      });
    }
    await live.taken;
    const dir = join(this.dir, SNAPSHOT_DIR, id, String(live.snapshots));
    return { files: (await readdir(dir)).filter((f) => RECORDING_FILE.test(f)).sort(), snapshot: live.snapshots };
  }

  /** One file of session `id`'s recording (of its `snapshot` while it runs): a path, or its bytes; undefined when there is none. */
  async file(id: string, name: string, snapshot?: number): Promise<string | Buffer | undefined> {
    if (snapshot === undefined) return this.archive.file(id, name);
    const path = join(this.dir, SNAPSHOT_DIR, id, String(snapshot), name);
    return stat(path).then(
      () => path,
      () => undefined,
    );
  }

  /** Session `id`'s recording while it runs here. */
  #liveRecording(id: string): LiveRecording | undefined {
    const live = this.#live.get(id);
    return live?.stream.closed ? undefined : live;
  }

  /** Stops the recording thread (the gateway is stopping; its sessions have ended), then the archive. */
  async stop(): Promise<void> {
    await this.#thread.stop();
    await this.archive.close();
  }

  /**
   * Cuts the sessions the journal of the gateway's last run holds and never cut (it was killed or
   * crashed), each as a truncated recording up to its last commit; then indexes what that run
   * left ({@link SessionArchive.recover}). Call at start, before any session runs.
   */
  async recoverUnindexed(): Promise<number> {
    await rm(join(this.dir, SNAPSHOT_DIR), { recursive: true, force: true });
    const journal = join(this.dir, JOURNAL_DIR);
    const { sessions, closed, unbound, done, found } = recoverJournals(journal, [this.key, ...this.#retired]);
    this.journalsFound = found > 0;
    if (unbound.length > 0)
      this.#log.warn('recording.journal-unbound', {
        sessions: unbound,
        message:
          'the journal of the last run holds these sessions, and no commit signed by this gateway binds what it holds of them (written in the moment before a crash, or changed on disk): nothing of them can be cut as evidence',
      });
    let kept = true;
    /** Recordings found whole, made durable before the journals that hold them go (the last run may have cut one and died before its sync). */
    const whole: string[] = [];
    for (const s of [...sessions, ...closed]) {
      // Cut where this gateway keeps recordings (whatever directory the journal names), unless one that verifies in full is there.
      if (!SESSION_ID.test(s.meta.id)) continue;
      const dir = await recordingPath(this.dir, s.meta.id);
      if ((await verifyRecording(dir, [this.key, ...this.#retired], undefined, s.meta.id)).complete) {
        whole.push(dir);
        continue;
      }
      // One the index says ended whole was sealed: its seal gone, a journal found (an older copy put back) is no way to cut it shorter and sign that.
      const indexed = await this.archive.session(s.meta.id).catch(() => undefined);
      if (indexed?.recording === 'complete') {
        this.#log.warn('recording.seal-missing', {
          session: s.meta.id,
          message:
            'the index says this session ended with its recording sealed, but no recording of it verifies in full: its files are left as they are (verify says what fails), not cut again from a journal',
        });
        continue;
      }
      if (closed.includes(s))
        this.#log.warn('recording.close-unproven', {
          session: s.meta.id,
          message: 'the journal says this session was cut, but no recording of it verifies in full: it is cut again from what the journal holds (a CLOSE entry is not signed)',
        });
      try {
        if (!isRecordingArchive(dir)) for (const f of (await readdir(dir).catch(() => [] as string[])).filter((f) => RECORDING_FILE.test(f))) await rm(join(dir, f), { force: true });
        const archive = this.archive;
        await cutRecording(
          { path: dir, id: s.meta.id, protocol: s.meta.protocol, key: this.key, sealed: false, durable: true, onFile: (name, data) => archive.fileWritten?.(s.meta.id, name, false, data) },
          s.blocks(),
        );
      } catch (err) {
        kept = false;
        this.#log.error('recording.recover-failed', { session: s.meta.id, error: describeError(err), message: 'its journal is kept for the next start' });
      }
    }
    // The journals go once every session they hold is cut and durable (or held nothing a commit of this gateway's keys binds).
    if (kept && (await this.#synced(whole))) done();
    return this.archive.recover();
  }

  /** Makes the recordings at `paths` (archives, or directories of before) durable; false, said in the log, when one cannot be. */
  async #synced(paths: readonly string[]): Promise<boolean> {
    try {
      const files: string[] = [];
      const dirs: string[] = [join(this.dir, 'recordings')];
      for (const path of paths) {
        if (isRecordingArchive(path)) files.push(path);
        else {
          files.push(...(await readdir(path)).map((f) => join(path, f)));
          dirs.push(path);
        }
      }
      if (files.length > 0) await syncFiles(files, dirs);
      return true;
    } catch (err) {
      this.#log.error('recording.recover-failed', { error: describeError(err), message: 'a recording found whole could not be synced; the journals are kept for the next start' });
      return false;
    }
  }

  /** Adds an ended session to the index; its snapshots go (a session nobody watched as it ran has none to look for). */
  async index(summary: SessionSummary): Promise<void> {
    const taken = this.#live.get(summary.id)?.taken;
    this.#live.delete(summary.id);
    if (taken) {
      await taken.catch(() => undefined);
      await rm(join(this.dir, SNAPSHOT_DIR, summary.id), { recursive: true, force: true });
    }
    return this.archive.index(summary);
  }

  /** See {@link SessionArchive.prune}. */
  prune(days: number, now = realClock.now()): Promise<string[]> {
    return this.archive.prune(days, now);
  }

  /** The index, newest first. */
  sessions(): Promise<SessionSummary[]> {
    return this.archive.sessions();
  }
}

/**
 * What the index says of a session whose gateway stopped before it ended (killed, crashed), read
 * from its recording in `dir`: `truncated`, ended `gateway-stopped` at its last write, with who and
 * where from its `start` event.
 */
export async function summaryFromRecording(id: string, dir: string): Promise<SessionSummary> {
  const at = recordingFiles(dir);
  const files = (await at.names().catch(() => [] as string[])).sort();
  let start: Record<string, unknown> | undefined;
  let statements = 0;
  let refused = 0;
  let last = 0;
  const count = (e: Record<string, unknown>): void => {
    if (e.t === 'start') start = e;
    else if (e.t === 'query' || e.t === 'execute') statements++;
    else if (e.t === 'decision') refused++;
    if (typeof e.at === 'number') last = Math.max(last, e.at);
  };
  const manifest = files.includes(MANIFEST) ? MANIFEST : files.filter((f) => /^checkpoint-\d{6}\.SHA256SUMS$/.test(f)).at(-1);
  if (files.some((f) => f.startsWith('records-')) && manifest) {
    try {
      for await (const e of readEvents(dir, manifest, RECORD_DECODERS)) count(e);
    } catch {
      /* what is unreadable the verifier says */
    }
  }
  for (const f of files.filter((f) => f.startsWith('events-'))) {
    if (!isRecordingArchive(dir)) last = Math.max(last, (await stat(join(dir, f)).catch(() => ({ mtimeMs: 0 }))).mtimeMs);
    try {
      for (const line of gunzipSync((await at.read(f)) ?? Buffer.alloc(0))
        .toString('utf8')
        .split('\n')
        .slice(1)) {
        if (line) count(JSON.parse(line) as Record<string, unknown>);
      }
    } catch {
      /* a chunk cut by the crash: the verifier says so */
    }
  }
  const who = (start?.identity ?? {}) as { subject?: string; issuer?: string; email?: string; groups?: string[]; kind?: 'user' | 'workload' };
  return {
    id,
    subject: who.subject ?? '?',
    issuer: who.issuer ?? '?',
    ...(who.email !== undefined ? { email: who.email } : {}),
    groups: who.groups ?? [],
    kind: who.kind ?? 'user',
    connection: String(start?.connection ?? '?'),
    type: String(start?.type ?? 'postgres'),
    remote: String(start?.remote ?? '?'),
    ...(typeof start?.client === 'string' ? { client: start.client } : {}),
    ...(typeof start?.policyCommit === 'string' ? { policyCommit: start.policyCommit } : {}),
    ...(typeof start?.runId === 'string' ? { runId: start.runId } : {}),
    ...(typeof start?.via === 'string' && (VIAS as readonly string[]).includes(start.via) ? { via: start.via as Via } : {}),
    ...(typeof start?.agent === 'string' ? { agent: start.agent } : {}),
    ...(typeof start?.isolated === 'boolean' ? { isolated: start.isolated } : {}),
    ...(start?.direct === true ? { direct: true as const } : {}),
    ...(isRunbookOrigin(start?.runbook) ? { runbook: { name: start.runbook.name, digest: start.runbook.digest } } : {}),
    startedAt: new Date(typeof start?.at === 'number' ? start.at : last).toISOString(),
    endedAt: new Date(last || realClock.now()).toISOString(),
    reason: 'gateway-stopped',
    statements,
    refused,
    tables: [],
    written: [],
    tablesComplete: false,
    maskedColumns: [],
    recording: 'truncated',
    bytesFromClient: 0,
    bytesToClient: 0,
  };
}

/** Whether a recording's start names a runbook's run as the gateway writes it. */
function isRunbookOrigin(v: unknown): v is { name: string; digest: string } {
  return typeof v === 'object' && v !== null && typeof (v as { name?: unknown }).name === 'string' && typeof (v as { digest?: unknown }).digest === 'string';
}

/** Where the gateway in `dataDir` writes the recording of session `id`. */
export function archivePath(dataDir: string, id: string): string {
  return join(dataDir, 'recordings', `${id}.tar`);
}

/** Where the recording of session `id` is kept in `dataDir`: its archive, or the directory of a gateway from before archives where there is one. */
export async function recordingPath(dataDir: string, id: string): Promise<string> {
  const dir = join(dataDir, 'recordings', id);
  return (await stat(dir).then(
    (s) => s.isDirectory(),
    () => false,
  ))
    ? dir
    : archivePath(dataDir, id);
}

/**
 * The sessions index and recordings in the data directory: one archive per session under
 * `recordings/`, and `sessions.jsonl`, one line per ended session, appended and fsynced, that
 * `hoop sessions ls` searches without opening recordings.
 */
export class FileSessionArchive implements SessionArchive {
  readonly dir: string;
  readonly #index: SessionIndexFile<SessionSummary>;
  #legacy: Promise<Set<string>> | undefined;

  /** A line of the index that is not a session's summary (nor a deletion) is skipped, said in `log`. */
  constructor(dataDir: string, log: Logger) {
    this.dir = dataDir;
    this.#index = new SessionIndexFile(join(dataDir, INDEX_FILE), endedSummarySchema, log);
    // Read as the gateway starts, not by its first session's claim.
    void this.#legacyIds();
  }

  started(): void {
    /* listed from the gateway's memory while it runs */
  }

  async recorded(id: string): Promise<boolean> {
    return stat(await this.#path(id)).then(
      () => true,
      () => false,
    );
  }

  /**
   * The recording's archive, made empty and exclusively: it exists for every id claimed here (its
   * recording is written over it), and stays, empty, when its recording is pruned. An id a gateway
   * from before archives kept a directory for is taken.
   */
  async claim(id: string): Promise<boolean> {
    if ((await this.#legacyIds()).has(id)) return false;
    const made = (): Promise<boolean> =>
      new Promise((resolve, reject) =>
        openFile(archivePath(this.dir, id), 'wx', 0o600, (err, fd) => {
          if (err) return err.code === 'EEXIST' ? resolve(false) : reject(err);
          closeFile(fd, () => resolve(true));
        }),
      );
    // `recordings/` is made when it is missing, not for each session.
    return made().catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
      await mkdir(join(this.dir, 'recordings'), { recursive: true, mode: 0o700 });
      return made();
    });
  }

  async files(id: string): Promise<string[]> {
    return (
      await recordingFiles(await this.#path(id))
        .names()
        .catch(() => [])
    )
      .filter((f) => RECORDING_FILE.test(f))
      .sort();
  }

  async file(id: string, name: string): Promise<string | Buffer | undefined> {
    const path = await this.#path(id);
    return isRecordingArchive(path) ? recordingFiles(path).read(name) : join(path, name);
  }

  /** Sessions a gateway from before archives kept a directory for: read once, when the archive opens (no gateway makes one now). */
  #legacyIds(): Promise<Set<string>> {
    this.#legacy ??= readdir(join(this.dir, 'recordings'), { withFileTypes: true }).then(
      (entries) => new Set(entries.filter((e) => e.isDirectory()).map((e) => e.name)),
      () => new Set<string>(),
    );
    return this.#legacy;
  }

  /** Where session `id`'s recording is kept ({@link recordingPath}, from what {@link #legacyIds} read). */
  async #path(id: string): Promise<string> {
    return (await this.#legacyIds()).has(id) ? join(this.dir, 'recordings', id) : archivePath(this.dir, id);
  }

  async publicKeys(own: PublishedKey[]): Promise<PublishedKey[]> {
    return own;
  }

  async recover(): Promise<number> {
    const indexed = new Set((await this.sessions()).map((s) => s.id));
    const root = join(this.dir, 'recordings');
    let found = 0;
    const ids = new Set((await readdir(root)).map((f) => f.replace(/\.tar$/, '')).filter((id) => SESSION_ID.test(id) && !indexed.has(id)));
    for (const id of [...ids].sort()) {
      // An id claimed for a session that never wrote a file (its recording could not start) is no session to list.
      const path = await this.#path(id);
      if (
        (
          await recordingFiles(path)
            .names()
            .catch(() => [])
        ).length === 0
      )
        continue;
      await this.index(await summaryFromRecording(id, path));
      found++;
    }
    return found;
  }

  /** Adds an ended session to the index (one line, fsynced; see ./session-index-file.ts). */
  index(summary: SessionSummary): Promise<void> {
    return this.#index.append(summary);
  }

  /** Notes each deletion in the index (`{ id, deleted }`; the session stays listed, its recording `deleted`). */
  async prune(days: number, now: number): Promise<string[]> {
    const cutoff = now - days * 86_400_000;
    const deleted: string[] = [];
    for (const s of await this.sessions()) {
      if (s.recording === 'deleted' || s.recording === 'none' || !s.endedAt || Date.parse(s.endedAt) >= cutoff) continue;
      // The files go; the empty archive (or directory) stays, so the id is never given to another session.
      const path = await this.#path(s.id);
      if (isRecordingArchive(path))
        await truncate(path).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
      else for (const f of await readdir(path).catch(() => [])) await rm(join(path, f), { recursive: true, force: true });
      await this.#index.append({ id: s.id, deleted: new Date(now).toISOString() });
      deleted.push(s.id);
    }
    return deleted;
  }

  close(): Promise<void> {
    return this.#index.close();
  }

  /** The index, newest first. */
  async sessions(): Promise<SessionSummary[]> {
    return (await this.#index.sessions()).reverse();
  }

  session(id: string): Promise<SessionSummary | undefined> {
    return this.#index.session(id);
  }

  async agentUsed(q: { subject: string; issuer: string; agent: string; connection: string; except: string }): Promise<boolean> {
    return (await this.sessions()).some((s) => s.id !== q.except && s.agent === q.agent && s.connection === q.connection && s.subject === q.subject && s.issuer === q.issuer);
  }
}

/** Distinct SQL texts of a session without a judge analysed for the index; beyond this the index says it is incomplete. */
const MAX_TEXTS = 500;
/** Distinct columns the index keeps per session; beyond this it says it is incomplete. */
const MAX_COLUMNS = 1000;

/** What the index says a session's statements touched. */
export type TouchedSummary = Pick<SessionSummary, 'tables' | 'written' | 'columns' | 'tablesComplete'>;

/**
 * The tables a session's statements named and wrote to, for the index: from the judge's verdicts
 * as they come (the policy analysed each text once already, and caches it by shape), or, in a
 * session without a judge, from its distinct SQL texts (a Set insert on the data path, capped),
 * analysed once the session is over.
 */
export class TablesTouched {
  /** Each made on its first entry: a session that sends nothing holds none. */
  #tables: Set<string> | undefined;
  #written: Set<string> | undefined;
  #columns: Set<string> | undefined;
  #texts: Set<string> | undefined;
  /** Named relation (as statements name it) -> its descendants (`schema.table`), from the catalog. */
  #descendants: Map<string, Set<string>> | undefined;
  #complete = true;

  /** A judge's verdict on one statement. */
  addVerdict(touched: TablesTouchedBy | undefined): void {
    if (!touched) return;
    for (const t of touched.tables) (this.#tables ??= new Set()).add(t);
    for (const t of touched.written) (this.#written ??= new Set()).add(t);
    for (const c of touched.columns) {
      if ((this.#columns?.size ?? 0) >= MAX_COLUMNS) {
        if (!this.#columns!.has(c)) this.#complete = false;
      } else (this.#columns ??= new Set()).add(c);
    }
  }

  /**
   * What the relations a statement named read beyond themselves (src/postgres/gateway/relation-reads.ts):
   * the tables and columns under a view, and a named parent's descendants, whose same-named
   * columns count as read (and the descendant as written) with the parent's, at the summary.
   */
  addReads(reads: { tables: readonly string[]; columns: readonly string[]; descendants?: ReadonlyArray<{ of: string; table: string }> }): void {
    this.addVerdict({ tables: reads.tables, written: [], columns: reads.columns });
    for (const d of reads.descendants ?? []) {
      const of = (this.#descendants ??= new Map()).get(d.of) ?? new Set<string>();
      if (of.size < MAX_COLUMNS) of.add(d.table);
      else if (!of.has(d.table)) this.#complete = false;
      this.#descendants.set(d.of, of);
    }
  }

  /** The SQL text of a statement no judge saw. */
  addText(sql: unknown): void {
    if (typeof sql !== 'string' || sql === '' || this.#texts?.has(sql)) return;
    if ((this.#texts?.size ?? 0) >= MAX_TEXTS) this.#complete = false;
    else (this.#texts ??= new Set()).add(sql);
  }

  async summary(): Promise<TouchedSummary> {
    let complete = this.#complete;
    if (this.#texts && this.#texts.size > 0) {
      await loadSqlParser();
      for (const sql of this.#texts) {
        const a = analyzeSql(sql);
        if (!a.ok) complete = false;
        this.addVerdict(tablesTouched(a));
      }
    }
    if (this.#descendants) complete = this.#inherit(this.#descendants) && complete;
    return { tables: [...(this.#tables ?? [])].sort(), written: [...(this.#written ?? [])].sort(), columns: [...(this.#columns ?? [])].sort(), tablesComplete: complete };
  }

  /**
   * A parent's columns named are its descendants' same-named columns too, and a parent written
   * its descendants written (a statement reading `ONLY parent` is counted so as well: the parse
   * does not tell ONLY, and a read said that was not is safe, the reverse is not). False when the
   * columns went past their cap.
   */
  #inherit(descendants: ReadonlyMap<string, ReadonlySet<string>>): boolean {
    let complete = true;
    for (const c of [...(this.#columns ?? [])]) {
      const dot = c.lastIndexOf('.');
      for (const table of descendants.get(c.slice(0, dot)) ?? []) {
        const column = `${table}${c.slice(dot)}`;
        if ((this.#columns?.size ?? 0) < MAX_COLUMNS) this.#columns!.add(column);
        else if (!this.#columns!.has(column)) complete = false;
      }
    }
    for (const w of [...(this.#written ?? [])]) for (const table of descendants.get(w) ?? []) this.#written!.add(table);
    return complete;
  }
}
