/**
 * Direct connections: a PostgreSQL client at the gateway's own port with a direct credential, as
 * people and agents use it (`hoop connect --direct` and psql, the `pg` and `postgres` drivers with
 * channel binding, pgbench, `hoop run --direct`) and as a hostile client tries it (wrong, unknown,
 * revoked, expired credentials; another connection's database; the credential as an API token;
 * PostgreSQL in the clear; cancels by key; a tunnel that claims to be direct). The policy, masking
 * and the session index behave as through a tunnel (the hostile-client suites of the other paths
 * run on this one too: WAYS_IN in ../harness/stack.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { PassThrough } from 'node:stream';
import { connect as netConnect } from 'node:net';
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callApi, type ApiAnswer } from '../harness/api.js';
import { runProcess } from '../harness/clients.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml, pgBinDir } from '../harness/postgres.js';
import { errorIn, RawFrontend } from '../harness/raw-pg.js';
import { startStack, type HoopStack } from '../harness/stack.js';
import { HeldClock } from '../harness/held-clock.js';
import { eventually } from '../harness/wait.js';
import { cancelRequest, query as queryMessage, startupMessage } from '../../src/postgres/wire/messages.js';
import { resolveTokenProvider } from '../../src/auth/token-provider.js';
import { type DirectJson, serveDirect } from '../../src/client/connect-direct.js';
import { join } from 'node:path';

let stack: HoopStack;
let repo: PolicyGitRepo;
let alice: string;
const clock = new HeldClock();

const api = (method: string, path: string, token?: string, body?: unknown): Promise<ApiAnswer> => callApi(stack.gateway.url, stack.pki.ca, method, path, token, body);

beforeAll(async () => {
  repo = new PolicyGitRepo('hoop-direct-');
  stack = await startStack({
    // The credentials' clock is held: one expires when a test moves the clock past its end.
    gateway: { clock },
    policy: async ({ pg: cluster }) => {
      repo.commit(`version: 1
connections:
${connectionYaml(cluster, { name: 'app', password: '${env:APP_PASSWORD}' })}${connectionYaml(cluster, { name: 'other', password: '${env:APP_PASSWORD}' })}access:
  - { name: people, subjects: [alice, bob], connections: [app, other], mode: read-write }
  - { name: not-directly, subjects: [carol], connections: [app], mode: read-only, via: [connect, exec] }
statements:
  rules:
    - { name: no-drop, match: { kinds: [drop] }, action: deny, message: DROP is not allowed here }
masking:
  columns:
    - { table: public.customers, column: email, strategy: redact }
runs: { maxSeconds: 3600, heartbeatTimeout: 30s }
`);
      return repo.gatewayBlock(['${env:APP_*}']);
    },
  });
  await stack.pg.psql(
    `create table customers (id int primary key, email text, note text);
     insert into customers values (1, 'alice@example.com', 'first'), (2, 'bob@example.com', 'second');
     grant all on customers to public`,
    { database: 'app' },
  );
  alice = await stack.token('alice');
});

afterAll(async () => {
  await stack?.close();
  if (repo) rmSync(repo.base, { recursive: true, force: true });
});

/** libpq's environment for `hoop connect --direct --json`'s details. */
const libpq = (d: DirectJson): NodeJS.ProcessEnv => ({
  PGPASSFILE: d.pgpassFile,
  PGHOST: d.host,
  PGPORT: String(d.port),
  PGUSER: d.user,
  PGDATABASE: d.database,
  PGSSLMODE: d.sslmode,
  PGSSLROOTCERT: d.sslrootcert,
  PGCHANNELBINDING: d.channelBinding,
  PGCONNECT_TIMEOUT: '10',
});

const sessionsOf = async (filter: string): Promise<Array<Record<string, unknown>>> => (await api('GET', `/v1/sessions?${filter}`, alice)).body.sessions as Array<Record<string, unknown>>;

describe('hoop connect --direct', () => {
  it('prints a connection string psql uses as it is (TLS verified, channel binding required); rows come back masked, the policy refuses what it refuses, the session is indexed as direct', async () => {
    const running = await stack.connect('app', alice, ['--direct']);
    const d = running.info as unknown as DirectJson;
    try {
      expect(d).toMatchObject({ connection: 'app', host: '127.0.0.1', port: stack.gateway.port, database: 'app', sslmode: 'verify-full', channelBinding: 'require' });
      expect(d.user).toMatch(/^dc_[A-Za-z0-9_-]{22}$/);
      const psql = (sql: string) => runProcess('psql', ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql], { env: libpq(d) });
      const read = await psql('select id, email, note from customers order by id');
      expect(read.stderr).toBe('');
      expect(read.stdout).toBe('1|[redacted]|first\n2|[redacted]|second\n');
      const dropped = await psql('drop table customers');
      expect(dropped.code).not.toBe(0);
      expect(dropped.stderr).toContain('DROP is not allowed here');
      expect(await stack.pg.psql("select count(*) from pg_tables where tablename = 'customers'", { database: 'app' })).toContain('1');
      const ended = await eventually(
        async () => {
          const s = (await sessionsOf('connection=app&via=direct')).filter((x) => x.endedAt !== undefined);
          expect(s.length).toBeGreaterThanOrEqual(2);
          return s;
        },
        { timeout: 60_000, interval: 100 },
      );
      expect(ended[0]).toMatchObject({ subject: 'alice', via: 'direct', direct: true, connection: 'app' });
      const show = await stack.run(['sessions', 'show', String(ended[0]!.id), '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: alice });
      expect(show.stdout).toContain('alice via direct');
      expect(show.stdout).toMatch(/client record\s+none: a direct client/);
    } finally {
      await running.stop();
    }
    // Stopped, it revoked the credential: the same details no longer sign in, saying why.
    // (Its files went with it: the password and the CA given again.)
    const after = await runProcess('psql', ['-X', '-c', 'select 1'], { env: { ...libpq(d), PGPASSWORD: d.password, PGSSLROOTCERT: stack.pki.caFile } });
    expect(after.code).not.toBe(0);
    expect(after.stderr).toContain(`direct credential ${d.id} was revoked`);
  });

  it("renews its credential at half its life on the CLI's clock while it runs: the credential outlives the time it was first given", async () => {
    const cli = new HeldClock();
    const home = mkdtempSync(join(tmpdir(), 'hoop-direct-renew-'));
    const env = { HOOP_TOKEN: alice, HOOP_CONFIG_DIR: home, XDG_RUNTIME_DIR: home };
    const provider = await resolveTokenProvider({ env, cwd: home, gateway: stack.gateway.url, caFile: stack.pki.caFile });
    const stdout = new PassThrough();
    let printed = '';
    stdout.on('data', (c: Buffer) => (printed += c.toString('utf8')));
    const said: string[] = [];
    const stop = new AbortController();
    const serving = serveDirect({ stdout, stderr: new PassThrough(), env, cwd: home, signal: stop.signal }, { json: true, ttl: 60, clock: cli }, provider, 'app', (l) => said.push(l));
    try {
      const d = await eventually(() => JSON.parse(printed) as DirectJson);
      expect(cli.pending).toBe(1);
      // 40 s on at the gateway, the CLI's half-life timer fires: renewed for another 60 s from there.
      clock.advance(40_000);
      expect(cli.fire()).toBe(1);
      await eventually(() => expect(cli.pending).toBe(1));
      expect(said).toEqual([]);
      // Past the minute it was first given, it still signs in.
      clock.advance(30_000);
      const read = await runProcess('psql', ['-X', '-At', '-c', 'select 1'], { env: libpq(d) });
      expect(read.stderr).toBe('');
      expect(read.stdout).toBe('1\n');
    } finally {
      stop.abort();
      await serving;
      rmSync(home, { recursive: true, force: true });
    }
  });

  it('with --once prints the details and exits; the credential works until it expires', async () => {
    const once = await stack.run(['connect', 'app', '--direct', '--once', '--json', '--ttl', '60s', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: alice });
    expect(once.code, once.stderr).toBe(0);
    const d = JSON.parse(once.stdout) as DirectJson;
    const read = await runProcess('psql', ['-X', '-A', '-t', '-c', 'select count(*) from customers'], { env: libpq(d) });
    expect(read.stdout.trim()).toBe('2');
  });
});

describe('drivers and tools straight at the gateway', () => {
  it('the pg driver signs in with SCRAM-SHA-256-PLUS (channel binding) and the postgres driver with SCRAM-SHA-256; both get masked rows', async () => {
    const minted = (await api('POST', '/v1/connections/app/direct', alice, {})).body as { user: string; password: string; database: string };
    const ssl = { ca: stack.pki.ca, servername: 'localhost' };
    const client = new pg.Client({
      host: '127.0.0.1',
      port: stack.gateway.port,
      user: minted.user,
      password: minted.password,
      database: minted.database,
      ssl,
      enableChannelBinding: true,
    } as pg.ClientConfig);
    await client.connect();
    try {
      expect((await client.query('select email from customers where id = $1', [1])).rows).toEqual([{ email: '[redacted]' }]);
    } finally {
      await client.end();
    }
    const sql = postgres({ host: '127.0.0.1', port: stack.gateway.port, username: minted.user, password: minted.password, database: minted.database, ssl: { ca: stack.pki.ca }, max: 1 });
    try {
      expect(await sql`select email, note from customers where id = ${2}`).toEqual([{ email: '[redacted]', note: 'second' }]);
    } finally {
      await sql.end();
    }
  });

  it('pgbench runs its transactions, each connection a session of the gateway', async () => {
    const minted = (await api('POST', '/v1/connections/app/direct', alice, {})).body as { user: string; password: string; database: string };
    const script = join(stack.dir, 'bench.sql');
    await import('node:fs/promises').then((fs) => fs.writeFile(script, 'select count(*) from customers;\n'));
    const before = (await sessionsOf('connection=app&via=direct')).length;
    const env = {
      PGHOST: '127.0.0.1',
      PGPORT: String(stack.gateway.port),
      PGUSER: minted.user,
      PGPASSWORD: minted.password,
      PGDATABASE: minted.database,
      PGSSLMODE: 'verify-full',
      PGSSLROOTCERT: stack.pki.caFile,
    };
    const r = await runProcess(join(pgBinDir(), 'pgbench'), ['-n', '-C', '-c', '2', '-t', '10', '-f', script], { env, timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/number of transactions actually processed: 20\/20/);
    await eventually(async () => expect((await sessionsOf('connection=app&via=direct')).length - before).toBeGreaterThanOrEqual(20), { timeout: 60_000, interval: 200 });
  });

  it("PostgreSQL 17's direct TLS (ALPN postgresql, no SSLRequest) signs in too", async () => {
    const f = await stack.direct('app', alice, { alpn: true });
    try {
      expect(errorIn(await f.simple('select 1'))).toBeUndefined();
    } finally {
      f.destroy();
    }
  });
});

describe('a hostile client at the gateway port', () => {
  const signIn = async (user: string, password: string, database = 'app'): Promise<ReturnType<typeof errorIn>> => {
    const f = await RawFrontend.direct(stack.gateway.port, stack.pki.ca);
    try {
      await f
        .startup(password, [
          ['user', user],
          ['database', database],
        ])
        .catch(() => undefined);
      return await f.error(30_000);
    } finally {
      f.destroy();
    }
  };

  it('gets one answer for a wrong password and for a user that is no credential', async () => {
    const minted = (await api('POST', '/v1/connections/app/direct', alice, {})).body as { user: string; password: string };
    const wrong = await signIn(minted.user, 'not-the-password');
    expect(wrong).toMatchObject({ code: '28P01', message: `password authentication failed for user "${minted.user}"` });
    const unknown = await signIn('dc_AAAAAAAAAAAAAAAAAAAAAA', 'whatever');
    expect(unknown).toMatchObject({ code: '28P01', message: 'password authentication failed for user "dc_AAAAAAAAAAAAAAAAAAAAAA"' });
    expect(await signIn('postgres', 'whatever')).toMatchObject({ code: '28P01' });
  });

  it('cannot use a credential for another connection, nor as a token of the API', async () => {
    const minted = (await api('POST', '/v1/connections/app/direct', alice, {})).body as { user: string; password: string };
    // "other" is another connection to the same server, whose database is app too: the credential still reaches "app" alone.
    const elsewhere = await signIn(minted.user, minted.password, 'postgres');
    expect(elsewhere).toMatchObject({ code: '3D000' });
    for (const token of [minted.password, minted.user, `${minted.user}:${minted.password}`]) {
      expect((await api('GET', '/v1/connections', token)).status).toBe(401);
      expect((await api('POST', '/v1/connections/other/direct', token, {})).status).toBe(401);
    }
  });

  it('is told why a revoked or expired credential no longer signs in, and a revoked one ends its session', async () => {
    const minted = (await api('POST', '/v1/connections/app/direct', alice, { seconds: 60 })).body as { id: string; user: string; password: string; expiresAt: string };
    const live = await stack.direct('app', alice);
    const f = await RawFrontend.direct(stack.gateway.port, stack.pki.ca);
    await f.startup(minted.password, [
      ['user', minted.user],
      ['database', 'app'],
    ]);
    expect((await api('DELETE', `/v1/direct/${minted.id}`, alice)).status).toBe(200);
    expect(await f.error(30_000)).toMatchObject({ severity: 'FATAL', code: '28000', message: expect.stringContaining(`direct credential ${minted.id} was revoked`) });
    expect(await signIn(minted.user, minted.password)).toMatchObject({ code: '28000', message: expect.stringContaining('was revoked') });
    // Bob cannot revoke Alice's.
    expect((await api('DELETE', `/v1/direct/${live.credential.id}`, await stack.token('bob'))).status).toBe(404);
    // A 60 s credential, a minute on: its session ends, and it signs in no more.
    const short = await stack.direct('app', alice, { seconds: 60 });
    expect(errorIn(await short.simple('select 1'))).toBeUndefined();
    clock.advance(61_000);
    expect(await short.error(30_000)).toMatchObject({ severity: 'FATAL', message: expect.stringContaining(`direct credential ${short.credential.id} expired`) });
    expect(await signIn(short.credential.user, short.credential.password)).toMatchObject({ code: '28000', message: expect.stringContaining('expired at') });
    expect(errorIn(await live.simple('select 1'))).toBeUndefined();
    live.destroy();
  });

  it('is refused PostgreSQL in the clear and HTTP in the clear, in their own protocols', async () => {
    const clear = await RawFrontend.tcp(stack.gateway.port);
    clear.write(
      startupMessage([
        ['user', 'hoop'],
        ['database', 'app'],
      ]),
    );
    expect(await clear.error()).toMatchObject({ code: '28000', message: 'hoop: the gateway takes PostgreSQL clients over TLS only' });
    const http = netConnect(stack.gateway.port, '127.0.0.1');
    const answer = await new Promise<string>((resolve) => {
      let got = '';
      http.on('data', (d) => (got += d.toString()));
      http.on('close', () => resolve(got));
      http.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
  });

  it('is closed without a word when it sends a Terminate before its startup, as PostgreSQL closes it', async () => {
    const f = await RawFrontend.direct(stack.gateway.port, stack.pki.ca);
    try {
      f.write(Buffer.from([0x58, 0, 0, 0, 4]));
      expect(await f.closed()).toBe(true);
      expect(f.raw.length).toBe(0);
    } finally {
      f.destroy();
    }
  });

  it('cancels a direct session by key in the clear (as libpq sends it), never a tunnel session', async () => {
    const keyOf = async (f: RawFrontend): Promise<{ pid: number; secret: number }> => {
      const k = (await f.messagesSince(0, 1)).find((m) => m.type === 0x4b)!.body;
      return { pid: k.readUInt32BE(0), secret: k.readUInt32BE(4) };
    };
    const clearCancel = async (key: { pid: number; secret: number }): Promise<void> => {
      const c = await RawFrontend.tcp(stack.gateway.port);
      c.write(cancelRequest(key.pid, key.secret));
      await c.closed();
    };
    const tunnel = await stack.tunnel('app', alice);
    const tunnelKey = await keyOf(tunnel);
    const from = tunnel.raw.length;
    tunnel.write(queryMessage('select pg_sleep(1.5)'));
    await eventually(async () => expect((await stack.pg.psql("select count(*) from pg_stat_activity where query = 'select pg_sleep(1.5)' and state = 'active'")).trim()).toBe('1'));
    await clearCancel(tunnelKey);
    expect(errorIn(await tunnel.messagesSince(from, 1))).toBeUndefined();
    tunnel.destroy();
    const direct = await stack.direct('app', alice);
    const directKey = await keyOf(direct);
    const at = direct.raw.length;
    direct.write(queryMessage('select pg_sleep(30)'));
    await eventually(async () => expect((await stack.pg.psql("select count(*) from pg_stat_activity where query = 'select pg_sleep(30)' and state = 'active'")).trim()).toBe('1'));
    await clearCancel(directKey);
    expect(errorIn(await direct.messagesSince(at, 1))?.code).toBe('57014');
    direct.destroy();
    // Keys are not guessed by the thousand: past 20 a second from one address, CancelRequests are dropped, and said once.
    await Promise.all(Array.from({ length: 30 }, (_, i) => clearCancel({ pid: directKey.pid, secret: i })));
    expect(stack.logs().filter((l) => l.event === 'cancel.throttled')).toHaveLength(1);
  });
});

describe('who a direct session is', () => {
  it("follows the access rules' ways in: a rule for connect and exec grants no direct credential, and a tunnel that claims to be direct is not", async () => {
    const carol = await stack.token('carol');
    const refused = await api('POST', '/v1/connections/app/direct', carol, {});
    expect(refused.status).toBe(403);
    expect(refused.body.error).toMatchObject({ message: 'carol may not use the connection "app"' });
    const claimed = await stack.tunnel('app', carol, { via: 'direct' as 'connect', sessionId: 'claims-direct-1' });
    claimed.destroy();
    await eventually(async () => expect((await api('GET', '/v1/sessions/claims-direct-1', carol)).body).toMatchObject({ via: 'connect' }), { timeout: 60_000, interval: 100 });
  });

  it("an agent's run asks for one with its run credential: its sessions are the run's, other connections refused, and it ends with the run", async () => {
    const run = (await api('POST', '/v1/runs', alice, { connections: ['app'], agent: 'claude', isolation: 'none' })).body as { id: string; token: string; controlToken: string };
    expect((await api('POST', '/v1/connections/other/direct', run.token, {})).status).toBe(403);
    const f = await stack.direct('app', run.token);
    expect((await api('POST', `/v1/direct/${f.credential.id}/renew`, run.token, {})).status).toBe(403);
    expect(errorIn(await f.simple('select 1'))).toBeUndefined();
    await api('POST', `/v1/runs/${run.id}/end`, run.controlToken);
    expect(await f.error(30_000)).toMatchObject({ severity: 'FATAL', message: expect.stringContaining(`run ${run.id} ended`) });
    const s = await eventually(
      async () => {
        const list = await sessionsOf(`run=${run.id}`);
        expect(list[0]?.endedAt).toBeDefined();
        return list[0]!;
      },
      { timeout: 60_000, interval: 100 },
    );
    expect(s).toMatchObject({ via: 'run', agent: 'claude', runId: run.id, direct: true });
    const again = await RawFrontend.direct(stack.gateway.port, stack.pki.ca);
    await again
      .startup(f.credential.password, [
        ['user', f.credential.user],
        ['database', 'app'],
      ])
      .catch(() => undefined);
    expect(await again.error()).toMatchObject({ code: '28000', message: expect.stringContaining(`ended with run ${run.id}`) });
  });

  it("a run's credentials count against the run, never its person: an agent at its run's cap cannot lock its person out", async () => {
    const run = (await api('POST', '/v1/runs', alice, { connections: ['app'], agent: 'claude', isolation: 'none' })).body as { id: string; token: string; controlToken: string };
    try {
      // The longest lifetime (12 h): none of the 20 expires while the rest are minted, which would free a place.
      const open = { seconds: 12 * 3600 };
      for (let i = 0; i < 20; i++) expect((await api('POST', '/v1/connections/app/direct', run.token, open)).status).toBe(201);
      const over = await api('POST', '/v1/connections/app/direct', run.token, open);
      expect(over.status).toBe(429);
      expect(JSON.stringify(over.body)).toContain(`run ${run.id} has 20 direct credentials open already`);
      const own = await api('POST', '/v1/connections/app/direct', alice, {});
      expect(own.status).toBe(201);
      expect((await api('DELETE', `/v1/direct/${(own.body as { id: string }).id}`, alice)).status).toBe(200);
    } finally {
      await api('POST', `/v1/runs/${run.id}/end`, run.controlToken);
    }
  });

  it('its person renews it with a fresh sign-in (the credential lives on), and nobody else can', async () => {
    const f = await stack.direct('app', alice, { seconds: 60 });
    const renewed = await api('POST', `/v1/direct/${f.credential.id}/renew`, alice, { seconds: 600 });
    expect(renewed.status).toBe(200);
    expect(Date.parse(renewed.body.expiresAt as string)).toBeGreaterThan(Date.parse(f.credential.expiresAt));
    expect((await api('POST', `/v1/direct/${f.credential.id}/renew`, await stack.token('bob'), {})).status).toBe(404);
    // Past the minute it was first given, the session goes on.
    clock.advance(61_000);
    expect(errorIn(await f.simple('select 1'))).toBeUndefined();
    f.destroy();
  });
});
