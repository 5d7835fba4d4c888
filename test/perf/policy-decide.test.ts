/**
 * The policy judge's speed (npm run bench:tests): a statement parsed and judged, a cache hit, a
 * shape-cache hit. Moved out of test/unit/policy-decide.test.ts, which checks what it decides.
 */
import { performance } from 'node:perf_hooks';
import { beforeAll, describe, expect, it } from 'vitest';
import { StatementJudge } from '../../src/policy/decide.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import type { Policy, StatementRule, Who } from '../../src/policy/schema.js';

beforeAll(async () => {
  await loadSqlParser();
});

function policy(rules: StatementRule[]): Policy {
  return {
    connections: [],
    access: [],
    statements: { unparseable: 'deny', rules },
    masking: { columns: [], names: [], detectors: [], derived: 'mask' },
    recording: { results: 'masked', rowCap: 1000, onFailure: 'close', auditors: [] },
    tests: [],
  };
}

const carol: Who = { subject: 'carol', groups: ['contractors'] };

/** The rules of the contract's example, plus a few more. */
const rules: StatementRule[] = [
  { name: 'drop-needs-review', match: { kinds: ['drop', 'truncate'] }, action: 'review', message: 'DROP and TRUNCATE need a reviewer' },
  { name: 'no-unbounded-writes', match: { kinds: ['update', 'delete'], missingWhere: true }, action: 'deny', message: 'UPDATE/DELETE without WHERE' },
  { name: 'contractors-no-cards', match: { tables: ['public.cards', 'billing.*'], groups: ['contractors'] }, action: 'deny', message: 'no card data for contractors' },
  { name: 'no-file-access', match: { functions: ['pg_read_file', 'pg_read_binary_file', 'lo_import', 'dblink*'] }, action: 'deny' },
  { name: 'no-set-config', match: { functions: ['set_config'] }, action: 'deny', message: 'use SET, not set_config' },
  { name: 'no-role-switch', match: { kinds: ['set-role', 'set-session-authorization'] }, action: 'deny', message: 'no role switching' },
  { name: 'no-cte-writes', match: { cteDml: true }, action: 'review', message: 'writes inside WITH need review' },
  { name: 'no-batches-with-ddl', match: { multiStatement: true, kinds: ['ddl'] }, action: 'deny', message: 'no DDL in a batch' },
  { name: 'do-needs-review', match: { kinds: ['do', 'call', 'create-function'] }, action: 'review', message: 'code needs review' },
  { name: 'program-copy', match: { kinds: ['copy-in', 'copy-out'], subjects: ['alice'] }, action: 'allow', message: 'alice may COPY' },
  { name: 'copy-review', match: { kinds: ['copy-in', 'copy-out'], groups: ['contractors'] }, action: 'review', message: 'COPY needs review' },
  { name: 'prod-only-grants', match: { kinds: ['grant', 'revoke'], connections: ['prod-db'] }, action: 'deny', message: 'no grants on prod' },
];

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
