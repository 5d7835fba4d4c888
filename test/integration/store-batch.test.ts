/**
 * A batch of the store's recording writes as one statement (src/gateway/records/store-batch.ts),
 * against a real cluster: each row ends as the ops of the batch, in order, would have left it,
 * whatever the batch holds of a session's start, upstream key and end, or of a file written and
 * removed; a batch ends before a write to a row it removed.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionSummary } from '../../src/api/answers.js';
import { MIGRATIONS } from '../../src/gateway/migrations.js';
import { removedBefore, writeBatch, type Op, type StoredFile } from '../../src/gateway/records/store-batch.js';
import { StoreReplica } from '../../src/gateway/replicas/replica.js';
import { PostgresGatewayStore } from '../../src/gateway/store/store-postgres.js';
import { startPgCluster, type PgCluster } from '../harness/postgres.js';
import { loggedLines, storedSummary } from '../harness/stored-records.js';

let cluster: PgCluster;
let dir: string;
let store: PostgresGatewayStore;
let replica: StoreReplica;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoop-store-batch-'));
  cluster = await startPgCluster();
  await cluster.psql('create database hoop_store');
  store = await PostgresGatewayStore.open(cluster.url(cluster.superuser, { database: 'hoop_store' }), MIGRATIONS);
  replica = await StoreReplica.create(store.pool, { dataDir: dir, url: 'https://a.test', log: loggedLines().log });
});

afterAll(async () => {
  await store?.close();
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const running = (id: string): SessionSummary => {
  const { endedAt: _e, ...started } = storedSummary(id);
  return { ...started, reason: '', recording: 'running' };
};
const ended = (id: string): SessionSummary => storedSummary(id);
const key = (n: number) => ({ processId: n, secretKey: n * 7 });
const file = (session: string, name: string, removed = false): Op => ({ kind: 'file', session, name, removed });

/** Writes `ops` as one batch, each file op that writes giving `bytes` (or its name's bytes). */
async function write(ops: Op[], bytes?: (op: Op) => Buffer) {
  const files = new Map<Op, StoredFile>();
  for (const op of ops) if (op.kind === 'file' && !op.removed) files.set(op, { data: bytes?.(op) ?? Buffer.from(op.name), object: null });
  return writeBatch(store.pool, replica.id, ops, files);
}

const session = async (id: string) => (await store.pool.query('select ended_at, summary, upstream from hoop.sessions where id = $1', [id])).rows[0];
const files = async (id: string) => (await store.pool.query<{ name: string; data: Buffer }>('select name, data from hoop.recording_files where session = $1 order by name', [id])).rows;

describe("a batch of the store's writes, in one statement", () => {
  it('leaves a session as its start, upstream key and end in order leave it, whichever batches hold them', async () => {
    await write([
      { kind: 'session', summary: running('sess0001') },
      { kind: 'upstream', session: 'sess0001', key: key(1) },
    ]);
    expect(await session('sess0001')).toMatchObject({ ended_at: null, upstream: key(1), summary: { recording: 'running' } });
    // An upstream key alone, then the end with a late "running" summary after it: the end stands, the key goes.
    await write([{ kind: 'upstream', session: 'sess0001', key: key(2) }]);
    expect((await session('sess0001')).upstream).toEqual(key(2));
    await write([
      { kind: 'session', summary: ended('sess0001') },
      { kind: 'session', summary: running('sess0001') },
      { kind: 'upstream', session: 'sess0001', key: key(3) },
    ]);
    expect(await session('sess0001')).toMatchObject({ upstream: null, summary: { recording: ended('sess0001').recording } });
    expect((await session('sess0001')).ended_at).not.toBeNull();
    // A running summary in a later batch never takes an ended one back.
    await write([
      { kind: 'session', summary: running('sess0001') },
      { kind: 'upstream', session: 'sess0001', key: key(4) },
    ]);
    expect(await session('sess0001')).toMatchObject({ upstream: null, summary: { recording: ended('sess0001').recording } });
    // Start, key and end in one batch: ended, no key.
    await write([
      { kind: 'session', summary: running('sess0002') },
      { kind: 'upstream', session: 'sess0002', key: key(5) },
      { kind: 'session', summary: ended('sess0002') },
    ]);
    expect(await session('sess0002')).toMatchObject({ upstream: null });
    // A key for a session the store does not have changes nothing.
    await write([{ kind: 'upstream', session: 'sess0003', key: key(6) }]);
    expect(await session('sess0003')).toBeUndefined();
  });

  it('inserts each file once, removes those the batch removed, and says which it held already', async () => {
    const first = await write([file('sess0004', 'records-000001.gz'), file('sess0004', 'checkpoint-000001'), file('sess0004', 'checkpoint-000001', true), file('sess0004', 'SHA256SUMS')]);
    expect(first).toEqual({ gone: [], held: [] });
    expect((await files('sess0004')).map((f) => f.name)).toEqual(['SHA256SUMS', 'records-000001.gz']);
    // The same again (a retry), and other bytes under a held name: neither is written over; both are said.
    const again = await write([file('sess0004', 'records-000001.gz'), file('sess0004', 'SHA256SUMS'), file('sess0004', 'SHA256SUMS.sig')], (op) =>
      Buffer.from(op.kind === 'file' && op.name === 'SHA256SUMS' ? 'other' : (op as { name: string }).name),
    );
    expect(again.held.map((h) => h.name).sort()).toEqual(['SHA256SUMS', 'records-000001.gz']);
    expect((await files('sess0004')).map((f) => [f.name, f.data.toString()])).toEqual([
      ['SHA256SUMS', 'SHA256SUMS'],
      ['SHA256SUMS.sig', 'SHA256SUMS.sig'],
      ['records-000001.gz', 'records-000001.gz'],
    ]);
    // A file held before, removed now.
    await write([file('sess0004', 'SHA256SUMS.sig', true)]);
    expect((await files('sess0004')).map((f) => f.name)).toEqual(['SHA256SUMS', 'records-000001.gz']);
  });

  it("keeps a journal's copies until the batch that removes the journal, its copies in that batch never written", async () => {
    const journal = (name: string, offset: number): Op => ({ kind: 'journal', name, offset, data: Buffer.from(`${name}@${offset}`) });
    await write([journal('journal-a-000001.hj', 0), journal('journal-a-000001.hj', 10), journal('journal-a-000002.hj', 0)]);
    await write([journal('journal-a-000002.hj', 5), { kind: 'journal-removed', name: 'journal-a-000002.hj' }, journal('journal-a-000003.hj', 0)]);
    const { rows } = await store.pool.query('select name, "offset" from hoop.recording_journals where replica = $1 order by name, "offset"', [replica.id]);
    expect(rows.map((r) => `${r.name}@${r.offset}`)).toEqual(['journal-a-000001.hj@0', 'journal-a-000001.hj@10', 'journal-a-000003.hj@0']);
  });

  it('ends a batch before a write to a file or journal it removed', () => {
    const removed = new Set<string>();
    const ops: Op[] = [file('s', 'a'), file('s', 'a', true), file('s', 'b'), { kind: 'journal-removed', name: 'j' }, file('t', 'a')];
    expect(ops.map((op) => removedBefore(op, removed))).toEqual([false, false, false, false, false]);
    expect(removedBefore(file('s', 'a'), removed)).toBe(true);
    expect(removedBefore({ kind: 'journal', name: 'j', offset: 0, data: Buffer.alloc(0) }, removed)).toBe(true);
    expect(removedBefore({ kind: 'done', session: 's' }, removed)).toBe(false);
  });
});
