/**
 * The CLI's spool of records: a command that closes one of its records reads that record's
 * directory, not the whole spool (which may hold thousands left for other gateways).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Spool } from '../../src/recording/spool.js';

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
