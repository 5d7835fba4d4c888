/**
 * Values computed from masked columns, told from the parse tree ({@link DerivedValueCheck}), and
 * the judge's `masking.derived: deny`.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { DerivedValueCheck } from '../../src/policy/masking/derived.js';
import { analyzeSql, loadSqlParser, type StatementFacts } from '../../src/policy/sql/analyze.js';
import { DERIVED_RULE } from '../../src/policy/built-in-rules.js';
import { StatementJudge } from '../../src/policy/decide.js';
import type { MaskingPolicy, Policy } from '../../src/policy/schema.js';
import { emptyPolicy } from '../harness/policy.js';

const masking: MaskingPolicy = {
  columns: [
    { table: 'public.customers', column: 'email', strategy: 'redact' },
    { table: 'vault.keys', column: '*', strategy: 'redact' },
  ],
  names: [{ pattern: '^ssn$', regex: /^ssn$/i, strategy: 'last4' }],
  detectors: [],
  derived: 'deny',
};

function facts(sql: string): StatementFacts {
  const a = analyzeSql(sql);
  if (!a.ok) throw new Error(a.error);
  return a.statements[0]!;
}

beforeAll(loadSqlParser);

describe('DerivedValueCheck', () => {
  const check = new DerivedValueCheck(masking);

  it.each([
    ['select upper(email) from customers', 'the masked column customers.email'],
    ['select upper(EMAIL) from public.customers', 'the masked column public.customers.email'],
    ['select "email"::text from customers', 'the masked column customers.email'],
    ["select c.email || '' from customers c", 'the masked column customers.email'],
    ['select count(email) from customers', 'the masked column customers.email'],
    ["select json_build_object('e', email) from customers", 'the masked column customers.email'],
    ['select row_to_json(c) from customers c', 'the whole row of customers'],
    ['select c from customers c', 'the whole row of customers'],
    ['select to_jsonb(customers.*) from customers', 'the whole row of customers'],
    ['select (c).email from customers c', 'the masked column customers.email'],
    ['select (select email from customers limit 1)', 'the masked column customers.email'],
    ['select x from (select lower(email) as x from customers) s', 'the masked column customers.email'],
    ["select s.e || '' from (select email as e from customers) s", 'the masked column customers.email'],
    ['with x(e) as (select email from customers) select upper(e) from x', 'the masked column customers.email'],
    ["select email from customers union select 'x'", 'the masked column customers.email'],
    ['with e as (select md5(email) as h from customers) select h from e', 'the masked column customers.email'],
    ['select upper(x) from (select ssn as x from people) p', 'the column ssn (masked by name)'],
    ['select upper(ssn) from people', 'the column ssn (masked by name)'],
    ['select upper(x.ssn) from people x', 'the column ssn (masked by name)'],
    ['select length(anything) from vault.keys', 'the masked column vault.keys.anything'],
    ["update customers set note = '' where id = 1 returning upper(email)", 'the masked column customers.email'],
    ['select * from (values ((select email from customers limit 1))) v', 'the masked column customers.email'],
  ])('%s -> %s', (sql, expected) => {
    expect(check.find(facts(sql))).toBe(expected);
  });

  it.each([
    'select email from customers',
    'select c.email, c.id from customers c',
    'select * from customers',
    'select count(*), max(id) from customers',
    'select upper(email) from orders',
    'select id + 1, now() from customers',
    "select email from customers where upper(email) = 'X'",
    'select ssn from people',
    // Computed from no masked column: a constant through a subquery, a renamed unmasked column.
    'select t.b, t.a[1] from (select not true as b, array[1,2] as a) t',
    "select s.n || '' from (select id as n from customers) s",
    'select x from (select email as x from customers) s',
  ])('%s: nothing derived', (sql) => {
    expect(check.find(facts(sql))).toBeUndefined();
  });
});

describe('StatementJudge with masking.derived: deny', () => {
  const policy = (derived: 'mask' | 'deny'): Policy => emptyPolicy({ masking: { ...masking, derived } });
  const who = { subject: 'agent', groups: [] };

  it('denies a computed value of a masked column and names it', () => {
    const judge = new StatementJudge(policy('deny'), who, 'prod', 'read-write');
    const d = judge.judge('select 1; select lower(email) from customers');
    expect(d).toMatchObject({ action: 'deny', rule: DERIVED_RULE, statement: 1 });
    expect(d.message).toContain('the masked column customers.email');
    expect(judge.judge('select email from customers where id = 7').action).toBe('allow');
    // Other literals of the same shape get the decision from the shape cache, without a parse.
    expect(judge.judge('select lower(email) from customers where id = 8').action).toBe('deny');
    const cached = judge.cacheSize;
    expect(judge.judge('select lower(email) from customers where id = 9')).toMatchObject({ action: 'deny', rule: DERIVED_RULE });
    expect(judge.cacheSize).toBe(cached);
  });

  it('allows them when the policy masks derived values', () => {
    const judge = new StatementJudge(policy('mask'), who, 'prod', 'read-write');
    expect(judge.judge('select lower(email) from customers').action).toBe('allow');
  });
});

describe('a rename that would take a masked column from under its rule (DerivedValueCheck.moves)', () => {
  const check = new DerivedValueCheck(masking);

  it.each([
    ['alter table customers rename column email to e2', 'a rename of the masked column customers.email'],
    // A table's row type is a composite type: its attribute is the table's column (the seventeenth attack read it in clear after this).
    ['alter type customers rename attribute email to e3', 'a rename of the masked column customers.email'],
    ['alter type public.customers rename attribute ssn to taxid', 'a rename of the masked column public.customers.ssn'],
    ['alter table customers rename to clients', 'a rename of customers, whose columns the policy masks by its name'],
  ])('%s: %s', (sql, why) => {
    expect(check.moves(facts(sql))).toBe(why);
  });

  it.each([
    'alter table customers rename constraint email to c2',
    'alter trigger email on customers rename to t2',
    'alter type customers rename attribute note to n2',
    'alter table customers rename column note to n2',
  ])('leaves %s, which moves no masked column', (sql) => {
    expect(check.moves(facts(sql))).toBeUndefined();
  });
});
