/**
 * Throughput of the allow path with the statement judge on, next to the plain relay (npm run
 * bench:tests): pgbench select-only with 4 clients for 3 s each. test/integration/pg-policy.test.ts
 * checks that pgbench's transactions all go through with the judge on; this, how many a second.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatementJudge } from '../../src/policy/decide.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import { pgbench } from '../harness/clients.js';
import { emptyPolicy } from '../harness/policy.js';
import { type HoopStack, type RunningConnect, startStack } from '../harness/stack.js';

let stack: HoopStack;
let judged: RunningConnect;
let plain: RunningConnect;

beforeAll(async () => {
  await loadSqlParser();
  stack = await startStack({
    gateway: {
      sessionPolicy: (identity, connection) =>
        identity.groups.includes('nojudge')
          ? undefined
          : {
              judge: new StatementJudge(
                emptyPolicy({ statements: { unparseable: 'deny', rules: [{ name: 'no-drop', match: { kinds: ['drop'] }, action: 'deny', message: 'no' }] } }),
                { subject: identity.subject, groups: identity.groups },
                connection.name,
                'read-write',
              ),
            },
    },
  });
  judged = await stack.connect('app', await stack.token('alice'));
  plain = await stack.connect('app', await stack.token('bob', ['nojudge']));
});

afterAll(async () => {
  await judged?.stop();
  await plain?.stop();
  await stack?.close();
});

describe('pgbench -S with the judge on', () => {
  it('runs select-only with 4 clients at more than 100 transactions a second, judged or not', async () => {
    const init = await pgbench(plain.info, ['-i', '-s', '1', '-q']);
    expect(init.code, init.stderr).toBe(0);
    const tps: Record<string, number> = {};
    for (const [who, c] of [
      ['plain relay', plain],
      ['judge', judged],
    ] as const) {
      const run = await pgbench(c.info, ['-S', '-n', '-c', '4', '-j', '2', '-T', '3']);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toMatch(/number of failed transactions: 0/);
      tps[who] = Number(/tps = ([\d.]+)/.exec(run.stdout)?.[1]);
    }
    process.stdout.write(`pgbench -S c=4 (in-process stack): without judge ${tps['plain relay']?.toFixed(0)} tps, with judge ${tps.judge?.toFixed(0)} tps\n`);
    for (const t of Object.values(tps)) expect(t).toBeGreaterThan(100);
  });
});
