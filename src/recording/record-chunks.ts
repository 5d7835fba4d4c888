/**
 * A recording's signed per-session form in format 3 (docs/recording-format.md): the session's
 * records as its data path staged them (./thread.ts: `[kind u8][length u32 LE][at f64 LE][bytes]`,
 * whole events as kind {@link EVENT}, the rest the protocol's wire messages), cut into gzip chunks
 * whose first line is the chunk header of every format, `SHA256SUMS` (or, for a session whose end
 * was never written, a checkpoint manifest) and its OpenSSH signature. Writers copy, readers
 * derive: {@link cutRecording} writes the bytes as they came, and readers hand them to the
 * protocol's decoder (./read.ts), which turns them into events.
 *
 * @see ./writer.ts for the event chunks of formats 1 and 2, which readers still read
 */
import { createHash, type KeyObject } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { crc32, gzipSync } from 'node:zlib';
import { writeFileOnceOnThread, writeNewFileOnThread } from '../durable-file.js';
import { sshSign } from './sshsig.js';
import { forEachRecord, HEADER } from './thread.js';
import { type ChunkHeader, checkpointName, eventRecord, MANIFEST, NO_PREVIOUS, RECORDING_NAMESPACE, RECORDS_FORMAT, recordChunkName, SEALED } from './writer.js';

/** Bytes of records per chunk, before compression (a record longer than this has a chunk of its own). */
const CHUNK_BYTES = 1024 * 1024;

/** What {@link cutRecording} writes. */
export interface CutOptions {
  /** The recording's directory (created; must hold no recording). */
  dir: string;
  id: string;
  /** The protocol whose decoder reads the records (`postgres`, `ssh`), named in every chunk header. */
  protocol: string;
  key: KeyObject;
  /** The session ended and its recording was closed: the last chunk ends with the seal and `SHA256SUMS` is written; else a checkpoint manifest (the recording is truncated). */
  sealed: boolean;
  /** False: no fsync (files outlive the process, not the machine), and the manifest is written in place (a journal, or a retry, makes the cut again). */
  durable: boolean;
  /** Told each file once it is on disk. */
  onFile?: (name: string) => void;
}

/** Writes `blocks` (whole records each) as the recording in `o.dir`; returns the chunks and records written. */
export async function cutRecording(o: CutOptions, blocks: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<{ chunks: number; records: number }> {
  mkdirSync(o.dir, { recursive: true, mode: 0o700 });
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
    await writeNewFileOnThread(join(o.dir, name), data, o.durable);
    o.onFile?.(name);
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
  const name = o.sealed ? MANIFEST : checkpointName(sums.length);
  await writeNewFileOnThread(join(o.dir, `${name}.sig`), Buffer.from(sshSign(o.key, RECORDING_NAMESPACE, manifest)), o.durable);
  // A durable cut places its manifest whole (by a temporary name); one that is not is backed by its journal until it is
  // synced, and cut again from it after a crash: its manifest is written in place, last, before anyone is told of it.
  if (o.durable) await writeFileOnceOnThread(join(o.dir, name), manifest, o.dir);
  else await writeNewFileOnThread(join(o.dir, name), manifest, false);
  o.onFile?.(`${name}.sig`);
  o.onFile?.(name);
  return { chunks: sums.length, records };
}

/** Chunks up to this size are stored in their gzip file, not compressed: compressed, they would take as many disk blocks, and zlib's start costs more than the rest of the cut. */
const STORED_UNDER = 8 * 1024;
/** The gzip header of a stored chunk: no name, no time, no flags, OS unknown (RFC 1952). */
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);

/** `data` as a gzip file: one stored deflate block when it is small, else compressed at level 1. */
export function gzipChunk(data: Buffer): Buffer {
  if (data.length >= STORED_UNDER) return gzipSync(data, { level: 1 });
  const out = Buffer.allocUnsafe(GZIP_HEADER.length + 5 + data.length + 8);
  GZIP_HEADER.copy(out, 0);
  let at = GZIP_HEADER.length;
  out[at] = 1; // the final block, stored (RFC 1951, 3.2.4)
  out.writeUInt16LE(data.length, at + 1);
  out.writeUInt16LE(~data.length & 0xffff, at + 3);
  at += 5 + data.copy(out, at + 5);
  out.writeUInt32LE(crc32(data), at);
  out.writeUInt32LE(data.length, at + 4);
  return out;
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
