/**
 * The recording journal (docs/recording-format.md, "The journal"): one append-only file per
 * recording thread and directory, holding every open session's records as the data path staged
 * them, so that a session costs no file of its own while it runs.
 *
 * The file begins with {@link MAGIC}, then entries `[type u8][session u32 LE][length u32 LE][payload]`:
 * - `OPEN`: a session begins (JSON: its recording id, the directory it is cut into, its protocol);
 * - `DATA`: a staging block of the session's records, whole records each (./thread.ts);
 * - `COMMIT`: every `commitMs` when something was written, after one `fdatasync` of the file: the
 *   chain head of each session written since the last commit, signed (Ed25519) with the key that
 *   signs the recordings, over the journal's name as well;
 * - `CLOSE`: the session was cut into its signed per-session form, durably (./record-chunks.ts).
 *
 * Each session's blocks form a hash chain (`head = SHA-256(head ‖ block)`, starting from
 * SHA-256 of `hoop-journal`, NUL, and its `OPEN` entry's fields), so a commit binds what the
 * session is (its id, directory and protocol) and all it wrote up to it.
 * After a crash, `recoverJournals` (./journal-recovery.ts) cuts each session the journal holds no `CLOSE` for up to
 * its last committed head, as a truncated recording: a crash loses at most the last interval.
 *
 * A journal grows to {@link ROTATE_BYTES}, then the next one starts; one is removed once every
 * session with an entry in it is cut. @see https://man7.org/linux/man-pages/man2/fdatasync.2.html
 */
import { realClock } from '../clock.js';
import { ErrorCode, HoopError } from '../errors.js';
import { createHash, type KeyObject, sign } from 'node:crypto';
import { closeSync, fdatasync, mkdirSync, openSync, readSync, unlinkSync, writevSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { syncDirectory } from '../durable-file.js';

/** The first bytes of every journal. */
export const MAGIC = Buffer.from('HOOPJNL1');
export const OPEN = 1;
export const DATA = 2;
export const COMMIT = 3;
export const CLOSE = 4;
/** Bytes of an entry's header. */
export const ENTRY = 9;
/** A journal this large is followed by the next one (by default). */
const ROTATE_BYTES = 64 * 1024 * 1024;
/** Largest entry a journal holds (a staging block is at most a few MiB). */
export const MAX_ENTRY = 64 * 1024 * 1024;
/** `journal-<thread>-<seq>.hj`: the journals of one thread share `<thread>`. */
export const JOURNAL_FILE = /^journal-([0-9a-z-]+)-(\d{6})\.hj$/;

const fdatasyncFd = promisify(fdatasync);

/** What an `OPEN` entry says of a session. */
export interface JournalSession {
  /** The recording's id. */
  id: string;
  /** Where the recording is cut. */
  dir: string;
  /** Whose decoder reads its records. */
  protocol: string;
}

/** A journal whose bytes are not what was written (changed or cut on disk): what it holds of a session can no longer be signed as it stands. */
export class JournalChanged extends HoopError {
  constructor(message: string) {
    super(ErrorCode.RECORDING_INVALID, message);
  }
}

/** Bytes a journal file gained, from `offset`. */
export interface JournalBytes {
  name: string;
  offset: number;
  data: Buffer;
}

/** Where one block of a session lies. */
interface Extent {
  file: JournalFile;
  offset: number;
  length: number;
}

/** A session the journal holds. */
interface Held {
  meta: JournalSession;
  head: Buffer;
  blocks: number;
  extents: Extent[];
  /** Files holding an entry of it. */
  files: Set<JournalFile>;
  /** Written since the last commit. */
  dirty: boolean;
  /** Readers of its blocks under way (a cut, a snapshot): it is not moved meanwhile. */
  reading: number;
  /** Moved to the end of the journal ({@link Journal.compact}): the files it was in, released once a commit binds it where it is now, and that commit's number. */
  moved?: { from: Set<JournalFile>; open: JournalFile; before: number };
  /** Its blocks changed on disk: it is never moved. */
  unmovable?: boolean;
}

/** One journal file. */
class JournalFile {
  readonly name: string;
  readonly fd: number;
  size: number;
  /** Closed and unlinked: every session in it was cut. */
  removed = false;
  /** Bytes already handed to {@link Journal.commit}'s caller. */
  reported = 0;
  /** Sessions with an entry in it that are not cut yet. */
  readonly sessions = new Set<number>();

  constructor(dir: string, name: string) {
    this.name = name;
    this.fd = openSync(join(dir, name), 'wx+', 0o600);
    this.size = 0;
  }
}

/** `length` bytes of `fd` from `position`; undefined when the file ends first. */
export function readAt(fd: number, length: number, position: number): Buffer | undefined {
  const b = Buffer.allocUnsafe(length);
  for (let at = 0; at < length; ) {
    const n = readSync(fd, b, at, length - at, position + at);
    if (n === 0) return undefined;
    at += n;
  }
  return b;
}

/**
 * A session's blocks read back in order, as they were chained from the start of session `meta`: a block
 * changed on disk since (`since` it was written, or recovered) breaks the chain, which must reach
 * `head` at the last, and nothing after it is signed as evidence.
 * @throws JournalChanged
 */
export function* chainedBlocks(meta: JournalSession, blocks: ReadonlyArray<{ name: string; read: () => Buffer | undefined }>, head: Buffer, since: string): Generator<Buffer> {
  let chained = chainStart(meta);
  for (const [i, block] of blocks.entries()) {
    const b = block.read();
    if (!b) throw new JournalChanged(`${block.name} ends before a block it holds`);
    chained = createHash('sha256').update(chained).update(b).digest();
    if (i === blocks.length - 1 && !chained.equals(head)) throw new JournalChanged(`the blocks of recording ${meta.id} in ${block.name} changed on disk since they were ${since}`);
    yield b;
  }
}

/** The chain's start for session `meta`: every field of its `OPEN` entry is inside the chain, so a commit binds them. */
export function chainStart(meta: JournalSession): Buffer {
  return createHash('sha256')
    .update(`hoop-journal\0${JSON.stringify([meta.id, meta.dir, meta.protocol])}`)
    .digest();
}

/** What a commit signs: the journal group's name, then the entry's payload before its signature. */
export function commitMessage(thread: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`hoop-journal-commit\0${thread}\0`), body]);
}

/** The journal of one recording thread in one directory: see the module documentation. */
export class Journal {
  readonly #dir: string;
  readonly #key: KeyObject;
  readonly #durable: boolean;
  readonly #rotateBytes: number;
  /** The name every journal of this thread shares. */
  readonly #thread: string;
  #seq = 0;
  #file: JournalFile;
  readonly #held = new Map<number, Held>();
  #dirty = false;
  /** Every file not removed yet. */
  readonly #files = new Set<JournalFile>();
  /** Files written since the last commit: each is synced before it signs. */
  readonly #unsynced = new Set<JournalFile>();
  #broken: Error | undefined;
  /** Commits written so far, and the file of the last. */
  #commits = 0;
  #commitFile: JournalFile | undefined;
  /** Its files are closed ({@link close}): it writes nothing more. */
  #closed = false;

  /** `durable`: false skips the `fdatasync` (files outlive the process, not the machine); `rotateBytes`: where a journal is followed by the next. */
  constructor(dir: string, key: KeyObject, durable: boolean, rotateBytes = ROTATE_BYTES) {
    this.#dir = dir;
    this.#key = key;
    this.#durable = durable;
    this.#rotateBytes = rotateBytes;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.#thread = `${realClock.now().toString(36)}-${process.pid.toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    this.#file = this.#next();
  }

  /** The first error writing the journal: from then on it takes nothing more. */
  get broken(): Error | undefined {
    return this.#broken;
  }

  #next(): JournalFile {
    const f = new JournalFile(this.#dir, `journal-${this.#thread}-${String(++this.#seq).padStart(6, '0')}.hj`);
    this.#files.add(f);
    this.#write(f, [MAGIC]);
    return f;
  }

  /** Appends `parts` to `f` whole. @throws the write's error, after which the journal is broken */
  #write(f: JournalFile, parts: Buffer[]): number {
    if (this.#broken) throw this.#broken;
    const offset = f.size;
    try {
      let left = parts.reduce((n, p) => n + p.length, 0);
      while (left > 0) {
        const n = writevSync(f.fd, parts, f.size);
        f.size += n;
        left -= n;
        if (left > 0) parts = remaining(parts, n);
      }
    } catch (err) {
      this.#broken = err instanceof Error ? err : new Error(String(err));
      throw this.#broken;
    }
    return offset;
  }

  /** Appends an entry for `session` (its file counted) and returns where its payload lies. */
  #entry(type: number, session: number, payload: Buffer, held?: Held): number {
    if (!held && type !== COMMIT && type !== OPEN) throw new Error(`no session ${session} in the journal`);
    if (this.#file.size > this.#rotateBytes) this.#file = this.#next();
    const head = Buffer.allocUnsafe(ENTRY);
    head[0] = type;
    head.writeUInt32LE(session, 1);
    head.writeUInt32LE(payload.length, 5);
    const offset = this.#write(this.#file, [head, payload]) + ENTRY;
    if (held && !held.files.has(this.#file)) {
      held.files.add(this.#file);
      this.#file.sessions.add(session);
    }
    if (type !== COMMIT) {
      this.#dirty = true;
      this.#unsynced.add(this.#file);
    }
    return offset;
  }

  /** Session `session` (a number the thread gives it) begins. */
  open(session: number, meta: JournalSession): void {
    const held: Held = { meta, head: chainStart(meta), blocks: 0, extents: [], files: new Set(), dirty: true, reading: 0 };
    this.#entry(OPEN, session, Buffer.from(JSON.stringify(meta)), held);
    this.#held.set(session, held);
  }

  /** Appends a block of `session`'s records (whole records). */
  append(session: number, block: Buffer): void {
    const held = this.#held.get(session);
    const offset = this.#entry(DATA, session, block, held);
    held!.extents.push({ file: this.#file, offset, length: block.length });
    held!.head = createHash('sha256').update(held!.head).update(block).digest();
    held!.blocks += 1;
    held!.dirty = true;
  }

  /** Whether anything was written since the last commit. */
  get dirty(): boolean {
    return this.#dirty;
  }

  /**
   * Makes what was written durable, then signs the heads of the sessions written since the last
   * commit. With `report`, resolves the bytes each file gained since the last report, up to and
   * with this commit (for a store that keeps a copy: ../gateway/records/recordings-postgres.ts).
   */
  async commit(report = false): Promise<JournalBytes[]> {
    if (!this.#dirty || this.#broken) return [];
    this.#dirty = false;
    // The heads as written before the sync: what it makes durable.
    const changed = [...this.#held].filter(([, h]) => h.dirty);
    const body = Buffer.alloc(12 + changed.length * 40);
    body.writeUInt32LE(changed.length, 8);
    changed.forEach(([session, h], i) => {
      h.dirty = false;
      body.writeUInt32LE(session, 12 + i * 40);
      body.writeUInt32LE(h.blocks, 16 + i * 40);
      h.head.copy(body, 20 + i * 40);
    });
    try {
      const files = [...this.#unsynced];
      this.#unsynced.clear();
      for (const f of this.#durable ? files : []) {
        try {
          await fdatasyncFd(f.fd);
        } catch (err) {
          if (!f.removed) throw err; // a file removed meanwhile holds nothing a session needs
        }
      }
    } catch (err) {
      // Closed while it synced (the thread stops): what it holds stays as a crash leaves it.
      if (this.#closed) return [];
      this.#broken ??= err instanceof Error ? err : new Error(String(err));
      throw this.#broken;
    }
    // Closed while it synced: its descriptors are gone, and may name other files now.
    if (this.#closed) return [];
    body.writeDoubleLE(realClock.now(), 0);
    const signature = sign(null, commitMessage(this.#thread, body), this.#key);
    // The commit itself need not be durable now: the next one makes it so, and recovery takes the last one it finds whole.
    this.#entry(COMMIT, 0, Buffer.concat([body, signature]));
    this.#commits += 1;
    this.#commitFile = this.#file;
    // The file holding it is needed as long as any session it names is (a session idle since is named by no later commit).
    const file = this.#file;
    for (const [session] of changed) {
      const h = this.#held.get(session);
      if (h && !h.files.has(file)) {
        h.files.add(file);
        file.sessions.add(session);
      }
    }
    return report ? this.#report() : [];
  }

  /** What each file gained since it was last reported. */
  #report(): JournalBytes[] {
    const out: JournalBytes[] = [];
    for (const f of new Set([...[...this.#held.values()].flatMap((h) => [...h.files]), this.#file])) {
      if (f.removed || f.size === f.reported) continue;
      const data = Buffer.allocUnsafe(f.size - f.reported);
      for (let at = 0; at < data.length; ) at += readSync(f.fd, data, at, data.length - at, f.reported + at) || data.length;
      out.push({ name: f.name, offset: f.reported, data });
      f.reported = f.size;
    }
    return out;
  }

  /** The blocks of `session`, in order, read back from the journal. */
  *blocks(session: number): Generator<Buffer> {
    const held = this.#held.get(session);
    if (!held) return;
    held.reading += 1;
    try {
      yield* chainedBlocks(
        held.meta,
        held.extents.map((e) => ({ name: e.file.name, read: () => readAt(e.file.fd, e.length, e.offset) })),
        held.head,
        'written',
      );
    } finally {
      held.reading -= 1;
    }
  }

  /**
   * Keeps a long session from pinning every journal written since it began. First, the sessions
   * moved before the last commit are released from the files they were in, once that commit (which
   * binds them where they are now) is synced, with the directory; the files no session holds then
   * go (their names are resolved). Then the oldest file held only by sessions that are together
   * less than half its size (none being read) has each of them written again at the end of the
   * journal, `OPEN` and every block, the chain unchanged, for the next commit to bind; until it is
   * released, its old files stay, and recovery takes its earlier commit.
   *
   * @throws the error of a write or sync, after which the journal is broken
   */
  async compact(): Promise<string[]> {
    if (this.#broken || this.#closed) return [];
    const bound = [...this.#held].filter(([, h]) => h.moved && h.moved.before < this.#commits);
    const file = this.#commitFile;
    if (bound.length > 0 && this.#durable && file && !file.removed) {
      try {
        await fdatasyncFd(file.fd);
      } catch (err) {
        // A file removed meanwhile holds nothing a session needs (every session it bound was cut), and a closed journal writes nothing more; anything else breaks it.
        if (this.#closed) return [];
        if (!file.removed) throw (this.#broken ??= err instanceof Error ? err : new Error(String(err)));
      }
      await syncDirectory(this.#dir);
      if (this.#closed) return [];
    }
    for (const [session, h] of bound) {
      if (!this.#held.has(session)) continue; // cut meanwhile
      const keep = new Set([h.moved!.open, ...h.extents.map((e) => e.file)]);
      for (const f of h.moved!.from) {
        if (keep.has(f)) continue;
        h.files.delete(f);
        f.sessions.delete(session);
      }
      h.moved = undefined;
    }
    const removed = [...this.#files].filter((f) => f.sessions.size === 0 && f !== this.#file).map((f) => this.#remove(f));
    for (const f of this.#files) {
      if (f === this.#file) break;
      const holders = [...f.sessions].map((s) => [s, this.#held.get(s)!] as const);
      const bytes = holders.reduce((n, [, h]) => n + h.extents.reduce((m, e) => m + e.length, 0), 0);
      if (holders.some(([, h]) => h.reading > 0 || h.moved || h.unmovable) || bytes > f.size / 2) continue;
      for (const [session, h] of holders) this.#move(session, h);
      break;
    }
    return removed;
  }

  /** Writes `session` again at the end of the journal (see {@link compact}); one whose blocks changed on disk is left where it is, for good. */
  #move(session: number, h: Held): void {
    let blocks: Buffer[];
    try {
      blocks = [...this.blocks(session)];
    } catch (err) {
      if (!(err instanceof JournalChanged)) throw err;
      h.unmovable = true;
      return;
    }
    const from = new Set(h.files);
    this.#entry(OPEN, session, Buffer.from(JSON.stringify(h.meta)), h);
    const open = this.#file;
    h.extents = blocks.map((b) => {
      const offset = this.#entry(DATA, session, b, h);
      return { file: this.#file, offset, length: b.length };
    });
    h.dirty = true;
    h.moved = { from, open, before: this.#commits };
  }

  /** What the journal holds of `session`. */
  session(session: number): JournalSession | undefined {
    return this.#held.get(session)?.meta;
  }

  /** `session` was cut durably: says so (unless the journal is broken), removes the journals no session needs any more and resolves their names. */
  closed(session: number): string[] {
    const held = this.#held.get(session);
    if (!held) return [];
    if (!this.#broken) this.#entry(CLOSE, session, Buffer.alloc(0), held);
    this.#held.delete(session);
    for (const f of held.files) f.sessions.delete(session);
    // Any file no session needs any more, but the one written now (a file rotated away after its last session was cut too).
    return [...this.#files].filter((f) => f.sessions.size === 0 && (f !== this.#file || this.#broken)).map((f) => this.#remove(f));
  }

  #remove(f: JournalFile): string {
    this.#files.delete(f);
    this.#unsynced.delete(f);
    f.removed = true;
    closeSync(f.fd);
    try {
      unlinkSync(join(this.#dir, f.name));
    } catch {
      /* gone already */
    }
    return f.name;
  }

  /** The sessions it holds, by number. */
  sessions(): number[] {
    return [...this.#held.keys()];
  }

  /** Closes its files; removes those no session needs and resolves their names. */
  close(): string[] {
    this.#closed = true;
    const removed: string[] = [];
    for (const f of [...this.#files]) {
      if (f.sessions.size === 0) removed.push(this.#remove(f));
      else closeSync(f.fd);
    }
    return removed;
  }
}

/** `parts` without their first `n` bytes. */
function remaining(parts: Buffer[], n: number): Buffer[] {
  const out: Buffer[] = [];
  for (const p of parts) {
    if (n >= p.length) n -= p.length;
    else {
      out.push(n > 0 ? p.subarray(n) : p);
      n = 0;
    }
  }
  return out;
}
