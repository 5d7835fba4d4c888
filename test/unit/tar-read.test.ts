/**
 * The ustar archives hoop reads (the CLI's records sent in one request, `POST /v1/client-records`):
 * what `tarOf` and GNU tar write reads back byte for byte; anything that is not such an archive is
 * refused with what is wrong, never half read.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readTar, tarOf } from '../../src/recording/tar.js';

const files = [
  { name: 'sessions/abcdefgh/events-000001.jsonl.gz', data: Buffer.alloc(1000, 7) },
  { name: 'sessions/abcdefgh/SHA256SUMS', data: Buffer.from('') },
  { name: 'runs/run-12345678/SHA256SUMS.sig', data: Buffer.alloc(512, 1) },
];

describe('readTar', () => {
  it('reads back what tarOf writes, and what GNU tar writes', () => {
    expect(readTar(tarOf(files), 10).map((f) => [f.name, f.data.toString('hex')])).toEqual(files.map((f) => [f.name, f.data.toString('hex')]));
    const dir = mkdtempSync(join(tmpdir(), 'hoop-tar-'));
    try {
      writeFileSync(join(dir, 'a.txt'), 'hello\n');
      const gnu = execFileSync('tar', ['--format=ustar', '-cf', '-', '-C', dir, 'a.txt']);
      expect(readTar(gnu, 10)).toEqual([{ name: 'a.txt', data: Buffer.from('hello\n') }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses what is not a whole ustar archive of files, saying what is wrong', () => {
    const good = tarOf(files);
    const flipped = Buffer.from(good);
    flipped[10] = flipped[10]! ^ 1;
    expect(() => readTar(flipped, 10)).toThrow(/wrong checksum/);
    expect(() => readTar(good.subarray(0, good.length - 512), 10)).toThrow(/ends without its two empty blocks/);
    expect(() => readTar(good.subarray(0, 1024), 10)).toThrow(/more than the archive holds|two empty blocks/);
    expect(() => readTar(good, 2)).toThrow(/more than 2 files/);
    expect(() => readTar(Buffer.alloc(100), 10)).toThrow(/two empty blocks/);
    // A symbolic link (type 2): refused, not followed or skipped.
    const link = Buffer.from(tarOf([{ name: 'x', data: Buffer.alloc(0) }]));
    link[156] = '2'.charCodeAt(0);
    link.fill(' ', 148, 156);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += link[i]!;
    link.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
    expect(() => readTar(link, 10)).toThrow(/neither a file nor a directory/);
    // Not ustar at all.
    expect(() => readTar(Buffer.concat([Buffer.alloc(512, 0x41), Buffer.alloc(1024)]), 10)).toThrow(/checksum|ustar/);
  });
});
