/**
 * A response body's content coding undone as it streams (gzip, deflate zlib-wrapped or raw, br,
 * identity), chunk by chunk as they come, as zlib decodes the whole; a compression bomb and bytes
 * that are not their coding refused rather than passed.
 */
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ContentDecoder, decodable, MAX_DECODED_BYTES } from '../../src/http/pipeline/content-decoding.js';

async function decoded(coding: string | undefined, body: Buffer, size: number): Promise<Buffer> {
  const d = new ContentDecoder(coding);
  const out: Buffer[] = [];
  for (let at = 0; at < body.length; at += size) out.push(await d.push(body.subarray(at, at + size)));
  out.push(await d.end());
  return Buffer.concat(out);
}

describe('ContentDecoder', () => {
  const plain = Buffer.from(JSON.stringify(Array.from({ length: 2000 }, (_, i) => ({ id: i, email: `c${i}@shop.example` }))));

  it.each<[string | undefined, Buffer]>([
    ['gzip', gzipSync(plain)],
    ['X-Gzip', gzipSync(plain)],
    ['deflate', deflateSync(plain)],
    ['deflate', deflateRawSync(plain)],
    ['br', brotliCompressSync(plain)],
    ['identity', plain],
    [undefined, plain],
  ])('undoes %s, in chunks of any size', async (coding, body) => {
    for (const size of [1, 7, 1000, body.length]) expect((await decoded(coding, body, size)).equals(plain), `chunks of ${size}`).toBe(true);
  });

  it('gives what came of each chunk as it comes, not all at the end', async () => {
    const d = new ContentDecoder('gzip');
    const body = gzipSync(plain);
    const first = await d.push(body.subarray(0, body.length >> 1));
    expect(first.length).toBeGreaterThan(0);
  });

  it('refuses a compression bomb, and bytes that are not their coding', async () => {
    const bomb = gzipSync(Buffer.alloc(MAX_DECODED_BYTES * 2));
    await expect(decoded('gzip', bomb, 64 * 1024)).rejects.toThrow(/decodes to more than .*compression bomb/);
    await expect(decoded('gzip', Buffer.from('not gzip at all'), 5)).rejects.toThrow(/not the gzip it says it is/);
    await expect(decoded('br', Buffer.from([0xff, 0xff, 0xff, 0xff]), 2)).rejects.toThrow(/not the br/);
    const whole = gzipSync(plain);
    await expect(decoded('gzip', whole.subarray(0, whole.length - 10), 100)).rejects.toThrow(/not the gzip it says it is/);
  });

  it('takes only the codings it can read', () => {
    for (const c of ['gzip', 'deflate', 'br', 'identity', undefined]) expect(decodable(c)).toBe(true);
    for (const c of ['compress', 'zstd', 'gzip, br', 'chunked']) expect(decodable(c)).toBe(false);
    expect(() => new ContentDecoder('zstd')).toThrow(/cannot read/);
  });

  it.each<[string, Buffer]>([
    ['deflate', deflateSync(Buffer.from('{"a":1}'))],
    ['deflate', deflateRawSync(Buffer.from('{"a":1}'))],
    ['br', brotliCompressSync(Buffer.from('{"a":1}'))],
  ])('refuses bytes after the end of a %s body, in chunks of any size, and never hangs', async (coding, body) => {
    const trailing = Buffer.concat([body, Buffer.from('\n')]);
    for (const size of [1, 3, trailing.length]) await expect(decoded(coding, trailing, size), `chunks of ${size}`).rejects.toThrow(/after the end/);
  });
});
