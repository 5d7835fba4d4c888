/**
 * Server connections kept warm between sessions (a connection's `pool`: src/postgres/gateway/upstream-pool.ts),
 * with real PostgreSQL and the pg driver through `hoop connect` and straight at the gateway: a
 * person's next session gets the same server backend, reset (temporary tables, settings, prepared
 * statements, LISTEN, advisory locks gone; the settings reported as they stand); another person's
 * never does; a session that ends inside a transaction, or without its Terminate, leaves no warm
 * connection and commits nothing; warm connections are bounded and end when unused.
 */
import { rmSync } from 'node:fs';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { terminate } from '../../src/postgres/wire/messages.js';
import { pgClient } from '../harness/clients.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { HeldClock } from '../harness/held-clock.js';
import { connectionYaml } from '../harness/postgres.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';

let stack: HoopStack;
let repo: PolicyGitRepo;
let alice: RunningConnect;
let bob: RunningConnect;
/** The gateway's clock: a warm connection ends when the test fires its idle timer (2 s), however busy the machine. */
const clock = new HeldClock();

beforeAll(async () => {
  repo = new PolicyGitRepo('hoop-pool-');
  stack = await startStack({
    gateway: { clock },
    policy: async ({ pg: cluster }) => {
      repo.commit(`version: 1
connections:
${connectionYaml(cluster, { name: 'app', password: '${env:APP_PASSWORD}', extra: ['pool: { idle: 2, idleSeconds: 2 }'] })}access:
  - { name: people, subjects: [alice, bob], connections: [app], mode: read-write }
masking:
  columns:
    - { table: public.cards, column: number, strategy: last4 }
`);
      return repo.gatewayBlock(['${env:APP_*}']);
    },
  });
  await stack.pg.psql("create table cards (id int primary key, number text); insert into cards values (1, '4111111111111111'); grant all on cards to public", { database: 'app' });
  [alice, bob] = await Promise.all([stack.connect('app', await stack.token('alice')), stack.connect('app', await stack.token('bob'))]);
});

afterAll(async () => {
  await alice?.stop();
  await bob?.stop();
  await stack?.close();
  if (repo) rmSync(repo.base, { recursive: true, force: true });
});

const pidOf = async (c: pg.Client): Promise<number> => (await c.query('select pg_backend_pid() as pid')).rows[0].pid as number;
/** The server backends the gateway has signed in to app, warm or in use (the catalog's excepted). */
const backends = async (): Promise<number> =>
  Number(
    await stack.pg.psql("select count(*) from pg_stat_activity where datname = 'app' and usename = 'app_scram' and application_name <> 'hoop-catalog' and pid <> pg_backend_pid()", {
      database: 'app',
    }),
  );

/** Until server backend `pid` has run the pool's reset and waits, idle, for what comes next. */
const resetDone = (pid: number): Promise<void> =>
  eventually(
    async () => expect((await stack.pg.psql(`select coalesce(query, '') || ' ' || coalesce(state, '') from pg_stat_activity where pid = ${pid}`, { database: 'app' })).trim()).toBe('DISCARD ALL idle'),
    { timeout: 60_000, interval: 20 },
  );

describe('a warm server connection', () => {
  it("serves the same person's next session, reset: nothing of the last session's state is left, and the settings are reported as they stand", async () => {
    const first = await pgClient(alice.info);
    const pid = await pidOf(first);
    await first.query("create temporary table scratch as select 1 as x; set timezone = 'Asia/Tokyo'; prepare p as select 1; listen ch; select pg_advisory_lock(42)");
    expect((await first.query('select number from cards')).rows).toEqual([{ number: '************1111' }]);
    await first.end();
    // The gateway resets the connection before it keeps it (on a busy machine that can take longer than the next sign-in, which then gets a new one).
    await resetDone(pid);
    const second = await pgClient(alice.info);
    try {
      expect(await pidOf(second)).toBe(pid);
      expect((await second.query("select to_regclass('pg_temp.scratch') is null as gone")).rows[0].gone).toBe(true);
      expect((await second.query('show timezone')).rows[0].TimeZone).not.toBe('Asia/Tokyo');
      await expect(second.query('execute p')).rejects.toMatchObject({ code: '26000' });
      expect((await second.query('select count(*)::int as n from pg_listening_channels()')).rows[0].n).toBe(0);
      expect((await second.query('select count(*)::int as n from pg_locks where locktype = $1 and pid = pg_backend_pid()', ['advisory'])).rows[0].n).toBe(0);
      expect((await second.query('select number from cards')).rows).toEqual([{ number: '************1111' }]);
    } finally {
      await second.end();
    }
  });

  it("greets the next client with the server's settings as the reset left them, not as the last session set them", async () => {
    const token = await stack.token('alice');
    const parameter = (f: { raw: Buffer }, name: string): string | undefined => {
      const at = f.raw.lastIndexOf(Buffer.from(`${name}\0`));
      return at < 0 ? undefined : f.raw.subarray(at + name.length + 1, f.raw.indexOf(0, at + name.length + 1)).toString();
    };
    const pid = async (f: Awaited<ReturnType<typeof stack.direct>>): Promise<string> =>
      (await f.simple('select pg_backend_pid()'))
        .find((m) => m.type === 0x44)!
        .body.subarray(6)
        .toString();
    const first = await stack.direct('app', token);
    const firstPid = await pid(first);
    const zone = parameter(first, 'TimeZone');
    await first.simple("set timezone = 'Asia/Tokyo'");
    expect(parameter(first, 'TimeZone')).toBe('Asia/Tokyo');
    first.write(terminate());
    await first.closed();
    await resetDone(Number(firstPid));
    const next = await stack.direct('app', token);
    expect(parameter(next, 'TimeZone')).toBe(zone);
    expect(await pid(next)).toBe(firstPid);
    next.write(terminate());
    await next.closed();
  });

  it("never serves another person's session", async () => {
    const a = await pgClient(alice.info);
    const pid = await pidOf(a);
    await a.end();
    const b = await pgClient(bob.info);
    try {
      expect(await pidOf(b)).not.toBe(pid);
    } finally {
      await b.end();
    }
  });

  it('is not kept from a session that ended inside a transaction or without its Terminate; what it began is rolled back', async () => {
    const inTx = await pgClient(alice.info);
    const pid = await pidOf(inTx);
    await inTx.query("begin; insert into cards values (2, '5500000000000004')");
    await inTx.end();
    await eventually(async () => expect(Number(await stack.pg.psql(`select count(*) from pg_stat_activity where pid = ${pid}`))).toBe(0));
    expect((await stack.pg.psql('select count(*) from cards where id = 2', { database: 'app' })).trim()).toBe('0');
    const direct = await stack.direct('app', await stack.token('alice'));
    const directPid = Number(
      (await direct.simple('select pg_backend_pid()'))
        .find((m) => m.type === 0x44)!
        .body.subarray(6)
        .toString(),
    );
    direct.destroy(); // gone without Terminate
    await eventually(async () => expect(Number(await stack.pg.psql(`select count(*) from pg_stat_activity where pid = ${directPid}`))).toBe(0));
  });

  it('serves direct clients too; at most `idle` are kept, and they end when unused for idleSeconds', async () => {
    // What the tests before left warm ends when its idle time is up.
    await eventually(async () => {
      clock.fire(2000);
      expect(await backends()).toBe(0);
    });
    const token = await stack.token('alice');
    const opened = await Promise.all([stack.direct('app', token), stack.direct('app', token), stack.direct('app', token)]);
    const pids = new Set<string>();
    for (const f of opened)
      pids.add(
        (await f.simple('select pg_backend_pid()'))
          .find((m) => m.type === 0x44)!
          .body.subarray(6)
          .toString(),
      );
    expect(pids.size).toBe(3);
    for (const f of opened) {
      f.write(terminate());
      await f.closed();
    }
    // Two of the three are kept (idle: 2) ...
    await eventually(async () => expect(await backends()).toBe(2));
    const again = await stack.direct('app', token);
    expect(pids).toContain(
      (await again.simple('select pg_backend_pid()'))
        .find((m) => m.type === 0x44)!
        .body.subarray(6)
        .toString(),
    );
    again.write(terminate());
    await again.closed();
    // ... until unused for 2 s: held here, they end when that time comes.
    expect(await backends()).toBe(2);
    await eventually(async () => {
      clock.fire(2000);
      expect(await backends()).toBe(0);
    });
  });
});
