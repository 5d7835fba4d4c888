/**
 * The sessions index's tables: from the judge's verdicts (cached ones included, the text not
 * parsed again), or from the SQL texts of a session without a judge, analysed at its end.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { StatementJudge } from '../../src/policy/decide.js';
import type { Policy } from '../../src/policy/schema.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import { TablesTouched } from '../../src/gateway/recordings.js';
import { emptyPolicy } from '../harness/policy.js';

const policy: Policy = emptyPolicy();

beforeAll(async () => {
  await loadSqlParser();
});

describe('tables touched', () => {
  it('every verdict names its tables, also when the decision came from the shape cache', () => {
    const judge = new StatementJudge(policy, { subject: 'alice', groups: [] }, 'db', 'read-write');
    const first = judge.judge('SELECT abalance FROM pgbench_accounts WHERE aid = 1');
    const cached = judge.judge('SELECT abalance FROM pgbench_accounts WHERE aid = 2');
    expect(first.touched).toEqual({ tables: ['pgbench_accounts'], written: [] });
    expect(cached.statements).toBeUndefined(); // a shape hit: not parsed again
    expect(cached.touched).toEqual({ tables: ['pgbench_accounts'], written: [] });
    expect(judge.judge('INSERT INTO audit.log SELECT * FROM orders').touched).toEqual({ tables: ['audit.log', 'orders'], written: ['audit.log', 'orders'] });
    expect(judge.judge('select from').touched).toEqual({ tables: [], written: [] });
  });

  it('collects verdicts as they come, and analyses texts no judge saw at the end', async () => {
    const t = new TablesTouched();
    t.addVerdict({ tables: ['customers'], written: [] });
    t.addVerdict(undefined);
    t.addText('DELETE FROM orders WHERE id = 1');
    t.addText('DELETE FROM orders WHERE id = 1');
    expect(await t.summary()).toEqual({ tables: ['customers', 'orders'], written: ['orders'], tablesComplete: true });
    const broken = new TablesTouched();
    broken.addText('select from where');
    expect((await broken.summary()).tablesComplete).toBe(false);
  });
});
