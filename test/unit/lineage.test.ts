/**
 * Where each result column of a statement comes from (`analyze/lineage.ts`), written compactly:
 * `name<relation.column,...>` per column (`?` maybe, `#k` by place, `+opaque`), `[*rel]` for a
 * star over a relation, `[any: ...]` for a record of unknown width; `||` between set-operation branches.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeSql, loadSqlParser, type ColumnLineage, type LineageSegment, type StatementLineage } from '../../src/policy/sql/analyze.js';

beforeAll(loadSqlParser);

function lineage(sql: string): StatementLineage | undefined {
  const a = analyzeSql(sql);
  if (!a.ok) throw new Error(a.error);
  return a.statements[0]!.lineage;
}

function text(l: ColumnLineage): string {
  return (
    l.sources.map((s) => `${s.schema !== undefined ? `${s.schema}.` : ''}${s.relation}.${s.column}${s.position !== undefined ? `#${s.position}` : ''}${s.maybe ? '?' : ''}`).join(',') +
    (l.opaque ? '+opaque' : '')
  );
}

function segment(seg: LineageSegment): string {
  if ('relation' in seg) return `[*${seg.schema !== undefined ? `${seg.schema}.` : ''}${seg.relation}${seg.from ? `+${seg.from}` : ''}]`;
  if ('any' in seg) return `[any: ${text(seg.any)}]`;
  return `${seg.name ?? ''}<${text(seg.lineage)}>`;
}

function columns(sql: string): string {
  const l = lineage(sql);
  if (!l) return '(none)';
  return l.branches.map((b) => b.map(segment).join(' | ')).join(' || ');
}

function reads(sql: string): string {
  return text({ sources: lineage(sql)?.reads ?? [] });
}

describe('result columns', () => {
  it.each([
    // Plain columns, expressions, aliases.
    ['select id, upper(name) as n, 1 from t', 'id<t.id?> | n<t.name?> | ?column?<>'],
    ['select c.id, c.email || c.name from customers c', 'id<customers.id> | ?column?<customers.email,customers.name>'],
    ['select public.t.x from public.t', 'x<public.t.x>'],
    ['select count(*), now(), 2 + 2 from t', 'count<> | now<> | ?column?<>'],
    ['select x::text, (x)::int from t', 'x<t.x?> | x<t.x?>'],
    // Computed values of no column (issue 54: these came back masked).
    ['select t.b, t.a[1] from (select not true as b, array[1,2] as a) t', 'b<> | a<>'],
    ['select * from (values (1, $$a$$), (2, $$b$$)) v(x, y)', 'x<> | y<>'],
    // Subqueries, CTEs and renames are traced by name.
    ['select x from (select lower(email) as x, name from customers) s', 'x<customers.email?>'],
    ['select s.name from (select lower(email) as x, name from customers) s', 'name<customers.name?>'],
    ["select s.e || '' from (select email as e from customers) s", '?column?<customers.email?>'],
    ["select s.e || '' from (select * from customers) s", '?column?<customers.e>'],
    ['with x(e) as (select email from customers) select upper(e) from x', 'upper<customers.email?>'],
    ['with a as (select id, email from customers), b as (select id + 1 as k from a) select k, email from b, a', 'k<customers.id?> | email<customers.email?>'],
    ['select upper(x) from t as t2(x, y)', 'upper<t.*#0>'],
    ['select upper(z) from t as t2(x, y)', 'upper<t.z?>'],
    ['select j.x from (a join b on true) as j(x, y)', 'x<a.*#0>'],
    // Whole rows.
    ['select row_to_json(c) from customers c', 'row_to_json<customers.c?,customers.*>'],
    ['select (c).email, (c).id from customers c', 'email<customers.c?,customers.email> | id<customers.c?,customers.id>'],
    ['select to_jsonb(c.*) from customers c', 'to_jsonb<customers.*>'],
    // Stars.
    ['select * from customers', '[*customers]'],
    ['select c.*, upper(c.email) from customers c', '[*customers] | upper<customers.email>'],
    ['select * from (select *, upper(ssn) as u from customers) s', '[*customers] | u<customers.ssn?>'],
    ['select * from customers c, jsonb_each_text(to_jsonb(c)) j', '[*customers] | [any: customers.c?,customers.*+opaque]'],
    ['select * from f(1) as x(a, b)', 'a<+opaque> | b<+opaque>'],
    // Set operations: one list per branch.
    ["select email from customers union select 'x'", 'email<customers.email?> || ?column?<>'],
    ['select * from a union all select * from b', '[*a] || [*b]'],
    ['select x from (select email as x from customers union all select name from people) s', 'x<customers.email?,people.name?>'],
    // Recursive CTEs, to a fixed point.
    ['with recursive r(n, e) as (select 1, email from customers union all select n + 1, e from r where n < 3) select n, upper(e) from r', 'n<> | upper<customers.email?>'],
    // Correlated and scalar subqueries read everything they reference.
    ['select (select max(o.total) from orders o where o.cid = c.id and o.note = c.ssn) from customers c', 'max<orders.total,orders.cid,customers.id,orders.note,customers.ssn>'],
    ['select exists (select 1 from customers where ssn = $1)', 'exists<customers.ssn?>'],
    ['select (select count(*) from customers), name from people', 'count<> | name<people.name?>'],
    // Windows, named ones too.
    ['select rank() over w, sum(a) over (partition by b) from t window w as (order by c)', 'rank<t.c?> | sum<t.a?,t.b?>'],
    // An unqualified name of a join: maybe either side's (the catalog tells).
    ['select upper(name) from customers c join orders o on o.cid = c.id', 'upper<customers.name?,orders.name?>'],
    // Writes: RETURNING only.
    ['insert into t values (1) returning *, upper(x)', '[*t] | upper<t.x?>'],
    ['insert into t values (1)', ''],
    ['update t set x = s.y from s where s.id = t.id returning t.x, s.y + 1', 'x<t.x> | ?column?<s.y>'],
    ['with d as (delete from t returning *) select upper(x) from d', 'upper<t.x?>'],
    // Statements that carry a query.
    ['declare c cursor for select upper(ssn) from customers', 'upper<customers.ssn?>'],
    ['prepare p as select upper(ssn) from customers', 'upper<customers.ssn?>'],
    ['create view v(a) as select upper(ssn), name from customers', 'a<customers.ssn?> | name<customers.name?>'],
    ['create table t2 as select upper(ssn) as u from customers', 'u<customers.ssn?>'],
    ['explain analyze select upper(ssn) from customers', 'query plan<>'],
    ['show search_path', 'search_path<>'],
    ['drop table if exists nope', '(none)'],
    // Names as PostgreSQL reads them (issue 54's review): quoted names keep their case; a column of
    // an outer level comes before a whole row of an inner alias; WITH RECURSIVE sees every CTE;
    // `(s.c).f` is a field of column c of s; a relation's name may hold a dot.
    ['with "A" as (select upper(ssn) as v from customers), a as (select name as v from customers) select v from "A"', 'v<customers.ssn?>'],
    ['select (select ssn from orders ssn limit 1) from customers', 'ssn<orders.ssn?,customers.ssn?,orders.*>'],
    ['with recursive a as (select * from orders), orders as (select upper(ssn) as u from customers) select * from a', 'u<customers.ssn?>'],
    ['select (s.c).ssn from (select c from customers c) s, orders c', 'ssn<customers.c?,customers.*>'],
    ['select x from (select 1 as x, email from customers) s', 'x<>'],
    ['select upper(u) from "public.x"', 'upper<public.x.u?>'],
    ['select upper(u) from public.x', 'upper<public.x.u?>'],
  ])('%s', (sql, expected) => {
    expect(columns(sql)).toBe(expected);
  });
});

describe('what a statement reads', () => {
  it.each([
    ["select name from customers where ssn like '1%'", 'customers.name?,customers.ssn?'],
    ['select count(*) from customers c join orders o using (id) group by c.region having max(o.total) > 1', 'customers.id,orders.id,customers.region,orders.total'],
    ['select * from customers', ''],
    ['update customers set note = upper(ssn) where id = 1', 'customers.ssn?,customers.id?'],
    ['drop table customers', ''],
  ])('%s', (sql, expected) => {
    expect(reads(sql)).toBe(expected);
  });
});
