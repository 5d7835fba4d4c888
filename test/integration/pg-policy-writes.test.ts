/**
 * Writes that touch everything, COPY through server files, read-only access and backend signals,
 * judged at the gateway: through `hoop connect` and straight to the tunnel, asserting on what the
 * database holds afterwards and on which rule refused (the server's own refusal would look alike).
 *
 * @see https://www.postgresql.org/docs/current/sql-merge.html
 * @see https://www.postgresql.org/docs/current/sql-insert.html#SQL-ON-CONFLICT
 * @see https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-ADMIN-SIGNAL
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatementJudge } from '../../src/policy/decide.js';
import type { Policy, StatementRule } from '../../src/policy/schema.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import { errorIn, RawFrontend } from '../harness/raw-pg.js';
import { startStack, type HoopStack, type RunningConnect, WAYS_IN } from '../harness/stack.js';
import { emptyPolicy } from '../harness/policy.js';

const rules: StatementRule[] = [
  { name: 'no-unbounded-writes', match: { kinds: ['update', 'delete'], missingWhere: true }, action: 'deny', message: 'writes must name their rows' },
  { name: 'no-server-files', match: { copyTarget: ['file', 'program'] }, action: 'deny', message: 'COPY through the client only' },
];
const policy: Policy = emptyPolicy({ statements: { unparseable: 'deny', rules } });

let stack: HoopStack;
const connects = new Map<string, RunningConnect>();
const tokens = new Map<string, string>();

beforeAll(async () => {
  await loadSqlParser();
  stack = await startStack({
    gateway: {
      sessionPolicy: (identity, connection) => {
        const mode = identity.groups.includes('ro') ? 'read-only' : 'read-write';
        return { judge: new StatementJudge(policy, { subject: identity.subject, groups: identity.groups }, connection.name, mode), readOnly: mode === 'read-only' };
      },
    },
  });
  const owner = stack.pg.users.scram.user;
  await stack.pg.psql(
    `create table accounts (id int primary key, balance int);
     insert into accounts select g, 100 from generate_series(1, 5) g;
     create table audit (at timestamptz default now());
     create function bump() returns int language sql as 'insert into audit default values returning 1';
     alter table accounts owner to ${owner}; alter table audit owner to ${owner}; alter function bump() owner to ${owner}`,
    { database: 'app' },
  );
  for (const who of ['rw', 'ro']) {
    const token = await stack.token('alice', [who]);
    tokens.set(who, token);
    connects.set(who, await stack.connect('app', token));
  }
});

afterAll(async () => {
  for (const c of connects.values()) await c.stop();
  await stack?.close();
});

async function open(who: string, via: string): Promise<RawFrontend> {
  if (via === 'the tunnel') return stack.tunnel('app', tokens.get(who)!);
  if (via === 'direct') return stack.direct('app', tokens.get(who)!);
  const info = connects.get(who)!.info;
  return RawFrontend.signedIn(info);
}

const errorOf = errorIn;

const db = async (sql: string): Promise<string> => (await stack.pg.psql(sql, { database: 'app' })).trim();

describe.each(WAYS_IN)('through %s', (via) => {
  it('refuses writes the parse tree shows reach every row; the rows stay as they were', async () => {
    const f = await open('rw', via);
    try {
      for (const sql of [
        'update accounts set balance = 0 where id = id',
        'delete from accounts where balance is null or balance is not null',
        'merge into accounts using accounts s on accounts.id = s.id when matched then update set balance = 0',
        'merge into accounts using (select 1) s on true when matched then delete',
        'insert into accounts select * from accounts on conflict (id) do update set balance = 0',
      ]) {
        const e = errorOf(await f.simple(sql));
        expect(e?.code, sql).toBe('42501');
        expect(e?.message, sql).toContain('no-unbounded-writes');
      }
      expect(await db('select count(*), sum(balance) from accounts')).toBe('5|500');
      // Bounded ones run.
      expect(errorOf(await f.simple('update accounts set balance = balance where id = 1'))).toBeUndefined();
      expect(errorOf(await f.simple('insert into accounts values (1, 100) on conflict (id) do update set balance = excluded.balance'))).toBeUndefined();
    } finally {
      f.destroy();
    }
  });

  it('refuses writes whose condition reads only other sources or is a tautology, also after a same-shaped bounded one; the rows stay', async () => {
    const f = await open('rw', via);
    try {
      // Judged first and allowed: a text of the same shape as the tautology below must not lend it its verdict.
      expect(errorOf(await f.simple('update accounts set balance = 100 where id < 3 or id >= 4'))).toBeUndefined();
      for (const sql of [
        'update accounts set balance = 0 where id < 3 or id >= 3',
        'delete from accounts using (select 1 as one) s where s.one = 1',
        'update accounts set balance = 0 from (values (1)) v(a) where v.a = 1',
        'with s as (select 1 k) delete from accounts using s where s.k = 1',
        'merge into accounts using (select 1 x) s on s.x = 1 when matched and s.x = 1 then delete',
        'delete from accounts where exists (select 1 from pg_class c where c.oid > 0)',
        'delete from accounts where id between id and id',
        'delete from accounts where ctid is not null',
        'insert into accounts select generate_series(1, 5), 0 on conflict (id) do update set balance = excluded.balance',
      ]) {
        const e = errorOf(await f.simple(sql));
        expect(e?.code, sql).toBe('42501');
        expect(e?.message, sql).toContain('no-unbounded-writes');
      }
      expect(await db('select count(*), sum(balance) from accounts')).toBe('5|500');
      // Joined to the target, they run.
      expect(errorOf(await f.simple('update accounts set balance = balance from (values (1)) v(a) where accounts.id = v.a'))).toBeUndefined();
      expect(errorOf(await f.simple('delete from accounts using (select 1 as one) s where accounts.id = s.one + 100'))).toBeUndefined();
      expect(await db('select count(*), sum(balance) from accounts')).toBe('5|500');
    } finally {
      f.destroy();
    }
  });

  it('matches COPY to or from a server file or program with copyTarget, for read-write access too', async () => {
    const f = await open('rw', via);
    try {
      for (const sql of ["copy accounts to '/tmp/hoop-accounts'", "copy accounts from '/etc/hostname'", "copy accounts to program 'cat'"]) {
        const e = errorOf(await f.simple(sql));
        expect(e?.message, sql).toContain('no-server-files');
      }
      expect(errorOf(await f.simple('copy accounts to stdout'))).toBeUndefined();
    } finally {
      f.destroy();
    }
  });

  it('read-only access refuses every way out of read-only and of the role; a writing function still fails at the server', async () => {
    const f = await open('ro', via);
    try {
      for (const sql of [
        "select set_config('default_transaction_read_only', 'off', false)",
        'set default_transaction_read_only = off',
        'begin read write',
        'set session characteristics as transaction read write',
        "select set_config('role', 'postgres', false)",
        'set role postgres',
        'set session authorization postgres',
        "copy accounts to '/tmp/hoop-x'",
      ]) {
        const e = errorOf(await f.simple(sql));
        expect(e?.code, sql).toBe('42501');
        expect(e?.message, sql).toContain('read-only-access');
      }
      expect((await f.simple('begin; select bump(); rollback')).map((m) => m.raw.toString('latin1')).join('')).toContain('25006');
      expect(await db('select count(*) from audit')).toBe('0');
      expect(await db("select current_setting('default_transaction_read_only')")).toBe('off');
    } finally {
      f.destroy();
    }
  });

  it('refuses signals to other backends; the other session goes on', async () => {
    const victim = await open('rw', via);
    const f = await open('rw', via);
    try {
      const pidRow = (await victim.simple('select pg_backend_pid()')).find((m) => m.type === 0x44)!;
      const pid = pidRow.body.subarray(6).toString();
      for (const sql of [`select pg_terminate_backend(${pid})`, `select pg_cancel_backend(${pid})`, `select pg_signal_backend(${pid}, 15)`]) {
        const e = errorOf(await f.simple(sql));
        expect(e?.message, sql).toContain('backend-signal');
      }
      expect(errorOf(await victim.simple('select 1'))).toBeUndefined();
    } finally {
      victim.destroy();
      f.destroy();
    }
  });
});
