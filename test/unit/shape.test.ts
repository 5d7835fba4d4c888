/** Statement shapes ({@link ShapeCache}): texts that differ only in numeric literals share an entry once proven. */
import { beforeAll, describe, expect, it } from 'vitest';
import { StatementJudge } from '../../src/policy/decide.js';
import type { Policy } from '../../src/policy/schema.js';
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

  it('shares pgbench statements (negative constants too) between texts of one shape', () => {
    const pairs = [
      ['UPDATE pgbench_accounts SET abalance = abalance + -1234 WHERE aid = 56789;', 'UPDATE pgbench_accounts SET abalance = abalance + -7 WHERE aid = 1;'],
      ['UPDATE pgbench_accounts SET abalance = abalance + 1234 WHERE aid = 56789;', 'UPDATE pgbench_accounts SET abalance = abalance + 7 WHERE aid = 1;'],
      ['UPDATE pgbench_tellers SET tbalance = tbalance + - 99 WHERE tid = 3;', 'UPDATE pgbench_tellers SET tbalance = tbalance + - 1 WHERE tid = 8;'],
      [
        'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, 3, 4, CURRENT_TIMESTAMP)',
        'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 99, 5, CURRENT_TIMESTAMP)',
      ],
      ['SELECT abalance FROM pgbench_accounts WHERE aid = 5', 'SELECT abalance FROM pgbench_accounts WHERE aid = 123456'],
    ];
    for (const [first, second] of pairs) {
      const shape = sqlShape(first!)!;
      expect(shapeProven(shape.runs, analyzeSql(first!), shape.signs), first).toBe(true);
      const cache = new ShapeCache<string>(10, 1000);
      cache.set(first!, analyzeSql(first!), 'exact', 'shared');
      expect(cache.get(second!), second).toBe('shared');
    }
  });

  it('never shares a missing-WHERE verdict that compared numeric constants (either order)', () => {
    const policy: Policy = {
      connections: [],
      access: [],
      statements: { unparseable: 'deny', rules: [{ name: 'no-unbounded-writes', match: { kinds: ['update', 'delete', 'merge'], missingWhere: true }, action: 'deny' }] },
      masking: { columns: [], names: [], detectors: [], derived: 'mask' },
      recording: { results: 'masked', rowCap: 1000, onFailure: 'close', auditors: [] },
      tests: [],
    };
    const pairs: Array<[string, string]> = [
      ['DELETE FROM t WHERE id < 5 OR id >= 6', 'DELETE FROM t WHERE id < 5 OR id >= 5'],
      ['DELETE FROM t WHERE id+0 = id+1', 'DELETE FROM t WHERE id+0 = id+0'],
      ['UPDATE t SET v = 0 WHERE id + 0 BETWEEN id + 1 AND id + 2', 'UPDATE t SET v = 0 WHERE id + 0 BETWEEN id + 0 AND id + 0'],
      ['DELETE FROM t WHERE (id > 1) OR NOT (id > 2)', 'DELETE FROM t WHERE (id > 1) OR NOT (id > 1)'],
      ['DELETE FROM t WHERE CASE WHEN id = 1 THEN id + 0 = id + 1 ELSE true END', 'DELETE FROM t WHERE CASE WHEN id = 1 THEN id + 0 = id + 0 ELSE true END'],
      ['MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND t.id * 2 = t.id * 3 THEN DELETE', 'MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND t.id * 2 = t.id * 2 THEN DELETE'],
    ];
    for (const [restricting, tautology] of pairs) {
      expect(sqlShape(restricting)!.key).toBe(sqlShape(tautology)!.key);
      for (const order of [
        [restricting, tautology],
        [tautology, restricting],
      ]) {
        const judge = new StatementJudge(policy, { subject: 'alice', groups: [] }, 'db', 'read-write');
        for (const sql of order) {
          expect(judge.judge(sql).action, `${sql} after ${order[0]}`).toBe(sql === tautology ? 'deny' : 'allow');
        }
      }
      for (const sql of [restricting, tautology]) {
        const shape = sqlShape(sql)!;
        expect(shapeProven(shape.runs, analyzeSql(sql), shape.signs), sql).toBe(false);
      }
    }
  });
});

describe('shapes never take a written character for a replaced number', () => {
  it('a text with "?" where another has a digit is another shape: a cached decision never crosses from one to the other', async () => {
    await loadSqlParser();
    const policy = {
      connections: [],
      access: [],
      statements: { unparseable: 'deny' as const, rules: [{ name: 'no-sec', match: { tables: ['public.sec-1'] }, action: 'deny' as const }] },
      masking: { columns: [], names: [], detectors: [], derived: 'mask' as const },
      recording: { results: 'masked' as const, rowCap: 10, onFailure: 'close' as const, auditors: [] },
      tests: [],
    };
    const judge = new StatementJudge(policy, { subject: 'a', groups: [] }, 'app', 'read-write');
    expect(judge.judge('SELECT * FROM "sec-?" WHERE 1 = 1').action).toBe('allow');
    expect(judge.judge('SELECT * FROM "sec-1" WHERE 1 = 1').action).toBe('deny');
    expect(sqlShape('SELECT * FROM "sec-?" WHERE 1 = 1')!.key).not.toBe(sqlShape('SELECT * FROM "sec-1" WHERE 1 = 1')!.key);
  });
});

describe('sqlShape', () => {
  /** The shape as a regular expression reads it (the reference the one-pass scan is tested against). */
  function reference(sql: string): { key: string; runs: number[]; signs: number[] } | undefined {
    if (!/^[\x01-\x7f]*$/.test(sql)) return undefined;
    const runs: number[] = [];
    const signs: number[] = [];
    const key = sql.replace(/(?<![\w$.])\d+(?:\.\d+)?/g, (_m, offset: number) => {
      runs.push(offset);
      let i = offset - 1;
      while (i >= 0 && ' \t\n\r'.includes(sql[i]!)) i--;
      signs.push(i >= 0 && sql[i] === '-' ? i : -1);
      return '\u0000';
    });
    return runs.length > 0 ? { key, runs, signs } : undefined;
  }

  it('finds the numeric literals a regular expression finds, in generated texts', () => {
    const alphabet = ['1', '2', '0', '9', '.', '$', '_', 'a', 'Z', '-', ' ', '\t', '\n', "'", '"', 'é', '\u0000', '=', '(', 'e', '+'];
    let seed = 42;
    const next = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let round = 0; round < 20_000; round++) {
      const sql = Array.from({ length: next(24) }, () => alphabet[next(alphabet.length)]).join('');
      expect(sqlShape(`${sql} `), JSON.stringify(sql)).toEqual(reference(`${sql} `));
    }
    for (const sql of ['select c from sbtest1 where id=4711', 'update t set a = a + -5 where id = 3.25', 'select $1, t1.c2, 1.5.3, x.5, 7e3 from t9']) {
      expect(sqlShape(sql), sql).toEqual(reference(sql));
    }
  });
});
