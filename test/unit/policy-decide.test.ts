import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  BACKEND_SIGNAL_RULE,
  DERIVED_RULE,
  LEXING_RULE,
  LIMIT_RULE,
  READ_ONLY_RULE,
  RULED_RENAME_RULE,
  SIDE_CHANNEL_RULE,
  UNGUARDED_CODE_RULE,
  UNPARSEABLE_RULE,
  UNSEEN_READ_RULE,
} from '../../src/policy/built-in-rules.js';
import { StatementJudge, type Decision } from '../../src/policy/decide.js';
import { limitProblem, parseTimeSetting, rint, type SessionLimits } from '../../src/policy/limits.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import { loadPolicyDir } from '../../src/policy/load.js';
import type { Action, Policy, StatementRule, Who } from '../../src/policy/schema.js';
import { EXAMPLE_RULES, emptyPolicy } from '../harness/policy.js';

beforeAll(async () => {
  await loadSqlParser();
});

function policy(rules: StatementRule[], unparseable: Action = 'deny'): Policy {
  return emptyPolicy({ statements: { unparseable, rules } });
}

const alice: Who = { subject: 'alice', email: 'alice@example.com', groups: ['dba'] };
const carol: Who = { subject: 'carol', groups: ['contractors'] };

const rules = EXAMPLE_RULES;

function judge(who: Who = alice, mode: 'read-only' | 'read-write' = 'read-write', connection = 'prod-db', r = rules): StatementJudge {
  return new StatementJudge(policy(r), who, connection, mode);
}

function expectDecision(d: Decision, action: Action, rule?: string): void {
  expect({ action: d.action, rule: d.rule }).toEqual({ action, rule });
}

describe('rule matching (read-write)', () => {
  const j = judge();
  it.each([
    ['select 1', 'allow', undefined],
    ['select * from public.cards', 'allow', undefined],
    ['drop table x', 'review', 'drop-needs-review'],
    ['DROP TABLE IF EXISTS x CASCADE', 'review', 'drop-needs-review'],
    ['/* harmless */ drop -- sneaky\n table x', 'review', 'drop-needs-review'],
    ['truncate t', 'review', 'drop-needs-review'],
    ['delete from t', 'deny', 'no-unbounded-writes'],
    ['DeLeTe FrOm t WHERE 1=1', 'deny', 'no-unbounded-writes'],
    ['update t set a = 1 where true', 'deny', 'no-unbounded-writes'],
    ['update t set a = 1 where id = 1 or 1 = 1', 'deny', 'no-unbounded-writes'],
    ['update t set a = 1 where id = 1', 'allow', undefined],
    ['delete from t where current of c', 'allow', undefined],
    ['explain delete from t', 'allow', undefined],
    ['explain analyze delete from t', 'deny', 'no-unbounded-writes'],
    ['EXPLAIN (ANALYZE, COSTS OFF) DELETE FROM t', 'deny', 'no-unbounded-writes'],
    ['explain (analyze false) delete from t', 'allow', undefined],
    ['prepare p as delete from t', 'deny', 'no-unbounded-writes'],
    ['with d as (delete from t returning *) select * from d', 'deny', 'no-unbounded-writes'],
    ['with d as (delete from t where id = 1 returning *) select * from d', 'review', 'no-cte-writes'],
    ['WITH u AS (UPDATE t SET a = 1 WHERE id = 1 RETURNING *) SELECT * FROM u', 'review', 'no-cte-writes'],
    ["select pg_read_file('/etc/passwd')", 'deny', 'no-file-access'],
    ["select * from pg_catalog.pg_read_binary_file('/etc/passwd')", 'deny', 'no-file-access'],
    ["select * from dblink('host=x', 'select 1') as t(a int)", 'deny', 'no-file-access'],
    ["select dblink_exec('host=x', 'drop table y')", 'deny', 'no-file-access'],
    ["select set_config('role', 'postgres', false)", 'deny', 'no-set-config'],
    ["SELECT pg_catalog.SET_CONFIG('role', 'postgres', false)", 'deny', 'no-set-config'],
    ["select \"set_config\"('search_path', 'billing', false)", 'deny', 'no-set-config'],
    ['set role postgres', 'deny', 'no-role-switch'],
    ['SET LOCAL ROLE postgres', 'deny', 'no-role-switch'],
    ['reset role', 'deny', 'no-role-switch'],
    ['set session authorization postgres', 'deny', 'no-role-switch'],
    ['set search_path = billing', 'allow', undefined],
    ['select 1; drop table x', 'deny', 'no-batches-with-ddl'],
    ['select 1; create table y (a int)', 'deny', 'no-batches-with-ddl'],
    ['drop table x', 'review', 'drop-needs-review'],
    ['select 1; select 2', 'allow', undefined],
    ["select ';drop table x;'", 'allow', undefined],
    ['select $$; drop table x; $$', 'allow', undefined],
    ['do $$ begin drop table x; end $$', 'review', 'do-needs-review'],
    ['call p()', 'review', 'do-needs-review'],
    ['create function f() returns int language sql as $$ select 1 $$', 'review', 'do-needs-review'],
    ['copy t from stdin', 'allow', 'program-copy'],
    ["copy t from program 'id'", 'allow', 'program-copy'],
    ['grant select on t to bob', 'deny', 'prod-only-grants'],
    ['junk', 'deny', UNPARSEABLE_RULE],
    ['', 'allow', undefined],
  ] as const)('%j -> %s %s', (sql, action, rule) => {
    expectDecision(j.judge(sql), action, rule);
  });
});

describe('identity, group and connection conditions', () => {
  it('contractors may not touch cards or billing, whatever the spelling', () => {
    const j = judge(carol);
    for (const sql of [
      'select * from cards',
      'select * from public.cards',
      'select * from "public"."cards"',
      'select * from "Cards"',
      'select * from PUBLIC.CARDS',
      'select * from U&"c\\0061rds"',
      'select * from billing.invoices',
      'select * from orders o join billing.x b on b.id = o.id',
      'select * from orders where id in (select order_id from billing.items)',
      'with x as (select * from cards) select * from x',
      'with cards as (select * from cards) select * from cards',
      'copy (select * from cards) to stdout',
      'copy cards to stdout',
      'insert into billing.audit values (1)',
      'explain select * from cards',
      'prepare p as select * from cards',
      'declare c cursor for select * from cards',
      'select 1; select * from cards',
      'grant select on all tables in schema billing to carol',
      'create table t2 as select * from cards',
      'select * into t3 from cards',
      '/* cards */ select * from -- x\n cards',
    ]) {
      expectDecision(judge(carol).judge(sql), 'deny', 'contractors-no-cards');
      expect(j.judge(sql).action).toBe('deny');
    }
  });

  it('the same statements are not denied for others, and other tables are fine for contractors', () => {
    expectDecision(judge(alice).judge('select * from cards'), 'allow', undefined);
    expectDecision(judge(carol).judge('select * from orders'), 'allow', undefined);
    expectDecision(judge(carol).judge('select * from other.cards_x'), 'allow', undefined);
    expectDecision(judge(carol).judge('with cards as (select 1) select * from cards'), 'allow', undefined);
  });

  it('subjects and connections narrow a rule', () => {
    expectDecision(judge(carol).judge('copy t from stdin'), 'review', 'copy-review');
    expectDecision(judge(alice).judge('copy t from stdin'), 'allow', 'program-copy');
    expectDecision(judge(alice, 'read-write', 'staging-db').judge('grant select on t to bob'), 'allow', undefined);
    expectDecision(judge(alice, 'read-write', 'prod-db').judge('grant select on t to bob'), 'deny', 'prod-only-grants');
  });

  it('a "*" subject or connection matches everyone / everything', () => {
    const r: StatementRule[] = [{ name: 'all', match: { subjects: ['*'], connections: ['*'], kinds: ['select'] }, action: 'review' }];
    expectDecision(judge(carol, 'read-write', 'x', r).judge('select 1'), 'review', 'all');
  });
});

describe('precedence', () => {
  it('deny beats review beats allow, whatever the file order', () => {
    const r: StatementRule[] = [
      { name: 'a-allow', match: { kinds: ['delete'] }, action: 'allow' },
      { name: 'b-review', match: { kinds: ['delete'] }, action: 'review' },
      { name: 'c-deny', match: { tables: ['t'] }, action: 'deny' },
      { name: 'd-review', match: { tables: ['u'] }, action: 'review' },
    ];
    const j = judge(alice, 'read-write', 'db', r);
    expectDecision(j.judge('delete from t where id = 1'), 'deny', 'c-deny');
    expectDecision(j.judge('delete from u where id = 1'), 'review', 'b-review');
    expectDecision(j.judge('delete from v where id = 1'), 'review', 'b-review');
    expectDecision(j.judge('select * from u'), 'review', 'd-review');
    expectDecision(j.judge('select * from w'), 'allow', undefined);
  });

  it('ties go to the rule first in file order', () => {
    const r: StatementRule[] = [
      { name: 'first', match: { kinds: ['drop'] }, action: 'deny', message: 'one' },
      { name: 'second', match: { tables: ['x'] }, action: 'deny', message: 'two' },
    ];
    const d = judge(alice, 'read-write', 'db', r).judge('drop table x');
    expect(d).toMatchObject({ action: 'deny', rule: 'first', message: 'one' });
    expect(d.reason).toContain('rule "first" (deny)');
  });

  it('an allow never overrides a matching review or deny', () => {
    const r: StatementRule[] = [
      { name: 'alice-may-drop', match: { kinds: ['drop'], subjects: ['alice'] }, action: 'allow' },
      { name: 'drop-review', match: { kinds: ['drop'] }, action: 'review' },
    ];
    expectDecision(judge(alice, 'read-write', 'db', r).judge('drop table x'), 'review', 'drop-review');
  });

  it('an explicit allow is reported when it is the only match', () => {
    const r: StatementRule[] = [{ name: 'ok-selects', match: { kinds: ['select'] }, action: 'allow' }];
    expectDecision(judge(alice, 'read-write', 'db', r).judge('select 1'), 'allow', 'ok-selects');
  });

  it('a rule with no match fields matches every statement', () => {
    const r: StatementRule[] = [{ name: 'everything', match: {}, action: 'review' }];
    expectDecision(judge(alice, 'read-write', 'db', r).judge('select 1'), 'review', 'everything');
  });

  it('the most restrictive statement of a multi-statement string decides; ties go to the earlier one', () => {
    const r: StatementRule[] = [
      { name: 'r-drop', match: { kinds: ['drop'] }, action: 'review' },
      { name: 'd-trunc', match: { kinds: ['truncate'] }, action: 'deny' },
      { name: 'r-alter', match: { kinds: ['alter'] }, action: 'review' },
    ];
    const j = judge(alice, 'read-write', 'db', r);
    const d = j.judge('select 1; drop table x; truncate t; select 2');
    expect(d).toMatchObject({ action: 'deny', rule: 'd-trunc', statement: 2 });
    expect(d.reason).toContain('statement 3 of 4');
    expect(j.judge('alter table t add c int; drop table x')).toMatchObject({ action: 'review', rule: 'r-alter', statement: 0 });
    expect(j.judge('select 1; select 2')).toMatchObject({ action: 'allow' });
  });

  it('multiStatement matches only strings with more than one statement', () => {
    const r: StatementRule[] = [{ name: 'no-batches', match: { multiStatement: true }, action: 'deny' }];
    const j = judge(alice, 'read-write', 'db', r);
    expectDecision(j.judge('select 1; select 2'), 'deny', 'no-batches');
    expectDecision(j.judge('select 1;'), 'allow', undefined);
    expectDecision(j.judge('select 1; -- and a comment'), 'allow', undefined);
    expectDecision(j.judge("select 'a;b'"), 'allow', undefined);
  });

  it('umbrella kinds', () => {
    const r: StatementRule[] = [
      { name: 'ddl', match: { kinds: ['ddl'] }, action: 'deny' },
      { name: 'write', match: { kinds: ['write'] }, action: 'review' },
    ];
    const j = judge(alice, 'read-write', 'db', r);
    for (const sql of ['create table x (a int)', 'alter table x add b int', 'drop view v', 'create function f() returns int language sql return 1']) {
      expectDecision(j.judge(sql), 'deny', 'ddl');
    }
    for (const sql of [
      'insert into t values (1)',
      'update t set a = 1 where id = 1',
      'delete from t where id = 1',
      'merge into t using s on t.id = s.id when matched then delete',
      'truncate t',
      'copy t from stdin',
      'with d as (delete from t where id = 1 returning *) select * from d',
      'explain analyze insert into t values (1)',
      'prepare p as insert into t values (1)',
    ]) {
      expectDecision(j.judge(sql), 'review', 'write');
    }
    for (const sql of ['select 1', 'copy t to stdout', 'explain insert into t values (1)', 'set role x', 'grant select on t to x']) {
      expectDecision(j.judge(sql), 'allow', undefined);
    }
  });
});

describe('read-only access', () => {
  const j = judge(alice, 'read-only', 'prod-db', []);
  it.each([
    'insert into t values (1)',
    'update t set a = 1 where id = 1',
    'delete from t where id = 1',
    'merge into t using s on t.id = s.id when matched then delete',
    'truncate t',
    'copy t from stdin',
    "copy t to program 'cat > /tmp/x'",
    'create table x (a int)',
    'select * into x from t',
    'create table x as select 1',
    'alter table t add column b int',
    'drop table t',
    'create function f() returns int language sql return 1',
    'grant select on t to bob',
    'revoke select on t from bob',
    'set role postgres',
    'reset role',
    'set session authorization postgres',
    'do $$ begin null; end $$',
    'call p()',
    'with d as (delete from t where id = 1 returning *) select * from d',
    'explain analyze delete from t where id = 1',
    'prepare p as update t set a = 1 where id = 1',
    'select 1; delete from t where id = 1',
    'discard all',
    "copy t to '/tmp/x'",
    "copy t from '/tmp/x'",
    "copy (select * from t) to '/tmp/x' with (format csv)",
    "select set_config('role', 'postgres', false)",
    "select pg_catalog.set_config('ROLE', 'postgres', true)",
    "select set_config('session_authorization', 'postgres', false)",
    'set local role postgres',
    'set default_transaction_read_only = off',
    'set default_transaction_read_only to false',
    'set transaction_read_only = 0',
    "select set_config('default_transaction_read_only', 'off', false)",
    'begin read write',
    'start transaction isolation level serializable, read write',
    'set transaction read write',
    'set session characteristics as transaction read write',
    // transaction_read_only's reset value is off: RESET / DEFAULT make the transaction read-write.
    'reset transaction_read_only',
    'set transaction_read_only to default',
    'set local transaction_read_only = default',
    'begin; reset transaction_read_only; select bump(); commit',
    "select set_config('transaction_read_only', 'off', true)",
    // Locks that block other sessions, maintenance, commands on the server.
    'lock t',
    'lock table t in row share mode',
    'lock t in row exclusive mode',
    'lock t in share mode nowait',
    'lock table t in access exclusive mode',
    'vacuum',
    'vacuum full t',
    'analyze t',
    'vacuum (analyze, verbose) t',
    'cluster t using t_pkey',
    'reindex table t',
    'refresh materialized view m',
    'checkpoint',
    "load 'auto_explain'",
    // Functions that reach server files, other databases or the server's state.
    "select lo_export(16400, '/tmp/x')",
    "select pg_catalog.lo_import('/etc/hostname')",
    "select pg_read_file('/etc/passwd')",
    "select pg_read_binary_file('global/pg_control')",
    "select * from pg_ls_dir('.')",
    'select * from pg_catalog.pg_ls_waldir()',
    "select pg_stat_file('postgresql.conf')",
    "select pg_file_write('/tmp/x', 'y', false)",
    "select * from dblink('dbname=app', 'select 1') as t(a int)",
    "select dblink_exec('dbname=app', 'delete from t')",
    'select pg_reload_conf()',
    'select pg_rotate_logfile()',
    'select pg_switch_wal()',
    "select pg_create_restore_point('x')",
    'select pg_promote()',
    "select pg_backup_start('x')",
    "select pg_start_backup('x')",
    "select pg_replication_origin_create('x')",
    "select pg_create_logical_replication_slot('s', 'test_decoding')",
    "select pg_drop_replication_slot('s')",
    "select * from pg_logical_slot_get_changes('s', null, null)",
    'select lo_create(0)',
    "select lo_from_bytea(0, 'x')",
    'select lo_unlink(16400)',
    "select lo_put(16400, 0, 'x')",
    'select lowrite(0, $1)',
    'select lo_truncate64(0, 0)',
    'select pg_stat_reset()',
    "select pg_stat_reset_shared('bgwriter')",
    "select pg_logical_emit_message(true, 'x', 'y')",
    "select pg_import_system_collations('pg_catalog')",
    "select query_to_xml('select lo_export(16400, $$/tmp/x$$)', true, true, '')",
    "select * from ts_stat('select to_tsvector(body) from notes')",
    'select 1 where exists (select pg_read_file($1))',
  ])('%j is denied', (sql) => {
    const d = j.judge(sql);
    expectDecision(d, 'deny', READ_ONLY_RULE);
    expect(d.message).toMatch(/^read-only access to "prod-db" does not allow /);
  });

  it.each([
    'select * from t',
    'select 1; select 2',
    'explain delete from t',
    'copy t to stdout',
    'copy (select * from t) to stdout',
    'set search_path = public',
    'show work_mem',
    'begin',
    'commit',
    'prepare p as select 1',
    'execute p',
    'declare c cursor for select 1',
    'fetch 10 from c',
    'listen x',
    'select pg_sleep(0)',
    'begin read only',
    'begin isolation level serializable',
    'set default_transaction_read_only = on',
    'set default_transaction_read_only to default',
    'reset default_transaction_read_only',
    "select set_config('application_name', 'x', false)",
    'set transaction_read_only = on',
    'reset all',
    'lock table t in access share mode',
    'begin; lock t in access share mode nowait',
    'select lo_get(16400)',
    'select loread(lo_open(16400, 262144), 10)',
    "select * from pg_settings where name = 'statement_timeout'",
    "select current_setting('transaction_read_only')",
    'select pg_current_logfile()',
    'show transaction_read_only',
  ])('%j is allowed (a volatile function called by SELECT cannot be known: the upstream session is read-only too)', (sql) => {
    expectDecision(j.judge(sql), 'allow', undefined);
  });

  it('read-only decides before any rule', () => {
    const r: StatementRule[] = [{ name: 'also-deny', match: { kinds: ['drop'] }, action: 'deny' }];
    expectDecision(judge(alice, 'read-only', 'db', r).judge('drop table x'), 'deny', READ_ONLY_RULE);
  });
});

describe('read-only refusals name what they refuse', () => {
  const j = judge(alice, 'read-only', 'db', []);
  it.each([
    ['lock t', 'LOCK in ACCESS EXCLUSIVE mode (only ACCESS SHARE'],
    ['checkpoint', 'CHECKPOINT statements'],
    ["load 'x'", 'LOAD statements'],
    ['vacuum t', 'vacuum statements'],
    ["select x.lo_export(1, '/tmp/x')", 'calling x.lo_export()'],
    ['reset transaction_read_only', 'read-write transaction statements'],
  ])('%j: %s', (sql, said) => {
    const d = j.judge(sql);
    expectDecision(d, 'deny', READ_ONLY_RULE);
    expect(d.message).toContain(said);
  });

  it('read-write access is not affected', () => {
    for (const sql of ['lock t', 'checkpoint', 'vacuum t', "select lo_export(1, '/tmp/x')", 'reset transaction_read_only']) {
      expectDecision(judge(alice, 'read-write', 'db', []).judge(sql), 'allow', undefined);
    }
  });
});

describe('PostgreSQL time settings, read as the server reads them (parse_int: rint, half to even)', () => {
  // Each value as PostgreSQL 15 stores it (SET lock_timeout = '<text>'; SHOW / pg_settings.setting);
  // undefined where the server refuses the value. test/integration/pg-limits.test.ts checks the
  // same list against a running server.
  it.each([
    ['0.5', 0],
    ['1.5', 2],
    ['2.5', 2],
    ['3.5', 4],
    ['0.4', 0],
    ['0.6', 1],
    ['500us', 0],
    ['1500us', 2],
    ['2500us', 2],
    ['2.5us', 0],
    ['0.5ms', 0],
    ['1.5ms', 2],
    ['0.5004ms', 0],
    ['0.5006ms', 1],
    ['1.4996ms', 2],
    ['1e-3s', 1],
    ['5e-4s', 0],
    ['1.5e-3s', 2],
    ['0.0005s', 0],
    ['0.5 s', 500],
    ['1.0000005s', 1000],
    ['0.00001min', 0],
    ['1.0000083min', 60_000],
    ['0.5min', 30_000],
    ['1.5 h', 5_400_000],
    ['1d', 86_400_000],
    ['1500.5', 1500],
    ['1501.5', 1502],
    ['1e3', 1000],
    ['.5', 0],
    ['5.', 5],
    ['+3', 3],
    [' 7 ms ', 7],
    ['010', 8],
    ['010.5', 10],
    ['0x10', 16],
    ['0x10.8', 16],
    ['0x1.8p1', 3],
    ['-0.4', 0],
    ['-0.5', 0],
    ['-0.6', -1],
    ['-1', -1],
    ['2147483647', 2_147_483_647],
    ['7MS', undefined],
    ['5 mins', undefined],
    ['0x', undefined],
    ['08', undefined],
    ['1e', undefined],
    ['-.5', undefined],
    [' .5', undefined],
    ['inf', undefined],
    ['1e-310', undefined],
    ['25d', undefined],
    ['2147483648', undefined],
    ['', undefined],
  ] as const)('%j is %s ms', (text, ms) => {
    expect(parseTimeSetting(text)).toBe(ms);
  });

  it('rint rounds halves to the even integer', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999, 2.5001].map(rint)).toEqual([0, 2, 2, 0, -2, -2, 2, 3]);
  });

  it('a value the server reads as 0 or less turns the limit off and is refused', () => {
    const limits: SessionLimits = { statement_timeout: 1500 };
    for (const v of ['0', '0.5', '500us', '0.5ms', '0.00001min', '-0.4', '-1']) {
      expect(limitProblem(limits, 'statement_timeout', v), v).toMatch(/would turn the limit off|which is no time/);
    }
    for (const v of ['1', '0.6', '1.5', '1500', '1500.5', '1.5s', 'default']) expect(limitProblem(limits, 'statement_timeout', v), v).toBeUndefined();
    expect(limitProblem(limits, 'statement_timeout', '1501.5')).toMatch(/1502 ms is more/);
  });
});

describe('server timeouts (access limits)', () => {
  const limits: SessionLimits = { statement_timeout: 1500, lock_timeout: 1000 };
  const j = new StatementJudge(policy([]), alice, 'db', 'read-write', { limits });
  const free = new StatementJudge(policy([]), alice, 'db', 'read-write');

  it.each([
    "set statement_timeout = '0.5'",
    'set statement_timeout = 0.5',
    "set statement_timeout = '500us'",
    "set lock_timeout = '2.5us'",
    "select set_config('statement_timeout', '0.5ms', false)",
    "select set_config('lock_timeout', '0.00001min', false)",
    "set statement_timeout = '1501.5'",
    "select set_config('statement_timeout', '1'::char(1), false)",
    // Stored to run later: judged as if the statement set it.
    "create view v as select set_config('statement_timeout', '0', false)",
    "create or replace view v as select set_config('lock_timeout', '0.5', false) as x",
    "create function f() returns text language sql begin atomic select set_config('statement_timeout', '0', false); end",
    "create function f() returns text language sql return set_config('lock_timeout', '0', false)",
    "create materialized view m as select set_config('statement_timeout', '0', false)",
    "create table t (a text default set_config('statement_timeout', '0', false))",
    'create function f() returns int language sql set lock_timeout = 0 return 1',
    "alter function f() set statement_timeout = '1h'",
    // Code the gateway cannot read.
    "do $$ begin perform set_config('statement_timeout', '0', false); end $$",
    "create function f() returns void language plpgsql as $$ begin perform set_config('statement_timeout', '0', false); end $$",
    "create function f() returns text language sql as $$ select set_config('statement_timeout', '0', false) $$",
    "select query_to_xml('select set_config(''statement_timeout'', ''0'', false)', true, true, '')",
  ])('%j is refused (session-limit)', (sql) => {
    const d = j.judge(sql);
    expectDecision(d, 'deny', LIMIT_RULE);
    expect(d.message).toMatch(/is limited|are limited/);
  });

  it.each([
    "update pg_settings set setting = '0' where name = 'statement_timeout'",
    "update pg_catalog.pg_settings set setting = '0' where name = 'lock_timeout'",
    "insert into pg_settings (name, setting) values ('statement_timeout', '0')",
    'create view v as select * from pg_settings',
    "select set_config((select 'statement_timeout'), '0', false)",
  ])('%j is refused as a set_config of a name hoop cannot know is', (sql) => {
    const unknown = j.judge("select set_config($1, '0', false)");
    expect(unknown.action).toBe('deny');
    expectDecision(j.judge(sql), 'deny', unknown.rule);
    expectDecision(judge(alice, 'read-only', 'db', []).judge(sql), 'deny', unknown.rule);
  });

  it.each([
    "set statement_timeout = '1s'",
    "set statement_timeout = '1.5'",
    "set statement_timeout = '1500.5'",
    "set statement_timeout = '1.5005s'",
    'reset statement_timeout',
    "set work_mem = '64MB'",
    'create view v as select 1',
    "create function f() returns int language sql set lock_timeout = '500ms' return 1",
    "select * from pg_settings where name = 'statement_timeout'",
    "select set_config('application_name', 'x', false)",
  ])('%j is allowed', (sql) => {
    expectDecision(j.judge(sql), 'allow', undefined);
  });

  it('code the gateway cannot read is refused only when the access has limits', () => {
    expectDecision(free.judge('do $$ begin null; end $$'), 'allow', undefined);
    expectDecision(free.judge("select query_to_xml('select 1', true, true, '')"), 'allow', undefined);
    expect(j.judge('do $$ begin null; end $$').message).toMatch(/statement_timeout, lock_timeout are limited .*a DO block/);
  });
});

describe('COPY to and from server files and programs', () => {
  const r: StatementRule[] = [{ name: 'no-server-files', match: { copyTarget: ['file', 'program'] }, action: 'deny', message: 'COPY through the client only' }];
  it.each([
    ["copy t to '/tmp/x'", 'deny'],
    ["copy t from '/tmp/x'", 'deny'],
    ["copy t from program 'curl x'", 'deny'],
    ["copy (select 1) to program 'cat'", 'deny'],
    ['copy t to stdout', 'allow'],
    ['copy t from stdin', 'allow'],
    ['select 1', 'allow'],
  ] as const)('with read-write access, a copyTarget rule matches %j -> %s', (sql, action) => {
    expect(judge(alice, 'read-write', 'db', r).judge(sql).action).toBe(action);
  });
});

describe('functions that signal other backends', () => {
  it.each(['select pg_terminate_backend(123)', 'select pg_catalog.pg_cancel_backend(pid) from pg_stat_activity', 'select pg_signal_backend(1, 15)', 'select 1 where pg_cancel_backend(2)'])(
    '%j is refused by default, also for read-write access',
    (sql) => {
      const d = judge(alice, 'read-write', 'db', []).judge(sql);
      expectDecision(d, 'deny', BACKEND_SIGNAL_RULE);
      expect(d.message).toContain('shares the gateway');
    },
  );

  it('an allow rule naming the function lifts it, for whom it matches', () => {
    const r: StatementRule[] = [{ name: 'dba-may-terminate', match: { functions: ['pg_terminate_backend'], groups: ['dba'] }, action: 'allow' }];
    expectDecision(judge(alice, 'read-write', 'db', r).judge('select pg_terminate_backend(123)'), 'allow', 'dba-may-terminate');
    expectDecision(judge(carol, 'read-write', 'db', r).judge('select pg_terminate_backend(123)'), 'deny', BACKEND_SIGNAL_RULE);
    expectDecision(judge(alice, 'read-write', 'db', r).judge('select pg_cancel_backend(123)'), 'deny', BACKEND_SIGNAL_RULE);
  });
});

describe('parser consistency', () => {
  it.each([
    'set standard_conforming_strings = off',
    "set client_encoding = 'SJIS'",
    "select set_config('standard_conforming_strings', 'off', false)",
    'select 1; set standard_conforming_strings = off',
  ])('%j is denied whatever the rules say', (sql) => {
    const r: StatementRule[] = [{ name: 'allow-everything', match: {}, action: 'allow' }];
    for (const mode of ['read-write', 'read-only'] as const) {
      const d = judge(alice, mode, 'db', r).judge(sql);
      expectDecision(d, 'deny', LEXING_RULE);
      expect(d.message).toContain('standard_conforming_strings');
    }
  });

  it('the statement the setting would hide is seen as the server would see it with the setting on', () => {
    // With standard_conforming_strings=off the server reads this as a SELECT and a DROP; the
    // gateway reads it as one SELECT of a string. That is why the setting itself is refused.
    const sql = "select '\\'' ; drop table victim; -- '";
    expect(
      judge()
        .judge(sql)
        .statements?.map((s) => s.kinds),
    ).toEqual([['select']]);
  });

  it('safe values pass', () => {
    expectDecision(judge().judge("set client_encoding = 'UTF8'"), 'allow', undefined);
    expectDecision(judge().judge('set standard_conforming_strings = on'), 'allow', undefined);
  });
});

describe('side channels of masked values', () => {
  it.each(['mask', 'deny'] as const)('with derived: %s, refuses pg_notify / set_config of a masked value, not of others', (derived) => {
    const p: Policy = { ...policy([]), masking: { columns: [{ table: 'public.customers', column: 'email', strategy: 'redact' }], names: [], detectors: [], derived } };
    const j = new StatementJudge(p, alice, 'prod-db', 'read-write');
    for (const sql of [
      "select pg_notify('ch', email) from customers",
      "select 1 from customers where pg_notify('ch', upper(email)) is null",
      "select set_config('application_name', c::text, false) from customers c",
      "select pg_notify('ch', s.e) from (select email as e from customers) s",
    ]) {
      const d = j.judge(sql);
      expectDecision(d, 'deny', SIDE_CHANNEL_RULE);
      expect(d.message).toContain('masking cannot change');
    }
    expectDecision(j.judge("select pg_notify('ch', note) from customers"), 'allow');
    expectDecision(j.judge("select pg_notify('ch', email) from orders"), 'allow');
    expectDecision(j.judge("select pg_notify('ch', 'literal')"), 'allow');
  });
});

describe('reads the gateway cannot see', () => {
  const reads = [
    "select query_to_xml('select * from cards', true, false, '')",
    "select table_to_xml('cards', true, false, '')",
    "select cursor_to_xml('c', 10, true, false, '')",
    "select pg_catalog.schema_to_xml('public', true, false, '')",
    "select * from dblink('dbname=app', 'select * from cards') as t(x text)",
  ];

  it.each(reads)('%j is refused when a rule names tables, allowed otherwise', (sql) => {
    const deny: StatementRule[] = [{ name: 'no-cards', match: { tables: ['cards'] }, action: 'deny' }];
    const d = judge(alice, 'read-write', 'db', deny).judge(sql);
    expectDecision(d, 'deny', UNSEEN_READ_RULE);
    expect(d.message).toContain('cannot judge');
    expectDecision(judge(alice, 'read-write', 'db', [{ name: 'no-drop', match: { kinds: ['drop'] }, action: 'deny' }]).judge(sql), 'allow');
  });

  it('with masking rules, refuses those; the planner statistics are read with their value columns masked, and with derived: deny a value computed from them is refused', () => {
    const masking: Policy['masking'] = { columns: [{ table: 'public.customers', column: 'email', strategy: 'redact' }], names: [], detectors: [], derived: 'mask' };
    const j = new StatementJudge({ ...policy([]), masking }, alice, 'prod-db', 'read-write');
    for (const sql of reads) {
      const d = j.judge(sql);
      expectDecision(d, 'deny', SIDE_CHANNEL_RULE);
      expect(d.message).toContain('cannot trace');
    }
    const statistics = [
      "select most_common_vals from pg_stats where tablename = 'customers'",
      'select * from pg_catalog.pg_statistic',
      'select * from pg_stats_ext',
      'select * from pg_stats_ext_exprs',
      'select stxdmcv from pg_statistic_ext_data',
    ];
    for (const sql of statistics) expectDecision(j.judge(sql), 'allow');
    expectDecision(j.judge('select relname from pg_class'), 'allow');
    // The definitions of extended statistics (psql's \d and \dX list them) hold no values.
    expectDecision(j.judge("select stxname, stxkind from pg_catalog.pg_statistic_ext where stxrelid = 'customers'::regclass"), 'allow');
    const strict = new StatementJudge({ ...policy([]), masking: { ...masking, derived: 'deny' } }, alice, 'prod-db', 'read-write');
    for (const sql of statistics) expectDecision(strict.judge(sql), 'allow');
    for (const sql of [
      "select array_to_string(most_common_vals, ',') from pg_stats",
      'select stavalues1::text from pg_catalog.pg_statistic',
      "select histogram_bounds || '' from pg_catalog.pg_stats",
    ]) {
      expectDecision(strict.judge(sql), 'deny', DERIVED_RULE);
    }
    expectDecision(strict.judge('select attname, null_frac, n_distinct from pg_stats'), 'allow');
  });
});

describe('unparseable SQL', () => {
  it.each(['deny', 'review', 'allow'] as const)('follows the policy (%s)', (unparseable) => {
    const j = new StatementJudge(policy([], unparseable), alice, 'db', 'read-write');
    for (const sql of ['junk', 'selec 1', "select 'unterminated", 'select 1; junk', '/* open comment']) {
      const d = j.judge(sql);
      expect(d).toMatchObject({ action: unparseable, rule: UNPARSEABLE_RULE });
      expect(d.message).toContain('could not be parsed');
    }
  });

  it('defaults to deny in the loaded policy', () => {
    expectDecision(judge().judge('junk'), 'deny', UNPARSEABLE_RULE);
  });
});

describe('decisions', () => {
  it('say which rule and why, without the SQL text', () => {
    const d = judge(carol).judge("select * from cards where number = 'sekret'");
    expect(d.reason).toBe('rule "contractors-no-cards" (deny) matched the statement (select on cards): no card data for contractors');
    expect(d.reason).not.toContain('sekret');
    expect(judge().judge('select 1').reason).toBe('no statement rule matched the statement (select); allowed by default');
    expect(d.statements?.[0]?.tables).toEqual(['cards']);
  });

  it('carry what the engine needs for PREPARE / EXECUTE', () => {
    const j = judge();
    expect(j.judge('prepare p1 as select * from t').statements?.[0]?.preparedName).toBe('p1');
    expect(j.judge('execute p1').statements?.[0]?.executeName).toBe('p1');
  });
});

describe('cache', () => {
  it('returns the cached decision for the same text and stays bounded', () => {
    const j = new StatementJudge(policy(rules), alice, 'db', 'read-write', { cacheSize: 3 });
    const a = j.judge('select a from t');
    expect(j.judge('select a from t')).toBe(a);
    j.judge('select b from t');
    j.judge('select c from t');
    j.judge('select d from t');
    expect(j.cacheSize).toBe(3);
    expect(j.judge('select a from t')).not.toBe(a);
    expect(j.judge('select a from t')).toEqual(a);
  });

  it('does not cache very long texts', () => {
    const j = new StatementJudge(policy(rules), alice, 'db', 'read-write', { maxCachedText: 10 });
    j.judge('select 1 + 1 + 1');
    expect(j.cacheSize).toBe(0);
  });

  // The speed of a miss and of a hit: test/perf/policy-decide.test.ts (npm run bench:tests).
});

describe('shape cache (statements that differ only in numeric literals)', () => {
  const cardRules: StatementRule[] = [
    { name: 'no-cards', match: { tables: ['public.cards'] }, action: 'deny' },
    { name: 'unbounded', match: { kinds: ['delete'], missingWhere: true }, action: 'deny' },
    { name: 'no-t7', match: { tables: ['t7'] }, action: 'deny' },
  ];

  it('reuses the decision of a query that differs only in numbers, without parsing', () => {
    const j = judge(alice, 'read-write', 'db', cardRules);
    const first = j.judge('SELECT abalance FROM pgbench_accounts WHERE aid = 4711;');
    expect(first.statements).toHaveLength(1);
    const second = j.judge('SELECT abalance FROM pgbench_accounts WHERE aid = 99;');
    expect(second).toMatchObject({ action: 'allow' });
    expect(second.statements).toBeUndefined();
    expect(j.judge('update t set a = 1.5 where id = 2').action).toBe('allow');
    expect(j.judge('update t set a = 22.75 where id = 3').statements).toBeUndefined();
    expect(j.judge('select * from t where id in (1, 2, 3) limit 10').action).toBe('allow');
    expect(j.judge('select * from t where id in (4, 5, 6) limit 20').statements).toBeUndefined();
  });

  it.each([
    // [first text (allowed), second text (same shape, must be judged on its own)]
    ['select 1, * from U&"c\\0062rds"', 'select 2, * from U&"c\\0061rds"'],
    ["select 1, * from t where a = '1'", "select 2, * from t where a = '2'; select * from cards"],
    ['select 1 from t6', 'select 1 from t7'],
    ['select 1 /* 1 */ from t', 'select 1 /* 2 */ from t; delete from t'],
    ['explain (analyze 0) delete from t', 'explain (analyze 1) delete from t'],
    ['select 1 from t where id = -1', 'select 1 from t7 where id = -2'],
    ['select $1::int from t', 'select $2::int from cards'],
  ])('%j then %j', (a, b) => {
    const j = judge(alice, 'read-write', 'db', cardRules);
    expect(j.judge(a).action).toBe('allow');
    const fresh = judge(alice, 'read-write', 'db', cardRules).judge(b);
    const d = j.judge(b);
    expect({ action: d.action, rule: d.rule }).toEqual({ action: fresh.action, rule: fresh.rule });
  });

  it('a denial is still a denial for another number; settings are never shape-cached', () => {
    const j = judge(alice, 'read-write', 'db', cardRules);
    expectDecision(j.judge('select * from cards where id = 1'), 'deny', 'no-cards');
    expectDecision(j.judge('select * from cards where id = 2'), 'deny', 'no-cards');
    expectDecision(j.judge('set standard_conforming_strings = 1'), 'allow', undefined);
    expectDecision(j.judge('set standard_conforming_strings = 0'), 'deny', LEXING_RULE);
    expectDecision(j.judge("select set_config('standard_conforming_strings', 1::text, false)"), 'allow', undefined);
    expectDecision(j.judge("select set_config('standard_conforming_strings', 0::text, false)"), 'deny', LEXING_RULE);
  });

  // The speed of a shape hit: test/perf/policy-decide.test.ts (npm run bench:tests).
});

describe('with a policy loaded from YAML', () => {
  it('judges against the rules of a hoop.yaml', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hoop-decide-'));
    try {
      await writeFile(
        join(dir, 'hoop.yaml'),
        [
          'version: 1',
          'connections:',
          '  - { name: prod-db, type: postgres, host: 127.0.0.1, database: app, user: app, password: "${env:PW}" }',
          'access:',
          '  - { name: everyone, subjects: ["*"], connections: [prod-db] }',
          'statements:',
          '  rules:',
          '    - name: no-unbounded-writes',
          '      match: { kinds: [update, delete], missingWhere: true }',
          '      action: deny',
          '      message: "UPDATE/DELETE without WHERE"',
          '    - name: contractors-no-cards',
          '      match: { tables: ["public.cards", "billing.*"], groups: [contractors] }',
          '      action: deny',
          '',
        ].join('\n'),
      );
      const p = await loadPolicyDir(dir, { PW: 'x' });
      expect(p.statements.unparseable).toBe('deny');
      const j = new StatementJudge(p, carol, 'prod-db', 'read-write');
      expect(j.judge('delete from t')).toMatchObject({ action: 'deny', rule: 'no-unbounded-writes', message: 'UPDATE/DELETE without WHERE' });
      expectDecision(j.judge('select * from Cards'), 'deny', 'contractors-no-cards');
      expectDecision(j.judge('select * from orders'), 'allow', undefined);
      expectDecision(j.judge('junk'), 'deny', UNPARSEABLE_RULE);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the blast-radius guard (maxAffectedRows)', () => {
  const limited: StatementRule[] = [
    { name: 'orders-writes', match: { tables: ['orders'] }, action: 'allow', maxAffectedRows: 10, overLimit: 'review' },
    { name: 'tight', match: { tables: ['orders'], kinds: ['delete'] }, action: 'allow', maxAffectedRows: 2 },
  ];
  const withReviewers = (): Policy => ({ ...policy(limited), statements: { unparseable: 'deny', rules: limited, reviewers: [{ groups: ['dba'] }] } });
  const j = (rowLimit?: { maxRows: number; overLimit: 'deny' | 'review'; rule: string }): StatementJudge => new StatementJudge(withReviewers(), alice, 'x', 'read-write', rowLimit ? { rowLimit } : {});

  it('guards what changes rows, counted by the tag or, for writes the tag does not count, by statistics', () => {
    expect(j().judge('update orders set a = 1 where id = 1').guard).toMatchObject({
      maxRows: 10,
      overLimit: 'review',
      rule: 'orders-writes',
      count: 'tag',
      statements: [0],
      opensBlock: false,
      review: { groups: ['dba'] },
    });
    expect(j().judge('delete from orders').guard).toMatchObject({ maxRows: 2, overLimit: 'deny', rule: 'tight' }); // the strictest matching rule
    expect(j().judge('insert into orders values (1) on conflict (id) do update set a = 2').guard).toMatchObject({ count: 'tag' });
    expect(j().judge('merge into orders o using s on o.id = s.id when matched then delete').guard).toMatchObject({ count: 'tag', maxRows: 2 });
    expect(j().judge('with d as (delete from orders where id > 1 returning *) select count(*) from d').guard).toMatchObject({ count: 'stats' });
    expect(j().judge('explain analyze update orders set a = 1').guard).toMatchObject({ count: 'stats' });
    expect(j().judge('begin; update orders set a = 1 where id = 2').guard).toMatchObject({ statements: [1], opensBlock: true });
    // Nothing that changes no row: reads, plain INSERTs, a PREPARE (its EXECUTE is judged with the body), other tables.
    for (const sql of ['select * from orders', 'insert into orders values (1)', 'update other set a = 1']) expect(j().judge(sql).guard, sql).toBeUndefined();
    // A PREPARE runs nothing: its limit is for where an EXECUTE runs it.
    expect(j().judge('prepare p as delete from orders').guard).toMatchObject({ prepared: true, count: 'stats', maxRows: 2 });
  });

  it("applies the access's limit to every write, the stricter of it and a rule's", () => {
    expect(j({ maxRows: 5, overLimit: 'deny', rule: 'agents' }).judge('update other set a = 1').guard).toMatchObject({ maxRows: 5, rule: 'agents' });
    expect(j({ maxRows: 5, overLimit: 'deny', rule: 'agents' }).judge('update orders set a = 1').guard).toMatchObject({ maxRows: 5, rule: 'agents' });
    expect(j({ maxRows: 1, overLimit: 'deny', rule: 'agents' }).judge('delete from orders').guard).toMatchObject({ maxRows: 1, rule: 'agents' });
  });

  it('refuses a guarded write beside a transaction statement that would commit it uncounted, or a COPY FROM STDIN', () => {
    for (const sql of [
      'update orders set a = 1; commit',
      'begin; delete from orders where id = 1; commit',
      'rollback; update orders set a = 1',
      'update orders set a = 1; savepoint s',
      'copy orders from stdin; update orders set a = 1',
    ]) {
      expect(j().judge(sql), sql).toMatchObject({ action: 'deny', rule: 'write-guard' });
    }
    expect(j().judge('update other set a = 1; commit').action).toBe('allow'); // no limit on it
  });

  it('with rules on tables on a lane that can tell, judges a write again by the tables the server says it changed', () => {
    const rules: StatementRule[] = [
      ...limited,
      { name: 'keep-audit', match: { kinds: ['delete', 'update'], tables: ['audit'] }, action: 'deny' },
      { name: 'hold-pay', match: { kinds: ['update'], tables: ['billing.pay*'] }, action: 'review' },
    ];
    const p: Policy = { ...policy(rules), statements: { unparseable: 'deny', rules, reviewers: [{ groups: ['dba'] }] } };
    const k = (changedTables: boolean): StatementJudge => new StatementJudge(p, alice, 'x', 'read-write', { changedTables });
    const check = k(true).judge('update free set a = 1').guard!;
    expect(check).toMatchObject({ maxRows: Number.POSITIVE_INFINITY, rule: 'write-guard', count: 'tag', statements: [] });
    const t = (name: string, rows: Partial<{ inserted: number; updated: number; deleted: number }>, ancestors: string[] = []) => ({ name, ancestors, inserted: 0, updated: 0, deleted: 0, ...rows });
    // What it was judged on, and a table no rule names, stand; a rule it did not meet refuses it, named, by the kinds the server counted there.
    expect(check.changed!([t('public.free', { updated: 3 }), t('public.log', { inserted: 9 })])).toBeUndefined();
    expect(check.changed!([t('public.audit', { deleted: 1 })])).toMatchObject({ rule: 'keep-audit', reason: expect.stringContaining('deleted rows of public.audit') });
    expect(check.changed!([t('public.audit', { inserted: 5 })])).toBeUndefined(); // keep-audit is on updates and deletes
    expect(check.changed!([t('billing.payments', { updated: 1 })])).toMatchObject({ rule: 'hold-pay', reason: expect.stringContaining('holds for review') });
    // A partition or child is judged as its ancestors too.
    expect(check.changed!([t('public.audit_2026', { deleted: 1 }, ['public.audit'])])).toMatchObject({ rule: 'keep-audit' });
    // A row limit it did not have counts that table's updated and deleted rows (inserts are not limited).
    expect(check.changed!([t('public.orders', { updated: 11 }), t('public.free', { updated: 50 })])).toMatchObject({ rule: 'orders-writes', reason: expect.stringContaining('11 changed') });
    expect(check.changed!([t('public.orders', { updated: 10, inserted: 100 })])).toBeUndefined();
    // A write under its own limit keeps it, and the check; inserts are checked too; reads and other lanes are not.
    expect(k(true).judge('delete from orders where id = 1').guard).toMatchObject({ maxRows: 2, rule: 'tight', changed: expect.any(Function) });
    expect(k(true).judge('insert into free values (1)').guard?.changed).toBeTypeOf('function');
    expect(k(true).judge('select * from free').guard).toBeUndefined();
    expect(k(false).judge('update free set a = 1').guard).toBeUndefined();
    // A write it cannot check before it commits is refused, saying why.
    expect(k(true).judge('insert into free values (1); commit')).toMatchObject({ action: 'deny', rule: 'write-guard', reason: expect.stringContaining('check which tables it changed') });
    // A text that ends the block fires its deferred triggers: its guard settles them first and judges what they changed; a SET CONSTRAINTS is checked as a write.
    for (const sql of ['commit', 'END', 'commit and chain', "prepare transaction 'x'", 'commit; select 1', 'prepare p as update orders set a = 1; commit']) {
      const settles = k(true).judge(sql).guard!;
      expect(settles, sql).toMatchObject({ settles: true, maxRows: Number.POSITIVE_INFINITY, rule: 'write-guard', count: 'stats' });
      expect(settles.changed!([t('public.audit', { deleted: 1 })])).toMatchObject({ rule: 'keep-audit' });
    }
    for (const sql of ['rollback', "commit prepared 'x'", 'begin', 'savepoint s']) expect(k(true).judge(sql).guard, sql).toBeUndefined();
    expect(k(false).judge('commit').guard).toBeUndefined();
    expect(k(true).judge('set constraints all immediate').guard).toMatchObject({ changed: expect.any(Function) });
    expect(k(true).judge('set constraints audit immediate')).toMatchObject({ action: 'allow' }); // a constraint's name, not the table's
    expect(k(true).judge('update free set a = 1; set constraints all immediate')).toMatchObject({ action: 'allow', guard: { changed: expect.any(Function) } }); // counted after both
  });

  it('loads maxAffectedRows and overLimit, on allow rules and access rules only', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hoop-guard-policy-'));
    try {
      const head = ['version: 1', 'connections:', '  - { name: db, type: postgres, host: 127.0.0.1, database: app, user: app, password: "${env:PW}" }'];
      await writeFile(
        join(dir, 'hoop.yaml'),
        [
          ...head,
          'access:',
          '  - { name: agents, subjects: [agent], connections: [db], mode: read-write, maxAffectedRows: 100, overLimit: review }',
          'statements:',
          '  reviewers: [{ groups: [dba] }]',
          '  rules:',
          '    - { name: small, match: { kinds: [delete] }, action: allow, maxAffectedRows: 5 }',
          '',
        ].join('\n'),
      );
      const p = await loadPolicyDir(dir, { PW: 'x' });
      expect(p.access[0]).toMatchObject({ maxAffectedRows: 100, overLimit: 'review' });
      expect(p.statements.rules[0]).toMatchObject({ maxAffectedRows: 5, overLimit: 'deny' });
      await writeFile(
        join(dir, 'hoop.yaml'),
        [
          ...head,
          'access:',
          '  - { name: a, subjects: ["*"], connections: [db], overLimit: review }',
          'statements:',
          '  rules:',
          '    - { name: r, match: { kinds: [delete] }, action: deny, maxAffectedRows: 5 }',
          '',
        ].join('\n'),
      );
      const err = (await loadPolicyDir(dir, { PW: 'x' }).then(
        () => ({ problems: [] }),
        (e: unknown) => e,
      )) as { problems: string[] };
      expect(err.problems.join('\n')).toContain('maxAffectedRows');
      expect(err.problems.join('\n')).toContain("this rule's action is deny");
      expect(err.problems.join('\n')).toContain('overLimit');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('database roles the access allows', () => {
  const judge = new StatementJudge(emptyPolicy(), { subject: 'a', groups: [] }, 'db', 'read-write', { roles: ['app', 'admin'] });
  const decided = (sql: string): string => {
    const d = judge.judge(sql);
    return `${d.action} ${d.rule ?? ''}`.trim();
  };

  it('refuses becoming another, now or in later sessions (ALTER ROLE, DATABASE, SYSTEM … SET role), by name exactly as the server reads it', () => {
    for (const sql of [
      'set role boss',
      'set role "ADMIN"',
      "set role 'Admin'",
      "set role 'admin '",
      'set session authorization boss',
      "select set_config('role', 'ADMIN', false)",
      'alter role current_user set role = boss',
      'alter role app in database shop set role to boss',
      'alter database shop set role = boss',
      'alter system set role = boss',
      'alter user app set session_authorization = boss',
      'create function f() returns int language sql set role = boss as $$ select 1 $$',
    ])
      expect(decided(sql), sql).toBe('deny database-roles');
  });

  it('allows the roles it names, and going back to the session’s own', () => {
    for (const sql of [
      'set role admin',
      "select set_config('role', 'admin', false)",
      'set role none',
      'reset role',
      'set session authorization default',
      'alter role app set role = admin',
      'alter role app reset role',
    ])
      expect(decided(sql), sql).toBe('allow');
  });
});

describe('a deny or review rule on reading tables', () => {
  const rules: StatementRule[] = [
    { name: 'no-secrets', match: { kinds: ['select'], tables: ['secrets'] }, action: 'deny' },
    { name: 'look-at-pii', match: { kinds: ['select'], tables: ['customers'] }, action: 'review' },
    { name: 'reads-ok', match: { kinds: ['select'], tables: ['free'] }, action: 'allow' },
  ];
  const j = new StatementJudge(policy(rules), alice, 'prod-db', 'read-write');

  it('matches every statement that reads the table, whatever its kind', () => {
    for (const sql of [
      'copy secrets to stdout',
      'copy (select * from secrets) to stdout',
      'update secrets set s = s returning *',
      'delete from secrets where id = 1 returning s',
      'insert into secrets values (1) on conflict (id) do update set s = excluded.s returning s',
      'insert into free select * from secrets',
      'update free set v = (select s from secrets limit 1) where id = 1',
      'delete from free using secrets where free.id = secrets.id',
      'merge into free f using secrets s on f.id = s.id when matched then update set v = 1',
      'create view leak as select * from secrets',
      'with d as (delete from free where id = 1 returning id) select * from d, secrets',
    ])
      expectDecision(j.judge(sql), 'deny', 'no-secrets');
    expectDecision(j.judge('insert into orders select * from customers'), 'review', 'look-at-pii');
  });

  it("refuses what reads values of any table's columns past the rules: the planner's statistics, a relation's pages", () => {
    for (const sql of [
      "select most_common_vals from pg_stats where tablename = 'secrets'",
      'select * from pg_catalog.pg_statistic',
      'select * from pg_stats_ext_exprs',
      "select * from heap_page_items(get_raw_page('secrets', 0))",
    ])
      expectDecision(j.judge(sql), 'deny', UNSEEN_READ_RULE);
  });

  it('keeps the names the rules use: a ruled table is not renamed or moved, from or to its name, nor is a schema (the fifth attack on the write guard)', () => {
    for (const sql of [
      'alter table secrets rename to s2',
      'alter table if exists public.secrets set schema other',
      'alter table other_t rename to secrets',
      'alter schema public rename to p2',
      // An extension's member tables move with it (the fourth round: ALTER EXTENSION … ADD TABLE, then SET SCHEMA).
      'alter extension pg_trgm set schema side',
      'alter index secrets rename to s2',
      'alter sequence secrets rename to s2',
      'alter view secrets rename to s2',
    ])
      expectDecision(j.judge(sql), 'deny', RULED_RENAME_RULE);
    for (const sql of [
      'alter table parent detach partition secrets',
      // A comment between the words (the third attack), as the lexer reads it: a blank.
      'alter table parent detach /**/ partition secrets',
      'alter table parent attach--x\npartition secrets for values from (1) to (2)',
      'alter table secrets no inherit parent',
      'alter table secrets inherit parent',
      'alter table parent attach partition secrets for values from (1) to (2)',
    ])
      expectDecision(j.judge(sql), 'deny', RULED_RENAME_RULE);
    expectDecision(j.judge('alter table unruled rename to unruled2'), 'allow');
    expectDecision(j.judge('alter table unruled detach partition unruled_1'), 'allow');
  });

  it('refuses code it cannot read, which could rename a ruled table unseen, unless an allow rule names its kind (the round-three attack)', () => {
    for (const sql of [
      "create function f() returns void language sql as 'alter table secrets rename to s2'",
      'create or replace procedure p() language plpgsql as $$ begin execute $x$alter table secrets rename to s2$x$; end $$',
      "do 'begin execute ''alter table secrets rename to s2''; end'",
    ])
      expectDecision(j.judge(sql), 'deny', UNGUARDED_CODE_RULE);
    // A body hoop reads (SQL-standard) is judged as it is; an allow rule that names the kind lets the opaque one (a migration role).
    expectDecision(j.judge('create function g() returns int language sql return 1'), 'allow');
    const migrations = new StatementJudge(policy([...rules, { name: 'migrations', match: { kinds: ['create-function', 'do'] }, action: 'allow' }]), alice, 'prod-db', 'read-write');
    expectDecision(migrations.judge('create function f() returns trigger language plpgsql as $$ begin return new; end $$'), 'allow', 'migrations');
    expectDecision(migrations.judge('do $$ begin perform 1; end $$'), 'allow', 'migrations');
    const byGroup = new StatementJudge(policy([...rules, { name: 'ddl-ok', match: { kinds: ['ddl'] }, action: 'allow' }]), alice, 'prod-db', 'read-write');
    expectDecision(byGroup.judge("create function f() returns int language sql as 'select 1'"), 'deny', UNGUARDED_CODE_RULE);
  });

  it('refuses a function whose body writes, whose writes run uncounted when it is called (the fifth round); with an allow rule naming the kind, judges its body as what it does (the fourth)', () => {
    const keepRule: StatementRule = { name: 'keep', match: { kinds: ['delete'], tables: ['kept'] }, action: 'deny' };
    const keep = new StatementJudge(policy([keepRule]), alice, 'prod-db', 'read-write');
    const writing = [
      'create function purge() returns int language sql begin atomic delete from kept where id = (select max(id) from kept); select 1; end',
      'create procedure purge() language sql begin atomic delete from kept; end',
      'create or replace function purge() returns setof int language sql begin atomic with d as (delete from kept returning id) select id from d; end',
    ];
    for (const sql of [...writing, 'create function other() returns int language sql begin atomic insert into trg values (1); select 1; end'])
      expectDecision(keep.judge(sql), 'deny', UNGUARDED_CODE_RULE);
    // A body that only reads is made (its reads are judged as reads).
    expectDecision(keep.judge('create function fine() returns int language sql return (select count(*) from kept)'), 'allow');
    const trusted = new StatementJudge(policy([keepRule, { name: 'code', match: { kinds: ['create-function'] }, action: 'allow' }]), alice, 'prod-db', 'read-write');
    for (const sql of writing) expectDecision(trusted.judge(sql), 'deny', 'keep');
    expectDecision(trusted.judge('create function other() returns int language sql begin atomic delete from other; select 1; end'), 'allow', 'code');
  });

  it('matches no statement that only writes it, and an allow rule on reading admits no other kind', () => {
    for (const sql of [
      'update secrets set s = $1 where id = 1',
      'delete from secrets where id = 1',
      'insert into secrets values (1)',
      'insert into secrets values (1) returning id',
      'copy secrets from stdin',
    ])
      expect(j.judge(sql).action, sql).toBe('allow');
    // Written under a statement that reads other tables: a writable CTE's target, SELECT INTO's, CREATE TABLE AS's.
    for (const sql of [
      'with d as (delete from secrets where id = 1) select count(*) from free',
      'with x as (insert into secrets values (1)) select 1',
      'explain analyze with d as (delete from secrets where id = 1) select 1',
      'prepare p as with d as (delete from secrets where id = $1) select 1',
      'select * into secrets from free',
      'create table secrets as select 1',
    ])
      expect(j.judge(sql).action, sql).toBe('allow');
    expectDecision(j.judge('with d as (delete from secrets where id = 1 returning *) select * from d'), 'deny', 'no-secrets');
    expectDecision(j.judge('select * from free'), 'allow', 'reads-ok');
    expectDecision(j.judge('delete from free where id = 1 returning *'), 'allow', undefined);
  });
});
