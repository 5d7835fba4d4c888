/**
 * A session's recording in one archive (src/recording/recording-files.ts): cut as the same files a
 * directory holds, checked by hoop and, once `tar -xf` unpacks it, by `sha256sum -c` and
 * `ssh-keygen -Y verify` alone; an archive cut short at any byte reads as what it holds whole and
 * verifies as complete only when every file is whole; an archive that is not one recording's directory is refused; a cut
 * over an older, longer one leaves nothing of it.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { archivePath, FileSessionArchive } from '../../src/gateway/records/recordings.js';
import { RECORD_DECODERS } from '../../src/lanes/record-decoders.js';
import { silentLogger } from '../../src/log.js';
import { storedSummary } from '../harness/stored-records.js';
import { eventRecord, MANIFEST } from '../../src/recording/writer.js';
import { cutRecording } from '../../src/recording/record-chunks.js';
import { recordingFiles } from '../../src/recording/recording-files.js';
import { readEvents } from '../../src/recording/read.js';
import { generateSigningKey, sshPublicKeyLine } from '../../src/recording/sshsig.js';
import { tarOf } from '../../src/recording/tar.js';
import { verifyRecording } from '../../src/recording/verify.js';

const base = mkdtempSync(join(tmpdir(), 'hoop-archive-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
const { privateKey: key } = generateSigningKey();
const ID = 'sess-archive-0001';

/** Events enough for three chunks (one over 1 MiB of records is cut there), the last ones small. */
function records(count: number): Buffer[] {
  return Array.from({ length: count }, (_, i) => eventRecord({ t: 'statement', at: 1000 + i, sql: `select ${i} -- ${'x'.repeat(i % 7 === 0 ? 200_000 : 10)}` }));
}

async function cut(path: string, count: number, sealed = true): Promise<void> {
  await cutRecording({ path, id: ID, protocol: 'postgres', key, sealed, durable: true }, records(count));
}

/** A recording of `count` records cut as an archive in a directory `name` of its own: its path, bytes and files. */
async function cutArchive(name: string, count: number): Promise<{ path: string; bytes: Buffer; names: string[] }> {
  mkdirSync(join(base, name));
  const path = join(base, name, `${ID}.tar`);
  await cut(path, count);
  return { path, bytes: readFileSync(path), names: await recordingFiles(path).names() };
}

describe('a recording kept in one archive', () => {
  it('holds the files a directory would, byte for byte, and checks without hoop once unpacked', async () => {
    const dir = join(base, 'as-dir');
    const archive = join(base, `${ID}.tar`);
    await cut(dir, 40);
    await cut(archive, 40);
    const inDir = await verifyRecording(dir, [key], undefined, ID);
    const inArchive = await verifyRecording(archive, [key], undefined, ID);
    expect(inArchive).toMatchObject({ ok: true, complete: true, problems: [] });
    expect(inArchive.chunks).toBeGreaterThan(1);
    expect(inArchive).toEqual(inDir);
    const files = recordingFiles(archive);
    for (const name of await recordingFiles(dir).names()) expect((await files.read(name))?.equals(readFileSync(join(dir, name))), name).toBe(true);
    const events = async (path: string): Promise<unknown[]> => {
      const out: unknown[] = [];
      for await (const e of readEvents(path, MANIFEST, RECORD_DECODERS)) out.push(e);
      return out;
    };
    expect(await events(archive)).toEqual(await events(dir));

    const unpacked = join(base, 'unpacked');
    mkdirSync(unpacked);
    execFileSync('tar', ['-xf', archive], { cwd: unpacked });
    const root = join(unpacked, ID);
    expect(execFileSync('sha256sum', ['-c', MANIFEST], { cwd: root }).toString()).toContain('records-000001.gz: OK');
    writeFileSync(join(base, 'allowed_signers'), `gateway ${sshPublicKeyLine(key)}\n`);
    const out = execFileSync('ssh-keygen', ['-Y', 'verify', '-f', join(base, 'allowed_signers'), '-I', 'gateway', '-n', 'hoop-recording', '-s', join(root, `${MANIFEST}.sig`)], {
      input: readFileSync(join(root, MANIFEST)),
    });
    expect(out.toString()).toContain('Good "hoop-recording" signature');
  });

  it('reads the same files whether small enough to be read whole or read entry by entry', async () => {
    for (const [name, bytes] of [
      ['small', 2_000],
      ['large', 400_000],
    ] as const) {
      mkdirSync(join(base, name));
      const dir = join(base, name, 'dir');
      const archive = join(base, name, `${ID}.tar`);
      // Random bytes: chunks as large as what they hold, so that the large archive is past the whole-read size.
      const held = [eventRecord({ t: 'statement', at: 1, sql: randomBytes(bytes).toString('base64') })];
      for (const path of [dir, archive]) await cutRecording({ path, id: ID, protocol: 'postgres', key, sealed: true, durable: false }, held);
      expect(statSync(archive).size > 256 * 1024, name).toBe(name === 'large');
      const files = recordingFiles(archive);
      const names = await recordingFiles(dir).names();
      expect((await files.names()).sort()).toEqual(names.sort());
      for (const file of names) expect((await files.read(file))?.equals(readFileSync(join(dir, file))), `${name}: ${file}`).toBe(true);
      expect(await files.read('records-000009.gz')).toBeUndefined();
    }
  });

  it('cut short at any point, reads as the entries it holds whole, complete only when they all are', async () => {
    const { bytes, names } = await cutArchive('whole', 12);
    const short = join(base, 'short', `${ID}.tar`);
    mkdirSync(join(base, 'short'));
    // Every block boundary, and a byte either side of each.
    const ends = new Set<number>();
    for (let at = 0; at < bytes.length; at += 512) for (const d of [-1, 0, 1]) if (at + d > 0 && at + d < bytes.length) ends.add(at + d);
    for (const end of ends) {
      writeFileSync(short, bytes.subarray(0, end));
      const held = await recordingFiles(short).names();
      expect(names.slice(0, held.length), `cut at ${end}`).toEqual(held);
      // Complete only with every file whole (what is cut is the padding and the archive's end).
      const check = await verifyRecording(short, [key], undefined, ID);
      expect(check.complete && check.ok, `cut at ${end}`).toBe(held.length === names.length);
    }
  });

  it('finds a file written after the archive was first read (a cut told of each file as it went on)', async () => {
    const { path, bytes: whole, names } = await cutArchive('growing', 3);
    const firstEnd = 512 + Math.ceil((await recordingFiles(path).read(names[0]!))!.length / 512) * 512;
    writeFileSync(path, whole.subarray(0, firstEnd));
    const files = recordingFiles(path);
    expect(await files.names()).toEqual([names[0]]);
    expect(await files.read(MANIFEST)).toBeUndefined();
    writeFileSync(path, whole);
    expect((await files.read(MANIFEST))?.length).toBeGreaterThan(0);
  });

  it('looks for a missing file again only once the archive has grown (a hostile archive of many files is read once, not once a missing name)', async () => {
    const path = join(base, 'same-size', `${ID}.tar`);
    mkdirSync(join(base, 'same-size'));
    const file = (name: string): { name: string; data: Buffer } => ({ name: `${ID}/${name}`, data: Buffer.from('x\n') });
    writeFileSync(path, tarOf([file('checkpoint-000001.SHA256SUMS'), file('checkpoint-000002.SHA256SUMS')], 0));
    const files = recordingFiles(path);
    expect(await files.names()).toEqual(['checkpoint-000001.SHA256SUMS', 'checkpoint-000002.SHA256SUMS']);
    // Other entries of the same size: not read again for a name it did not have.
    writeFileSync(path, tarOf([file('checkpoint-000001.SHA256SUMS'), file('checkpoint-000003.SHA256SUMS')], 0));
    expect(await files.read('checkpoint-000003.SHA256SUMS')).toBeUndefined();
  });

  it('refuses an archive that is not the files of one directory', async () => {
    const bad = join(base, 'bad');
    mkdirSync(bad);
    const file = (name: string, text = 'x'): { name: string; data: Buffer } => ({ name, data: Buffer.from(text) });
    for (const [label, entries] of [
      ['a file outside a directory', [file('SHA256SUMS')]],
      ['a path that climbs', [file(`${ID}/../SHA256SUMS`)]],
      ['a directory above', [file('../SHA256SUMS')]],
      ['a deeper path', [file(`${ID}/x/SHA256SUMS`)]],
      ['two directories', [file(`${ID}/SHA256SUMS`), file(`other/SHA256SUMS.sig`)]],
      ['a name twice', [file(`${ID}/SHA256SUMS`), file(`${ID}/SHA256SUMS`, 'y')]],
    ] as const) {
      const path = join(bad, `${ID}.tar`);
      writeFileSync(path, tarOf([...entries]));
      await expect(recordingFiles(path).names(), label).rejects.toThrow(/is not a file of one recording's directory/);
      const check = await verifyRecording(path, [key], undefined, ID);
      expect(check.ok, label).toBe(false);
      expect(check.problems.join('\n'), label).toMatch(/^cannot read the recording /);
    }
  });

  it('a cut over a longer archive (one that failed), over the empty file its claim made, or where nothing is yet, leaves only itself', async () => {
    const path = join(base, `again-${ID}.tar`);
    await cut(path, 60, false);
    const longer = readFileSync(path).length;
    await cut(path, 3);
    expect(readFileSync(path).length).toBeLessThan(longer);
    expect(await verifyRecording(path, [key], undefined, ID)).toMatchObject({ ok: true, complete: true, unverified: [] });
    truncateSync(path, 0);
    await cut(path, 3);
    expect(await verifyRecording(path, [key], undefined, ID)).toMatchObject({ ok: true, complete: true });
    // No claim made it (a session with an id of the gateway's), nor its directory (removed while the gateway ran).
    const made = join(base, 'removed', 'recordings', `${ID}.tar`);
    await cut(made, 3);
    expect(await verifyRecording(made, [key], undefined, ID)).toMatchObject({ ok: true, complete: true });
    expect(statSync(join(base, 'removed', 'recordings')).mode & 0o777).toBe(0o700);
  });
});

describe("a data directory's recordings", () => {
  it('claims an id with its empty archive, and reads a directory a gateway from before archives left as it is', async () => {
    const data = join(base, 'data');
    const legacy = join(data, 'recordings', 'sess-legacy-0001');
    mkdirSync(legacy, { recursive: true });
    await cutRecording({ path: legacy, id: 'sess-legacy-0001', protocol: 'postgres', key, sealed: true, durable: false }, records(3));
    const archive = new FileSessionArchive(data, silentLogger);
    try {
      // An id never seen: its archive is made, empty; claimed again, refused.
      expect(await archive.claim('sess-new-000001')).toBe(true);
      expect(readFileSync(archivePath(data, 'sess-new-000001')).length).toBe(0);
      expect(await archive.claim('sess-new-000001')).toBe(false);
      expect(await archive.recorded('sess-new-000001')).toBe(true);
      // The directory of before: taken, recorded, its files served from where they are, pruned in place.
      expect(await archive.claim('sess-legacy-0001')).toBe(false);
      expect(await archive.recorded('sess-legacy-0001')).toBe(true);
      expect(await archive.files('sess-legacy-0001')).toEqual(['SHA256SUMS', 'SHA256SUMS.sig', 'records-000001.gz']);
      expect(await archive.file('sess-legacy-0001', MANIFEST)).toBe(join(legacy, MANIFEST));
      // An archive's files are served as bytes.
      await cut(archivePath(data, 'sess-new-000001'), 3);
      expect(await archive.files('sess-new-000001')).toEqual(['SHA256SUMS', 'SHA256SUMS.sig', 'records-000001.gz']);
      expect(((await archive.file('sess-new-000001', MANIFEST)) as Buffer).toString()).toMatch(/^[0-9a-f]{64} {2}records-000001\.gz\n$/);
      const ended = new Date(Date.parse('2026-01-01T00:00:00Z')).toISOString();
      for (const id of ['sess-legacy-0001', 'sess-new-000001']) await archive.index({ ...storedSummary(id), startedAt: ended, endedAt: ended });
      expect((await archive.prune(30, Date.parse('2026-03-01T00:00:00Z'))).sort()).toEqual(['sess-legacy-0001', 'sess-new-000001']);
      expect(await archive.files('sess-legacy-0001')).toEqual([]);
      expect(await archive.files('sess-new-000001')).toEqual([]);
      expect(readFileSync(archivePath(data, 'sess-new-000001')).length).toBe(0);
      expect(await archive.claim('sess-new-000001')).toBe(false);
    } finally {
      await archive.close();
    }
  });
});
