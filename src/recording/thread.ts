/**
 * Recordings written on their own thread. The data path only copies what a protocol's recorder
 * needs (whole messages, as bytes) into a staging block with the time; the recording thread
 * (./thread-worker.ts) keeps the records as they are: in its journal (./journal.ts), cut into the
 * recording when it closes, or straight into the recording's chunks (./writer.ts); readers turn
 * them into events with the protocol's decoder (e.g. src/postgres/pipeline/recording/encoder.ts).
 * So a session pays a copy per recorded message, and the event loop that relays every session
 * never waits for a recording.
 *
 * Staged records: `[kind u8][length u32 LE][at f64 LE][payload]`. Kind {@link EVENT} is a whole
 * event as JSON; the others are the protocol's. Blocks go to the thread when full or every
 * {@link FLUSH_MS}, moved (not copied); the thread says how many staged bytes are on disk, and
 * {@link RecordingStream.behind} is a Promise while more than `maxPendingBytes` are not.
 *
 * @see https://nodejs.org/api/worker_threads.html#portpostmessagevalue-transferlist
 */
import type { KeyObject } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import { LazyWorker, startWorker } from '../worker-thread.js';
import type { EventSink, RecordingEvent } from './event-line.js';

/** A whole event, as JSON. */
export const EVENT = 1;
/** Bytes of a record's header: kind, length, time. */
export const HEADER = 13;
/** Largest staging block; one this size is sent to the thread once {@link SEND_AT} full. */
const BLOCK = 256 * 1024;
const SEND_AT = 192 * 1024;
/**
 * Smallest staging block. A block starts at the size the last one sent needed and doubles as
 * records come, up to {@link BLOCK}: an idle session holds a small block for at most
 * {@link FLUSH_MS} after its last record (its start, say), then none; a busy one stages in full
 * blocks. (Every session staged into its own 256 KiB block before.)
 */
const MIN_BLOCK = 1024;
/** Staged records wait at most this long for the recording thread. */
const FLUSH_MS = 1000;
/** How long a stop waits for the thread to close its journals. */
const RETIRE_MS = 2000;
/**
 * The recording thread's young generation (V8's `maxYoungGenerationSizeMb`: two semi-spaces of
 * a third of it each, and as much for large objects). What the thread allocates is short-lived
 * (events go to blocks outside the heap), but V8 grows the young generation whenever as much as
 * it holds has survived it since it last grew, and open recordings keep a few objects each: with
 * a thousand open it had grown to 16 MiB (resident once used), to no gain. Now at most 4 MiB.
 */
const YOUNG_GENERATION_MB = 6;

/** The least power of two at least `n`. */
function pow2(n: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, n)));
}

/** Reads the records of a staging block (or a chunk of format 3, from `from`) in order, up to `length`. */
export function forEachRecord(block: Buffer, length: number, fn: (kind: number, at: number, bytes: Buffer, start: number, end: number) => void, from = 0): void {
  let at = from;
  while (at + HEADER <= length) {
    const kind = block[at]!;
    const n = block.readUInt32LE(at + 1);
    const time = block.readDoubleLE(at + 5);
    fn(kind, time, block, at + HEADER, at + HEADER + n);
    at += HEADER + n;
  }
}

/** What turns one protocol's records into events, for a reader. */
export interface RecordEncoder {
  record(kind: number, at: number, bytes: Buffer, start: number, end: number): void;
  /** Writes what it holds, before an event of the session's own (its end). */
  flush(): void;
}

/** A protocol's decoder module (`createRecordEncoder`), as readers are given it by the protocol a recording names: recording knows no protocol. */
export interface RecordEncoderModule {
  createRecordEncoder(sink: EventSink): RecordEncoder;
}

/** What the data path writes a recording with. */
export interface RecordingStream {
  /** Copies a record of the protocol's `kind`: the bytes of `bytes` from `start` to `end`. */
  record(kind: number, at: number, bytes: Buffer, start: number, end: number): void;
  /** A whole event (the session's start and end, for instance). */
  event(event: RecordingEvent): void;
  /** A Promise while the recording thread is behind; wait for it before reading more. */
  readonly behind: Promise<void> | undefined;
  /** The first error the recording thread had writing; from then on nothing more is written. */
  readonly failure: Error | undefined;
  /** Called once, on that error. */
  onFailure: ((err: Error) => void) | undefined;
  /** Writes everything and the signed manifest. */
  close(): Promise<void>;
  /** Closed (or closing): it takes nothing more. */
  readonly closed: boolean;
  /** With a journal: writes what it holds so far into `dir` as a truncated recording (signed), a running session's view. */
  snapshot(dir: string): Promise<void>;
}

/** What hears of a thread's journals (a store that keeps a copy of them, for a replica that takes this one over). */
export interface JournalListener {
  /** Journal `name` committed `data` from `offset` (gzip of the bytes). */
  committed(name: string, offset: number, data: Buffer): void;
  /** Journal `name` was removed: every session in it is cut. */
  removed(name: string): void;
}

/** Told of a file of a recording: written (with its bytes, when the thread sent them), or removed. */
export type OnFile = (name: string, removed: boolean, data?: Buffer) => void;

/** A recording to open on the thread. */
export interface ThreadRecordingOptions {
  dir: string;
  id: string;
  key: KeyObject;
  /** The protocol whose decoder reads the records (`postgres`, `ssh`), named in every chunk. */
  protocol: string;
  /**
   * The directory of the thread's journal (./journal.ts): the records go there as they come, and
   * are cut into the recording's directory, in format 3 (./record-chunks.ts), when it closes.
   * Without it, the thread writes them into the directory as they come, in chunks of a second
   * with a signed checkpoint each (a CLI's record, whose key may be gone with its process: no
   * other process could finish a journal it left).
   */
  journal?: string;
  checkpointMs?: number;
  chunkBytes?: number;
  chunkMs?: number;
  /** False: no fsync (see RecordingWriterOptions.durable). */
  durable?: boolean;
  /** Without a journal: the record is held in memory until it closes or signs its first checkpoint, with this file first (a CLI spool's `spool.json`; see HeldFiles). */
  held?: { name: string; text: string };
  /** Staged bytes not yet on disk beyond which {@link RecordingStream.behind} says wait (default 4 MiB). */
  maxPendingBytes?: number;
  /** Told of each file of the recording once it is durable on disk (with its bytes, when a journal's cut wrote it), and of each removed (a shared store copies them). */
  onFile?: OnFile;
  /** With `held`: a record that closes while held comes here as its archive's bytes, unwritten (its owner places it); see HeldFiles. */
  onArchive?: (archive: Buffer) => void;
}

/** Messages to the thread. */
export type ToThread =
  | {
      op: 'open';
      id: number;
      /** `key` undefined: the one the last `open` held. */
      options: Omit<ThreadRecordingOptions, 'maxPendingBytes' | 'onFile' | 'onArchive' | 'key'> & { key: KeyObject | undefined; announce: boolean; announceJournal: boolean; keepArchive: boolean };
    }
  | { op: 'data'; id: number; buffer: ArrayBuffer; length: number }
  /** With the records staged last (`buffer`, `length`), written before the recording is closed: no `written` is said of them. */
  | { op: 'close'; id: number; buffer?: ArrayBuffer; length?: number }
  | { op: 'snapshot'; id: number; dir: string }
  | { op: 'retire'; id: 0 };

/** Messages from the thread. */
export type FromThread =
  | { op: 'opened'; id: number; error?: string }
  | { op: 'written'; id: number; bytes: number }
  | { op: 'failed'; id: number; error: string }
  | { op: 'file'; id: number; name: string; removed: boolean; buffer?: ArrayBuffer }
  | { op: 'archive'; id: number; buffer: ArrayBuffer }
  | { op: 'closed'; id: number; error?: string }
  | { op: 'snapshotted'; id: number; error?: string }
  | { op: 'journal'; id: 0; name: string; offset: number; buffer: ArrayBuffer }
  | { op: 'journal-removed'; id: 0; name: string }
  | { op: 'retired'; id: 0 };

/** One recording thread for every recording of the process; started on first use, referenced while a recording is open. */
export class RecordingThread {
  readonly #flushMs: number;
  /** The thread: the recordings it held fail when it dies (their sessions follow `recording.onFailure`); the next one starts a new thread. */
  readonly #thread = new LazyWorker<FromThread>(() => startWorker(import.meta.url, 'thread-worker', { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB }), {
    message: (m) => (m.op === 'retired' ? this.#retired?.() : m.op === 'journal' || m.op === 'journal-removed' ? this.#journalNews(m) : this.#open.get(m.id)?.answer(m)),
    died: (why) => {
      const error = `the recording thread stopped: ${why}`;
      for (const s of [...this.#open.values()]) s.answer({ op: 'failed', id: 0, error });
    },
  });
  readonly #open = new Map<number, ThreadStream>();
  #seq = 0;
  /** Told when the thread has closed its journals, as it stops. */
  #retired: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;

  readonly #onJournal: JournalListener | undefined;

  /**
   * `flushMs`: staged records wait at most this long for the thread (default {@link FLUSH_MS});
   * `onJournal`: told of the bytes each journal commits, and of each journal removed.
   */
  constructor(o: { flushMs?: number; onJournal?: JournalListener } = {}) {
    this.#flushMs = o.flushMs ?? FLUSH_MS;
    this.#onJournal = o.onJournal;
  }

  #journalNews(m: Extract<FromThread, { op: 'journal' | 'journal-removed' }>): void {
    if (m.op === 'journal') this.#onJournal?.committed(m.name, m.offset, Buffer.from(m.buffer));
    else this.#onJournal?.removed(m.name);
  }

  /** Opens a recording (its directory is created) and waits until it is open; rejects when it cannot be. */
  async open(o: ThreadRecordingOptions): Promise<RecordingStream> {
    const stream = this.openNow(o);
    try {
      await stream.ready;
    } catch (err) {
      this.#closed(stream.id);
      throw err;
    }
    return stream;
  }

  /**
   * Opens a recording and answers at once, for a recorder that need not wait (a CLI's own record:
   * its session goes on either way): what it records meanwhile waits for it on the thread, and a
   * failure to open is the stream's failure (`onFailure`), as a failure to write is.
   */
  openNow(o: ThreadRecordingOptions): RecordingStream & { readonly id: number; readonly ready: Promise<void> } {
    const id = ++this.#seq;
    const stream = this.#stream(id, o.maxPendingBytes ?? 4 * 1024 * 1024, o.onFile, o.onArchive);
    this.#open.set(id, stream);
    const { maxPendingBytes: _, onFile, onArchive, ...options } = o;
    this.#post({ op: 'open', id, options: { ...options, announce: onFile !== undefined, announceJournal: this.#onJournal !== undefined, keepArchive: onArchive !== undefined } });
    this.#thread.busy(true);
    this.#timer ??= setInterval(() => {
      for (const s of this.#open.values()) s.send();
    }, this.#flushMs).unref();
    return stream;
  }

  /** A stream for recording `id`. (Its own scope: the callbacks it keeps for the recording's life hold the id alone, not the options.) */
  #stream(id: number, maxPending: number, onFile: ThreadRecordingOptions['onFile'], onArchive: ThreadRecordingOptions['onArchive']): ThreadStream {
    return new ThreadStream(
      id,
      (m, transfer) => this.#post(m, transfer),
      maxPending,
      () => this.#closed(id),
      onFile,
      onArchive,
    );
  }

  /** Stops the thread: its journals that hold no open recording go first (recordings still open are left as a crash leaves them). */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    const worker = this.#thread.running;
    if (worker) {
      // Held referenced until it answers: a process that stops waits for it.
      worker.ref();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, RETIRE_MS);
        this.#retired = () => {
          clearTimeout(timer);
          resolve();
        };
        worker.once('exit', () => this.#retired?.());
        worker.postMessage({ op: 'retire', id: 0 } satisfies ToThread);
      });
      this.#retired = undefined;
    }
    await this.#thread.retire();
  }

  #post(m: ToThread, transfer?: ArrayBuffer[]): void {
    const worker = this.#thread.worker;
    if (m.op === 'open') {
      // A key is copied into every message that holds it (a new KeyObject on the thread each time): sent once per key and thread.
      if (this.#keySent?.worker === worker && this.#keySent.key === m.options.key) m = { ...m, options: { ...m.options, key: undefined } };
      else this.#keySent = { worker, key: m.options.key! };
    }
    worker.postMessage(m, transfer);
  }

  /** The key the thread was last sent, and which thread it was. */
  #keySent: { worker: Worker; key: KeyObject } | undefined;

  #closed(id: number): void {
    this.#open.delete(id);
    if (this.#open.size > 0) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#thread.busy(false);
  }
}

/** A recording as the data path sees it: a staging block, and what the thread answered. */
class ThreadStream implements RecordingStream {
  readonly id: number;
  /** Settles once the thread opened the recording (rejects when it could not). */
  readonly ready: Promise<void>;
  readonly #post: (m: ToThread, transfer?: ArrayBuffer[]) => void;
  readonly #maxPending: number;
  readonly #onClosed: () => void;
  readonly #onFile: OnFile | undefined;
  readonly #onArchive: ((archive: Buffer) => void) | undefined;
  /** The staging block, allocated when a record comes (an idle session holds none). */
  #block: Buffer | undefined;
  #used = 0;
  /** Size of the next block: what the last one sent needed (a power of two from {@link MIN_BLOCK} to {@link BLOCK}). */
  #size = MIN_BLOCK;
  /** Staged bytes sent to the thread and not yet on disk. */
  #unwritten = 0;
  #behind: { promise: Promise<void>; resolve: () => void } | undefined;
  #failure: Error | undefined;
  #closing: { resolve: () => void; reject: (err: Error) => void } | undefined;
  #opening!: { resolve: () => void; reject: (err: Error) => void } | undefined;
  /** Snapshots asked for, answered in order. */
  readonly #snapshots: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  #closed = false;
  onFailure: ((err: Error) => void) | undefined;

  constructor(id: number, post: (m: ToThread, transfer?: ArrayBuffer[]) => void, maxPending: number, onClosed: () => void, onFile?: OnFile, onArchive?: (archive: Buffer) => void) {
    this.id = id;
    this.ready = new Promise((resolve, reject) => (this.#opening = { resolve, reject }));
    // Told through onFailure too: a recorder that does not wait for it leaves no rejection unheard.
    this.ready.catch(() => undefined);
    this.#onFile = onFile;
    this.#onArchive = onArchive;
    this.#post = post;
    this.#maxPending = maxPending;
    this.#onClosed = onClosed;
  }

  get behind(): Promise<void> | undefined {
    return this.#behind?.promise;
  }

  get failure(): Error | undefined {
    return this.#failure;
  }

  record(kind: number, at: number, bytes: Buffer, start: number, end: number): void {
    if (this.#failure || this.#closed) return;
    const n = end - start;
    if (!this.#block || this.#used + HEADER + n > this.#block.length) this.#room(HEADER + n);
    const block = this.#block!;
    let u = this.#used;
    block[u] = kind;
    block.writeUInt32LE(n, u + 1);
    block.writeDoubleLE(at, u + 5);
    u += HEADER;
    if (n < 64) for (let i = start; i < end; i++) block[u++] = bytes[i]!;
    else u += bytes.copy(block, u, start, end);
    this.#used = u;
    if (u >= SEND_AT) this.send();
  }

  /** A block with room for `n` more bytes: the one staged so far grown (up to {@link BLOCK}), or a new one once that is full. */
  #room(n: number): void {
    const old = this.#block;
    const need = this.#used + n;
    if (old && old.length < BLOCK && need <= BLOCK) {
      let size = old.length * 2;
      while (size < need) size *= 2;
      const grown = Buffer.allocUnsafeSlow(Math.min(size, BLOCK));
      old.copy(grown, 0, 0, this.#used);
      this.#block = grown;
      return;
    }
    this.send();
    this.#block = Buffer.allocUnsafeSlow(n > this.#size ? Math.max(Math.min(BLOCK, pow2(n)), n) : this.#size);
  }

  event(event: RecordingEvent): void {
    const json = Buffer.from(JSON.stringify(event));
    this.record(EVENT, event.at, json, 0, json.length);
  }

  /** Sends the staged block to the thread (moved, not copied). */
  send(): void {
    const staged = this.#take();
    if (!staged) return;
    const { buffer, length } = staged;
    this.#unwritten += length;
    if (this.#unwritten > this.#maxPending && !this.#behind) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#behind = { promise, resolve };
    }
    this.#post({ op: 'data', id: this.id, buffer, length }, [buffer]);
  }

  /** The staged block, taken to be sent; undefined when nothing is staged (or the recording failed). */
  #take(): { buffer: ArrayBuffer; length: number } | undefined {
    if (!this.#block || this.#used === 0 || this.#failure) return undefined;
    const length = this.#used;
    const buffer = this.#block.buffer as ArrayBuffer;
    this.#size = Math.min(BLOCK, Math.max(MIN_BLOCK, pow2(length)));
    this.#block = undefined;
    this.#used = 0;
    return { buffer, length };
  }

  get closed(): boolean {
    return this.#closed;
  }

  snapshot(dir: string): Promise<void> {
    if (this.#closed || this.#failure) return Promise.reject(this.#failure ?? new Error('the recording is closed'));
    this.send();
    return new Promise((resolve, reject) => {
      this.#snapshots.push({ resolve, reject });
      this.#post({ op: 'snapshot', id: this.id, dir });
    });
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    // What is staged goes with the close: one message each way for the end of a recording, not two.
    const last = this.#take();
    this.#closed = true;
    if (this.#failure) {
      this.#onClosed();
      return Promise.reject(this.#failure);
    }
    return new Promise((resolve, reject) => {
      this.#closing = { resolve, reject };
      this.#post({ op: 'close', id: this.id, ...last }, last ? [last.buffer] : undefined);
    });
  }

  /** What the thread said about this recording. */
  answer(m: FromThread): void {
    switch (m.op) {
      case 'opened':
        if (m.error) {
          this.#opening?.reject(new Error(m.error));
          this.#opening = undefined;
          this.answer({ op: 'failed', id: m.id, error: m.error });
        } else this.#opening?.resolve();
        this.#opening = undefined;
        return;
      case 'file':
        this.#onFile?.(m.name, m.removed, m.buffer && Buffer.from(m.buffer));
        return;
      case 'archive':
        this.#onArchive?.(Buffer.from(m.buffer));
        return;
      case 'written':
        this.#unwritten -= m.bytes;
        if (this.#behind && this.#unwritten <= this.#maxPending) this.#wake();
        return;
      case 'failed': {
        if (this.#failure) return;
        this.#failure = new Error(m.error);
        this.#wake();
        this.#opening?.reject(this.#failure);
        this.#opening = undefined;
        this.onFailure?.(this.#failure);
        if (this.#closing) this.answer({ op: 'closed', id: m.id, error: m.error });
        return;
      }
      case 'snapshotted': {
        const s = this.#snapshots.shift();
        if (m.error) s?.reject(new Error(m.error));
        else s?.resolve();
        return;
      }
      case 'closed': {
        for (const s of this.#snapshots.splice(0)) s.reject(new Error('the recording closed'));
        const closing = this.#closing;
        this.#closing = undefined;
        this.#onClosed();
        if (m.error) closing?.reject(new Error(m.error));
        else closing?.resolve();
        return;
      }
    }
  }

  #wake(): void {
    const b = this.#behind;
    this.#behind = undefined;
    b?.resolve();
  }
}
