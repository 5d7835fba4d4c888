/**
 * The recording thread (see ./thread.ts). A recording with a journal (./journal.ts) appends each
 * staged block to the journal of its directory as it comes, acked at once; every `checkpointMs`
 * the journal is synced and its sessions' heads signed, once for all of them; when the recording
 * closes, its blocks are cut into its signed per-session form (./record-chunks.ts), off the data
 * path. A journal that cannot be written fails every recording in it; each is then cut as it
 * stands (truncated), tried again each interval until the disk takes it (as is a cut that failed).
 * A recording without a journal has its writer (./writer.ts), which cuts the blocks into chunks as
 * they come; a block is acked once the writer is not behind the disk. The first failure is
 * reported and the recording writes nothing more.
 *
 * @see https://nodejs.org/api/worker_threads.html#workerparentport
 */
import type { KeyObject } from 'node:crypto';
import { readdirSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parentPort } from 'node:worker_threads';
import { gzipSync } from 'node:zlib';
import { syncFiles } from '../durable-file.js';
import { lowerThreadPriority } from '../worker-thread.js';
import { Journal, JournalChanged } from './journal.js';
import { cutRecording } from './record-chunks.js';
import { isRecordingArchive } from './recording-files.js';
import type { FromThread, ToThread } from './thread.js';
import { RECORDING_FILE, RecordingWriter } from './writer.js';

interface Open {
  /** With a journal: the journal, and how the recording is cut from it. */
  journaled?: { journal: Journal; key: KeyObject; durable: boolean; announce: boolean };
  /** Without a journal: its writer, once open (undefined when it could not be opened). */
  opened: Promise<RecordingWriter | undefined>;
  writer?: RecordingWriter;
  /** The work on this recording, in order (its opening first). */
  queue: Promise<void>;
  failed: boolean;
}

lowerThreadPriority();

const port = parentPort!;
/** What an `open` says, with the key it names (or the last one sent). */
type OpenOptions = Extract<ToThread, { op: 'open' }>['options'] & { key: KeyObject };
/** The key the last `open` held (it is sent once). */
let lastKey: KeyObject | undefined;
const recordings = new Map<number, Open>();
const say = (m: FromThread): void => port.postMessage(m);
const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** The recording cannot be written: said once; it writes nothing more. */
function fail(id: number, err: unknown): void {
  const r = recordings.get(id);
  if (r?.failed) return;
  if (r) {
    r.failed = true;
    r.writer?.abandon();
  }
  say({ op: 'failed', id, error: message(err) });
}

/**
 * Opens recording `id`; what comes for it meanwhile waits in its queue. (Its own scope: what its
 * writer keeps for its life, the callbacks below, holds only the id.)
 */
function open(id: number, o: OpenOptions): void {
  if (o.journal !== undefined) return openJournaled(id, o);
  const { announce, held, keepArchive, journal: _, announceJournal: __, ...options } = o;
  const onFile = announce ? (name: string, removed: boolean): void => say({ op: 'file', id, name, removed }) : undefined;
  const r: Open = { opened: Promise.resolve(undefined), queue: Promise.resolve(), failed: false };
  r.opened = (async () => {
    const keep = keepArchive
      ? (archive: Buffer): void => {
          const buffer = movable(archive);
          port.postMessage({ op: 'archive', id, buffer } satisfies FromThread, [buffer]);
        }
      : undefined;
    const first = held ? { held: { first: { name: held.name, data: Buffer.from(held.text) }, ...(keep ? { keep } : {}) } } : {};
    const writer = await RecordingWriter.create({ ...options, ...first, blocking: true, onFailure: (err) => fail(id, err), ...(onFile ? { onFile } : {}) });
    r.writer = writer;
    say({ op: 'opened', id });
    return writer;
  })().catch((err: unknown) => {
    r.failed = true;
    say({ op: 'opened', id, error: message(err) });
    return undefined;
  });
  r.queue = r.opened.then(() => undefined);
  recordings.set(id, r);
}

/** The journals of this thread, by directory: one written at a time (a broken one is replaced, and kept until its recordings are cut). */
const journals = new Map<string, Journal>();
/** Whether the thread's owner hears of what journals commit and remove. */
let announceJournals = false;
/** How often journals commit: the shortest `checkpointMs` asked for. */
let commitMs = Number.POSITIVE_INFINITY;
let commitTimer: NodeJS.Timeout | undefined;
/** Recordings to cut once the disk takes them: those that failed (as they stand, truncated), and those whose cut failed. */
const salvage = new Map<number, { r: Open; sealed: boolean }>();

/** Opens recording `id` in the journal of `o.journal`. */
function openJournaled(id: number, o: OpenOptions): void {
  const r: Open = { opened: Promise.resolve(undefined), queue: Promise.resolve(), failed: false };
  recordings.set(id, r);
  announceJournals ||= o.announceJournal;
  try {
    let journal = journals.get(o.journal!);
    if (!journal || journal.broken) journals.set(o.journal!, (journal = new Journal(o.journal!, o.key, o.durable !== false)));
    journal.open(id, { id: o.id, dir: o.dir, protocol: o.protocol });
    r.journaled = { journal, key: o.key, durable: o.durable !== false, announce: o.announce };
  } catch (err) {
    r.failed = true;
    say({ op: 'opened', id, error: message(err) });
    return;
  }
  say({ op: 'opened', id });
  const every = o.checkpointMs ?? 1000;
  if (every < commitMs || !commitTimer) {
    commitMs = Math.min(commitMs, every);
    clearInterval(commitTimer);
    commitTimer = setInterval(() => void tick(), commitMs);
  }
}

/** Whether a tick is under way (a slow disk makes one outlast the interval: the next is skipped). */
let ticking = false;
/** Intervals in a row with no recording open or left to cut. */
let idleTicks = 0;
/** Intervals with nothing open after which the journals close (a new one is made by the next session). */
const IDLE_COMMITS = 5;

/** The bytes of `b` in an ArrayBuffer of their own, to be moved to the owner (a view's whole buffer would go, or be copied). */
const movable = (b: Buffer): ArrayBuffer => b.buffer.slice(b.byteOffset, b.byteOffset + b.length) as ArrayBuffer;

/** Each interval: every journal commits; what failed is cut, if the disk takes it now. */
async function tick(): Promise<void> {
  if (ticking) return;
  ticking = true;
  try {
    await commitAndSalvage();
  } finally {
    ticking = false;
  }
  // A journal outlives a short pause (a client that opens one session after another reuses it); it goes after IDLE_COMMITS intervals with nothing open.
  idleTicks = recordings.size === 0 && salvage.size === 0 ? idleTicks + 1 : 0;
  if (idleTicks >= IDLE_COMMITS) idle();
}

/** Commits every journal (telling the owner what each committed, when it listens) and compacts it, then cuts what waits to be cut. */
async function commitAndSalvage(): Promise<void> {
  for (const journal of new Set(journals.values())) {
    try {
      for (const { name, offset, data } of await journal.commit(announceJournals)) {
        const z = gzipSync(data, { level: 1 });
        const buffer = movable(z);
        port.postMessage({ op: 'journal', id: 0, name, offset, buffer } satisfies FromThread, [buffer]);
      }
      removedJournals(await journal.compact());
    } catch (err) {
      failJournal(journal, err);
    }
  }
  for (const [id, { r, sealed }] of salvage) {
    // After whatever else it does (a close's cut, a snapshot): one cut of a recording at a time.
    const done = r.queue.then(
      () =>
        cut(id, r, sealed).then(
          () => true,
          (err: unknown) => err instanceof JournalChanged,
        ),
      () => false,
    );
    r.queue = done.then(
      () => undefined,
      () => undefined,
    );
    if (await done.catch(() => false)) salvage.delete(id);
  }
}

/** A journal cannot be written: every recording in it fails, to be cut as it stands. */
function failJournal(journal: Journal, err: unknown): void {
  for (const id of journal.sessions()) {
    const r = recordings.get(id);
    if (r && !r.failed) fail(id, err);
    if (r) salvage.set(id, { r, sealed: false });
  }
}

/**
 * Cuts recording `id` from its journal into its directory (`sealed`: it closed in full; what a cut
 * that failed left there goes first), then tells the journal. A durable cut is synced with the
 * cuts of other sessions made meanwhile ({@link synced}): until then the journal, which holds the
 * same records, keeps it.
 */
async function cut(id: number, r: Open, sealed: boolean): Promise<void> {
  const { journal, key, durable, announce } = r.journaled!;
  const meta = journal.session(id);
  if (!meta) return;
  // An archive is written over whole; a directory loses what a cut that failed left there first.
  if (!isRecordingArchive(meta.dir)) for (const f of filesIn(meta.dir).filter((f) => RECORDING_FILE.test(f))) unlinkSync(join(meta.dir, f));
  // With its bytes, copied out to be moved (an owner that keeps a copy need not read the archive back).
  const onFile = announce
    ? (name: string, data: Buffer): void => {
        const buffer = movable(data);
        port.postMessage({ op: 'file', id, name, removed: false, buffer } satisfies FromThread, [buffer]);
      }
    : undefined;
  await cutRecording({ path: meta.dir, id: meta.id, protocol: meta.protocol, key, sealed, durable: false, ...(onFile ? { onFile } : {}) }, journal.blocks(id));
  if (durable) await synced(meta.dir);
  removedJournals(journal.closed(id));
}

/** How long a cut waits for others to be synced with it: the disk is waited on once for all the sessions that end meanwhile. */
const SYNC_AFTER_MS = 200;
/** Cuts synced together: their files or directories (each with the files in it), and the sync (once begun). */
interface SyncGroup {
  paths: string[];
  sync(): Promise<void>;
  done: Promise<void>;
}
/** The cuts to sync next. */
let syncing: SyncGroup | undefined;

/** Resolves once the recording at `path` (an archive, or a directory and its files) and its name are on disk, synced with the other cuts of the next {@link SYNC_AFTER_MS}. */
function synced(path: string): Promise<void> {
  if (!syncing) {
    let once: Promise<void> | undefined;
    const group: SyncGroup = {
      paths: [],
      sync: () => {
        if (syncing === group) syncing = undefined;
        once ??= syncRecordings(group.paths);
        return once;
      },
      done: new Promise<void>((resolve) => setTimeout(resolve, SYNC_AFTER_MS)).then(() => group.sync()),
    };
    syncing = group;
  }
  syncing.paths.push(path);
  return syncing.done;
}

/** Syncs each archive, each directory's files and the directory, and the directories that hold them (once each). */
function syncRecordings(paths: readonly string[]): Promise<void> {
  const files: string[] = [];
  const dirs = new Set<string>();
  for (const path of paths) {
    dirs.add(dirname(path));
    if (isRecordingArchive(path)) files.push(path);
    else {
      files.push(
        ...filesIn(path)
          .filter((f) => RECORDING_FILE.test(f))
          .map((f) => join(path, f)),
      );
      dirs.add(path);
    }
  }
  return syncFiles(files, dirs);
}

/** Syncs the group that waits, now (the owner stops). */
async function syncNow(): Promise<void> {
  await syncing?.sync();
}

/** The names in `dir` (none when there is no such directory). */
function filesIn(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Says which journals went, to an owner that hears of them. */
function removedJournals(names: string[]): void {
  if (announceJournals) for (const name of names) say({ op: 'journal-removed', id: 0, name });
}

/** A message for a recording with a journal. */
function journaled(m: ToThread, r: Open): void {
  if ((m.op === 'data' || m.op === 'close') && m.buffer && !r.failed) {
    try {
      r.journaled!.journal.append(m.id, Buffer.from(m.buffer, 0, m.length));
      if (m.op === 'data') say({ op: 'written', id: m.id, bytes: m.length });
    } catch (err) {
      failJournal(r.journaled!.journal, err);
    }
  }
  if (m.op === 'data') return;
  if (m.op === 'snapshot') {
    const { dir } = m;
    r.queue = r.queue.then(async () => {
      const { journal, key } = r.journaled!;
      const meta = journal.session(m.id);
      try {
        if (r.failed || !meta) throw new Error('the recording failed');
        await cutRecording({ path: dir, id: meta.id, protocol: meta.protocol, key, sealed: false, durable: false }, journal.blocks(m.id));
        say({ op: 'snapshotted', id: m.id });
      } catch (err) {
        say({ op: 'snapshotted', id: m.id, error: message(err) });
      }
    });
    return;
  }
  if (m.op !== 'close') return;
  r.queue = r.queue.then(async () => {
    let error: string | undefined;
    try {
      if (r.failed) throw new Error('the recording failed');
      await cut(m.id, r, true);
    } catch (err) {
      // A journal changed on disk is not cut again here: the next start recovers what its commits still bind.
      if (!r.failed && !(err instanceof JournalChanged)) salvage.set(m.id, { r, sealed: true });
      error = message(err);
    }
    // Gone only once cut: until then the journal it is cut from stays open.
    recordings.delete(m.id);
    say({ op: 'closed', id: m.id, ...(error !== undefined ? { error } : {}) });
  });
}

/** No recording is open or left to cut: the journals (each holding none) go, and the timer stops. */
function idle(): void {
  idleTicks = 0;
  clearInterval(commitTimer);
  commitTimer = undefined;
  commitMs = Number.POSITIVE_INFINITY;
  for (const journal of journals.values()) removedJournals(journal.close());
  journals.clear();
}

port.on('message', (m: ToThread) => {
  if (m.op === 'open') {
    lastKey = m.options.key ?? lastKey;
    if (!lastKey) return say({ op: 'opened', id: m.id, error: 'no key to sign the recording with' });
    open(m.id, { ...m.options, key: lastKey });
    return;
  }
  if (m.op === 'retire') {
    // The owner stops: journals that hold no open recording go now (those that do stay, as a crash leaves them).
    void syncNow()
      .catch(() => undefined)
      .finally(() => {
        idle();
        say({ op: 'retired', id: 0 });
      });
    return;
  }
  const r = recordings.get(m.id);
  if (!r) return;
  if (r.journaled) return journaled(m, r);
  if (m.op === 'snapshot') return say({ op: 'snapshotted', id: m.id, error: 'a recording without a journal has no snapshot: its files are on disk as they are written' });
  if (m.op === 'data') {
    r.queue = r.queue.then(async () => {
      const w = await r.opened;
      if (r.failed || !w) return;
      try {
        w.appendRecords(Buffer.from(m.buffer, 0, m.length));
        await w.drained();
        if (!r.failed) say({ op: 'written', id: m.id, bytes: m.length });
      } catch (err) {
        fail(m.id, err);
      }
    });
    return;
  }
  r.queue = r.queue.then(async () => {
    recordings.delete(m.id);
    const w = await r.opened;
    if (r.failed || !w) return say({ op: 'closed', id: m.id, error: 'the recording failed' });
    try {
      if (m.op === 'close' && m.buffer) w.appendRecords(Buffer.from(m.buffer, 0, m.length));
      await w.close();
      say({ op: 'closed', id: m.id });
    } catch (err) {
      say({ op: 'closed', id: m.id, error: message(err) });
    }
  });
});
