/**
 * The store's writes gathered into one statement, against a real cluster: a batch of recording
 * writes (src/gateway/records/store-batch.ts), each row ending as the ops of the batch, in order,
 * would have left it, whatever the batch holds of a session's start, upstream key and end, or of a
 * file written and removed; and session places given back together
 * (src/gateway/sessions/session-slots-postgres.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SessionSummary } from '../../src/api/answers.js';
import { MIGRATIONS } from '../../src/gateway/migrations.js';
import { endsBefore, writeBatch, type Op, type StoredFile } from '../../src/gateway/records/store-batch.js';
import { StoreReplica } from '../../src/gateway/replicas/replica.js';
import { PostgresSlots } from '../../src/gateway/sessions/session-slots-postgres.js';
import { eventually } from '../harness/wait.js';
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

/** Writes `ops` in batches as the queue cuts them ({@link endsBefore}), each file op that writes giving `bytes` (or its name's bytes; an object in a bucket with `bucket`); resolves each batch's result. */
async function write(ops: Op[], bytes?: (op: Op) => Buffer, bucket = false) {
  const results = [];
  for (let at = 0; at < ops.length; ) {
    const seen = new Set<string>();
    let end = at;
    while (end < ops.length && !endsBefore(ops[end]!, seen)) end++;
    const batch = ops.slice(at, end);
    const files = new Map<Op, StoredFile>();
    for (const op of batch)
      if (op.kind === 'file' && !op.removed) files.set(op, bucket ? { data: null, object: `obj/${op.session}/${op.name}` } : { data: bytes?.(op) ?? Buffer.from(op.name), object: null });
    results.push(await writeBatch(store.pool, replica.id, batch, files));
    at = end;
  }
  return results;
}

const session = async (id: string) => (await store.pool.query('select replica, started_at, ended_at, summary, upstream from hoop.sessions where id = $1', [id])).rows[0];
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
    // A running summary again (no key in its batch) keeps the key the row holds.
    await write([{ kind: 'session', summary: running('sess0001') }]);
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
    expect(await session('sess0002')).toMatchObject({ replica: replica.id, summary: { recording: ended('sess0002').recording } });
    expect((await session('sess0002')).ended_at).not.toBeNull();
    // A key before the session's first summary (a batch apart): it went to no row, and the row starts without it.
    await write([
      { kind: 'upstream', session: 'sess0006', key: key(7) },
      { kind: 'session', summary: running('sess0006') },
    ]);
    expect(await session('sess0006')).toMatchObject({ upstream: null, ended_at: null });
    // A key for a session the store does not have changes nothing.
    await write([{ kind: 'upstream', session: 'sess0003', key: key(6) }]);
    expect(await session('sess0003')).toBeUndefined();
  });

  it('inserts each file once, removes those the batch removed, and says which it held already, with which bytes', async () => {
    const [first, ...rest] = await write([file('sess0004', 'records-000001.gz'), file('sess0004', 'checkpoint-000001'), file('sess0004', 'checkpoint-000001', true), file('sess0004', 'SHA256SUMS')]);
    // A file's row is touched once a batch: its removal starts the next.
    expect([first, ...rest]).toEqual([
      { gone: [], other: [], unseen: [] },
      { gone: [], other: [], unseen: [] },
    ]);
    expect((await files('sess0004')).map((f) => f.name)).toEqual(['SHA256SUMS', 'records-000001.gz']);
    // The same again (a retry), and other bytes under a held name: neither is written over; the other bytes are said.
    const [again] = await write([file('sess0004', 'records-000001.gz'), file('sess0004', 'SHA256SUMS'), file('sess0004', 'SHA256SUMS.sig')], (op) =>
      Buffer.from(op.kind === 'file' && op.name === 'SHA256SUMS' ? 'other' : (op as { name: string }).name),
    );
    expect(again).toEqual({ gone: [], other: [{ session: 'sess0004', name: 'SHA256SUMS' }], unseen: [] });
    expect((await files('sess0004')).map((f) => [f.name, f.data.toString()])).toEqual([
      ['SHA256SUMS', 'SHA256SUMS'],
      ['SHA256SUMS.sig', 'SHA256SUMS.sig'],
      ['records-000001.gz', 'records-000001.gz'],
    ]);
    // A file held before, removed now.
    await write([file('sess0004', 'SHA256SUMS.sig', true)]);
    expect((await files('sess0004')).map((f) => f.name)).toEqual(['SHA256SUMS', 'records-000001.gz']);
  });

  it("with a bucket, keeps each file's object in its row and says which objects the rows it removed named", async () => {
    await write([file('sess0005', 'records-000001.gz'), file('sess0005', 'checkpoint-000001')], undefined, true);
    const rows = async () => (await store.pool.query('select name, data, object from hoop.recording_files where session = $1 order by name', ['sess0005'])).rows;
    expect(await rows()).toEqual([
      { name: 'checkpoint-000001', data: null, object: 'obj/sess0005/checkpoint-000001' },
      { name: 'records-000001.gz', data: null, object: 'obj/sess0005/records-000001.gz' },
    ]);
    const [removed] = await write([file('sess0005', 'checkpoint-000001', true), file('sess0005', 'SHA256SUMS')], undefined, true);
    expect(removed!.gone).toEqual(['obj/sess0005/checkpoint-000001']);
    expect((await rows()).map((r) => r.name)).toEqual(['SHA256SUMS', 'records-000001.gz']);
  });

  it("keeps a journal's copies until the batch that removes the journal, its copies in that batch never written", async () => {
    const journal = (name: string, offset: number): Op => ({ kind: 'journal', name, offset, data: Buffer.from(`${name}@${offset}`) });
    await write([journal('journal-a-000001.hj', 0), journal('journal-a-000001.hj', 10), journal('journal-a-000002.hj', 0)]);
    await write([journal('journal-a-000002.hj', 5), { kind: 'journal-removed', name: 'journal-a-000002.hj' }, journal('journal-a-000003.hj', 0)]);
    const { rows } = await store.pool.query('select name, "offset", data from hoop.recording_journals where replica = $1 order by name, "offset"', [replica.id]);
    expect(rows.map((r) => `${r.name}@${r.offset}=${r.data}`)).toEqual([
      'journal-a-000001.hj@0=journal-a-000001.hj@0',
      'journal-a-000001.hj@10=journal-a-000001.hj@10',
      'journal-a-000003.hj@0=journal-a-000003.hj@0',
    ]);
  });

  it('ends a batch where an op would act otherwise than after the ops before it', () => {
    const cut = (ops: Op[]): number => {
      const seen = new Set<string>();
      return ops.findIndex((op) => endsBefore(op, seen));
    };
    const journal: Op = { kind: 'journal', name: 'j', offset: 0, data: Buffer.alloc(0) };
    // A file's row once: written twice, written and removed, removed and written.
    expect(cut([file('s', 'a'), file('s', 'b'), file('t', 'a'), file('s', 'a')])).toBe(3);
    expect(cut([file('s', 'a'), file('s', 'a', true)])).toBe(1);
    expect(cut([file('s', 'a', true), file('s', 'a')])).toBe(1);
    // A journal's copies before its removal, not after.
    expect(cut([journal, { kind: 'journal-removed', name: 'j' }, { kind: 'done', session: 's' }])).toBe(-1);
    expect(cut([{ kind: 'journal-removed', name: 'j' }, journal])).toBe(1);
    // A summary after a key, when the batch had no summary of that session before the key.
    expect(
      cut([
        { kind: 'session', summary: running('s1') },
        { kind: 'upstream', session: 's1', key: key(1) },
        { kind: 'session', summary: ended('s1') },
      ]),
    ).toBe(-1);
    expect(
      cut([
        { kind: 'upstream', session: 's1', key: key(1) },
        { kind: 'session', summary: running('s1') },
      ]),
    ).toBe(1);
  });
});

describe('session places given back', () => {
  it('gives back the places of sessions that end near one another in one statement, and what waits when the gateway stops', async () => {
    const slots = new PostgresSlots(replica, loggedLines().log);
    const bound = [{ key: 'identity https://idp erin', max: 3 }];
    const places = async () => Number((await store.pool.query("select count(*) as n from hoop.session_slots where key = 'identity https://idp erin'")).rows[0].n);
    for (const slot of ['p1', 'p2', 'p3']) expect(await slots.take(slot, bound)).toBeUndefined();
    expect(await slots.take('p4', bound)).toBe(0);
    const query = vi.spyOn(store.pool, 'query');
    try {
      for (const slot of ['p1', 'p2', 'p3']) slots.release(slot);
      await eventually(async () => expect(await places()).toBe(0));
      expect(query.mock.calls.filter(([text]) => String(text).startsWith('delete from hoop.session_slots'))).toHaveLength(1);
    } finally {
      query.mockRestore();
    }
    expect(await slots.take('p5', bound)).toBeUndefined();
    // Stopping: what was given back goes at once; with the store not answering, when it answers again.
    slots.release('p5');
    const away = vi.spyOn(replica, 'reachable', 'get').mockReturnValue(false);
    await slots.flush();
    expect(await places()).toBe(1);
    away.mockRestore();
    await slots.flush();
    expect(await places()).toBe(0);
  });
});
