/**
 * A recording's signed per-session form in format 3 (docs/recording-format.md): the session's
 * records as its data path staged them (./thread.ts: `[kind u8][length u32 LE][at f64 LE][bytes]`,
 * whole events as kind {@link EVENT}, the rest the protocol's wire messages), cut into gzip chunks
 * whose first line is the chunk header of every format, `SHA256SUMS` (or, for a session whose end
 * was never written, a checkpoint manifest) and its OpenSSH signature: as the files of a directory,
 * or the entries of one archive (./recording-files.ts). Writers copy, readers
 * derive: {@link cutRecording} writes the bytes as they came, and readers hand them to the
 * protocol's decoder (./read.ts), which turns them into events.
 *
 * @see ./writer.ts for the event chunks of formats 1 and 2, which readers still read
 */
import { createHash, type KeyObject } from 'node:crypto';
import { closeSync, constants, fdatasyncSync, fstatSync, ftruncateSync, mkdirSync, openSync, writeSync, writevSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { syncDirectory, writeFileOnceOnThread, writeNewFileOnThread } from '../durable-file.js';
import { gzipChunk } from './chunk-gzip.js';
import { isRecordingArchive } from './recording-files.js';
import { sshSign } from './sshsig.js';
import { BLOCK, header as tarHeader, padding } from './tar.js';
import { forEachRecord, HEADER } from './thread.js';
import { type ChunkHeader, checkpointName, eventRecord, MANIFEST, NO_PREVIOUS, RECORDING_NAMESPACE, RECORDS_FORMAT, recordChunkName, SEALED } from './writer.js';

/** Bytes of records per chunk, before compression (a record longer than this has a chunk of its own). */
const CHUNK_BYTES = 1024 * 1024;

/** What {@link cutRecording} writes. */
export interface CutOptions {
  /** The recording's archive (`<id>.tar`: written over), or its directory (created; must hold no recording). */
  path: string;
  id: string;
  /** The protocol whose decoder reads the records (`postgres`, `ssh`), named in every chunk header. */
  protocol: string;
  key: KeyObject;
  /** The session ended and its recording was closed: the last chunk ends with the seal and `SHA256SUMS` is written; else a checkpoint manifest (the recording is truncated). */
  sealed: boolean;
  /** False: no fsync (files outlive the process, not the machine), and a directory's manifest is written in place (a journal, or a retry, makes the cut again). */
  durable: boolean;
  /** Told each file (and its bytes) once it is on disk. */
  onFile?: (name: string, data: Buffer) => void;
}

/** Writes `blocks` (whole records each) as the recording at `o.path`; returns the chunks and records written. */
export async function cutRecording(o: CutOptions, blocks: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<{ chunks: number; records: number }> {
  const out = isRecordingArchive(o.path) ? archiveOut(o) : directoryOut(o);
  try {
    const sums: string[] = [];
    let prev = NO_PREVIOUS;
    let pending: Buffer[] = [];
    let bytes = 0;
    let records = 0;
    let lastAt = 0;
    const write = async (last: boolean): Promise<void> => {
      const seq = sums.length + 1;
      if (last && o.sealed) {
        // At the time of its last record: two cuts of the same records are the same bytes (a store that holds the first takes the second as a retry).
        const seal = eventRecord({ t: SEALED, at: lastAt, chunks: seq });
        pending.push(seal);
        records += 1;
      }
      const header: ChunkHeader = { t: 'chunk', recording: o.id, seq, prev, v: RECORDS_FORMAT, protocol: o.protocol };
      const data = gzipChunk(Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), ...pending]));
      const name = recordChunkName(seq);
      await out.file(name, data, lastAt);
      prev = createHash('sha256').update(data).digest('hex');
      sums.push(`${prev}  ${name}\n`);
      pending = [];
      bytes = 0;
    };
    for await (const block of blocks) {
      if (bytes > 0 && bytes + block.length > CHUNK_BYTES) await write(false);
      pending.push(block);
      bytes += block.length;
      records += countRecords(block);
      lastAt = Math.max(lastAt, lastRecordTime(block));
    }
    await write(true);
    const manifest = Buffer.from(sums.join(''));
    await out.manifest(o.sealed ? MANIFEST : checkpointName(sums.length), manifest, Buffer.from(sshSign(o.key, RECORDING_NAMESPACE, manifest)), lastAt);
    return { chunks: sums.length, records };
  } finally {
    out.close();
  }
}

/** Where a cut puts its files: each chunk as it is made, then the manifest with its signature, last. */
interface CutOut {
  file(name: string, data: Buffer, mtime: number): Promise<void>;
  manifest(name: string, manifest: Buffer, signature: Buffer, mtime: number): Promise<void>;
  close(): void;
}

/** A file each in the directory `o.path`. */
function directoryOut(o: CutOptions): CutOut {
  mkdirSync(o.path, { recursive: true, mode: 0o700 });
  return {
    file: async (name, data) => {
      await writeNewFileOnThread(join(o.path, name), data, o.durable);
      o.onFile?.(name, data);
    },
    manifest: async (name, manifest, signature) => {
      await writeNewFileOnThread(join(o.path, `${name}.sig`), signature, o.durable);
      // A durable cut places its manifest whole (by a temporary name); one that is not is backed by its journal until it is
      // synced, and cut again from it after a crash: its manifest is written in place, last, before anyone is told of it.
      if (o.durable) await writeFileOnceOnThread(join(o.path, name), manifest, o.path);
      else await writeNewFileOnThread(join(o.path, name), manifest, false);
      o.onFile?.(`${name}.sig`, signature);
      o.onFile?.(name, manifest);
    },
    close: () => undefined,
  };
}

/**
 * The entries of the archive `o.path`, written over from its start: each file under `<id>/` as it
 * is made, the manifest's signature and the manifest last, then the archive's end; a durable
 * archive is synced, with its directory. Cut short by a crash, it reads as what it holds whole
 * (no manifest: cut again from the journal).
 */
function archiveOut(o: CutOptions): CutOut {
  // Truncated only when it holds something (a cut that failed): ext4 flushes a file truncated to nothing when it is closed
  // (auto_da_alloc), and the file is new or the empty one a proposed id's claim made.
  const fd = openArchive(o.path);
  if (fstatSync(fd).size > 0) ftruncateSync(fd, 0);
  let at = 0;
  const put = (name: string, data: Buffer, mtime: number): void => {
    const pad = padding(data.length);
    at += writeAll(fd, [tarHeader(`${o.id}/${name}`, data.length, '0', mtime), data, ...(pad ? [pad] : [])], at);
  };
  return {
    file: async (name, data, mtime) => {
      put(name, data, mtime);
      o.onFile?.(name, data);
    },
    manifest: async (name, manifest, signature, mtime) => {
      put(`${name}.sig`, signature, mtime);
      put(name, manifest, mtime);
      at += writeAll(fd, [Buffer.alloc(2 * BLOCK)], at);
      if (o.durable) {
        fdatasyncSync(fd);
        await syncDirectory(dirname(o.path));
      }
      o.onFile?.(`${name}.sig`, signature);
      o.onFile?.(name, manifest);
    },
    close: () => closeSync(fd),
  };
}

/** Opens the archive at `path` to write: made when missing (with its directory, when that was removed). */
function openArchive(path: string): number {
  const flags = constants.O_WRONLY | constants.O_CREAT;
  try {
    return openSync(path, flags, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    return openSync(path, flags, 0o600);
  }
}

/** Writes `parts` at `position` of `fd`, whole (a short write, as on a full disk, goes on or throws); returns the bytes written. */
function writeAll(fd: number, parts: Buffer[], position: number): number {
  const total = parts.reduce((n, p) => n + p.length, 0);
  let done = writevSync(fd, parts, position);
  if (done < total) {
    const whole = Buffer.concat(parts);
    while (done < total) done += writeSync(fd, whole, done, total - done, position + done);
  }
  return total;
}

/** The time of the last record of `block` (0 for none). */
function lastRecordTime(block: Buffer): number {
  let time = 0;
  forEachRecord(block, block.length, (_kind, at) => {
    time = at;
  });
  return time;
}

/** How many whole records `block` holds. @throws Error when it does not end at a record's end */
export function countRecords(block: Buffer, start = 0): number {
  let n = 0;
  let at = start;
  while (at < block.length) {
    if (at + HEADER > block.length) throw new Error('a record is cut short');
    at += HEADER + block.readUInt32LE(at + 1);
    if (at > block.length) throw new Error('a record is cut short');
    n += 1;
  }
  return n;
}

/** A chunk of format 3, decompressed: its header and where its records start. @throws Error when it has no header line */
export function splitChunk(data: Buffer): { header: ChunkHeader; records: number } {
  const nl = data.indexOf(10);
  if (nl < 0) throw new Error('no header line');
  return { header: JSON.parse(data.toString('utf8', 0, nl)) as ChunkHeader, records: nl + 1 };
}
