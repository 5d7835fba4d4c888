/**
 * The CLI's spool of records: a command that closes one of its records reads that record's
 * directory, not the whole spool (which may hold thousands left for other gateways); a record that
 * closed while held is one archive, read whole, listed as closed, removed and set aside as it is; one
 * that cannot be a record of its name (hostile or torn) is set aside, with why, and nothing else is written.
 * An archive held in memory is listed and read as if on disk, leaves without a file call when the
 * gateway takes it first, and reaches the disk when its time comes, when the command ends, or when
 * it is set aside.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { createPublicKey } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Spool } from '../../src/recording/spool.js';
import { generateSigningKey } from '../../src/recording/sshsig.js';
import { verifyRecording } from '../../src/recording/verify.js';
import { RecordingWriter } from '../../src/recording/writer.js';
import { tarOf } from '../../src/recording/tar.js';

const listed = vi.hoisted(() => ({ count: 0 }));
vi.mock('node:fs/promises', async (original) => {
  const fs = await original<typeof import('node:fs/promises')>();
  return { ...fs, readdir: ((...args: Parameters<typeof fs.readdir>) => (listed.count++, fs.readdir(...args))) as typeof fs.readdir };
});

let root: string;
let spool: Spool;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'hoop-spool-'));
  spool = new Spool(join(root, 'spool'));
  for (let i = 0; i < 300; i++) await spool.create({ kind: 'sessions', id: `other-${String(i).padStart(6, '0')}`, gateway: 'https://elsewhere.example', signer: 'ssh-ed25519 AAAA' });
  await spool.create({ kind: 'sessions', id: 'mine-000001', gateway: 'https://gw.example', signer: 'ssh-ed25519 AAAA' });
  await spool.create({ kind: 'runs', id: 'mine-000002', gateway: 'https://gw.example', signer: 'ssh-ed25519 AAAA' });
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe('Spool.only', () => {
  it('gives the records asked for that are there, of the gateway asked for, and nothing else', async () => {
    const got = await spool.only(['sessions/mine-000001', 'runs/mine-000002', 'sessions/absent-00001', 'sessions/other-000007', 'x/../../etc'], 'https://gw.example');
    expect(got.map((e) => `${e.meta.kind}/${e.meta.id}`).sort()).toEqual(['runs/mine-000002', 'sessions/mine-000001']);
    expect(got.every((e) => e.status === 'live')).toBe(true); // this process wrote them and is alive
    expect((await spool.only(['sessions/other-000007'])).map((e) => e.meta.gateway)).toEqual(['https://elsewhere.example']);
  });

  it('does not list the spool directory (entries does)', async () => {
    listed.count = 0;
    await spool.only(['sessions/mine-000001']);
    expect(listed.count).toBe(0);
    expect((await spool.entries()).length).toBe(302);
    expect(listed.count).toBe(1);
  });
});

describe('a held record in the spool', () => {
  it('closed while held: one archive, listed as closed, its files read from it, verified, then removed', async () => {
    const { privateKey: key } = generateSigningKey();
    const { dir, name, text } = spool.meta({ kind: 'sessions', id: 'held-000001', gateway: 'https://gw.example', signer: 'ssh-ed25519 AAAA' });
    const w = await RecordingWriter.create({ dir, id: 'held-000001', key, held: { first: { name, data: Buffer.from(text) } } });
    w.append({ t: 'start', at: 1, side: 'client' });
    await w.close();
    expect((await readdir(spool.root)).filter((f) => f.startsWith('sessions-held'))).toEqual(['sessions-held-000001.tar']);
    const [entry] = await spool.only(['sessions/held-000001'], 'https://gw.example');
    expect(entry).toMatchObject({ path: `${dir}.tar`, status: 'closed', meta: { kind: 'sessions', id: 'held-000001', gateway: 'https://gw.example' } });
    expect((await entry!.files.names()).sort()).toEqual(['SHA256SUMS', 'SHA256SUMS.sig', 'events-000001.jsonl.gz', 'spool.json'].sort());
    expect((await spool.entries('https://gw.example')).map((e) => e.meta.id)).toContain('held-000001');
    const files = new Map<string, Buffer>();
    for (const f of await entry!.files.names()) files.set(f, (await entry!.files.read(f))!);
    expect(await verifyRecording(files, [createPublicKey(key)], undefined, 'held-000001', ['spool.json'])).toMatchObject({ ok: true, complete: true, events: 1 });
    await spool.remove(entry!);
    expect(await spool.only(['sessions/held-000001'])).toEqual([]);
  });

  it('set aside, an archive is kept as it is in a directory with why', async () => {
    const { privateKey: key } = generateSigningKey();
    const { dir, name, text } = spool.meta({ kind: 'sessions', id: 'held-000002', gateway: 'https://gw.example', signer: 'ssh-ed25519 AAAA' });
    const w = await RecordingWriter.create({ dir, id: 'held-000002', key, held: { first: { name, data: Buffer.from(text) } } });
    await w.close();
    const [entry] = await spool.only(['sessions/held-000002']);
    const to = await spool.setAside(entry!, 'refused: 422');
    expect(to).toBe(join(spool.root, 'failed', 'sessions-held-000002'));
    expect((await readdir(to)).sort()).toEqual(['failed.txt', 'sessions-held-000002.tar']);
    expect(await readFile(join(to, 'failed.txt'), 'utf8')).toBe('refused: 422\n');
    expect(await spool.only(['sessions/held-000002'])).toEqual([]);
  });
});

describe('an archive held in memory', () => {
  /** A record closed while held, its archive kept by the spool as the CLI's recorder keeps it. */
  async function heldArchive(mine: Spool, id: string, dueAt: number): Promise<Buffer> {
    const { privateKey: key } = generateSigningKey();
    const { dir, name, text } = mine.meta({ kind: 'sessions', id, gateway: 'https://gw.example', signer: 'ssh-ed25519 AAAA' });
    let archive: Buffer | undefined;
    const w = await RecordingWriter.create({ dir, id, key, held: { first: { name, data: Buffer.from(text) }, keep: (a) => (archive = a) } });
    w.append({ t: 'start', at: 1, side: 'client' });
    await w.close();
    mine.hold('sessions', id, archive!, dueAt);
    return archive!;
  }

  it('is listed and read as a closed record, and leaves the spool with no file ever made', async () => {
    const at = await mkdtemp(join(tmpdir(), 'hoop-spool-memory-'));
    const mine = new Spool(join(at, 'spool'));
    await heldArchive(mine, 'memory-000001', Date.now() + 60_000);
    expect(await readdir(at)).toEqual([]);
    listed.count = 0;
    const [entry] = await mine.only(['sessions/memory-000001'], 'https://gw.example');
    expect(listed.count).toBe(0);
    expect(entry).toMatchObject({ path: join(mine.root, 'sessions-memory-000001.tar'), status: 'closed', meta: { id: 'memory-000001' } });
    expect((await entry!.files.names()).sort()).toEqual(['SHA256SUMS', 'SHA256SUMS.sig', 'events-000001.jsonl.gz', 'spool.json']);
    expect((await mine.entries('https://gw.example')).map((e) => e.meta.id)).toEqual(['memory-000001']);
    await mine.remove(entry!);
    expect(await mine.only(['sessions/memory-000001'])).toEqual([]);
    await mine.persist();
    expect(await readdir(at)).toEqual([]);
    await rm(at, { recursive: true, force: true });
  });

  it('reaches the disk when its time comes, and leaves it when the gateway takes it after', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const at = await mkdtemp(join(tmpdir(), 'hoop-spool-due-'));
      const mine = new Spool(join(at, 'spool'));
      const archive = await heldArchive(mine, 'memory-000002', Date.now() + 900);
      await vi.advanceTimersByTimeAsync(899);
      expect(await readdir(at)).toEqual([]);
      await vi.advanceTimersByTimeAsync(1);
      await vi.waitFor(async () => expect(await readdir(mine.root).catch(() => [])).toEqual(['sessions-memory-000002.tar']), { timeout: 10_000 });
      expect(await readFile(join(mine.root, 'sessions-memory-000002.tar'))).toEqual(archive);
      const [entry] = await mine.only(['sessions/memory-000002']);
      expect(entry?.status).toBe('closed');
      await mine.remove(entry!);
      expect(await readdir(mine.root)).toEqual([]);
      await rm(at, { recursive: true, force: true });
    } finally {
      vi.useRealTimers();
    }
  });

  it('goes to the disk when the command ends, and when it is set aside', async () => {
    const at = await mkdtemp(join(tmpdir(), 'hoop-spool-persist-'));
    const mine = new Spool(join(at, 'spool'));
    const a = await heldArchive(mine, 'memory-000003', Date.now() + 60_000);
    const b = await heldArchive(mine, 'memory-000004', Date.now() + 60_000);
    const [entry] = await mine.only(['sessions/memory-000004']);
    expect(await mine.setAside(entry!, 'refused: 422')).toBe(join(mine.root, 'failed', 'sessions-memory-000004'));
    expect(await readFile(join(mine.root, 'failed', 'sessions-memory-000004', 'sessions-memory-000004.tar'))).toEqual(b);
    await mine.persist();
    expect(await readFile(join(mine.root, 'sessions-memory-000003.tar'))).toEqual(a);
    // A later command's spool reads it from the disk.
    expect((await new Spool(mine.root).entries()).map((e) => [e.meta.id, e.status])).toEqual([['memory-000003', 'closed']]);
    await rm(at, { recursive: true, force: true });
  });
});

describe('what cannot be a record of its name', () => {
  const meta = (id: string): Buffer => Buffer.from(`${JSON.stringify({ kind: 'sessions', id, gateway: 'https://gw.example', pid: 1, host: 'h', startedAt: '2026-01-01T00:00:00Z', signer: 'x' })}\n`);
  /** Archives no writer makes: entries named outside their record, of another record, twice, not a record's file; torn or empty bytes. */
  /** An archive of `entries` (name under the record's directory, or whole when it starts with `/`), for record `id`. */
  const archive = (id: string, ...entries: Array<[string, Buffer]>): [string, Buffer] => [
    id,
    tarOf(entries.map(([name, data]) => ({ name: name.startsWith('/') ? name.slice(1) : `sessions-${id}/${name}`, data }))),
  ];
  const x = Buffer.from('x');
  const hostile: Array<[string, Buffer]> = [
    archive('bad-0000001', ['spool.json', meta('bad-0000001')], ['../../../escaped', x]),
    archive('bad-0000002', ['spool.json', meta('bad-0000002')], ['/../escaped', x]),
    archive('bad-0000003', ['spool.json', meta('bad-0000003')], ['/sessions-other-00001/SHA256SUMS', x]),
    archive('bad-0000004', ['spool.json', meta('bad-0000004')], ['sub/SHA256SUMS', x]),
    archive('bad-0000005', ['spool.json', meta('bad-0000005')], ['spool.json', meta('bad-0000005')]),
    archive('bad-0000006', ['spool.json', meta('another-0001')]),
    archive('bad-0000007', ['spool.json', Buffer.from('{not json')]),
    archive('bad-0000008', ['events-000001.jsonl.gz', x]),
    ['bad-0000009', Buffer.alloc(0)],
    ['bad-0000010', Buffer.alloc(4096)],
    ['bad-0000011', archive('bad-0000011', ['spool.json', meta('bad-0000011')])[1].subarray(0, 700)],
  ];

  it('an archive no writer makes is set aside with why, whole, and nothing is written outside the spool', async () => {
    const at = await mkdtemp(join(tmpdir(), 'hoop-spool-hostile-'));
    const mine = new Spool(join(at, 'spool'));
    await mkdir(mine.root, { recursive: true });
    for (const [id, bytes] of hostile) await writeFile(join(mine.root, `sessions-${id}.tar`), bytes);
    expect(await mine.entries()).toEqual([]);
    expect((await readdir(at)).sort()).toEqual(['spool']);
    expect((await readdir(mine.root)).sort()).toEqual(['failed']);
    for (const [id, bytes] of hostile) {
      const kept = join(mine.root, 'failed', `sessions-${id}`);
      expect((await readdir(kept)).sort()).toEqual(['failed.txt', `sessions-${id}.tar`]);
      expect(await readFile(join(kept, `sessions-${id}.tar`))).toEqual(bytes);
      expect((await readFile(join(kept, 'failed.txt'), 'utf8')).length).toBeGreaterThan(5);
    }
    await rm(at, { recursive: true, force: true });
  });

  it("a directory whose spool.json names another record is set aside; one not yet written is left; a stopped write's temporary file goes", async () => {
    const at = await mkdtemp(join(tmpdir(), 'hoop-spool-dirs-'));
    const mine = new Spool(join(at, 'spool'));
    await mkdir(join(mine.root, 'sessions-named-00001'), { recursive: true });
    await writeFile(join(mine.root, 'sessions-named-00001', 'spool.json'), meta('../../../elsewhere'));
    await mkdir(join(mine.root, 'runs-making-000001'), { recursive: true });
    const stale = join(mine.root, 'sessions-gone-000001.tar.123.abcdef012345.tmp');
    const fresh = join(mine.root, 'sessions-live-000001.tar.124.abcdef012345.tmp');
    await writeFile(stale, 'x');
    await writeFile(fresh, 'x');
    await utimes(stale, new Date(Date.now() - 2 * 3600_000), new Date(Date.now() - 2 * 3600_000));
    expect(await mine.entries()).toEqual([]);
    expect((await readdir(mine.root)).sort()).toEqual(['failed', 'runs-making-000001', 'sessions-live-000001.tar.124.abcdef012345.tmp']);
    expect(await readFile(join(mine.root, 'failed', 'sessions-named-00001', 'failed.txt'), 'utf8')).toContain('names sessions/../../../elsewhere');
    await rm(at, { recursive: true, force: true });
  });
});
