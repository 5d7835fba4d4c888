/**
 * Recordings in an S3-compatible bucket (`store.recordings`) with their index in the PostgreSQL
 * store, against real parts: a PostgreSQL cluster, s3rver (an S3 REST server) and a gateway
 * relaying real psql sessions. Each recording file becomes an object byte for byte, its row names
 * the object and holds no bytes, `hoop sessions show` and `verify` read from the bucket, a bucket
 * that goes away holds nothing up (the files wait in the spool and arrive when it is back), and
 * deleting a recording deletes its objects.
 */
import { createPublicKey } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3RecordingBucket } from '../../src/gateway/records/recordings-bucket.js';
import { PostgresSessionArchive } from '../../src/gateway/records/recordings-postgres.js';
import { StoreReplica } from '../../src/gateway/replicas/replica.js';
import { createLogger } from '../../src/log.js';
import { recordingFiles } from '../../src/recording/recording-files.js';
import { verifyRecording } from '../../src/recording/verify.js';
import { psql } from '../harness/clients.js';
import { startPgCluster, type PgCluster } from '../harness/postgres.js';
import { S3_ACCESS_KEY, S3_SECRET_KEY, startS3, type TestS3 } from '../harness/s3.js';
import { startStack, type HoopStack } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';

const PREFIX = 'rec/';
let s3: TestS3;
let store: PgCluster;
let url: string;
let stack: HoopStack;
let dir: string;
let token: string;
/** Sessions recorded by the tests, in order. */
const recorded: string[] = [];

const sql = (text: string): Promise<string> => store.psql(text, { database: 'hoop_store' });

/** Polls `check` every 100 ms until it is true (at most `ms`). */
async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  await eventually(async () => expect(await check(), `timed out waiting for ${what}`).toBe(true), { timeout: ms, interval: 100 });
}

/** The rows of session `id` in hoop.recording_files: name, whether data is null, object. */
async function rows(id: string): Promise<Array<{ name: string; dataNull: boolean; object: string }>> {
  const text = await sql(`select name, data is null, coalesce(object, '') from hoop.recording_files where session = '${id}' order by name`);
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [name, dataNull, object] = l.split('|');
      return { name: name!, dataNull: dataNull === 't', object: object! };
    });
}

/** Stored in full: the final manifest's row is there, and every object the rows name (and no other) is in the bucket. */
async function storedInFull(id: string): Promise<boolean> {
  const r = await rows(id);
  if (!r.some((x) => x.name === 'SHA256SUMS')) return false;
  return JSON.stringify(await s3.keys(`${PREFIX}${id}/`)) === JSON.stringify(r.map((x) => x.object).sort());
}

const spool = (): string => join(stack.dir, 'hoop-data', 'recordings');
/** The sessions whose recordings wait in the spool (an archive each). */
const spooledIds = async (): Promise<string[]> => (await readdir(spool())).map((f) => f.replace(/\.tar$/, ''));

/** Runs `statements` through psql on a session of the gateway; resolves psql's output and the session's id. */
async function session(statements: string[]): Promise<{ stdout: string; id: string }> {
  const before = new Set((await sql('select id from hoop.sessions')).split('\n').filter(Boolean));
  const spooled = new Set(await spooledIds());
  const c = await stack.connect('app', token);
  const r = await psql(
    c.info,
    statements.flatMap((s) => ['-c', s]),
  );
  await c.stop();
  expect(r.stderr).toBe('');
  let id: string | undefined;
  await until(
    async () => {
      id = (await spooledIds()).find((d) => !spooled.has(d)) ?? (await sql('select id from hoop.sessions')).split('\n').find((d) => d && !before.has(d));
      return id !== undefined;
    },
    30_000,
    'the new session',
  );
  recorded.push(id!);
  return { stdout: r.stdout, id: id! };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoop-bucket-'));
  s3 = await startS3('hoop-recordings');
  store = await startPgCluster();
  await store.psql('create database hoop_store');
  url = store.url(store.superuser, { database: 'hoop_store' });
  process.env.HOOP_STORE_URL = url;
  process.env.HOOP_S3_KEY = S3_ACCESS_KEY;
  process.env.HOOP_S3_SECRET = S3_SECRET_KEY;
  stack = await startStack({
    extraConfig: `store:
  kind: postgres
  url: "\${env:HOOP_STORE_URL}"
  recordings:
    bucket: hoop-recordings
    endpoint: ${s3.endpoint}
    region: us-east-1
    prefix: ${PREFIX}
    forcePathStyle: true
    accessKeyId: "\${env:HOOP_S3_KEY}"
    secretAccessKey: "\${env:HOOP_S3_SECRET}"
recording: { checkpointSeconds: 1 }
`,
  });
  token = await stack.token('alice');
});

afterAll(async () => {
  await stack?.close();
  await store?.stop();
  await s3?.close();
  delete process.env.HOOP_STORE_URL;
  delete process.env.HOOP_S3_KEY;
  delete process.env.HOOP_S3_SECRET;
  await rm(dir, { recursive: true, force: true });
});

describe('recordings in a bucket', () => {
  it('puts each file of a recording in the bucket, its row naming the object; show and verify read it from there', async () => {
    // Long enough for checkpoints (one a second) to replace each other: the bucket keeps only the rows' objects.
    const { stdout, id } = await session(['select 41 + 1 as answer', 'select pg_sleep(1.2)', "select 'second' as chunk", 'select pg_sleep(1.2)', 'select 3 as last']);
    expect(stdout).toContain('42');
    await until(() => storedInFull(id), 60_000, 'the recording in the store and the bucket');

    const r = await rows(id);
    expect(r.map((x) => x.name)).toEqual(expect.arrayContaining(['SHA256SUMS', 'SHA256SUMS.sig', 'records-000001.gz']));
    expect(r.filter((x) => x.name.startsWith('records-')).length).toBeGreaterThanOrEqual(1);
    for (const x of r) expect(x).toEqual({ name: x.name, dataNull: true, object: `${PREFIX}${id}/${x.name}` });
    // The spool is emptied (just after the rows land): the recording lives in the bucket and its index in PostgreSQL.
    await until(async () => !(await spooledIds()).includes(id), 30_000, 'the spool to be emptied');

    // The objects are the signed recording, byte for byte: it verifies from them alone.
    const copy = join(dir, id);
    await mkdir(copy);
    for (const x of r) await writeFile(join(copy, x.name), await s3.object(x.object));
    const key = createPublicKey(await readFile(join(stack.dir, 'hoop-data', 'keys', 'recording-ed25519.pem')));
    expect(await verifyRecording(copy, [key])).toMatchObject({ ok: true, complete: true, problems: [] });

    // Through the gateway, which reads the bucket.
    const verify = await stack.run(['sessions', 'verify', id, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: token });
    expect(verify.stderr).toBe('');
    expect(verify.stdout).toMatch(/verified: \d+ chunk\(s\), \d+ events, complete/);
    const show = await stack.run(['sessions', 'show', id, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: token });
    expect(show.stdout).toContain('select 41 + 1 as answer');
    expect(show.stdout).toContain("select 'second' as chunk");
  }, 360_000);

  it('records sessions while the bucket is away (the files wait in the spool) and sends them, byte for byte, once it is back', async () => {
    await s3.stop();
    const quick = await session(['select 1 as warm']);
    // The data path never waits for the bucket: the session ran as usual, with the bucket away.
    expect(quick.stdout).toContain('warm');
    const { stdout, id } = await session(['select 7 * 6 as while_away', 'select pg_sleep(1.2)', 'select 8 as more']);
    expect(stdout).toContain('42');

    // Complete in the spool, and nothing of it in the store.
    const archive = join(spool(), `${id}.tar`);
    // The recording closed in the spool (final manifest and its signature written, checkpoints removed), and the store was tried and failed.
    await until(
      async () => {
        const names = await recordingFiles(archive)
          .names()
          .catch(() => [] as string[]);
        return names.includes('SHA256SUMS') && names.includes('SHA256SUMS.sig') && !names.some((n) => n.startsWith('checkpoint-'));
      },
      30_000,
      'the recording in the spool',
    );
    await until(async () => stack.logs().some((l) => l.event === 'recording.store-failed'), 30_000, 'a failed attempt to store');
    const spooled = new Map<string, Buffer>();
    for (const name of await recordingFiles(archive).names()) spooled.set(name, (await recordingFiles(archive).read(name))!);
    expect(await rows(id)).toEqual([]);
    expect(stack.logs().some((l) => l.event === 'recording.store-failed' && String(l.error).includes('the recordings bucket hoop-recordings'))).toBe(true);

    await s3.start();
    await until(async () => (await storedInFull(id)) && (await storedInFull(quick.id)), 90_000, 'the spooled recordings in the store and the bucket');
    await until(async () => !(await spooledIds()).includes(id), 30_000, 'the spool to be emptied');
    const r = await rows(id);
    expect(r.every((x) => x.dataNull && x.object === `${PREFIX}${id}/${x.name}`)).toBe(true);
    for (const x of r) expect((await s3.object(x.object)).equals(spooled.get(x.name)!), x.name).toBe(true);
    expect(r.map((x) => x.name)).toEqual(expect.arrayContaining(['SHA256SUMS', 'SHA256SUMS.sig']));

    const verify = await stack.run(['sessions', 'verify', id, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: token });
    expect(verify.stderr).toBe('');
    expect(verify.stdout).toMatch(/verified: \d+ chunk\(s\), \d+ events, complete/);
  }, 360_000);

  it('serves files from the bucket through the archive, and deleting old recordings deletes their objects and rows', async () => {
    const pool = new pg.Pool({ connectionString: url });
    const log = createLogger({ level: 'error', sink: { write: () => undefined } });
    const replica = await StoreReplica.create(pool, { dataDir: dir, url: 'https://prune.test', log });
    const bucket = await S3RecordingBucket.open(
      {
        bucket: s3.bucket,
        endpoint: s3.endpoint,
        region: 'us-east-1',
        prefix: PREFIX,
        forcePathStyle: true,
        credentials: { accessKeyId: { kind: 'env', name: 'K' }, secretAccessKey: { kind: 'env', name: 'S' } },
      },
      { K: S3_ACCESS_KEY, S: S3_SECRET_KEY },
    );
    const archive = new PostgresSessionArchive(replica, dir, log, bucket);
    try {
      const [first] = recorded;
      expect(await archive.files(first!)).toEqual((await rows(first!)).map((x) => x.name));
      expect((await archive.file(first!, 'SHA256SUMS'))!.equals(await s3.object(`${PREFIX}${first}/SHA256SUMS`))).toBe(true);
      expect(await archive.file(first!, 'checkpoint-999999.SHA256SUMS')).toBeUndefined();

      // An object left under a session's prefix with no row (say, a checkpoint whose deletion failed) goes too.
      await bucket.put(`${PREFIX}${first}/checkpoint-000001.SHA256SUMS`, Buffer.from('left over'));
      expect((await s3.keys(PREFIX)).length).toBeGreaterThan(recorded.length * 2);
      const pruned = await archive.prune(0, Date.now() + 60_000);
      expect(pruned.sort()).toEqual([...recorded].sort());
      expect(await s3.keys(PREFIX)).toEqual([]);
      expect(await sql(`select count(*) from hoop.recording_files`)).toBe('0\n');
      expect(await sql(`select distinct summary->>'recording' from hoop.sessions`)).toBe('deleted\n');
      // Nothing left to delete: idempotent.
      expect(await archive.prune(0, Date.now() + 60_000)).toEqual([]);
    } finally {
      await archive.close();
      await pool.end();
    }
  });
});
