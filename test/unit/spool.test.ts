/**
 * The CLI's spool of records: a command that closes one of its records reads that record's
 * directory, not the whole spool (which may hold thousands left for other gateways); a record that
 * closed while held is one archive, read whole, listed as closed, removed and set aside as a directory.
 */
import { readdir, readFile, mkdtemp, rm } from 'node:fs/promises';
import { createPublicKey } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Spool } from '../../src/recording/spool.js';
import { generateSigningKey } from '../../src/recording/sshsig.js';
import { verifyRecording } from '../../src/recording/verify.js';
import { RecordingWriter } from '../../src/recording/writer.js';

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

  it('set aside, an archive becomes a directory of its files with why', async () => {
    const { privateKey: key } = generateSigningKey();
    const { dir, name, text } = spool.meta({ kind: 'sessions', id: 'held-000002', gateway: 'https://gw.example', signer: 'ssh-ed25519 AAAA' });
    const w = await RecordingWriter.create({ dir, id: 'held-000002', key, held: { first: { name, data: Buffer.from(text) } } });
    await w.close();
    const [entry] = await spool.only(['sessions/held-000002']);
    const to = await spool.setAside(entry!, 'refused: 422');
    expect((await readdir(to)).sort()).toEqual(['SHA256SUMS', 'SHA256SUMS.sig', 'events-000001.jsonl.gz', 'failed.txt', 'spool.json']);
    expect(await readFile(join(to, 'failed.txt'), 'utf8')).toBe('refused: 422\n');
    expect(await spool.only(['sessions/held-000002'])).toEqual([]);
  });
});
