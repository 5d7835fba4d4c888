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

/**
 * What a gzip file of stored blocks holds, read without zlib: only the exact form
 * {@link gzipChunk} writes (a plain header, stored blocks with clear padding bits, one member, its
 * CRC-32 and length right, nothing after); undefined for any other file, which zlib then reads
 * (and refuses as it would). Tested against zlib on generated and damaged files.
 */
export function storedGunzip(data: Buffer, max: number): Buffer | undefined {
  if (data.length < GZIP_HEADER.length + 5 + 8 || !data.subarray(0, 4).equals(GZIP_HEADER.subarray(0, 4))) return undefined;
  const parts: Buffer[] = [];
  let at = GZIP_HEADER.length;
  let size = 0;
  for (let final = false; !final; ) {
    if (at + 5 > data.length - 8 || (data[at]! & ~1) !== 0) return undefined;
    final = data[at] === 1;
    const length = data.readUInt16LE(at + 1);
    if (data.readUInt16LE(at + 3) !== (~length & 0xffff) || at + 5 + length > data.length - 8) return undefined;
    parts.push(data.subarray(at + 5, at + 5 + length));
    at += 5 + length;
    size += length;
    if (size > max) return undefined;
  }
  if (at + 8 !== data.length) return undefined;
  const out = parts.length === 1 ? Buffer.from(parts[0]!) : Buffer.concat(parts);
  return data.readUInt32LE(at) === crc32(out) && data.readUInt32LE(at + 4) === out.length ? out : undefined;
}
