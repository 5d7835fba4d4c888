/**
 * Files written once (src/durable-file.ts): the whole file or nothing under its name, never over
 * one that exists, no temporary file left behind; the same for the recording thread's variant,
 * with and without its syncs.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFileOnce, writeFileOnceOnThread } from '../../src/durable-file.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hoop-durable-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const variants = [
  ['writeFileOnce', (file: string, data: Buffer) => writeFileOnce(file, data, dir)],
  ['writeFileOnceOnThread', (file: string, data: Buffer) => writeFileOnceOnThread(file, data, dir)],
  ['writeFileOnceOnThread without syncs', (file: string, data: Buffer) => writeFileOnceOnThread(file, data, dir, false, false)],
] as const;

describe.each(variants)('%s', (_name, write) => {
  it('writes the whole file under its name, 0600, and leaves no temporary file', async () => {
    const data = Buffer.alloc(300_000, 7);
    await write(join(dir, 'a'), data);
    expect(readFileSync(join(dir, 'a')).equals(data)).toBe(true);
    expect(statSync(join(dir, 'a')).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['a']);
  });

  it('never writes over a file that exists: EEXIST, the first file as it was, no temporary file', async () => {
    await write(join(dir, 'a'), Buffer.from('first'));
    await expect(write(join(dir, 'a'), Buffer.from('second'))).rejects.toMatchObject({ code: 'EEXIST' });
    expect(readFileSync(join(dir, 'a'), 'utf8')).toBe('first');
    expect(readdirSync(dir)).toEqual(['a']);
  });
});
