/**
 * Writes a recording as the session runs: an append-only stream of events (one JSON object per
 * line) cut into chunks by size and time. Each chunk is a gzip file whose first line names the
 * recording, the chunk's number and the SHA-256 of the chunk before it, so chunks cannot be dropped,
 * reordered or swapped between recordings without the chain showing it. A chunk is fsynced before
 * the manifest names it.
 *
 * The manifest is `SHA256SUMS` (the `sha256sum` format: `<hex>  <file>` per chunk), signed as an
 * OpenSSH signature (`SHA256SUMS.sig`, namespace `hoop-recording`), so a recording checks with
 * `sha256sum -c SHA256SUMS` and `ssh-keygen -Y verify` and no hoop. While the session runs, a signed
 * checkpoint of the manifest so far (`checkpoint-<chunks>.SHA256SUMS` and `.sig`) is written at
 * least every `checkpointMs`; the one before is removed only once the new pair is on disk. So a
 * recording cut short by a crash verifies up to its last checkpoint and is reported as truncated.
 * {@link RecordingWriter.close} writes the final manifest, then removes the checkpoints. Every file
 * is written once, never over one that exists (`writeFileOnce`): a second writer of the same
 * recording fails loudly rather than replacing evidence. The format is documented in docs/recording-format.md.
 *
 * Memory: each event is written at once into UTF-8 blocks outside the JavaScript heap
 * (./event-line.ts), so the garbage collector never copies what waits for a chunk. Events are held
 * until their chunk is written (at most `chunkBytes`, then the chunk is written in the background);
 * {@link RecordingWriter.append} and {@link EventLine.end} return false while more than `maxPendingBytes` wait for the
 * disk, so a caller can stop reading until {@link RecordingWriter.drained}.
 *
 * @see https://www.gnu.org/software/coreutils/manual/html_node/sha2-utilities.html
 * @see https://github.com/openssh/openssh-portable/blob/master/PROTOCOL.sshsig
 */
import { realClock } from '../clock.js';
import { createHash, type KeyObject } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipChunk } from './chunk-gzip.js';
import { ASYNC_FILES, BLOCKING_FILES, CACHED_FILES, type FileOps, HeldFiles } from './file-ops.js';
import { type EventLine, type EventSink, LineBlocks, type RecordingEvent } from './event-line.js';
import { EVENT, HEADER } from './thread.js';
import { sshSign } from './sshsig.js';

/** The namespace of every recording signature. */
export const RECORDING_NAMESPACE = 'hoop-recording';
export const MANIFEST = 'SHA256SUMS';

/** `checkpoint-000012.SHA256SUMS`: the signed manifest of the first 12 chunks. */
export function checkpointName(chunks: number): string {
  return `checkpoint-${String(chunks).padStart(6, '0')}.SHA256SUMS`;
}
/** The `prev` of the first chunk. */
export const NO_PREVIOUS = '0'.repeat(64);

/** Every file a recording holds (chunks, manifests, checkpoints, signatures). */
export const RECORDING_FILE = /^(events-\d{6}\.jsonl\.gz|records-\d{6}\.gz|SHA256SUMS(\.sig)?|checkpoint-\d{6}\.SHA256SUMS(\.sig)?)$/;

/**
 * The order a record's files are taken in: chunks, then checkpoints (manifest before signature),
 * then the final manifest and its signature, so that a signature comes after all it signs.
 */
export function uploadOrder<T extends { name: string }>(files: readonly T[]): T[] {
  const rank = (f: string): number => (isChunkFile(f) ? 0 : f.startsWith('checkpoint-') ? 1 : 2);
  return [...files].sort((a, b) => rank(a.name) - rank(b.name) || a.name.localeCompare(b.name));
}

/** Whether `name` is a chunk's (either format's). */
export function isChunkFile(name: string): boolean {
  return name.startsWith('events-') || name.startsWith('records-');
}

/** The format whose chunks hold records, not JSON lines. */
export const RECORDS_FORMAT = 3;
/** `records-000001.gz`, ... */
export function recordChunkName(seq: number): string {
  return `records-${String(seq).padStart(6, '0')}.gz`;
}

/** A whole event as one record. */
export function eventRecord(event: { t: string; at: number } & Record<string, unknown>): Buffer {
  const json = Buffer.from(JSON.stringify(event));
  const r = Buffer.allocUnsafe(HEADER + json.length);
  r[0] = EVENT;
  r.writeUInt32LE(json.length, 1);
  r.writeDoubleLE(event.at, 5);
  json.copy(r, HEADER);
  return r;
}

/** `events-000001.jsonl.gz`, ... */
export function chunkName(seq: number): string {
  return `events-${String(seq).padStart(6, '0')}.jsonl.gz`;
}

/** The first line of every chunk. */
export interface ChunkHeader {
  t: 'chunk';
  recording: string;
  seq: number;
  /** SHA-256 (hex) of the previous chunk's file, or {@link NO_PREVIOUS}. */
  prev: string;
  /** The format: 2 seals its end ({@link SEALED}), 3 holds records (./record-chunks.ts); absent (1) in recordings made before. */
  v?: number;
  /** Format 3: the protocol whose decoder reads its records. */
  protocol?: string;
}

/** The last event of a recording closed in full: how many chunks it has, inside what the final manifest signs. */
export const SEALED = 'sealed';

export interface RecordingWriterOptions {
  /** The recording's directory (created; must not hold a recording yet). */
  dir: string;
  /** The recording's id, in every chunk header. */
  id: string;
  /** The Ed25519 key that signs checkpoints and the manifest. */
  key: KeyObject;
  /** Cut a chunk when this many bytes of events wait (default 256 KiB). */
  chunkBytes?: number;
  /** Cut a chunk of what waits at least this often (default 1000 ms). */
  chunkMs?: number;
  /** Sign a checkpoint at least this often while events come (default 10 000 ms). */
  checkpointMs?: number;
  /** append() says false beyond this many bytes not yet on disk (default 4 MiB). */
  maxPendingBytes?: number;
  /** Called once, with the first error writing to disk (see {@link RecordingWriter.failure}). */
  onFailure?: (err: Error) => void;
  /** Called with each file once it is durable, and with each file removed, in that order. */
  onFile?: (name: string, removed: boolean) => void;
  /**
   * Whether quick file operations block (the recording thread's writers: see
   * `writeFileOnceOnThread`; fsyncs stay asynchronous). Default false.
   */
  blocking?: boolean;
  /**
   * Writes records (format 3, ./record-chunks.ts) read by this protocol's decoder, appended with
   * {@link RecordingWriter.appendRecords}, instead of events.
   */
  protocol?: string;
  /**
   * With `blocking`: false to skip every fsync, so that the recording survives its process being
   * killed but not the machine's crash (a CLI's own record: the gateway's is the durable one, and
   * a laptop's disk is spared a second set of syncs per session and second). Default true.
   */
  durable?: boolean;
  /**
   * The record is held in memory until it closes (then written as one archive beside `dir`,
   * `first` its first file) or signs its first checkpoint (then into `dir`, `first` first): a CLI's
   * record of a session; see {@link HeldFiles}. With `keep`, one that closes held goes to `keep` as that archive's bytes, unwritten.
   */
  held?: { first: { name: string; data: Uint8Array }; keep?: (archive: Buffer) => void };
}

/** See the module documentation. */
export class RecordingWriter implements EventSink {
  readonly dir: string;
  readonly id: string;
  readonly #key: KeyObject;
  readonly #chunkBytes: number;
  readonly #checkpointMs: number;
  readonly #checkpointDueMs: number;
  readonly #maxPending: number;
  readonly #onFailure: ((err: Error) => void) | undefined;
  readonly #onFile: (name: string, removed: boolean) => void;
  readonly #files: FileOps;
  readonly #lines = new LineBlocks(() => this.#ended());
  /** Format 3: the protocol its records are, and the blocks of records waiting for a chunk. */
  readonly #protocol: string | undefined;
  #records: Buffer[] = [];
  #recordBytes = 0;
  #pending = 0;
  #seq = 0;
  #prev = NO_PREVIOUS;
  #sums: string[] = [];
  #checkpoints: string[] = [];
  /** Chunks the last manifest signed (a checkpoint's or the final one). */
  #signedChunks = 0;
  #lastCheckpoint = realClock.now();
  #queue: Promise<void> = Promise.resolve();
  #failure: Error | undefined;
  #timer: NodeJS.Timeout;
  #closed = false;
  #drainWaiters: Array<() => void> = [];

  private constructor(o: RecordingWriterOptions) {
    this.dir = o.dir;
    this.id = o.id;
    this.#key = o.key;
    this.#chunkBytes = o.chunkBytes ?? 256 * 1024;
    this.#checkpointMs = o.checkpointMs ?? 10_000;
    this.#maxPending = o.maxPendingBytes ?? 4 * 1024 * 1024;
    this.#onFailure = o.onFailure;
    this.#onFile = o.onFile ?? (() => undefined);
    const files = !o.blocking ? ASYNC_FILES : o.durable === false ? CACHED_FILES : BLOCKING_FILES;
    this.#files = o.held ? new HeldFiles(o.dir, o.held.first, files, o.held.keep) : files;
    this.#protocol = o.protocol;
    const chunkMs = o.chunkMs ?? 1000;
    // Ticks come late by a few ms: a checkpoint due within half a tick is signed at this one, not a whole tick later.
    this.#checkpointDueMs = this.#checkpointMs - Math.min(chunkMs, this.#checkpointMs) / 2;
    this.#timer = setInterval(() => this.#tick(), chunkMs);
    this.#timer.unref();
  }

  /** Creates the directory (0700; a held record's, when it is written there) and a writer for it. */
  static async create(o: RecordingWriterOptions): Promise<RecordingWriter> {
    if (!o.held) await mkdir(o.dir, { recursive: true, mode: 0o700 });
    return new RecordingWriter(o);
  }

  /** The first error writing to disk, if any: from then on nothing more is written. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /**
   * Adds an event. Returns false when the caller should wait for {@link drained} before adding
   * more (the disk is behind), and throws once the writer failed or was closed.
   */
  append(event: RecordingEvent): boolean {
    return this.appendJson(JSON.stringify(event));
  }

  /** Adds an event given as its JSON text (one line); as {@link append}. (Format 3: as a record.) */
  appendJson(json: string): boolean {
    this.#open();
    if (this.#protocol !== undefined) return this.appendRecords(eventRecord(JSON.parse(json) as RecordingEvent));
    return this.#lines.add(json);
  }

  /** Format 3: adds a block of whole records (as ./thread.ts stages them); as {@link append}. */
  appendRecords(block: Buffer): boolean {
    this.#open();
    this.#records.push(block);
    this.#recordBytes += block.length;
    return this.#ended();
  }

  /** Bytes waiting for a chunk. */
  get #waiting(): number {
    return this.#lines.bytes + this.#recordBytes;
  }

  /** Starts an event written field by field (see {@link EventLine}); throws as {@link append} does (and in format 3, which keeps records). */
  begin(t: string, at: number): EventLine {
    this.#open();
    if (this.#protocol !== undefined) throw new Error('a recording of records takes whole events');
    return this.#lines.begin(t, at);
  }

  #open(): void {
    if (this.#failure) throw this.#failure;
    if (this.#closed) throw new Error('the recording is closed');
  }

  /** An event was added: cuts a chunk when enough waits; false when the disk is behind. */
  #ended(): boolean {
    if (this.#waiting >= this.#chunkBytes) this.#cut();
    return this.#pending + this.#waiting <= this.#maxPending;
  }

  /** Resolves once no more than `maxPendingBytes` wait for the disk. */
  drained(): Promise<void> {
    if (this.#pending + this.#waiting <= this.#maxPending || this.#failure) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /** Writes what waits as a chunk now (and a checkpoint when one is due). */
  flush(): Promise<void> {
    this.#cut();
    return this.#queue.then(() => {
      if (this.#failure) throw this.#failure;
    });
  }

  /**
   * Every `chunkMs`: cuts what waits, and when chunks lie on disk that no checkpoint signs and one
   * is due, signs one, so that what was written last is signed within `checkpointMs` (plus a
   * tick) even when nothing comes after it.
   */
  #tick(): void {
    this.#cut();
    if (this.#failure || this.#closed) return;
    this.#queue = this.#queue.then(async () => {
      if (this.#failure || this.#closed || this.#sums.length === this.#signedChunks || !this.#checkpointDue()) return;
      try {
        await this.#signCheckpoint();
      } catch (err) {
        this.#failure = err instanceof Error ? err : new Error(String(err));
        this.#onFailure?.(this.#failure);
      }
    });
  }

  /** Whether a checkpoint is due: `checkpointMs` since the last one, give or take half a tick. */
  #checkpointDue(): boolean {
    return realClock.now() - this.#lastCheckpoint >= this.#checkpointDueMs;
  }

  /** Cuts a chunk of the waiting events and queues its write. */
  #cut(): void {
    if (this.#waiting === 0 || this.#failure) return;
    const bytes = this.#waiting;
    const lines = this.#protocol === undefined ? this.#lines.take() : this.#records.splice(0);
    this.#recordBytes = 0;
    this.#pending += bytes;
    const seq = ++this.#seq;
    this.#queue = this.#queue.then(async () => {
      if (this.#failure) return;
      try {
        const header: ChunkHeader = { t: 'chunk', recording: this.id, seq, prev: this.#prev, ...(this.#protocol === undefined ? { v: 2 } : { v: RECORDS_FORMAT, protocol: this.#protocol }) };
        // On the recording thread (./thread.ts), so compressing in place blocks no session.
        const text = Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), ...lines]);
        const data = gzipChunk(text);
        const name = this.#protocol === undefined ? chunkName(seq) : recordChunkName(seq);
        // The directory is fsynced when a manifest is signed (#sign), before it names this chunk.
        await this.#files.once(join(this.dir, name), data, this.dir, false);
        this.#onFile(name, false);
        this.#prev = createHash('sha256').update(data).digest('hex');
        this.#sums.push(`${this.#prev}  ${name}\n`);
        if (this.#checkpointDue()) await this.#signCheckpoint();
      } catch (err) {
        this.#failure = err instanceof Error ? err : new Error(String(err));
        this.#onFailure?.(this.#failure);
      } finally {
        this.#pending -= bytes;
        if (this.#pending + this.#waiting <= this.#maxPending || this.#failure) for (const wake of this.#drainWaiters.splice(0)) wake();
      }
    });
  }

  /**
   * Writes the manifest so far as `file` with its signature, then fsyncs the directory once: the
   * names of the pair and of the chunks it names are durable before anything older is removed.
   */
  async #sign(file: string): Promise<void> {
    const manifest = Buffer.from(this.#sums.join(''));
    await this.#files.once(join(this.dir, `${file}.sig`), Buffer.from(sshSign(this.#key, RECORDING_NAMESPACE, manifest)), this.dir, false);
    await this.#files.once(join(this.dir, file), manifest, this.dir, true);
    this.#onFile(`${file}.sig`, false);
    this.#onFile(file, false);
    this.#lastCheckpoint = realClock.now();
    this.#signedChunks = this.#sums.length;
  }

  /** Signs a checkpoint of the chunks on disk, then removes the checkpoint before it. */
  async #signCheckpoint(): Promise<void> {
    const name = checkpointName(this.#sums.length);
    // No chunk since the last checkpoint: it signs all there is already (and a file is written once).
    if (this.#checkpoints.includes(name)) return;
    await this.#sign(name);
    for (const old of this.#checkpoints.splice(0)) await this.#removePair(old);
    this.#checkpoints.push(name);
  }

  /** Removes a checkpoint, its signature first: a stop between leaves a manifest a verifier can still check against the one in force. */
  async #removePair(name: string): Promise<void> {
    await this.#files.remove(join(this.dir, `${name}.sig`));
    await this.#files.remove(join(this.dir, name));
    this.#onFile(name, true);
    this.#onFile(`${name}.sig`, true);
  }

  /**
   * Runs `step` once everything queued before it is written, and nothing else meanwhile: the
   * recording's files have one writer (a checkpoint asked for while a tick signs the same one wrote
   * its signature twice). Rejects with the recording's failure, or the step's.
   */
  #serially(step: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(() => {
      if (this.#failure) throw this.#failure;
      return step();
    });
    this.#queue = run.catch((err: unknown) => {
      if (this.#failure) return;
      this.#failure = err instanceof Error ? err : new Error(String(err));
      this.#onFailure?.(this.#failure);
    });
    return run;
  }

  /** Signs a checkpoint of what is on disk now. */
  checkpoint(): Promise<void> {
    this.#cut();
    return this.#serially(() => this.#signCheckpoint());
  }

  /** Writes everything, then the signed final manifest; removes the checkpoint. Idempotent. */
  close(): Promise<void> {
    if (this.#closed) return this.#queue;
    clearInterval(this.#timer);
    // It says its own end inside what the final manifest signs: a checkpoint saved under the final name lacks it.
    const seal = { t: SEALED, at: realClock.now(), chunks: this.#seq + 1 };
    if (!this.#failure) this.#protocol === undefined ? this.#lines.add(JSON.stringify(seal)) : this.appendRecords(eventRecord(seal));
    this.#cut();
    this.#closed = true;
    return this.#serially(async () => {
      await this.#sign(MANIFEST);
      for (const old of this.#checkpoints.splice(0)) await this.#removePair(old);
    });
  }

  /** Stops without a final manifest (what a crash leaves: chunks and the last checkpoint). */
  abandon(): void {
    clearInterval(this.#timer);
    this.#closed = true;
  }
}
