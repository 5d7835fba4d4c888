/**
 * The PostgreSQL data path end to end: real PostgreSQL, real OpenID provider, the gateway with
 * TLS, `hoop connect`, and real clients (psql, pgbench, the pg driver).
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgbench, pgClient, psql, spawnPsql } from '../harness/clients.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';

let stack: HoopStack;
let app: RunningConnect;
let aliceToken: string;

/** Until `sql` runs on the PostgreSQL server (active in pg_stat_activity). */
async function running(sql: string): Promise<void> {
  await eventually(async () => expect((await stack.pg.psql(`select count(*) from pg_stat_activity where query = '${sql.replace(/'/g, "''")}' and state = 'active'`)).trim()).toBe('1'));
}

beforeAll(async () => {
  stack = await startStack();
  await stack.pg.psql(`create table notes(id serial primary key, body text); grant all on notes, notes_id_seq to public`, { database: 'app' });
  aliceToken = await stack.token('alice');
  app = await stack.connect('app', aliceToken);
});

afterAll(async () => {
  await app?.stop();
  await stack?.close();
});

describe('psql through hoop connect', () => {
  it('runs queries and never sees the database password', async () => {
    const r = await psql(app.info, ['-At', '-c', 'select current_user, current_database(), 40 + 2']);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(`${stack.pg.users.scram.user}|app|42`);
    expect(JSON.stringify(app.info)).not.toContain(stack.pg.users.scram.password);
  });

  it('keeps the session usable after an error and runs multi-statement messages', async () => {
    const r = await psql(app.info, ['-At', '-v', 'ON_ERROR_STOP=0'], { input: 'select 1/0;\nselect 1; select 2;\n' });
    expect(r.stderr).toContain('division by zero');
    expect(r.stdout.trim().split('\n')).toEqual(['1', '2']);
  });

  it('copies in and out', async () => {
    const rows = Array.from({ length: 5000 }, (_, i) => `${i}\tline ${i}`).join('\n');
    const load = await psql(app.info, ['-c', 'create temp table t(id int, body text)', '-c', '\\copy t from stdin', '-c', 'select count(*), sum(id) from t', '-At'], { input: `${rows}\n\\.\n` });
    expect(load.stderr).toBe('');
    expect(load.stdout).toContain('5000|12497500');
    const out = await psql(app.info, ['-At', '-c', 'copy (select g, md5(g::text) from generate_series(1, 20000) g) to stdout']);
    // Every byte of the 20,000 lines (CopyData passed in runs, whatever the chunk boundaries).
    const expected = Array.from(
      { length: 20000 },
      (_, i) =>
        `${i + 1}\t${createHash('md5')
          .update(String(i + 1))
          .digest('hex')}\n`,
    ).join('');
    expect(out.stdout === expected).toBe(true);
  });

  it('relays notices and notifications', async () => {
    const r = await psql(app.info, ['-At'], {
      input: "do $$ begin raise notice 'hello from plpgsql'; end $$;\nlisten ch;\nnotify ch, 'payload-1';\nselect 1;\n",
    });
    expect(r.stderr).toContain('NOTICE:  hello from plpgsql');
    expect(r.stdout).toContain('Asynchronous notification "ch" with payload "payload-1"');
  });

  it('cancels a running query with Ctrl-C (CancelRequest through the gateway), which is part of the session it cancels, not a session of its own', async () => {
    const hoop = async (argv: string[]): Promise<string> => (await stack.run([...argv, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: aliceToken })).stdout;
    const before = (JSON.parse(await hoop(['sessions', 'ls', '--json'])) as { sessions: unknown[] }).sessions.length;
    const child = spawnPsql(app.info, ['-c', 'select pg_sleep(30)']);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    await running('select pg_sleep(30)');
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).not.toBe(0);
    expect(stderr).toContain('canceling statement due to user request');
    // One session more, psql's, ended; its recording holds the cancel before the server's error.
    type Listed = { id: string; reason: string; endedAt?: string };
    let sessions: Listed[] = [];
    await eventually(async () => {
      sessions = (JSON.parse(await hoop(['sessions', 'ls', '--json'])) as { sessions: Listed[] }).sessions;
      expect(sessions).toHaveLength(before + 1);
      expect(sessions[0]!.endedAt).toBeDefined();
    });
    expect(sessions.map((s) => s.reason)).not.toContain('cancel-request');
    const shown = JSON.parse(await hoop(['sessions', 'show', sessions[0]!.id, '--json'])) as { events: Array<{ t: string; message?: string }> };
    const types = shown.events.map((e) => e.t);
    expect(types).toContain('cancel');
    expect(shown.events.slice(types.indexOf('cancel')).find((e) => e.t === 'error')?.message).toBe('canceling statement due to user request');
    expect((await hoop(['sessions', 'replay', sessions[0]!.id, '--no-tty'])).split('\n')).toContain("-- the client asked to cancel what runs (a CancelRequest: psql's Ctrl-C)");
  });
});

describe('the pg driver through hoop connect', () => {
  it('speaks the extended protocol: parameters, named statements, pipelining, binary', async () => {
    const client = await pgClient(app.info);
    try {
      const r = await client.query('select $1::int + $2::int as sum, $3::text as t', [40, 2, 'x']);
      expect(r.rows).toEqual([{ sum: 42, t: 'x' }]);
      const named = { name: 'by-id', text: 'select $1::int * 2 as v' };
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => client.query({ ...named, values: [i] })));
      expect(results.map((x) => x.rows[0].v)).toEqual(Array.from({ length: 50 }, (_, i) => i * 2));
      // pg asks for binary result columns (Bind result format 1) when `binary` is set.
      const binaryQuery = { text: 'select 42::int4 as i, true as b, $1::text as t', values: ['héllo'], binary: true } as pg.QueryConfig;
      const bin = await client.query(binaryQuery);
      expect(bin.rows).toEqual([{ i: 42, b: true, t: 'héllo' }]);
    } finally {
      await client.end();
    }
  });

  it('moves rows of many megabytes intact', async () => {
    const client = await pgClient(app.info);
    try {
      const r = await client.query("select repeat('abcdefgh', 4 * 1024 * 1024) as big, md5(repeat('abcdefgh', 4 * 1024 * 1024)) as sum");
      const big = r.rows[0].big as string;
      expect(big.length).toBe(32 * 1024 * 1024);
      expect(createHash('md5').update(big).digest('hex')).toBe(r.rows[0].sum);
      const payload = 'z'.repeat(8 * 1024 * 1024);
      const echo = await client.query('select length($1::text) as n, md5($1::text) as sum', [payload]);
      expect(echo.rows[0]).toEqual({ n: payload.length, sum: createHash('md5').update(payload).digest('hex') });
    } finally {
      await client.end();
    }
  });

  it('serves many clients at once, each with its own tunnel and backend', async () => {
    const clients = await Promise.all(Array.from({ length: 12 }, () => pgClient(app.info)));
    try {
      const pids = await Promise.all(
        clients.map(async (c, i) => {
          await c.query('insert into notes(body) values ($1)', [`client ${i}`]);
          return (await c.query('select pg_backend_pid() as pid')).rows[0].pid as number;
        }),
      );
      expect(new Set(pids).size).toBe(12);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
    const opens = stack.logs().filter((l) => l.event === 'tunnel.open');
    expect(opens.length).toBeGreaterThanOrEqual(12);
  });

  it('refuses a wrong local password with 28P01', async () => {
    await expect(pgClient(app.info, 'wrong')).rejects.toMatchObject({ code: '28P01' });
  });
});

describe('pgbench through hoop connect', () => {
  it('initialises and runs select-only with 4 clients', async () => {
    const init = await pgbench(app.info, ['-i', '-s', '1', '-q']);
    expect(init.code, init.stderr).toBe(0);
    // That it runs and nothing fails; how fast is the benchmark's (test/perf/pg-path.test.ts).
    const run = await pgbench(app.info, ['-S', '-n', '-c', '4', '-j', '2', '-T', '1']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/number of failed transactions: 0/);
  });
});

describe('gateway logs', () => {
  it('logs one line per tunnel opened and closed, with no secrets', async () => {
    const closes = (): Array<Record<string, unknown>> => stack.logs().filter((l) => l.event === 'tunnel.close' && l.reason === 'client-terminated');
    const before = closes().length;
    const r = await psql(app.info, ['-c', 'select 1']);
    expect(r.code, r.stderr).toBe(0);
    // psql's session's close (another test's may close meanwhile: a loaded machine ends sessions late).
    const psqlClose = (): Record<string, unknown> | undefined =>
      closes()
        .slice(before)
        .find((l) => Number(l.bytesToClient) > 0);
    await eventually(() => expect(psqlClose()).toBeDefined(), { timeout: 60_000, interval: 100 });
    const logs = stack.logs();
    const close = psqlClose();
    expect(close).toMatchObject({ subject: 'alice', connection: 'app' });
    expect(close!.bytesFromClient).toBeGreaterThan(0);
    expect(close!.bytesToClient).toBeGreaterThan(0);
    expect(typeof close!.durationMs).toBe('number');
    expect(typeof close!.remote).toBe('string');
    const all = JSON.stringify(logs);
    expect(all).not.toContain(stack.pg.users.scram.password);
    expect(all).not.toContain(aliceToken.split('.')[2]);
  });
});

describe('pipelining and back-pressure', () => {
  it('relays a pgbench pipeline of extended-protocol queries (\\startpipeline)', async () => {
    const script = `${stack.dir}/pipeline.sql`;
    const { writeFile } = await import('node:fs/promises');
    await writeFile(script, '\\startpipeline\nselect 1;\nselect 2;\nselect $$x$$;\n\\endpipeline\n');
    const run = await pgbench(app.info, ['-n', '-M', 'extended', '-f', script, '-c', '2', '-t', '200']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/number of transactions actually processed: 400\/400/);
    await writeFile(`${stack.dir}/prepared.sql`, '\\set id random(1, 3)\nselect name from items where id = :id;\n');
    const prepared = await pgbench(app.info, ['-n', '-M', 'prepared', '-f', `${stack.dir}/prepared.sql`, '-c', '2', '-t', '200']);
    expect(prepared.code, prepared.stderr).toBe(0);
  });

  it('a client that stops reading makes nobody buffer without bound, and then gets everything', async () => {
    const client = await pgClient(app.info);
    const stream = (client as unknown as { connection: { stream: import('node:net').Socket } }).connection.stream;
    try {
      const rows = 200_000;
      const before = process.memoryUsage();
      const sql = `select g, repeat('y', 1000) as pad from generate_series(1, ${rows}) g`;
      const result = client.query(sql);
      await running(sql);
      stream.pause();
      // The reader is stalled until PostgreSQL itself waits to write to its client: every buffer on the way is as full as it gets, and none may grow without bound.
      await eventually(async () => expect((await stack.pg.psql(`select coalesce(wait_event, '') from pg_stat_activity where query = '${sql.replace(/'/g, "''")}'`)).trim()).toBe('ClientWrite'));
      const during = process.memoryUsage();
      // ~200 MB are offered; the gateway and the listener (both in this process) hold only socket-sized buffers.
      expect(during.arrayBuffers - before.arrayBuffers).toBeLessThan(64 * 1024 * 1024);
      const active = await stack.pg.psql("select count(*) from pg_stat_activity where query like 'select g, repeat%' and state = 'active'");
      expect(Number(active.trim())).toBe(1);
      stream.resume();
      const r = await result;
      expect(r.rowCount).toBe(rows);
    } finally {
      await client.end();
    }
  });
});

describe('the gateway API and cancel keys', () => {
  it('lists only the connections the caller may use', async () => {
    const list = async (token: string): Promise<unknown> => {
      const { request } = await import('node:https');
      return new Promise((resolve, reject) => {
        const req = request(`${stack.gateway.url}/v1/connections`, { ca: stack.pki.ca, headers: { Authorization: `Bearer ${token}` } }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(body) }));
        });
        req.on('error', reject);
        req.end();
      });
    };
    const alice = (await list(aliceToken)) as { status: number; body: { connections: Array<{ name: string }> } };
    expect(alice.status).toBe(200);
    expect(alice.body.connections.map((c) => c.name)).toEqual(expect.arrayContaining(['app', 'down']));
    expect(alice.body.connections.map((c) => c.name)).not.toContain('carol-only');
    const carol = (await list(await stack.token('carol'))) as { body: { connections: Array<{ name: string }> } };
    expect(carol.body.connections.map((c) => c.name).sort()).toEqual(['carol-only', 'down']);
    expect(((await list('not-a-token')) as { status: number }).status).toBe(401);
  });

  it("one identity cannot cancel another's query, even with its cancel key", async () => {
    const { openTunnel } = await import('../../src/tunnel/transport.js');
    const { cancelRequest } = await import('../../src/postgres/wire/messages.js');
    const client = await pgClient(app.info);
    try {
      const key = client as unknown as { processID: number; secretKey: number };
      const slept = client.query('select pg_sleep(2) as slept');
      await running('select pg_sleep(2) as slept');
      const { channel } = await openTunnel({ gateway: stack.gateway.url, connection: 'app', token: await stack.token('bob'), sessionId: 'bob-cancel-1', clientVersion: 'test', ca: stack.pki.ca });
      channel.resume();
      channel.end(cancelRequest(key.processID, key.secretKey));
      // Nor through the API's cancel request, as hoop connect sends it.
      const { cancelStatement } = await import('../../src/api-client/connections.js');
      await cancelStatement({ gateway: stack.gateway.url, ca: stack.pki.ca }, await stack.token('bob'), 'app', { processId: key.processID >>> 0, secretKey: key.secretKey >>> 0 });
      await expect(slept).resolves.toMatchObject({ rowCount: 1 });
    } finally {
      await client.end();
    }
    const bobs = stack.logs().filter((l) => l.event === 'tunnel.close' && l.subject === 'bob' && l.reason === 'cancel-request');
    expect(bobs.at(-1)?.detail).toBe('no matching session');
    expect(
      stack
        .logs()
        .filter((l) => l.event === 'cancel.request' && l.subject === 'bob')
        .at(-1)?.outcome,
    ).toBe('no matching session');
  });
});
