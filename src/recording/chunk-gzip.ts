/**
 * A recording's chunk as a gzip file (RFC 1952): small ones stored (zlib's start costs more than
 * compressing them saves), the rest compressed at level 1.
 *
 * @see https://www.rfc-editor.org/rfc/rfc1951#section-3.2.4 (stored blocks)
 */
import { crc32, gzipSync } from 'node:zlib';

/** Chunks up to this size are stored in their gzip file, not compressed: compressed, they would take as many disk blocks, and zlib's start costs more than the rest of the cut. */
const STORED_UNDER = 8 * 1024;
/** The gzip header of a stored chunk: no name, no time, no flags, OS unknown (RFC 1952). */
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);

/**
 * zlib's output buffer for `n` bytes: room for them compressed (level 1 never grows them by more
 * than a few bytes a block), within half the buffer pool, since zlib hands a single chunk's result
 * back as a view of it (at its default 16 KiB, each chunk would hold more than it uses).
 */
function outputSize(n: number): number {
  return Math.min(n + 64, Buffer.poolSize / 2 - 64);
}

/** `data` as a gzip file: one stored deflate block when it is small, else compressed at level 1. */
export function gzipChunk(data: Buffer): Buffer {
  if (data.length >= STORED_UNDER) return gzipSync(data, { level: 1, chunkSize: outputSize(data.length) });
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
