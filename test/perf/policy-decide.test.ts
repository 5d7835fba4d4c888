/**
 * The policy judge's speed (npm run bench:tests): a statement parsed and judged, a cache hit, a
 * shape-cache hit. Moved out of test/unit/policy-decide.test.ts, which checks what it decides.
 */
import { performance } from 'node:perf_hooks';
import { beforeAll, describe, expect, it } from 'vitest';
import { StatementJudge } from '../../src/policy/decide.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import type { Policy, StatementRule, Who } from '../../src/policy/schema.js';
import { EXAMPLE_RULES, emptyPolicy } from '../harness/policy.js';

beforeAll(async () => {
  await loadSqlParser();
});

const policy = (rules: StatementRule[]): Policy => emptyPolicy({ statements: { unparseable: 'deny', rules } });

const carol: Who = { subject: 'carol', groups: ['contractors'] };

const rules = EXAMPLE_RULES;

const judge = (): StatementJudge => new StatementJudge(policy(rules), carol, 'prod-db', 'read-write');

describe('policy judge speed', () => {
  it('measures parse + judge time and a cache hit', () => {
    const sql = (i: number) =>
      `select c.id, c.name, sum(o.total) from public.customers c join orders o on o.customer_id = c.id where c.id = ${i} and o.created_at > now() - interval '30 days' group by c.id, c.name order by 3 desc limit 10`;
    const j = judge();
    for (let i = 0; i < 200; i++) j.judge(sql(i)); // warm up the JIT
    const n = 2000;
    let t0 = performance.now();
    for (let i = 1000; i < 1000 + n; i++) judge().judge(sql(i));
    const miss = ((performance.now() - t0) / n) * 1000;
    t0 = performance.now();
    for (let i = 0; i < 100_000; i++) j.judge(sql(5));
    const hit = ((performance.now() - t0) / 100_000) * 1000;
    process.stdout.write(`policy judge: parse+judge (cache miss) ${miss.toFixed(1)} µs/statement, cache hit ${hit.toFixed(2)} µs/statement\n`);
    expect(hit).toBeLessThan(miss);
  });

  it('measures a shape hit (pgbench -S)', () => {
    const j = judge();
    j.judge('SELECT abalance FROM pgbench_accounts WHERE aid = 1;');
    const n = 100_000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) j.judge(`SELECT abalance FROM pgbench_accounts WHERE aid = ${i};`);
    const us = ((performance.now() - t0) / n) * 1000;
    process.stdout.write(`policy judge: shape-cache hit ${us.toFixed(2)} µs/statement\n`);
    expect(us).toBeLessThan(50);
  });
});
