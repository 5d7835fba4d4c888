/**
 * The sessions index's tables: from the judge's verdicts (cached ones included, the text not
 * parsed again), or from the SQL texts of a session without a judge, analysed at its end.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { StatementJudge } from '../../src/policy/decide.js';
import type { Policy } from '../../src/policy/schema.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import { TablesTouched } from '../../src/gateway/records/recordings.js';
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
    expect(first.touched).toEqual({ tables: ['pgbench_accounts'], written: [], columns: ['pgbench_accounts.abalance', 'pgbench_accounts.aid'] });
    expect(cached.statements).toBeUndefined(); // a shape hit: not parsed again
    expect(cached.touched).toEqual({ tables: ['pgbench_accounts'], written: [], columns: ['pgbench_accounts.abalance', 'pgbench_accounts.aid'] });
    expect(judge.judge('INSERT INTO audit.log SELECT * FROM orders').touched).toEqual({ tables: ['audit.log', 'orders'], written: ['audit.log', 'orders'], columns: ['audit.log.*', 'orders.*'] });
    expect(judge.judge('select from').touched).toEqual({ tables: [], written: [], columns: [] });
    // COPY moves a table's columns, both ways: those it lists, else every one.
    expect(judge.judge('copy customers to stdout').touched?.columns).toEqual(['customers.*']);
    expect(judge.judge('COPY public.Customers (Email, name) TO STDOUT').touched?.columns).toEqual(['public.customers.email', 'public.customers.name']);
    expect(judge.judge('copy customers (card) from stdin').touched?.columns).toEqual(['customers.card']);
    // A function that reads tables named in a string: what it reads cannot be told (`*`).
    expect(judge.judge("select table_to_xml('customers', true, false, '')").touched?.tables).toEqual(['*']);
  });

  it('collects verdicts as they come, and analyses texts no judge saw at the end', async () => {
    const t = new TablesTouched();
    t.addVerdict({ tables: ['customers'], written: [], columns: ['customers.name'] });
    t.addVerdict(undefined);
    t.addText('DELETE FROM orders WHERE id = 1');
    t.addText('DELETE FROM orders WHERE id = 1');
    expect(await t.summary()).toEqual({ tables: ['customers', 'orders'], written: ['orders'], columns: ['customers.name', 'orders.id'], tablesComplete: true });
    const broken = new TablesTouched();
    broken.addText('select from where');
    expect((await broken.summary()).tablesComplete).toBe(false);
  });

  it("counts a named parent's columns as its descendants' same-named columns, and a parent written as its descendants written", async () => {
    const t = new TablesTouched();
    t.addVerdict({ tables: ['pay', 'other'], written: ['pay'], columns: ['pay.card', 'other.card'] });
    t.addReads({
      tables: ['public.pay_q1', 'public.pay_q2'],
      columns: [],
      descendants: [
        { of: 'pay', table: 'public.pay_q1' },
        { of: 'pay', table: 'public.pay_q2' },
      ],
    });
    expect(await t.summary()).toEqual({
      tables: ['other', 'pay', 'public.pay_q1', 'public.pay_q2'],
      written: ['pay', 'public.pay_q1', 'public.pay_q2'],
      columns: ['other.card', 'pay.card', 'public.pay_q1.card', 'public.pay_q2.card'],
      tablesComplete: true,
    });
  });

  it('names the columns each statement reads, tied to a table by its name or alias, or else to each table it names', () => {
    const judge = new StatementJudge(emptyPolicy(), { subject: 'alice', groups: [] }, 'db', 'read-write');
    const columns = (sql: string): readonly string[] | undefined => judge.judge(sql).touched?.columns;
    expect(columns('select name, c.email from customers c where id = 1')).toEqual(['customers.name', 'customers.email', 'customers.id']);
    expect(columns('select * from public.customers')).toEqual(['public.customers.*']);
    // `note` may be a column of either table: it counts for both (the index may over-say, never under-say).
    expect(columns('select o.total, customers.name, note from customers join orders o on o.cid = customers.id')).toEqual([
      'orders.total',
      'customers.name',
      'customers.note',
      'orders.note',
      'orders.cid',
      'customers.id',
    ]);
    expect(columns('select email from customers where exists (select 1 from orders)')).toEqual(expect.arrayContaining(['customers.email', 'orders.email']));
    expect(columns('select * from customers, orders')).toEqual(['customers.*', 'orders.*']);
    // A whole row, by its alias or its table's name.
    expect(columns('select row_to_json(c) from customers c')).toEqual(['customers.*']);
    expect(columns('select customers from customers')).toEqual(['customers.*']);
    expect(columns('select c.* from customers c')).toEqual(['customers.*']);
    expect(columns('update customers set email = null where id = 1')).toEqual(expect.arrayContaining(['customers.id']));
    // An alias named like an Object member is an alias, not a prototype's property.
    expect(columns('select constructor.x from t as constructor')).toEqual(['t.x']);
  });
});
