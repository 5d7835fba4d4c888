/**
 * A recording's small chunks are gzip files of stored blocks, read without zlib: the reader is
 * tested against zlib (the reference) on generated files and on damaged ones (bytes changed, cut,
 * added; flags, padding bits, lengths), where both must give the same bytes or both refuse.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { gunzip as gunzipCallback, crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { gzipChunk, storedGunzip } from '../../src/recording/chunk-gzip.js';
import { chunkBytes, MAX_CHUNK_TEXT } from '../../src/recording/verify.js';

const gunzip = promisify(gunzipCallback);

/** A seeded generator (xorshift32), so that a failure is found again. */
function generator(seed: number): (n: number) => number {
  let x = seed || 1;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

/** `data` as a gzip file of stored blocks cut at `cuts` (each block at most 65,535 bytes). */
function storedBlocks(data: Buffer, cuts: number[]): Buffer {
  const parts: Buffer[] = [Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])];
  const ends = [...cuts.filter((c) => c > 0 && c < data.length).sort((a, b) => a - b), data.length];
  let from = 0;
  for (const [i, end] of ends.entries()) {
    const head = Buffer.alloc(5);
    head[0] = i === ends.length - 1 ? 1 : 0;
    head.writeUInt16LE(end - from, 1);
    head.writeUInt16LE(~(end - from) & 0xffff, 3);
    parts.push(head, data.subarray(from, end));
    from = end;
  }
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc32(data), 0);
  trailer.writeUInt32LE(data.length, 4);
  return Buffer.concat([...parts, trailer]);
}

/** What zlib makes of `file`: its bytes, or that it refuses. */
async function reference(file: Buffer): Promise<Buffer | 'refused'> {
  return gunzip(file, { maxOutputLength: MAX_CHUNK_TEXT }).catch(() => 'refused' as const);
}

/** A reader's outcome in a line a comparison reads at once: the refusal, or the bytes' length and SHA-256. */
function outcome(r: Buffer | 'refused'): string {
  return r === 'refused' ? r : `${r.length} ${createHash('sha256').update(r).digest('hex')}`;
}

describe('a stored chunk read without zlib', () => {
  it('reads what gzipChunk writes, as zlib does, for every small size', async () => {
    const next = generator(7);
    for (const size of [0, 1, 2, 100, 4095, 8191, ...Array.from({ length: 60 }, () => next(8192))]) {
      const data = randomBytes(size);
      const file = gzipChunk(data);
      expect(storedGunzip(file, MAX_CHUNK_TEXT)).toEqual(data);
      expect(await chunkBytes(file)).toEqual(data);
      expect(await reference(file)).toEqual(data);
    }
    // A compressed one is zlib's to read.
    const large = Buffer.alloc(20_000, 'select 1;');
    expect(storedGunzip(gzipChunk(large), MAX_CHUNK_TEXT)).toBeUndefined();
    expect(await chunkBytes(gzipChunk(large))).toEqual(large);
  });

  it('gives what zlib gives, or refuses as zlib does, for generated and damaged files', async () => {
    const next = generator(20261202);
    let fast = 0;
    for (let round = 0; round < 400; round++) {
      const data = randomBytes(next(3) === 0 ? next(70_000) : next(600));
      const cuts = Array.from({ length: next(4) }, () => next(data.length + 1));
      // Blocks larger than a stored block may be are made smaller.
      for (let at = 65_535; at < data.length; at += 65_535) cuts.push(at);
      const valid = storedBlocks(data, cuts);
      const files: Buffer[] = [valid];
      for (let m = 0; m < 6; m++) {
        const f = Buffer.from(valid);
        switch (next(7)) {
          case 0:
            f[next(f.length)] ^= 1 << next(8);
            files.push(f);
            break;
          case 1:
            files.push(f.subarray(0, next(f.length)));
            break;
          case 2:
            files.push(Buffer.concat([f, randomBytes(1 + next(20))]));
            break;
          case 3:
            files.push(Buffer.concat([f, valid]));
            break;
          case 4:
            f[3] = 1 << next(5); // a header flag: text, header CRC, extra, name, comment
            files.push(f);
            break;
          case 5:
            f[10] |= 1 << (3 + next(5)); // the first block's padding bits
            files.push(f);
            break;
          default:
            f[10] = (f[10]! & 1) | (1 << (1 + next(2))); // another block type
            files.push(f);
        }
      }
      for (const file of files) {
        const ours = await chunkBytes(file).catch(() => 'refused' as const);
        // Compared as bytes: a deep equality walks a buffer element by element, a minute for the whole table.
        expect(outcome(ours)).toBe(outcome(await reference(file)));
        if (storedGunzip(file, MAX_CHUNK_TEXT)) fast++;
      }
    }
    expect(fast).toBeGreaterThan(400); // every valid file, and damaged ones that still are
  });

  it('reads no more than it may: a chunk past the limit is refused', async () => {
    const data = randomBytes(5000);
    expect(storedGunzip(gzipChunk(data), 4999)).toBeUndefined();
    expect(storedGunzip(gzipChunk(data), 5000)).toEqual(data);
  });
});
