/**
 * The gateway's state in PostgreSQL (`store: { kind: postgres }`), against a real cluster:
 * migrations that replicas starting at once apply exactly once, a schema newer than the gateway
 * refused, device keys registered on one gateway and seen by another, registrations racing on two
 * replicas, `hoop gateway migrate`, and a store that cannot be reached said plainly.
 */
import { generateKeyPairSync } from 'node:crypto';
import { request } from 'node:https';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerDevice } from '../../src/auth/gateway-client.js';
import { ErrorCode } from '../../src/errors.js';
import { loadGatewayConfig } from '../../src/gateway/config.js';
import { startGateway, type Gateway } from '../../src/gateway/server.js';
import { parseDevicePublicKey } from '../../src/gateway/store.js';
import { MIGRATIONS, PostgresGatewayStore, migrate } from '../../src/gateway/store-postgres.js';
import { createLogger } from '../../src/log.js';
import { startPgCluster, type PgCluster } from '../harness/postgres.js';
import { runCli } from '../harness/run-cli.js';
import { psql } from '../harness/clients.js';
import { startStack, type HoopStack } from '../harness/stack.js';

let store: PgCluster;
let url: string;
let stack: HoopStack;
let replica: Gateway;
let dir: string;
/** What the promise `fn` returns rejects with (undefined when it resolves). */
const rejected = (fn: () => Promise<unknown>): Promise<unknown> => fn().then(() => undefined, (e: unknown) => e);
const alice = { issuer: 'https://idp.example.com', subject: 'alice' };

function device(name = 'laptop'): { publicKey: string; fingerprint: string; name: string } {
  const pem = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return { ...parseDevicePublicKey(pem), name };
}

/** `GET path` on a gateway with `token`; resolves the JSON body. */
function getJson(gatewayUrl: string, path: string, token: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, gatewayUrl), { ca: stack.pki.ca, headers: { Authorization: `Bearer ${token}` } }, (res) => {
      let text = '';
      res.on('data', (b: Buffer) => (text += b.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoop-store-pg-'));
  store = await startPgCluster();
  await store.psql('create database hoop_store');
  url = store.url(store.superuser, { database: 'hoop_store' });
  process.env.HOOP_STORE_URL = url;
  // Two gateways on one store: the stack's, and a replica from the same file with its own dataDir.
  stack = await startStack({ extraConfig: 'store: { kind: postgres, url: "${env:HOOP_STORE_URL}" }' });
  const env = { ...process.env, APP_PASSWORD: stack.pg.users.scram.password, MD5_PASSWORD: stack.pg.users.md5.password, PLAIN_PASSWORD: stack.pg.users.cleartext.password, WRONG_PASSWORD: 'x' };
  const config = await loadGatewayConfig(stack.configFile, env);
  replica = await startGateway({ config: { ...config, dataDir: join(dir, 'replica') }, log: createLogger({ level: 'error', sink: { write: () => undefined } }), env });
}, 120_000);

afterAll(async () => {
  await replica?.close();
  await stack?.close();
  await store?.stop();
  delete process.env.HOOP_STORE_URL;
  await rm(dir, { recursive: true, force: true });
});

describe('the PostgreSQL store', () => {
  it('applies each migration once when replicas start at once, and refuses a schema newer than it knows', async () => {
    await store.psql('create database racing');
    const pools = Array.from({ length: 4 }, () => new pg.Pool({ connectionString: store.url(store.superuser, { database: 'racing' }) }));
    try {
      const results = await Promise.all(pools.map((p) => migrate(p)));
      expect(results.flatMap((r) => r.applied).sort()).toEqual(MIGRATIONS.map((m) => m.version));
      expect(results.every((r) => r.version === MIGRATIONS.at(-1)!.version)).toBe(true);
      expect(await store.psql('select version, name from hoop.migrations order by version', { database: 'racing' })).toBe(MIGRATIONS.map((m) => `${m.version}|${m.name}`).join('\n') + '\n');
      await store.psql("insert into hoop.migrations (version, name) values (999, 'from the future')", { database: 'racing' });
      const err = await rejected(() => migrate(pools[0]!));
      expect(err).toMatchObject({ code: ErrorCode.STORE_UNAVAILABLE });
      expect((err as Error).message).toContain('schema is at version 999, newer than this gateway knows');
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
  });

  it('keeps one device per key for an identity however many replicas register it at once', async () => {
    const [a, b] = await Promise.all([PostgresGatewayStore.open(url), PostgresGatewayStore.open(url)]);
    try {
      const key = device();
      const same = await Promise.all([a, b, a, b].map((s) => s.registerDevice(alice, key)));
      expect(same.filter((r) => r.created)).toHaveLength(1);
      expect(new Set(same.map((r) => r.device.deviceId)).size).toBe(1);
      const many = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).registerDevice(alice, device(`d${i}`))));
      expect(many.every((r) => r.created)).toBe(true);
      expect(await b.listDevices(alice)).toHaveLength(41);
      expect(await a.getDevice(same[0]!.device.deviceId)).toEqual(same[0]!.device);
      expect(await a.getDevice('not-a-uuid')).toBeUndefined();
      // An ephemeral key ends its use at its time.
      const gone = await a.registerDevice(alice, { ...device('ci'), expiresAt: new Date(Date.now() + 500).toISOString() });
      expect((await b.listDevices(alice)).map((d) => d.deviceId)).toContain(gone.device.deviceId);
      await new Promise((r) => setTimeout(r, 700));
      expect((await b.listDevices(alice)).map((d) => d.deviceId)).not.toContain(gone.device.deviceId);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('serves a device registered through one gateway from the other', async () => {
    const token = await stack.token('alice');
    const keys = generateKeyPairSync('ed25519');
    const registered = await registerDevice({ gateway: stack.gateway.url, ca: stack.pki.ca }, token, {
      publicKey: keys.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      privateKey: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      name: 'laptop',
    });
    const listed = await getJson(replica.url, '/v1/devices', token);
    expect(listed.status).toBe(200);
    expect((listed.body.devices as Array<{ deviceId: string }>).map((d) => d.deviceId)).toContain(registered.deviceId);
  });

  it('lists, shows and verifies through one replica a session recorded by the other, with both replicas\' keys at /v1/keys', async () => {
    const token = await stack.token('alice');
    const c = await stack.connect('app', token);
    const r = await psql(c.info, ['-c', 'select 41 + 1 as answer']);
    expect(r.stdout).toContain('42');
    await c.stop();
    const onReplica = (argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
      stack.run([...argv, '--gateway', replica.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: token });
    let listed: Array<{ id: string; endedAt?: string; recording: string; statements: number }> = [];
    for (let i = 0; i < 100 && !(listed[0]?.endedAt && (await store.psql(`select count(*) from hoop.recording_files where session = '${listed[0].id}' and name = 'SHA256SUMS'`, { database: 'hoop_store' })).trim() === '1'); i++) {
      await new Promise((res) => setTimeout(res, 100));
      listed = (JSON.parse((await onReplica(['sessions', 'ls', '--json'])).stdout) as { sessions: typeof listed }).sessions;
    }
    expect(listed[0]).toMatchObject({ recording: 'complete', statements: 1 });
    const id = listed[0]!.id;
    const keys = (await getJson(replica.url, '/v1/keys', token)).body.keys as Array<{ status: string; replica: string }>;
    expect(keys.filter((k) => k.status === 'current')).toHaveLength(2);
    expect(new Set(keys.map((k) => k.replica)).size).toBe(2);
    const verify = await onReplica(['sessions', 'verify', id]);
    expect(verify.stderr).toBe('');
    expect(verify.stdout).toMatch(/verified: 1 chunk\(s\), \d+ events, complete/);
    const show = await onReplica(['sessions', 'show', id]);
    expect(show.stdout).toContain('select 41 + 1 as answer');
    // The data directory was only the spool: the recording lives in the store.
    expect(await readdir(join(stack.dir, 'hoop-data', 'recordings'))).not.toContain(id);
  });

  it('says which store cannot be reached, without its password', async () => {
    const err = await rejected(() => PostgresGatewayStore.open('postgres://hoop:s3cret@127.0.0.1:1/hoop'));
    expect(err).toMatchObject({ code: ErrorCode.STORE_UNAVAILABLE });
    expect((err as Error).message).toContain('cannot reach the store at 127.0.0.1:1/hoop');
    expect((err as Error).message).not.toContain('s3cret');
  });

  it('hoop gateway migrate brings the store up to date, and says when there is nothing to do; hoop gateway status says how the store is', async () => {
    await store.psql('create database fresh');
    const config = join(dir, 'gateway.yaml');
    await writeFile(config, 'listen: 127.0.0.1:0\nissuers: [{ issuer: "https://idp.example.com", audience: hoop }]\nstore: { kind: postgres, url: "${env:STORE}" }\n');
    const env = { STORE: store.url(store.superuser, { database: 'fresh' }) };
    const first = await runCli(['gateway', 'migrate', '--config', config], env, dir);
    expect(first.stderr).toBe('');
    expect(first.stdout).toBe(`store 127.0.0.1:${store.port}/fresh: applied 1 (device keys), 2 (replicas, sessions, recordings, reviews), 3 (audit delivery, client records, recordings in a bucket); schema at version 3\n`);
    const again = await runCli(['gateway', 'migrate', '--config', config], env, dir);
    expect(again.stdout).toBe(`store 127.0.0.1:${store.port}/fresh: nothing to apply; schema at version 3\n`);
    // `hoop gateway status`: a store no replica used yet, and one that cannot be reached (exit 69, no password).
    const status = await runCli(['gateway', 'status', '--config', config], env, dir);
    expect(status.stdout).toBe(`store      127.0.0.1:${store.port}/fresh: reachable, schema at version 3\nreplicas   0 live\nsessions   0 running\nreviews    0 pending\n`);
    const down = await runCli(['gateway', 'status', '--config', config], { STORE: 'postgres://hoop:s3cret@127.0.0.1:1/hoop' }, dir);
    expect(down.code).toBe(69);
    expect(down.stderr).toContain('cannot reach the store at 127.0.0.1:1/hoop');
    expect(down.stderr).not.toContain('s3cret');
    await writeFile(config, 'listen: 127.0.0.1:0\nissuers: [{ issuer: "https://idp.example.com", audience: hoop }]\n');
    const files = await runCli(['gateway', 'migrate', '--config', config], {}, dir);
    expect(files.code).toBe(64);
    expect(files.stderr).toContain('keeps the gateway\'s state in files (dataDir), which need no migration');
    const fileStatus = await runCli(['gateway', 'status', '--config', config], {}, dir);
    expect(fileStatus.stdout).toBe(`store      files in ${join(dir, 'hoop-data')}: one gateway process (replicas need store: { kind: postgres })\n`);
  });
});
