/**
 * `missingWhere` (see `StatementFacts.missingWhere`): writes whose condition cannot restrict the
 * target's rows, because it reads only other sources (a constant subquery, VALUES, a CTE, the
 * MERGE source), a subquery that does not reference the target, or is a tautology; and the
 * joins and conditions that do restrict, which must stay unflagged.
 * @see https://www.postgresql.org/docs/17/sql-delete.html
 * @see https://www.postgresql.org/docs/17/sql-update.html
 * @see https://www.postgresql.org/docs/17/sql-merge.html
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeSql, loadSqlParser, type StatementFacts } from '../../src/policy/sql/analyze.js';

beforeAll(loadSqlParser);

function one(sql: string): StatementFacts {
  const a = analyzeSql(sql);
  if (!a.ok) throw new Error(`did not parse: ${a.error}`);
  expect(a.statements).toHaveLength(1);
  return a.statements[0]!;
}

describe('conditions that read only other sources do not restrict the target', () => {
  it.each([
    'DELETE FROM t USING (SELECT 1 AS one) s WHERE s.one = 1',
    'DELETE FROM t USING (SELECT 1 AS one) s WHERE one = 1',
    'UPDATE t SET v=0 FROM (VALUES (1)) v(a) WHERE v.a=1',
    'UPDATE t SET v=0 FROM (VALUES (1)) v(a) WHERE a=1',
    'UPDATE t SET v=0 FROM (VALUES (1, 2)) v WHERE column2 = 2',
    'WITH s AS (SELECT 1 k) DELETE FROM t USING s WHERE s.k=1',
    'WITH s AS (SELECT 1 k) DELETE FROM t USING s WHERE k=1',
    'WITH s(z) AS (SELECT 1 k) DELETE FROM t USING s WHERE z=1',
    'WITH s AS (SELECT 1 k) DELETE FROM t USING s AS s2 WHERE s2.k=1',
    'MERGE INTO t USING (SELECT 1 x) s ON s.x=1 WHEN MATCHED AND s.x=1 THEN DELETE',
    'MERGE INTO t USING (SELECT 1 x) s ON x=1 WHEN MATCHED AND x=1 THEN DELETE',
    // Another table: each of its rows joins every row of t.
    'DELETE FROM t USING u WHERE u.flag',
    'UPDATE t SET v = 0 FROM u WHERE u.k = 5 AND u.flag',
    'DELETE FROM t USING u JOIN w ON u.id = w.id WHERE w.flag',
    // An alias hides the table's own name: `t.id` is the other t.
    'DELETE FROM t AS x USING t WHERE t.id = 5',
    // A join condition between other sources only.
    'DELETE FROM t USING u, w WHERE u.id = w.id',
  ])('%s', (sql) => {
    expect(one(sql).missingWhere).toBe(true);
  });
});

describe('subqueries that do not reference the target are constant per statement', () => {
  it.each([
    'DELETE FROM t WHERE EXISTS (SELECT 1 FROM pg_class c WHERE c.oid>0)',
    'DELETE FROM t WHERE EXISTS (SELECT 1 FROM pg_class WHERE pg_class.oid > 0)',
    // The inner t is the subquery's own table, not the one being deleted from.
    'DELETE FROM t WHERE EXISTS (SELECT 1 FROM t WHERE t.id = 5)',
    'DELETE FROM t WHERE (SELECT count(*) FROM t x WHERE x.id > 0) > 0',
    'DELETE FROM t WHERE 1 IN (SELECT v.a FROM (VALUES (1)) v(a) WHERE a = 1)',
    'UPDATE t SET v = 0 WHERE EXISTS (SELECT 1 FROM u JOIN w ON u.id = w.id WHERE w.flag)',
    'DELETE FROM t WHERE EXISTS (WITH c AS (SELECT 1 z) SELECT 1 FROM c WHERE z = 1)',
  ])('%s', (sql) => {
    expect(one(sql).missingWhere).toBe(true);
  });
});

describe('tautologies', () => {
  it.each([
    'DELETE FROM t WHERE id BETWEEN id AND id',
    'DELETE FROM t WHERE id BETWEEN SYMMETRIC id AND 5',
    'DELETE FROM t WHERE id BETWEEN SYMMETRIC 5 AND id',
    'DELETE FROM t WHERE id NOT BETWEEN id + 1 AND id - 1 OR id BETWEEN id AND id',
    'DELETE FROM t WHERE CASE WHEN id=1 THEN true ELSE true END',
    'DELETE FROM t WHERE CASE id WHEN 1 THEN true ELSE id = id END',
    'DELETE FROM t WHERE CASE WHEN id=1 THEN id IS NULL OR id IS NOT NULL ELSE 1 = 1 END',
    'DELETE FROM t WHERE (id=id) IS NOT FALSE',
    'DELETE FROM t WHERE (id=id) IS TRUE',
    'DELETE FROM t WHERE (id<>id) IS NOT TRUE',
    'DELETE FROM t WHERE (id<>id) IS FALSE',
    'DELETE FROM t WHERE NOT ((id=id) IS FALSE)',
    'DELETE FROM t WHERE ctid IS NOT NULL',
    'DELETE FROM t WHERE t.ctid IS NOT NULL',
    'DELETE FROM t WHERE oid IS NOT NULL',
    'DELETE FROM t WHERE tableoid IS NOT NULL AND xmin IS NOT NULL',
    'UPDATE t SET v = 0 FROM u WHERE t.k = u.k OR t.k <> u.k',
  ])('%s', (sql) => {
    expect(one(sql).missingWhere).toBe(true);
  });
});

describe('INSERT ... SELECT ... ON CONFLICT DO UPDATE with a source that may yield many rows', () => {
  it.each([
    ['INSERT INTO t SELECT generate_series(1,100000), 0 ON CONFLICT (id) DO UPDATE SET v = excluded.v', true],
    ['INSERT INTO t SELECT g, 0 FROM generate_series(1, 100000) g ON CONFLICT (id) DO UPDATE SET v = excluded.v', true],
    ['INSERT INTO t SELECT unnest($1::int[]), 0 ON CONFLICT (id) DO UPDATE SET v = excluded.v', true],
    ['INSERT INTO t SELECT * FROM u WHERE EXISTS (SELECT 1 FROM w WHERE w.flag) ON CONFLICT (id) DO UPDATE SET v = 0', true],
    ['INSERT INTO t SELECT 1, 2 ON CONFLICT (id) DO UPDATE SET v = excluded.v', false],
    ['INSERT INTO t SELECT generate_series(1,100000), 0 WHERE false ON CONFLICT (id) DO UPDATE SET v = excluded.v', false],
    ['INSERT INTO t VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET v = excluded.v', false],
    ['INSERT INTO t SELECT generate_series(1,100000), 0 ON CONFLICT (id) DO NOTHING', false],
    ['INSERT INTO t SELECT generate_series(1,100000), 0 ON CONFLICT (id) DO UPDATE SET v = 0 WHERE t.id = 5', false],
    ['INSERT INTO t AS a SELECT generate_series(1,100000), 0 ON CONFLICT (id) DO UPDATE SET v = 0 WHERE a.v > 0', false],
    // The proposed row pairs with exactly one existing row (the conflict), so `excluded` counts as the target.
    ['INSERT INTO t SELECT generate_series(1,100000), 0 ON CONFLICT (id) DO UPDATE SET v = 0 WHERE excluded.v > 0', false],
    ['INSERT INTO t SELECT * FROM u WHERE u.id = 1 ON CONFLICT (id) DO UPDATE SET v = 0', false],
  ] as const)('%s -> %s', (sql, missing) => {
    expect(one(sql).missingWhere).toBe(missing);
  });
});

describe('conditions that restrict the target stay unflagged', () => {
  it.each([
    'DELETE FROM t USING s WHERE t.id = s.id',
    'UPDATE t SET v=0 FROM u WHERE t.k = u.k AND u.flag',
    'DELETE FROM t WHERE id = 5',
    'DELETE FROM t AS x USING t WHERE x.id = t.id',
    'UPDATE t SET v=0 FROM (VALUES (1)) v(a) WHERE t.a = v.a',
    'UPDATE t SET v=0 FROM (VALUES (1)) v(a) WHERE id = a',
    'WITH s AS (SELECT 1 k) DELETE FROM t USING s WHERE t.id = s.k',
    'WITH s AS (SELECT 1 k) DELETE FROM t USING s WHERE id = k',
    // `id` is no output of s, so it is t's.
    'DELETE FROM t USING (SELECT 1 AS one) s WHERE id = 1',
    // A table's columns are unknown: an unqualified name may be the target's.
    'DELETE FROM t USING u WHERE flag',
    'DELETE FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.k = t.k)',
    'DELETE FROM t WHERE EXISTS (SELECT 1 FROM u WHERE k = 5)',
    'DELETE FROM t WHERE id = (SELECT max(id) FROM t)',
    // A non-LATERAL subquery in FROM does not see its siblings: `a` is t's column.
    'DELETE FROM t WHERE 1 IN (SELECT q.b FROM (VALUES (1)) v(a), (SELECT a AS b) q)',
    'MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND t.v <> s.v THEN UPDATE SET v = s.v',
    'MERGE INTO t USING (SELECT 1 x) s ON t.id = s.x WHEN MATCHED AND t.id = 1 THEN DELETE',
    'DELETE FROM t WHERE id BETWEEN 1 AND 5',
    'DELETE FROM t WHERE id BETWEEN id AND 5',
    'DELETE FROM t WHERE id NOT BETWEEN id AND id',
    'DELETE FROM t WHERE CASE WHEN id=1 THEN true ELSE false END',
    'DELETE FROM t WHERE CASE WHEN id=1 THEN true END',
    'DELETE FROM t WHERE (id=1) IS NOT FALSE',
    'DELETE FROM t WHERE (id=id) IS FALSE',
    'DELETE FROM t WHERE id IS NOT NULL',
    'DELETE FROM t WHERE ctid = $1',
    'DELETE FROM t WHERE id < 5 OR id >= 6',
    'DELETE FROM t WHERE id + 0 = id + 1',
  ])('%s', (sql) => {
    expect(one(sql).missingWhere).toBe(false);
  });
});

describe('an ALTER TABLE that rewrites or discards every row is the write it does (the fifteenth attack)', () => {
  it.each([
    ["ALTER TABLE orders ALTER COLUMN status TYPE text USING 'gone'", ['alter', 'update'], true],
    ['ALTER TABLE orders ALTER COLUMN status TYPE int USING 0', ['alter', 'update'], true],
    ['ALTER TABLE orders ALTER COLUMN total SET DATA TYPE numeric USING total * 0', ['alter', 'update'], true],
    ['ALTER TABLE orders ALTER COLUMN d SET EXPRESSION AS (a + 1)', ['alter', 'update'], true],
    ['ALTER TABLE orders DROP COLUMN customer_id', ['alter', 'drop'], false],
    ['ALTER TABLE orders ALTER COLUMN status TYPE text', ['alter'], false],
    ['ALTER TABLE orders ALTER COLUMN status TYPE text USING status', ['alter'], false],
    ['ALTER TABLE orders ADD COLUMN note text', ['alter'], false],
  ] as const)('%s', (sql, kinds, missingWhere) => {
    const f = one(sql);
    expect(f.kinds).toEqual(kinds);
    expect(f.missingWhere).toBe(missingWhere);
  });
});
