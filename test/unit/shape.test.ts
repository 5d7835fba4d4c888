/** Statement shapes ({@link ShapeCache}): texts that differ only in numeric literals share an entry once proven. */
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeSql, loadSqlParser } from '../../src/policy/sql/analyze.js';
import { ShapeCache, shapeProven, sqlShape } from '../../src/policy/sql/shape.js';

beforeAll(loadSqlParser);

describe('ShapeCache', () => {
  it('shares a value between texts that differ only in numeric constants', () => {
    const cache = new ShapeCache<string>(10, 1000);
    const sql = 'select abalance from pgbench_accounts where aid = 4711';
    cache.set(sql, analyzeSql(sql), 'exact', 'shared');
    expect(cache.get(sql)).toBe('exact');
    expect(cache.get('select abalance from pgbench_accounts where aid = 99')).toBe('shared');
    expect(cache.get('select abalance from pgbench_accounts where aid = 99.5')).toBe('shared');
    expect(cache.get('select abalance from pgbench_accounts where aid = $1')).toBeUndefined();
  });

  it('never trusts a shape whose digits sit in a string, a comment or a quoted name', () => {
    for (const sql of ["select '1' from t where a = 2", 'select 1 /* 2 */ from t', 'select "1" from t where a = 3', 'select $q$ 5 $q$, 6']) {
      const shape = sqlShape(sql);
      expect(shape, sql).toBeDefined();
      expect(shapeProven(shape!.runs, analyzeSql(sql)), sql).toBe(false);
    }
  });

  it('never shares settings, set_config() or utility statements', () => {
    for (const sql of ['set statement_timeout = 5', "select set_config('x.y', '1', false), 2", 'vacuum (parallel 2) t', 'copy (select 1) to stdout']) {
      const shape = sqlShape(sql)!;
      expect(shapeProven(shape.runs, analyzeSql(sql)), sql).toBe(false);
    }
  });

  it('caches nothing for texts over the size limit', () => {
    const cache = new ShapeCache<string>(10, 20);
    const sql = 'select * from accounts where id = 1';
    cache.set(sql, analyzeSql(sql), 'v');
    expect(cache.get(sql)).toBeUndefined();
  });
});
