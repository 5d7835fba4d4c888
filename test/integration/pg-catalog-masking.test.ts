/**
 * Catalog access under masking: psql's `\d` family and what GUI clients ask on connect work through
 * hoop with a masked column, and print what they print straight to the server; the planner's
 * statistics, which hold sample values of columns, never bring a masked value back. And hoop's own
 * words (a rule's message) are never masked, where the server's are.
 *
 * @see https://www.postgresql.org/docs/current/app-psql.html#APP-PSQL-META-COMMANDS
 * @see https://www.postgresql.org/docs/current/catalog-pg-statistic-ext.html
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatementJudge } from '../../src/policy/decide.js';
import type { MaskingPolicy, StatementRule } from '../../src/policy/schema.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import { libpqEnv, psql, runProcess } from '../harness/clients.js';
import { emptyPolicy } from '../harness/policy.js';
import { type HoopStack, type RunningConnect, startStack } from '../harness/stack.js';

const masking: MaskingPolicy = {
  columns: [{ table: 'public.customers', column: 'email', strategy: 'redact' }],
  names: [],
  detectors: [{ detector: 'email', strategy: 'redact' }],
  derived: 'mask',
};
const rules: StatementRule[] = [{ name: 'no-drop', match: { kinds: ['drop'] }, action: 'deny', message: 'ask dba@example.com to drop it' }];

let stack: HoopStack;
let connect: RunningConnect;

beforeAll(async () => {
  await loadSqlParser();
  stack = await startStack({
    gateway: {
      sessionPolicy: (identity) => ({
        judge: new StatementJudge(emptyPolicy({ masking, statements: { unparseable: 'deny', rules } }), { subject: identity.subject, groups: identity.groups }, 'app', 'read-write'),
        masking: { policy: masking },
      }),
    },
  });
  await stack.pg.psql(
    `create table customers (id int primary key, email text not null, note text);
     comment on table customers is 'who buys';
     create index customers_email on customers (email);
     create view v_customers as select id, note from customers;
     create statistics customers_stx (ndistinct) on id, email from customers;
     create schema billing;
     create function billing.total(n int) returns int language sql as 'select n * 2';
     insert into customers select i, 'user' || i || '@example.com', 'n' || i from generate_series(1, 200) i;
     analyze customers;
     create view v_stats as select tablename, attname, most_common_vals::text as mcv, histogram_bounds::text as bounds from pg_stats;
     grant all on all tables in schema public to public`,
    { database: 'app' },
  );
  connect = await stack.connect('app', await stack.token('alice', []));
}, 120_000);

afterAll(async () => {
  await connect?.stop();
  await stack?.close();
});

/** psql's meta-commands, each as a user types it. */
const META = ['\\d', '\\d customers', '\\d+ customers', '\\dt', '\\dt+', '\\dv', '\\df billing.*', '\\dn', '\\l', '\\du', '\\dx', '\\di', '\\d+ v_customers', '\\dX'];

describe('psql meta-commands with a masked column', () => {
  it.each(META)('%s prints what it prints straight to the server', async (meta) => {
    const through = await psql(connect.info, ['-A', '-t', '-c', meta]);
    expect(through.stderr, meta).toBe('');
    expect(through.code, meta).toBe(0);
    const direct = await stack.pg.psql(meta, { database: 'app' });
    expect(through.stdout).toBe(direct);
  });
});

describe("the planner's statistics, which hold sample values", () => {
  it('lists extended statistics objects (their definitions) and refuses their values, naming why; no masked value comes back', async () => {
    const definitions = await psql(connect.info, ['-A', '-t', '-c', "select stxname, stxkind from pg_statistic_ext where stxrelid = 'customers'::regclass"]);
    expect(definitions.stdout).toBe('customers_stx|{d}\n');
    for (const sql of [
      "select most_common_vals::text from pg_stats where tablename = 'customers' and attname = 'email'",
      "select histogram_bounds from pg_catalog.pg_stats where tablename = 'customers'",
      'select * from pg_stats_ext',
      'select * from pg_statistic',
      'select d.* from pg_statistic_ext s join pg_statistic_ext_data d on d.stxoid = s.oid',
    ]) {
      const got = await psql(connect.info, ['-A', '-t', '-c', sql]);
      expect(got.code, sql).not.toBe(0);
      expect(got.stderr, sql).toContain('masking-side-channel');
      expect(got.stdout + got.stderr, sql).not.toMatch(/user\d+@example\.com/);
    }
  });

  it('masks what a view over them reads: the bounds of the masked column come back masked, the names of what they describe as they are', async () => {
    const sql = "select attname, bounds from v_stats where tablename = 'customers' and attname = 'email'";
    expect(await stack.pg.psql(sql, { database: 'app' })).toMatch(/user\d+@example\.com/);
    const got = await psql(connect.info, ['-A', '-t', '-c', sql]);
    expect(got.stderr).toBe('');
    expect(got.stdout).toMatch(/^email\|/);
    expect(got.stdout).not.toMatch(/example\.com/);
  });
});

describe('pgcli', () => {
  it('connects and describes a table: none of the catalog queries it sends is refused, and the masked column comes back masked', async () => {
    const refusedBefore = stack.logs().filter((l) => l.event === 'statement.refused').length;
    const { info } = connect;
    const r = await runProcess('pgcli', ['--less-chatty', '--row-limit', '0', '-h', info.host, '-p', String(info.port), '-U', info.user, '-d', info.database], {
      env: { ...process.env, ...libpqEnv(info), HOME: stack.dir, TERM: 'dumb' },
      input: '\\d customers\nselect id, email from customers order by id limit 2\n',
      timeoutMs: 60_000,
    });
    expect(r.stderr).not.toMatch(/error|denied/i);
    expect(r.stdout).toContain('customers_email');
    expect(r.stdout).toMatch(/\| 1 +\| \[redacted\]/);
    expect(r.stdout).not.toMatch(/user\d+@example\.com/);
    expect(
      stack
        .logs()
        .filter((l) => l.event === 'statement.refused')
        .slice(refusedBefore),
    ).toEqual([]);
  });
});

describe("hoop's own words", () => {
  it('are never masked: a refusal names the address its rule gives, where the same address from the server is masked', async () => {
    const refused = await psql(connect.info, ['-c', 'drop table customers']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('hoop: denied by rule "no-drop": ask dba@example.com to drop it');
    const served = await psql(connect.info, ['-A', '-t', '-c', "select 'dba@example.com' as x"]);
    expect(served.stdout).toBe('[redacted]\n');
    expect(await stack.pg.psql('select count(*) from customers', { database: 'app' })).toBe('200\n');
  });
});
