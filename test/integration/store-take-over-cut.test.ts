/**
 * A take-over's cut of a stopped replica's sessions from the journal copies it left in the store
 * (`cutStoppedJournals`, src/gateway/records/recordings-postgres.ts), against a real cluster: each
 * session its journals hold becomes a truncated recording signed by the replica that cuts it, the
 * journal's copies read a few megabytes a statement and the files sent many sessions a statement
 * (not a round trip each), a file the store holds already kept as it is, and the journals gone.
 */
import { randomUUID, generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MIGRATIONS } from '../../src/gateway/migrations.js';
import { cutStoppedJournals } from '../../src/gateway/records/recordings-postgres.js';
import { PostgresGatewayStore } from '../../src/gateway/store/store-postgres.js';
import { CLIENT } from '../../src/postgres/pipeline/recording/records.js';
import { query } from '../../src/postgres/wire/messages.js';
import { RECORD_DECODERS } from '../../src/lanes/record-decoders.js';
import { recoverJournals } from '../../src/recording/journal-recovery.js';
import { readEvents } from '../../src/recording/read.js';
import { sshFingerprint, sshPublicKeyLine } from '../../src/recording/sshsig.js';
import { RecordingThread } from '../../src/recording/thread.js';
import { verifyRecording } from '../../src/recording/verify.js';
import { startPgCluster, type PgCluster } from '../harness/postgres.js';

const DEAD = 'r-dead';
const SESSIONS = 40;
const { privateKey: deadKey } = generateKeyPairSync('ed25519');
const { privateKey: cutKey } = generateKeyPairSync('ed25519');
let cluster: PgCluster;
let store: PostgresGatewayStore;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoop-take-over-cut-'));
  cluster = await startPgCluster();
  await cluster.psql('create database hoop_store');
  store = await PostgresGatewayStore.open(cluster.url(cluster.superuser, { database: 'hoop_store' }), MIGRATIONS);
});

afterAll(async () => {
  await store?.close();
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * `SESSIONS` sessions left running on a replica's journal, as a replica that died leaves them: the
 * journal copies its store listener was sent, in the store, with the replica's key and its end.
 */
async function deadReplicaJournals(): Promise<string[]> {
  const copies: Array<{ name: string; offset: number; data: Buffer }> = [];
  const thread = new RecordingThread({ flushMs: 10, onJournal: { committed: (name, offset, data) => copies.push({ name, offset, data }), removed: () => undefined } });
  const journal = join(dir, 'journal');
  const ids = Array.from({ length: SESSIONS }, () => randomUUID());
  const copied = (): number => copies.reduce((n, c) => n + gunzipSync(c.data).length, 0);
  const onDisk = (): number => readdirSync(journal).reduce((n, f) => n + statSync(join(journal, f)).size, 0);
  const streams = [];
  for (const id of ids) {
    const s = await thread.open({ dir: join(dir, 'recordings', `${id}.tar`), id, key: deadKey, journal, protocol: 'postgres', checkpointMs: 50 });
    s.event({ t: 'start', at: Date.now(), session: id });
    streams.push(s);
  }
  // The sessions' starts, then their statements in two rounds, each committed and copied: the journal reaches the store in several copies.
  await expect.poll(() => copies.length > 0 && copied() === onDisk(), { timeout: 30_000, interval: 20 }).toBe(true);
  for (const round of [0, 1]) {
    const before = copies.length;
    for (const [i, s] of streams.entries()) {
      const q = query(`select '${ids[i]}', ${round}`);
      s.record(CLIENT, Date.now(), q, 0, q.length);
    }
    await expect.poll(() => copies.length > before && copied() === onDisk(), { timeout: 30_000, interval: 20 }).toBe(true);
  }
  // Every session bound by a commit, and every committed byte copied (the replica then dies: nothing is closed).
  await expect.poll(() => recoverJournals(journal, [deadKey]).sessions.length, { timeout: 30_000, interval: 20 }).toBe(SESSIONS);
  await expect.poll(() => copied() === onDisk(), { timeout: 30_000, interval: 20 }).toBe(true);
  expect(copies.length).toBeGreaterThanOrEqual(3);
  const pool = store.pool;
  await pool.query("insert into hoop.replicas (id, url, version, started_at, seen_at, stopped_at) values ($1, 'https://dead.test', 'test', now(), now(), now())", [DEAD]);
  await pool.query('insert into hoop.signing_keys (fingerprint, public_key, replica) values ($1, $2, $3)', [sshFingerprint(deadKey), sshPublicKeyLine(deadKey), DEAD]);
  for (const c of copies) await pool.query('insert into hoop.recording_journals (replica, name, "offset", data) values ($1, $2, $3, $4)', [DEAD, c.name, c.offset, c.data]);
  await thread.stop();
  return ids;
}

/** `pool`, counting the statements that write recording files and those that read journal copies. */
function counting(pool: pg.Pool): { pool: pg.Pool; fileWrites: () => number; copyReads: () => number } {
  let writes = 0;
  let reads = 0;
  const connect = pool.connect.bind(pool);
  const wrap = (client: pg.PoolClient): pg.PoolClient =>
    new Proxy(client, {
      get(target, prop, receiver) {
        if (prop !== 'query') return Reflect.get(target, prop, receiver);
        return (text: unknown, ...rest: unknown[]) => {
          if (typeof text === 'string' && /insert into hoop\.recording_files/.test(text)) writes++;
          if (typeof text === 'string' && /select .*data from .*hoop\.recording_journals/.test(text)) reads++;
          return (target.query as (...a: unknown[]) => unknown)(text, ...rest);
        };
      },
    });
  const proxy = new Proxy(pool, {
    get(target, prop, receiver) {
      if (prop === 'connect') return async () => wrap(await connect());
      return Reflect.get(target, prop, receiver);
    },
  });
  return { pool: proxy, fileWrites: () => writes, copyReads: () => reads };
}

it("cuts every session of a stopped replica's journal copies into a truncated recording the cutting replica signs, many sessions a statement; a file held already stays; the copies go", async () => {
  const ids = await deadReplicaJournals();
  // The stopped replica's own cut of one session reached the store before it died: kept, not written over.
  await store.pool.query("insert into hoop.recording_files (session, name, data) values ($1, 'records-000001.gz', 'held before')", [ids[0]]);
  const { pool, fileWrites, copyReads } = counting(store.pool);

  const cut = await cutStoppedJournals(pool, DEAD, cutKey);

  expect(cut).toEqual({ cut: SESSIONS, unbound: [] });
  // The journal's copies read in one statement, not one each; three files a session (a chunk, a checkpoint and its signature) written in one, not 120.
  expect(copyReads()).toBe(1);
  expect(fileWrites()).toBe(1);
  expect((await store.pool.query('select count(*)::int as n from hoop.recording_journals where replica = $1', [DEAD])).rows[0].n).toBe(0);
  const { rows } = await store.pool.query<{ session: string; name: string; data: Buffer }>('select session, name, data from hoop.recording_files order by session, name');
  expect(rows.find((r) => r.session === ids[0] && r.name === 'records-000001.gz')?.data.toString()).toBe('held before');
  for (const id of ids.slice(1)) {
    const files = new Map(rows.filter((r) => r.session === id).map((r) => [r.name, r.data]));
    expect([...files.keys()].sort()).toEqual(['checkpoint-000001.SHA256SUMS', 'checkpoint-000001.SHA256SUMS.sig', 'records-000001.gz']);
    const check = await verifyRecording(files, [cutKey], undefined, id);
    expect(check).toMatchObject({ ok: true, truncated: true, complete: false, signer: sshFingerprint(cutKey), problems: [] });
    expect((await verifyRecording(files, [deadKey], undefined, id)).ok).toBe(false);
    const on = join(dir, 'read', id);
    mkdirSync(on, { recursive: true });
    for (const [name, data] of files) writeFileSync(join(on, name), data);
    const statements: string[] = [];
    for await (const e of readEvents(on, 'checkpoint-000001.SHA256SUMS', RECORD_DECODERS)) if (typeof e.sql === 'string') statements.push(e.sql);
    expect(statements).toEqual([`select '${id}', 0`, `select '${id}', 1`]);
  }
  // Cut once: a second take-over has nothing left to cut.
  expect(await cutStoppedJournals(store.pool, DEAD, cutKey)).toEqual({ cut: 0, unbound: [] });
});
