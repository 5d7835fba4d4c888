/**
 * The gateway's state in PostgreSQL (`store: { kind: postgres }`), against a real cluster:
 * migrations that replicas starting at once apply exactly once, a schema newer than the gateway
 * refused, device keys registered on one gateway and seen by another, registrations racing on two
 * replicas, `hoop gateway migrate`, a store that cannot be reached said plainly, and the CLIs'
 * records uploaded piecewise and at once through both replicas, a later checkpoint verified for
 * what it adds alone.
 */
import { createHash, createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { request } from 'node:https';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadClientRecord, getClientRecord, putClientRecordFile } from '../../src/api-client/records.js';
import { GatewayApiError } from '../../src/api-client/api-error.js';
import { registerDevice } from '../../src/api-client/identity.js';
import { createDeviceKey } from '../../src/auth/device-key.js';
import type { RecordKind } from '../../src/recording/spool.js';
import { sshSign } from '../../src/recording/sshsig.js';
import { NO_PREVIOUS, RecordingWriter } from '../../src/recording/writer.js';
import { ErrorCode } from '../../src/errors.js';
import { loadGatewayConfig } from '../../src/gateway/config/config.js';
import { startGateway, type Gateway } from '../../src/gateway/server.js';
import { parseDevicePublicKey } from '../../src/gateway/store/store.js';
import { MIGRATIONS } from '../../src/gateway/migrations.js';
import { PostgresGatewayStore, migrate } from '../../src/gateway/store/store-postgres.js';
import { createLogger } from '../../src/log.js';
import { startPgCluster, type PgCluster } from '../harness/postgres.js';
import { runCli } from '../harness/run-cli.js';
import { callApi } from '../harness/api.js';
import { psql } from '../harness/clients.js';
import { startStack, type HoopStack } from '../harness/stack.js';
import { eventually, pace } from '../harness/wait.js';

let store: PgCluster;
let url: string;
let stack: HoopStack;
let replica: Gateway;
let dir: string;
/** What the promise `fn` returns rejects with (undefined when it resolves). */
const rejected = (fn: () => Promise<unknown>): Promise<unknown> =>
  fn().then(
    () => undefined,
    (e: unknown) => e,
  );
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

/** A closed record `id` of `chunks` chunks (one event each), signed with `privateKey`, as a CLI's spool holds it; resolves its directory. */
async function clientRecord(id: string, privateKey: string, side: 'client' | 'run', chunks = 1): Promise<string> {
  const at = await mkdtemp(join(dir, 'record-'));
  const w = await RecordingWriter.create({ dir: at, id, key: createPrivateKey(privateKey), checkpointMs: 3_600_000 });
  w.append({ t: 'start', at: Date.now(), side });
  for (let i = 1; i < chunks; i++) {
    await w.flush();
    w.append({ t: 'query', at: Date.now(), sql: `select ${i}` });
  }
  await w.close();
  return at;
}

/** A session of `token`'s through the first gateway: `select 1`, then Terminate; resolves its id once its client saw it close. */
async function rawSession(token: string): Promise<string> {
  const sessionId = `raw-${randomBytes(8).toString('hex')}`;
  const raw = await stack.tunnel('app', token, { sessionId });
  await raw.simple('select 1');
  raw.write(Buffer.from([0x58, 0, 0, 0, 4]));
  await raw.closed();
  return sessionId;
}

/** A session of alice's through the first gateway, ended and in the store; resolves its id. */
async function aliceSession(token: string): Promise<string> {
  const sessionId = await rawSession(token);
  await eventually(
    async () => {
      const r = await getJson(replica.url, `/v1/sessions/${sessionId}`, token);
      expect(r.status === 200 && r.body.endedAt, `session ${sessionId} ended in the store`).toBeTruthy();
    },
    { timeout: 60_000, interval: 100 },
  );
  return sessionId;
}

/** What the replica logged at level error, a line each. */
const replicaErrors: string[] = [];

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
  replica = await startGateway({ config: { ...config, dataDir: join(dir, 'replica') }, log: createLogger({ level: 'error', sink: { write: (line: string) => void replicaErrors.push(line) } }), env });
});

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
      const results = await Promise.all(pools.map((p) => migrate(p, MIGRATIONS)));
      expect(results.flatMap((r) => r.applied).sort((x, y) => x - y)).toEqual(MIGRATIONS.map((m) => m.version));
      expect(results.every((r) => r.version === MIGRATIONS.at(-1)!.version)).toBe(true);
      expect(await store.psql('select version, name from hoop.migrations order by version', { database: 'racing' })).toBe(`${MIGRATIONS.map((m) => `${m.version}|${m.name}`).join('\n')}\n`);
      await store.psql("insert into hoop.migrations (version, name) values (999, 'from the future')", { database: 'racing' });
      const err = await rejected(() => migrate(pools[0]!, MIGRATIONS));
      expect(err).toMatchObject({ code: ErrorCode.STORE_UNAVAILABLE });
      expect((err as Error).message).toContain('schema is at version 999, newer than this gateway knows');
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
  });

  it('refuses to open a store another role may write: a grant to PUBLIC or to a role, a member of its role, a table another owns (the thirteenth attack: a signing key anyone wrote was published and trusted)', async () => {
    await store.psql('create database shared_store');
    const shared = store.url(store.superuser, { database: 'shared_store' });
    await (await PostgresGatewayStore.open(shared, MIGRATIONS)).close();
    for (const [grant, said, undo] of [
      ['grant insert on hoop.signing_keys to public', 'signing_keys: PUBLIC may insert', 'revoke insert on hoop.signing_keys from public'],
      ['create role store_writer; grant update on hoop.sessions to store_writer', 'sessions: store_writer may update', 'revoke update on hoop.sessions from store_writer'],
      // The second attack: a column's grant, the role that writes every table, the schema another's.
      [
        'grant insert (fingerprint, public_key, replica) on hoop.signing_keys to store_writer',
        'signing_keys.fingerprint: store_writer may insert',
        'revoke insert (fingerprint, public_key, replica) on hoop.signing_keys from store_writer',
      ],
      ['grant pg_write_all_data to store_writer', 'role store_writer may write every table (pg_write_all_data)', 'revoke pg_write_all_data from store_writer'],
      ['grant create on schema hoop to public', 'the schema hoop: PUBLIC may create', 'revoke create on schema hoop from public'],
    ] as const) {
      await store.psql(grant, { database: 'shared_store' });
      const err = await rejected(() => PostgresGatewayStore.open(shared, MIGRATIONS));
      expect(err).toMatchObject({ code: ErrorCode.CONFIG_INVALID });
      expect((err as Error).message).toContain(said);
      await store.psql(undo, { database: 'shared_store' });
    }
    await (await PostgresGatewayStore.open(shared, MIGRATIONS)).close();
  });

  it('keeps one device per key for an identity however many replicas register it at once', async () => {
    const [a, b] = await Promise.all([PostgresGatewayStore.open(url, MIGRATIONS), PostgresGatewayStore.open(url, MIGRATIONS)]);
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
      const expiresAt = Date.now() + 500;
      const gone = await a.registerDevice(alice, { ...device('ci'), expiresAt: new Date(expiresAt).toISOString() });
      expect((await b.listDevices(alice)).map((d) => d.deviceId)).toContain(gone.device.deviceId);
      // Past its time (the expiry under test), and not by more than a moment.
      await pace(Math.max(0, expiresAt - Date.now()) + 200);
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

  it("lists, shows and verifies through one replica a session recorded by the other, with both replicas' keys at /v1/keys", async () => {
    const token = await stack.token('alice');
    const c = await stack.connect('app', token);
    const r = await psql(c.info, ['-c', 'select 41 + 1 as answer']);
    expect(r.stdout).toContain('42');
    await c.stop();
    const onReplica = (argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
      stack.run([...argv, '--gateway', replica.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: token });
    type Listed = Array<{ id: string; endedAt?: string; recording: string; statements: number }>;
    // Until the session has ended and its final manifest is in the store.
    const listed = await eventually(
      async () => {
        const listed = (JSON.parse((await onReplica(['sessions', 'ls', '--json'])).stdout) as { sessions: Listed }).sessions;
        expect(listed[0]?.endedAt).toBeDefined();
        expect((await store.psql(`select count(*) from hoop.recording_files where session = '${listed[0]!.id}' and name = 'SHA256SUMS'`, { database: 'hoop_store' })).trim()).toBe('1');
        return listed;
      },
      { timeout: 60_000, interval: 100 },
    );
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
    expect(await readdir(join(stack.dir, 'hoop-data', 'recordings'))).not.toContain(`${id}.tar`);
  });

  it('lists a session as it ended the moment it ends, while the store has yet to take its line (a CLI uploads its record at once)', async () => {
    const token = await stack.token('alice');
    // The store takes no write to the index meanwhile; reads go on.
    const blocker = new pg.Client({ connectionString: url });
    await blocker.connect();
    try {
      await blocker.query('begin');
      await blocker.query('lock table hoop.sessions in share mode');
      const sessionId = await rawSession(token);
      // Never neither running nor indexed: once it ended it is shown as it ended, from the gateway's memory.
      await eventually(
        async () => {
          const r = await getJson(stack.gateway.url, `/v1/sessions/${sessionId}`, token);
          expect(r.status, JSON.stringify(r.body)).toBe(200);
          expect(r.body.endedAt).toBeTruthy();
        },
        { timeout: 60_000, interval: 20 },
      );
      // Told from memory as the index would tell it: to its owner (and auditors), not to another person.
      expect((await getJson(stack.gateway.url, `/v1/sessions/${sessionId}`, await stack.token('bob'))).status).toBe(404);
      expect((await blocker.query('select count(*)::int as n from hoop.sessions where id = $1 and ended_at is not null', [sessionId])).rows[0].n).toBe(0);
      await blocker.query('commit');
      await eventually(async () => expect((await blocker.query('select count(*)::int as n from hoop.sessions where id = $1 and ended_at is not null', [sessionId])).rows[0].n).toBe(1), {
        timeout: 30_000,
        interval: 50,
      });
      const r = await getJson(stack.gateway.url, `/v1/sessions/${sessionId}`, token);
      expect(r.status).toBe(200);
      expect(r.body.endedAt).toBeTruthy();
    } finally {
      await blocker.query('rollback').catch(() => undefined);
      await blocker.end();
    }
  });

  it('keeps a recording file it holds: another write under its name is refused and logged, never replaces it', async () => {
    const sessionId = `planted-${randomBytes(6).toString('hex')}`;
    await store.psql(`insert into hoop.recording_files (session, name, data) values ('${sessionId}', 'records-000001.gz', 'planted evidence')`, { database: 'hoop_store' });
    const raw = await stack.tunnel('app', await stack.token('alice'), { sessionId, gateway: replica.url });
    await raw.simple('select 1');
    raw.write(Buffer.from([0x58, 0, 0, 0, 4]));
    await raw.closed();
    await eventually(() => expect(replicaErrors.some((l) => l.includes('recording.conflict') && l.includes(sessionId))).toBe(true), { timeout: 60_000, interval: 100 });
    expect(replicaErrors.find((l) => l.includes(sessionId))).toContain('recording.conflict');
    expect((await store.psql(`select convert_from(data, 'UTF8') from hoop.recording_files where session = '${sessionId}' and name = 'records-000001.gz'`, { database: 'hoop_store' })).trim()).toBe(
      'planted evidence',
    );
  });

  it('says which store cannot be reached, without its password', async () => {
    const err = await rejected(() => PostgresGatewayStore.open('postgres://hoop:s3cret@127.0.0.1:1/hoop', MIGRATIONS));
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
    expect(first.stdout).toBe(
      `store 127.0.0.1:${store.port}/fresh: applied 1 (device keys), 2 (replicas, sessions, recordings, reviews), 3 (audit delivery, client records, recordings in a bucket), 4 (the digest of each file of a CLI's record), 5 (agents' runs), 6 (session ids, claimed once), 7 (alerts, counted by every replica together), 8 (alerts that count rows), 9 (direct credentials), 10 (running sessions' upstream cancel keys), 11 (sessions counted by every replica together), 12 (webhook messages per target and minute, counted by every replica together), 13 (each replica's recording journals), 14 (an owner's CLI records by when they were saved); schema at version 14\n`,
    );
    const again = await runCli(['gateway', 'migrate', '--config', config], env, dir);
    expect(again.stdout).toBe(`store 127.0.0.1:${store.port}/fresh: nothing to apply; schema at version 14\n`);
    expect(JSON.parse((await runCli(['gateway', 'migrate', '--config', config, '--json'], env, dir)).stdout)).toEqual({ store: `127.0.0.1:${store.port}/fresh`, applied: [], version: 14 });
    // `hoop gateway status`: a store no replica used yet, and one that cannot be reached (exit 69, no password).
    const status = await runCli(['gateway', 'status', '--config', config], env, dir);
    expect(status.stdout).toBe(`store      127.0.0.1:${store.port}/fresh: reachable, schema at version 14\nreplicas   0 live\nsessions   0 running\nreviews    0 pending\n`);
    const down = await runCli(['gateway', 'status', '--config', config], { STORE: 'postgres://hoop:s3cret@127.0.0.1:1/hoop' }, dir);
    expect(down.code).toBe(69);
    expect(down.stderr).toContain('cannot reach the store at 127.0.0.1:1/hoop');
    expect(down.stderr).not.toContain('s3cret');
    await writeFile(config, 'listen: 127.0.0.1:0\nissuers: [{ issuer: "https://idp.example.com", audience: hoop }]\n');
    const files = await runCli(['gateway', 'migrate', '--config', config], {}, dir);
    expect(files.code).toBe(64);
    expect(files.stderr).toContain("keeps the gateway's state in files (dataDir), which need no migration");
    const fileStatus = await runCli(['gateway', 'status', '--config', config], {}, dir);
    expect(fileStatus.stdout).toBe(`store      files in ${join(dir, 'hoop-data')}: one gateway process (replicas need store: { kind: postgres })\n`);
  });
  describe("the CLIs' records, through either replica", () => {
    let db: pg.Pool;
    let token: string;
    let key: { publicKey: string; privateKey: string };
    // A first verification reads 85 MB: on a loaded machine it may take longer than a CLI's default 10 s wait.
    const endpoint = (gateway: string) => ({ gateway, ca: stack.pki.ca, timeoutMs: 60_000 });
    /** `PUT` one file of a record through `gateway`; resolves the answer, or the GatewayApiError. */
    const put = (gateway: string, who: string, kind: RecordKind, id: string, file: string, data: Buffer) =>
      putClientRecordFile(endpoint(gateway), who, kind, id, file, data).catch((e: unknown) => e as GatewayApiError);
    /** What the store holds of a record: its state, and each file's bytes. */
    const held = async (kind: RecordKind, id: string): Promise<{ state: Record<string, unknown> | undefined; files: Map<string, Buffer> }> => {
      const state = (await db.query<{ state: Record<string, unknown> }>('select state from hoop.client_records where kind = $1 and id = $2', [kind, id])).rows[0]?.state;
      const rows = (await db.query<{ name: string; data: Buffer }>('select name, data from hoop.client_record_files where kind = $1 and id = $2 order by name', [kind, id])).rows;
      return { state, files: new Map(rows.map((r) => [r.name, r.data])) };
    };
    const filesOf = async (at: string): Promise<Map<string, Buffer>> => new Map(await Promise.all((await readdir(at)).sort().map(async (f) => [f, await readFile(join(at, f))] as [string, Buffer])));

    beforeAll(async () => {
      db = new pg.Pool({ connectionString: url });
      token = await stack.token('alice');
      key = createDeviceKey();
      await registerDevice(endpoint(replica.url), token, { ...key, name: 'alice laptop' });
    });
    afterAll(async () => {
      await db?.end();
    });

    it("takes a record's chunks through one replica and its signed manifest through the other; either lists it and serves its bytes; a retry is stored once, other bytes conflict", async () => {
      const id = await aliceSession(token);
      const spool = await clientRecord(id, key.privateKey, 'client', 3);
      const files = await filesOf(spool);
      expect([...files.keys()]).toEqual(['SHA256SUMS', 'SHA256SUMS.sig', 'events-000001.jsonl.gz', 'events-000002.jsonl.gz', 'events-000003.jsonl.gz']);
      const chunks = [...files.keys()].filter((f) => f.startsWith('events-'));
      for (const f of chunks) expect(await put(stack.gateway.url, token, 'sessions', id, f, files.get(f)!)).toMatchObject({ stored: true, record: { state: 'uploading' } });
      expect((await held('sessions', id)).state).toMatchObject({ state: 'uploading', subject: 'alice' });
      // Replica B never saw the record: it verifies it from the store.
      expect(await put(replica.url, token, 'sessions', id, 'SHA256SUMS', files.get('SHA256SUMS')!)).toMatchObject({ stored: true });
      const signed = await put(replica.url, token, 'sessions', id, 'SHA256SUMS.sig', files.get('SHA256SUMS.sig')!);
      expect(signed).toMatchObject({ stored: true, record: { state: 'complete', chunks: 3, events: 3, fingerprint: expect.stringMatching(/^SHA256:/) } });
      const stored = await held('sessions', id);
      expect(stored.state).toMatchObject({ kind: 'sessions', id, issuer: stack.oidc.issuer, subject: 'alice', state: 'complete', chunks: 3, verified: 'SHA256SUMS.sig' });
      expect(stored.files).toEqual(files);

      // Both replicas list its state; B serves every file, byte for byte as uploaded.
      for (const gateway of [stack.gateway.url, replica.url]) {
        const listed = (await getJson(gateway, '/v1/sessions', token)).body.sessions as Array<{ id: string; clientRecord?: string }>;
        expect(listed.find((s) => s.id === id)?.clientRecord).toBe('complete');
      }
      const fetched = await mkdtemp(join(dir, 'fetched-'));
      const info = await downloadClientRecord(endpoint(replica.url), token, 'sessions', id, fetched);
      expect(info).toMatchObject({ record: { state: 'complete' }, files: [...files.keys()] });
      expect(await filesOf(fetched)).toEqual(files);

      // The same bytes through the other replica: already stored; other bytes: a conflict, on either.
      expect(await put(replica.url, token, 'sessions', id, chunks[0]!, files.get(chunks[0]!)!)).toMatchObject({ stored: false, record: { state: 'complete' } });
      expect(await put(stack.gateway.url, token, 'sessions', id, 'SHA256SUMS.sig', files.get('SHA256SUMS.sig')!)).toMatchObject({ stored: false, record: { state: 'complete' } });
      for (const gateway of [stack.gateway.url, replica.url]) {
        const other = await put(gateway, token, 'sessions', id, chunks[1]!, Buffer.from('other bytes'));
        expect(other).toBeInstanceOf(GatewayApiError);
        expect((other as GatewayApiError).status).toBe(409);
      }
      // A complete record takes no new file.
      expect(((await put(stack.gateway.url, token, 'sessions', id, 'events-000004.jsonl.gz', Buffer.from('late'))) as GatewayApiError).status).toBe(409);
      expect(await held('sessions', id)).toEqual(stored);
    });

    it("takes a run's record only from the person the run was begun for, on either replica, and drops a run record that does not verify from the store", async () => {
      // The run is begun on the other replica: its owner is known to both.
      const begun = await callApi(replica.url, stack.pki.ca, 'POST', '/v1/runs', token, { connections: ['app'], agent: 'ci', isolation: 'none' });
      expect(begun.status).toBe(201);
      const runId = begun.body.id as string;
      // A run the gateway never began takes no record, whoever asks.
      const unknown = await put(stack.gateway.url, token, 'runs', `run-${randomBytes(8).toString('hex')}`, 'events-000001.jsonl.gz', Buffer.from('x'));
      expect((unknown as GatewayApiError).status).toBe(404);
      const files = await filesOf(await clientRecord(runId, key.privateKey, 'run'));
      expect(await put(stack.gateway.url, token, 'runs', runId, 'events-000001.jsonl.gz', files.get('events-000001.jsonl.gz')!)).toMatchObject({ stored: true });
      // Bob, through the other replica: the run is alice's.
      const bob = await stack.token('bob');
      const refused = await put(replica.url, bob, 'runs', runId, 'SHA256SUMS', files.get('SHA256SUMS')!);
      expect((refused as GatewayApiError).status).toBe(403);
      expect((await getJson(replica.url, `/v1/runs/${runId}`, bob)).status).toBe(404);
      expect([...(await held('runs', runId)).files.keys()]).toEqual(['events-000001.jsonl.gz']);
      // A manifest signed by a key alice never registered: refused, and the record (never verified) is dropped but for its state, what it cost alice's day.
      const stranger = createDeviceKey();
      const forged = await filesOf(await clientRecord(runId, stranger.privateKey, 'run'));
      expect(await put(replica.url, token, 'runs', runId, 'SHA256SUMS', forged.get('SHA256SUMS')!)).toMatchObject({ stored: true });
      const unverified = await put(stack.gateway.url, token, 'runs', runId, 'SHA256SUMS.sig', forged.get('SHA256SUMS.sig')!);
      expect((unverified as GatewayApiError).status).toBe(422);
      expect(await held('runs', runId)).toEqual({ state: expect.objectContaining({ state: 'refused', pending: 0 }), files: new Map() });
      // Now the right one, piecewise through both: alice's, complete, and read through either.
      for (const [i, f] of ['events-000001.jsonl.gz', 'SHA256SUMS', 'SHA256SUMS.sig'].entries()) await put(i % 2 ? replica.url : stack.gateway.url, token, 'runs', runId, f, files.get(f)!);
      expect(await getClientRecord(endpoint(replica.url), token, 'runs', runId)).toMatchObject({ record: { state: 'complete', subject: 'alice' }, files: [...files.keys()] });
      expect((await held('runs', runId)).files).toEqual(files);
    });

    it('verifies a later checkpoint from the digests the store keeps and the cache it filled: the files it holds are not hashed again', async () => {
      const id = await aliceSession(token);
      const sign = (manifest: Buffer): Buffer => Buffer.from(sshSign(createPrivateKey(key.privateKey), 'hoop-recording', manifest));
      const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
      // 36 chunks of 48 rows (what it saves at scale is measured in test/perf/client-record-verify-store.test.ts; here: that it is right).
      const chunks: Buffer[] = [];
      for (let seq = 1, prev = NO_PREVIOUS; seq <= 36; seq++, prev = sha256(chunks.at(-1)!)) {
        const rows = Array.from({ length: 48 }, () => `${JSON.stringify({ t: 'row', values: [randomBytes(256).toString('base64')] })}\n`);
        chunks.push(gzipSync(`${JSON.stringify({ t: 'chunk', recording: id, seq, prev })}\n${rows.join('')}`, { level: 1 }));
      }
      const sums = (files: Buffer[]): Buffer => Buffer.from(files.map((c, i) => `${sha256(c)}  events-${String(i + 1).padStart(6, '0')}.jsonl.gz\n`).join(''));
      for (const [i, c] of chunks.entries()) await put(replica.url, token, 'sessions', id, `events-${String(i + 1).padStart(6, '0')}.jsonl.gz`, c);
      const checkpoint = sums(chunks);
      await put(replica.url, token, 'sessions', id, 'checkpoint-000036.SHA256SUMS', checkpoint);
      let signature = sign(checkpoint);
      expect(await put(replica.url, token, 'sessions', id, 'checkpoint-000036.SHA256SUMS.sig', signature)).toMatchObject({ record: { state: 'truncated', chunks: 36, events: 36 * 48 } });
      // The store keeps each file's SHA-256, computed as it was stored.
      const digests = await db.query<{ name: string; digest: string }>(
        "select name, encode(digest, 'hex') as digest from hoop.client_record_files where kind = 'sessions' and id = $1 and name like 'events-%' order by name",
        [id],
      );
      expect(digests.rows.map((r) => r.digest)).toEqual(chunks.map(sha256));

      // The session goes on: one small chunk and the next checkpoint. The replica fetches that chunk alone, and hashes none of what it holds again (nor does the database).
      chunks.push(gzipSync(`${JSON.stringify({ t: 'chunk', recording: id, seq: 37, prev: sha256(chunks.at(-1)!) })}\n{"t":"end","at":2}\n`));
      await put(replica.url, token, 'sessions', id, 'events-000037.jsonl.gz', chunks.at(-1)!);
      const next = sums(chunks);
      await put(replica.url, token, 'sessions', id, 'checkpoint-000037.SHA256SUMS', next);
      signature = sign(next);
      // Verified from the digests the store keeps (the events counted, the chain intact); what that saves is measured in test/perf/client-record-verify-store.test.ts.
      expect(await put(replica.url, token, 'sessions', id, 'checkpoint-000037.SHA256SUMS.sig', signature)).toMatchObject({ record: { state: 'truncated', chunks: 37, events: 36 * 48 + 1 } });

      // A checkpoint whose manifest lies about the new chunk's hash: refused, and it goes from the store (and the cache). The right one, under the same name, then verifies from what the store holds.
      chunks.push(gzipSync(`${JSON.stringify({ t: 'chunk', recording: id, seq: 38, prev: sha256(chunks.at(-1)!) })}\n{"t":"query","at":3,"sql":"select 38"}\n`));
      await put(replica.url, token, 'sessions', id, 'events-000038.jsonl.gz', chunks.at(-1)!);
      const lying = Buffer.from(
        sums(chunks)
          .toString()
          .replace(sha256(chunks.at(-1)!), sha256(chunks[0]!)),
      );
      await put(replica.url, token, 'sessions', id, 'checkpoint-000038.SHA256SUMS', lying);
      const refused = await put(replica.url, token, 'sessions', id, 'checkpoint-000038.SHA256SUMS.sig', sign(lying));
      expect((refused as GatewayApiError).status).toBe(422);
      expect((refused as GatewayApiError).message).toContain('events-000038.jsonl.gz does not match its SHA-256');
      const after = await held('sessions', id);
      expect(after.state).toMatchObject({ state: 'truncated', chunks: 37, verified: 'checkpoint-000037.SHA256SUMS.sig' });
      expect([...after.files.keys()].filter((f) => f.startsWith('checkpoint-000038'))).toEqual([]);
      const right = sums(chunks);
      expect(await put(replica.url, token, 'sessions', id, 'checkpoint-000038.SHA256SUMS', right)).toMatchObject({ stored: true });
      expect(await put(replica.url, token, 'sessions', id, 'checkpoint-000038.SHA256SUMS.sig', sign(right))).toMatchObject({ record: { state: 'truncated', chunks: 38, events: 36 * 48 + 2 } });
      expect((await held('sessions', id)).files.get('checkpoint-000038.SHA256SUMS')).toEqual(right);
    });

    it('ends consistent when the files of one record are uploaded through both replicas at once', async () => {
      const id = await aliceSession(token);
      const files = await filesOf(await clientRecord(id, key.privateKey, 'client', 8));
      const both = (names: string[]) => Promise.all(names.flatMap((f) => [stack.gateway.url, replica.url].map((g) => put(g, token, 'sessions', id, f, files.get(f)!))));
      // Every chunk to both replicas at the same time, then the manifest, then its signature.
      const phases = [[...files.keys()].filter((f) => f.startsWith('events-')), ['SHA256SUMS'], ['SHA256SUMS.sig']];
      const answers: Array<{ stored: boolean; record: { state: string } | null }> = [];
      for (const names of phases) {
        const got = await both(names);
        for (const a of got) expect(a).not.toBeInstanceOf(Error);
        answers.push(...(got as typeof answers));
        // Each file stored exactly once: one replica stored it, the other found the same bytes.
        expect(got.filter((a) => (a as { stored: boolean }).stored)).toHaveLength(names.length);
      }
      expect(answers.slice(-2).map((a) => a.record?.state)).toEqual(['complete', 'complete']);
      const stored = await held('sessions', id);
      expect(stored.files).toEqual(files);
      expect(stored.state).toMatchObject({ state: 'complete', chunks: 8, events: 8 });
      for (const gateway of [stack.gateway.url, replica.url]) {
        expect(await getClientRecord(endpoint(gateway), token, 'sessions', id)).toMatchObject({ record: { state: 'complete', chunks: 8 }, files: [...files.keys()] });
      }
    });
  });
});
