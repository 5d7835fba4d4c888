/**
 * Read-only access against a real server: no way back to read-write transactions (RESET and
 * DEFAULT of transaction_read_only included), no lock that blocks other sessions, no maintenance
 * or server command, no function that reaches server files, large objects, other databases or
 * the server's state. The gateway's database role is a superuser here, so the server itself
 * would run every one of them (a read-only transaction does not stop them): the assertions are
 * on what the database holds and reports afterwards, through `hoop connect` and straight to the
 * tunnel.
 *
 * @see https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-DEFAULT-TRANSACTION-READ-ONLY
 * @see https://www.postgresql.org/docs/current/explicit-locking.html#LOCKING-TABLES
 * @see https://www.postgresql.org/docs/current/functions-admin.html
 * @see https://www.postgresql.org/docs/current/lo-funcs.html
 */
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatementJudge } from '../../src/policy/decide.js';
import type { Policy } from '../../src/policy/schema.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import type { PgMessage } from '../../src/postgres/wire/reader.js';
import { frontendMessage as msg } from '../harness/pg-frontend.js';
import { errorIn, RawFrontend } from '../harness/raw-pg.js';
import { startStack, type HoopStack, type RunningConnect, WAYS_IN } from '../harness/stack.js';
import { emptyPolicy } from '../harness/policy.js';

const policy: Policy = emptyPolicy();

/** The large object every test reads (and none may change). */
const LO = 424242;

let stack: HoopStack;
let connected: RunningConnect;
let token: string;

beforeAll(async () => {
  await loadSqlParser();
  stack = await startStack({
    pgConfig: { autovacuum: 'off' },
    gateway: {
      sessionPolicy: (identity, connection) => ({
        judge: new StatementJudge(policy, { subject: identity.subject, groups: identity.groups }, connection.name, 'read-only'),
        readOnly: true,
      }),
    },
  });
  await stack.pg.psql(
    `alter role ${stack.pg.users.scram.user} superuser;
     create table victim (id int primary key, v int); insert into victim select g, g from generate_series(1, 10) g;
     create table audit (at timestamptz default now());
     create function bump() returns int language sql as 'insert into audit default values returning 1';
     create function writable() returns text language plpgsql as $$ begin return set_config('default_transaction_read_only', 'off', false); end $$;
     create materialized view mv as select * from victim with no data;
     select lo_from_bytea(${LO}, 'secret');`,
    { database: 'app' },
  );
  token = await stack.token('alice');
  connected = await stack.connect('app', token);
});

afterAll(async () => {
  await connected?.stop();
  await stack?.close();
});

async function open(via: string): Promise<RawFrontend> {
  if (via === 'the tunnel') return stack.tunnel('app', token);
  if (via === 'direct') return stack.direct('app', token);
  return RawFrontend.signedIn(connected.info);
}

const errorOf = errorIn;
const value = (ms: PgMessage[]): string | undefined =>
  ms
    .find((m) => m.type === 0x44)
    ?.body.subarray(6)
    .toString();

/** What the database holds, asked as the superuser, straight to the server. */
const db = async (sql: string): Promise<string> => (await stack.pg.psql(sql, { database: 'app' })).trim();

/** Sends each statement and expects the gateway to refuse it (42501, naming `rule`); rolls back after each. */
async function refused(f: RawFrontend, statements: readonly string[], rule: RegExp = /read-only-access/): Promise<void> {
  for (const sql of statements) {
    const got = await f.simple(sql);
    const e = errorOf(got);
    expect(e?.code, sql).toBe('42501');
    expect(e?.message, sql).toMatch(rule);
    expect(
      got.some((m) => m.type === 0x44),
      sql,
    ).toBe(false);
    await f.simple('rollback');
  }
}

describe.each(WAYS_IN)('read-only access, through %s', (via) => {
  it('refuses every way back to read-write transactions; nothing is written and the server still reports read-only', async () => {
    // The server itself lets a read-only session's transaction turn read-write this way.
    await expect(db('set default_transaction_read_only = on; begin; reset transaction_read_only; select bump(); rollback')).resolves.toMatch(/^1$/m);
    const f = await open(via);
    try {
      await refused(f, [
        'begin; reset transaction_read_only; select bump(); commit',
        'begin; set transaction_read_only to default; select bump(); commit',
        'begin; set local transaction_read_only = default; select bump(); commit',
        'reset transaction_read_only; select bump()',
        "begin; select set_config('transaction_read_only', 'off', false); select bump(); commit",
        'set transaction_read_only to default',
        'set session characteristics as transaction read write',
        "select set_config('default_transaction_read_only', 'off', false)",
        'set default_transaction_read_only = off',
        'begin read write',
      ]);
      // Step by step, too: the RESET is refused, so the write fails at the server.
      expect(errorOf(await f.simple('begin'))).toBeUndefined();
      expect(errorOf(await f.simple('reset transaction_read_only'))?.message).toMatch(/read-only-access/);
      await f.simple('rollback');
      expect(errorOf(await f.simple('begin'))).toBeUndefined();
      expect(value(await f.simple('show transaction_read_only'))).toBe('on');
      expect(errorOf(await f.simple('select bump()'))?.code).toBe('25006');
      await f.simple('rollback');
      // A write to pg_settings is refused as a set_config of a name the gateway cannot know.
      await refused(f, ["update pg_settings set setting = 'off' where name = 'default_transaction_read_only'"], /parser-consistency|read-only-access/);
      expect(value(await f.simple('show default_transaction_read_only'))).toBe('on');
      expect(await db('select count(*) from audit')).toBe('0');
    } finally {
      f.destroy();
    }
  });

  it('ends the session when a function the gateway cannot read turns default_transaction_read_only off', async () => {
    const f = await open(via);
    try {
      f.write(msg('Q', 'select writable()'));
      const e = await f.error();
      expect(e).toMatchObject({ severity: 'FATAL', code: '0A000' });
      expect(e?.message).toContain('default_transaction_read_only');
      expect(await f.closed()).toBe(true);
      expect(await db('select count(*) from audit')).toBe('0');
    } finally {
      f.destroy();
    }
  });

  it('lets RESET ALL and DEFAULT of default_transaction_read_only through: they return to the session start, read-only', async () => {
    const f = await open(via);
    try {
      for (const sql of ['reset all', 'set default_transaction_read_only = default', 'reset default_transaction_read_only', 'set transaction_read_only = on']) {
        expect(errorOf(await f.simple(sql)), sql).toBeUndefined();
        expect(value(await f.simple('show default_transaction_read_only')), sql).toBe('on');
        expect(errorOf(await f.simple('begin')), sql).toBeUndefined();
        expect(value(await f.simple('show transaction_read_only')), sql).toBe('on');
        expect(errorOf(await f.simple('select bump()'))?.code, sql).toBe('25006');
        await f.simple('rollback');
      }
      expect(await db('select count(*) from audit')).toBe('0');
    } finally {
      f.destroy();
    }
  });

  it('refuses a LOCK stronger than ACCESS SHARE: the server holds none; ACCESS SHARE is taken', async () => {
    const f = await open(via);
    const held = (mode: string): Promise<string> => db(`select count(*) from pg_locks where relation = 'victim'::regclass and mode = '${mode}'`);
    try {
      expect(errorOf(await f.simple('begin'))).toBeUndefined();
      for (const sql of ['lock table victim in access exclusive mode', 'lock victim', 'lock victim in row exclusive mode', 'lock victim in share mode nowait', 'lock victim in row share mode']) {
        const e = errorOf(await f.simple(sql));
        expect(e?.code, sql).toBe('42501');
        expect(e?.message, sql).toMatch(/read-only-access.*LOCK in .* mode/);
        await f.simple('rollback');
        await f.simple('begin');
      }
      expect(await held('AccessExclusiveLock')).toBe('0');
      expect(errorOf(await f.simple('lock table victim in access share mode'))).toBeUndefined();
      expect(await held('AccessShareLock')).toBe('1');
      await f.simple('rollback');
      expect(await held('AccessShareLock')).toBe('0');
    } finally {
      f.destroy();
    }
  });

  it('refuses maintenance and server commands: no table file, statistic or checkpoint changes', async () => {
    const files = async (): Promise<string> => db("select pg_relation_filenode('victim') || ',' || pg_relation_filenode('victim_pkey')");
    const checkpoints = async (): Promise<string> => db('select checkpoints_req from pg_stat_bgwriter').catch(() => db('select num_requested from pg_stat_checkpointer'));
    const before = { files: await files(), checkpoints: await checkpoints() };
    const f = await open(via);
    try {
      await refused(f, [
        'vacuum victim',
        'vacuum full victim',
        'analyze victim',
        'vacuum (analyze) victim',
        'cluster victim using victim_pkey',
        'reindex table victim',
        'refresh materialized view mv',
        'checkpoint',
        "load 'auto_explain'",
      ]);
      expect(await files()).toBe(before.files);
      expect(await db("select coalesce(last_vacuum::text, 'never') || ',' || coalesce(last_analyze::text, 'never') from pg_stat_user_tables where relname = 'victim'")).toBe('never,never');
      expect(await db("select ispopulated from pg_matviews where matviewname = 'mv'")).toBe('f');
      expect(await checkpoints()).toBe(before.checkpoints);
      expect(value(await f.simple("select count(*) from pg_settings where name like 'auto_explain.%'"))).toBe('0');
    } finally {
      f.destroy();
    }
  });

  it('refuses functions that reach server files, large objects or the server state; the server holds what it held', async () => {
    const target = `/tmp/hoop-ro-${randomBytes(6).toString('hex')}`;
    // The server itself runs lo_export in a read-only transaction.
    await db(`begin read only; select lo_export(${LO}, '${target}'); rollback`);
    expect(existsSync(target)).toBe(true);
    rmSync(target, { force: true });
    const lo = async (): Promise<string> => db(`select count(*) || ',' || convert_from(lo_get(${LO}), 'UTF8') from pg_largeobject_metadata`);
    expect(await lo()).toBe('1,secret');
    const f = await open(via);
    try {
      await refused(f, [
        `select lo_export(${LO}, '${target}')`,
        `select pg_catalog.lo_export(${LO}, '${target}')`,
        `select query_to_xml('select lo_export(${LO}, ''${target}'')', true, true, '')`,
        "select pg_read_file('/etc/hostname')",
        "select pg_read_binary_file('/etc/hostname')",
        "select * from pg_ls_dir('.')",
        "select pg_stat_file('postgresql.conf')",
        "select lo_import('/etc/hostname')",
        "select lo_from_bytea(0, 'x')",
        'select lo_create(0)',
        `select lo_unlink(${LO})`,
        `select lo_put(${LO}, 0, 'X')`,
        'select pg_stat_reset()',
        'select pg_reload_conf()',
        'select pg_switch_wal()',
        "select pg_create_restore_point('hoop')",
        "select pg_logical_emit_message(true, 'hoop', 'x')",
      ]);
      expect(existsSync(target)).toBe(false);
      expect(await lo()).toBe('1,secret');
      // Reading the database's own large objects and settings is fine.
      expect(value(await f.simple(`select convert_from(lo_get(${LO}), 'UTF8')`))).toBe('secret');
      expect(value(await f.simple("select setting from pg_settings where name = 'default_transaction_read_only'"))).toBe('on');
    } finally {
      f.destroy();
      rmSync(target, { force: true });
    }
  });
});
