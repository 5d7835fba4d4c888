/**
 * A recording's files go to the PostgreSQL store as the recording thread wrote them: the bytes
 * that came with each file's news are the ones stored (the archive is not read back), and past
 * what the gateway holds in memory for the store a file is read from the data directory as it is
 * sent. Against a real cluster.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../src/gateway/migrations.js';
import { PostgresSessionArchive } from '../../src/gateway/records/recordings-postgres.js';
import { archivePath } from '../../src/gateway/records/recordings.js';
import { StoreReplica } from '../../src/gateway/replicas/replica.js';
import { PostgresGatewayStore } from '../../src/gateway/store/store-postgres.js';
import { silentLogger } from '../../src/log.js';
import { cutRecording } from '../../src/recording/record-chunks.js';
import { recordingFiles } from '../../src/recording/recording-files.js';
import { generateSigningKey } from '../../src/recording/sshsig.js';
import { eventRecord } from '../../src/recording/writer.js';
import { poll } from '../harness/wait.js';
import { startPgCluster, type PgCluster } from '../harness/postgres.js';
import { storedSummary } from '../harness/stored-records.js';

let cluster: PgCluster;
let dir: string;
let store: PostgresGatewayStore;
let archive: PostgresSessionArchive;
const { privateKey: key } = generateSigningKey();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoop-store-held-'));
  cluster = await startPgCluster();
  await cluster.psql('create database hoop_store');
  store = await PostgresGatewayStore.open(cluster.url(cluster.superuser, { database: 'hoop_store' }), MIGRATIONS);
  const replica = await StoreReplica.create(store.pool, { dataDir: dir, url: 'https://a.test', log: silentLogger });
  archive = new PostgresSessionArchive(replica, dir, silentLogger);
});

afterAll(async () => {
  await archive?.close();
  await store?.close();
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The files the store holds of session `id`, by name, once it holds `count`. */
async function stored(id: string, count: number): Promise<Map<string, Buffer>> {
  const rows = await poll(
    async () => {
      const r = (await store.pool.query<{ name: string; data: Buffer }>('select name, data from hoop.recording_files where session = $1', [id])).rows;
      return r.length >= count ? r : undefined;
    },
    { timeout: 20_000 },
  );
  return new Map(rows!.map((r) => [r.name, r.data]));
}

/** Cuts a short recording of session `id` into its archive in the data directory, telling `told` of each file with its bytes. */
async function cut(id: string, told: (name: string, data: Buffer) => void): Promise<void> {
  const records = [eventRecord({ t: 'statement', at: 1000, sql: 'select 1' }), eventRecord({ t: 'statement', at: 1001, sql: 'select 2' })];
  await cutRecording({ path: archivePath(dir, id), id, protocol: 'postgres', key, sealed: true, durable: false, onFile: told }, records);
}

describe("a recording's files on their way to the store", () => {
  it('are the bytes that came with them: the archive is not read back (here it is gone before the store is written)', async () => {
    const id = randomUUID();
    const cutBytes = new Map<string, Buffer>();
    archive.started({ ...storedSummary(id), endedAt: undefined, reason: 'running', recording: 'running' });
    await cut(id, (name, data) => {
      cutBytes.set(name, Buffer.from(data));
      archive.fileWritten(id, name, false, data);
    });
    // Synchronously, before the batch gathers: nothing is left on disk to read.
    unlinkSync(archivePath(dir, id));
    void archive.index(storedSummary(id));
    const held = await stored(id, cutBytes.size);
    expect([...held.keys()].sort()).toEqual([...cutBytes.keys()].sort());
    for (const [name, data] of cutBytes) expect(held.get(name)?.equals(data), name).toBe(true);
  });

  it('past what is held in memory for the store, are read from the data directory as they are sent', async () => {
    const id = randomUUID();
    const names: string[] = [];
    archive.started({ ...storedSummary(id), endedAt: undefined, reason: 'running', recording: 'running' });
    await cut(id, (name) => {
      names.push(name);
      // Told with more bytes than are held (16 MiB): these never reach the store, the file's do.
      archive.fileWritten(id, name, false, Buffer.alloc(17 * 1024 * 1024, 1));
    });
    void archive.index(storedSummary(id));
    const onDisk = recordingFiles(archivePath(dir, id));
    const expected = new Map(await Promise.all(names.map(async (n) => [n, (await onDisk.read(n))!] as const)));
    const held = await stored(id, names.length);
    for (const [name, data] of expected) expect(held.get(name)?.equals(data), name).toBe(true);
  });
});
