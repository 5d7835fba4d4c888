/**
 * A later checkpoint of a CLI's record, verified by a replica on the PostgreSQL store (npm run
 * bench:tests): from the digests the store keeps and the cache it filled, so the 85 MB it holds
 * are not read and hashed again and it costs a fraction of the first verification.
 * test/integration/gateway-store-postgres.test.ts checks what is verified and kept; this, what it
 * costs. (test/perf/client-record-verify.test.ts: the same on one gateway's own store.)
 */
import { createHash, createPrivateKey, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createDeviceKey } from '../../src/auth/device-key.js';
import type { GatewayApiError } from '../../src/api-client/api-error.js';
import { putClientRecordFile } from '../../src/api-client/records.js';
import { registerDevice } from '../../src/api-client/identity.js';
import { loadGatewayConfig } from '../../src/gateway/config/config.js';
import { type Gateway, startGateway } from '../../src/gateway/server.js';
import { createLogger } from '../../src/log.js';
import type { RecordKind } from '../../src/recording/spool.js';
import { sshSign } from '../../src/recording/sshsig.js';
import { NO_PREVIOUS } from '../../src/recording/writer.js';
import { type PgCluster, startPgCluster } from '../harness/postgres.js';
import { type HoopStack, startStack } from '../harness/stack.js';

let store: PgCluster;
let stack: HoopStack;
let replica: Gateway;
let dir: string;
let token: string;
let key: { publicKey: string; privateKey: string };

const endpoint = (gateway: string) => ({ gateway, ca: stack.pki.ca, timeoutMs: 120_000 });
const put = (gateway: string, who: string, kind: RecordKind, id: string, file: string, data: Buffer) =>
  putClientRecordFile(endpoint(gateway), who, kind, id, file, data).catch((e: unknown) => e as GatewayApiError);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoop-verify-store-'));
  store = await startPgCluster();
  await store.psql('create database hoop_store');
  process.env.HOOP_STORE_URL = store.url(store.superuser, { database: 'hoop_store' });
  stack = await startStack({ extraConfig: 'store: { kind: postgres, url: "${env:HOOP_STORE_URL}" }' });
  const env = { ...process.env, APP_PASSWORD: stack.pg.users.scram.password, MD5_PASSWORD: stack.pg.users.md5.password, PLAIN_PASSWORD: stack.pg.users.cleartext.password, WRONG_PASSWORD: 'x' };
  const config = await loadGatewayConfig(stack.configFile, env);
  replica = await startGateway({ config: { ...config, dataDir: join(dir, 'replica') }, log: createLogger({ level: 'error', sink: { write: () => undefined } }), env });
  token = await stack.token('alice');
  key = createDeviceKey();
  await registerDevice(endpoint(replica.url), token, { ...key, name: 'alice laptop' });
});

afterAll(async () => {
  await replica?.close();
  await stack?.close();
  await store?.stop();
  delete process.env.HOOP_STORE_URL;
  await rm(dir, { recursive: true, force: true });
});

it('verifies a later checkpoint in a fraction of the time of the first', async () => {
  // A session of alice's, ended, through the first gateway.
  const id = `raw-${randomBytes(8).toString('hex')}`;
  const raw = await stack.tunnel('app', token, { sessionId: id });
  await raw.simple('select 1');
  raw.write(Buffer.from([0x58, 0, 0, 0, 4]));
  await raw.closed();
  const sign = (manifest: Buffer): Buffer => Buffer.from(sshSign(createPrivateKey(key.privateKey), 'hoop-recording', manifest));
  const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  // 36 chunks of 3 MiB of text each (incompressible values: 2.3 MB gzipped), quick to parse: what a verification costs is the bytes it reads and hashes.
  const chunks: Buffer[] = [];
  for (let seq = 1, prev = NO_PREVIOUS; seq <= 36; seq++, prev = sha256(chunks.at(-1)!)) {
    const rows = Array.from({ length: 48 }, () => `${JSON.stringify({ t: 'row', values: [randomBytes(48 * 1024).toString('base64')] })}\n`);
    chunks.push(gzipSync(`${JSON.stringify({ t: 'chunk', recording: id, seq, prev })}\n${rows.join('')}`, { level: 1 }));
  }
  const sums = (files: Buffer[]): Buffer => Buffer.from(files.map((c, i) => `${sha256(c)}  events-${String(i + 1).padStart(6, '0')}.jsonl.gz\n`).join(''));
  for (const [i, c] of chunks.entries()) await put(replica.url, token, 'sessions', id, `events-${String(i + 1).padStart(6, '0')}.jsonl.gz`, c);
  const checkpoint = sums(chunks);
  await put(replica.url, token, 'sessions', id, 'checkpoint-000036.SHA256SUMS', checkpoint);
  let started = performance.now();
  expect(await put(replica.url, token, 'sessions', id, 'checkpoint-000036.SHA256SUMS.sig', sign(checkpoint))).toMatchObject({ record: { state: 'truncated', chunks: 36 } });
  const tookFirst = performance.now() - started;

  chunks.push(gzipSync(`${JSON.stringify({ t: 'chunk', recording: id, seq: 37, prev: sha256(chunks.at(-1)!) })}\n{"t":"end","at":2}\n`));
  await put(replica.url, token, 'sessions', id, 'events-000037.jsonl.gz', chunks.at(-1)!);
  const next = sums(chunks);
  await put(replica.url, token, 'sessions', id, 'checkpoint-000037.SHA256SUMS', next);
  started = performance.now();
  expect(await put(replica.url, token, 'sessions', id, 'checkpoint-000037.SHA256SUMS.sig', sign(next))).toMatchObject({ record: { state: 'truncated', chunks: 37 } });
  const tookSecond = performance.now() - started;
  process.stdout.write(`client record on the PostgreSQL store: first checkpoint (85 MB) verified in ${tookFirst.toFixed(0)} ms, the next (one chunk more) in ${tookSecond.toFixed(0)} ms\n`);
  // Reading and hashing the 85 MB again would take about as long as the first time.
  expect(tookSecond).toBeLessThan(tookFirst / 4);
}, 480_000);
