/**
 * Catalog access under masking: psql's `\d` family (printing what it prints straight to the
 * server) and its tab completion on a terminal, pgcli, and what DBeaver (pgjdbc) and pgAdmin ask on
 * connect and as their trees open, all work through hoop with masked columns, none refused; the
 * planner's statistics, which hold sample values of columns, answer with those values masked. And
 * hoop's own words (a rule's message) are never masked, where the server's are.
 *
 * @see https://www.postgresql.org/docs/current/app-psql.html#APP-PSQL-META-COMMANDS
 * @see https://www.postgresql.org/docs/current/catalog-pg-statistic-ext.html
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatementJudge } from '../../src/policy/decide.js';
import type { MaskingPolicy, StatementRule } from '../../src/policy/schema.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import { libpqEnv, pgClient, psql, runProcess } from '../harness/clients.js';
import { GUI_CLIENT_STATEMENTS } from '../fixtures/gui-catalog-queries.js';
import { emptyPolicy } from '../harness/policy.js';
import { type HoopStack, type RunningConnect, startStack } from '../harness/stack.js';

const masking: MaskingPolicy = {
  columns: [
    { table: 'public.customers', column: 'email', strategy: 'redact' },
    { table: 'public.customers', column: 'code', strategy: 'redact' },
  ],
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
    `create table customers (id int primary key, email text not null, note text, code text);
     comment on table customers is 'who buys';
     create index customers_email on customers (email);
     create view v_customers as select id, note from customers;
     create statistics customers_stx (ndistinct) on id, email from customers;
     create schema billing;
     create function billing.total(n int) returns int language sql as 'select n * 2';
     insert into customers select i, 'user' || i || '@example.com', 'n' || i, 'K' || (i % 7) || 'Z' from generate_series(1, 200) i;
     analyze customers;
     create view v_stats as select tablename, attname, most_common_vals::text as mcv, histogram_bounds::text as bounds from pg_stats;
     grant all on all tables in schema public to public`,
    { database: 'app' },
  );
  connect = await stack.connect('app', await stack.token('alice', []));
});

afterAll(async () => {
  await connect?.stop();
  await stack?.close();
});

/** The gateway's `statement.refused` log lines from the `from`th on. */
function refusedSince(from: number): Array<Record<string, unknown>> {
  return stack
    .logs()
    .filter((l) => l.event === 'statement.refused')
    .slice(from);
}

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
  it('answers with what they describe and their fractions, every sample value masked; the definitions of extended statistics as they are', async () => {
    const definitions = await psql(connect.info, ['-A', '-t', '-c', "select stxname, stxkind from pg_statistic_ext where stxrelid = 'customers'::regclass"]);
    expect(definitions.stdout).toBe('customers_stx|{d}\n');
    // What the server holds: the masked column code's seven values, in its most common values.
    const mcv = "select attname, null_frac, most_common_vals from pg_stats where tablename = 'customers' and attname = 'code'";
    expect(await stack.pg.psql(mcv, { database: 'app' })).toMatch(/^code\|0\|\{(K\dZ,){6}K\dZ\}$/m);
    const got = await psql(connect.info, ['-A', '-t', '-c', mcv]);
    expect({ code: got.code, stderr: got.stderr }).toEqual({ code: 0, stderr: '' });
    expect(got.stdout).toBe('code|0|\n'); // masked: NULL, as an anyarray can hold no replacement text
    for (const sql of [
      "select attname, most_common_vals::text, histogram_bounds from pg_stats where tablename = 'customers' order by attname",
      "select array_to_string(most_common_vals, ',') from pg_catalog.pg_stats where tablename = 'customers'",
      "select * from pg_stats where tablename = 'customers'",
      'select * from pg_stats_ext',
    ]) {
      const r = await psql(connect.info, ['-A', '-t', '-c', sql]);
      expect({ sql, code: r.code, stderr: r.stderr }).toEqual({ sql, code: 0, stderr: '' });
      expect(r.stdout, sql).not.toMatch(/K\dZ|user\d+@example\.com|\bn\d+\b/);
    }
    // The server keeps its own catalogs from a role that is not a superuser: refused by it (42501; its text withheld when it could quote a value), with nothing in them.
    for (const sql of ['select * from pg_statistic', 'select d.* from pg_statistic_ext s join pg_statistic_ext_data d on d.stxoid = s.oid']) {
      const r = await psql(connect.info, ['-A', '-t', '-c', sql]);
      expect(r.stderr, sql).toMatch(/permission denied|SQLSTATE 42501/);
      expect(r.stdout, sql).toBe('');
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

describe("psql's tab completion", () => {
  it('completes table names from the catalog on a terminal, with no refusal: the completed statement runs, the masked column masked', async () => {
    const refusedBefore = refusedSince(0).length;
    // psql on a pseudo-terminal (util-linux script), as a person types: Tab after a prefix.
    const r = await runProcess('script', ['-qfec', 'psql -X -P pager=off', '/dev/null'], {
      env: { ...process.env, ...libpqEnv(connect.info), TERM: 'xterm', PAGER: 'cat' },
      input: 'select id, code from custo\t where id = 1;\n\\d v_cus\t\n\\q\n',
      timeoutMs: 30_000,
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('select id, code from customers  where id = 1;');
    expect(r.stdout).toMatch(/ 1 \| \[redacted\]/);
    expect(r.stdout).toContain('View "public.v_customers"');
    expect(refusedSince(refusedBefore)).toEqual([]);
  });
});

describe('what DBeaver (pgjdbc) and pgAdmin ask on connect and as their tree opens', () => {
  it('every statement runs through hoop, none refused, and the masked table is described', async () => {
    const refusedBefore = refusedSince(0).length;
    const [database, schema, table, index] = (
      await stack.pg.psql("select (select oid from pg_database where datname = 'app'), 'public'::regnamespace::oid, 'customers'::regclass::oid, 'customers_pkey'::regclass::oid", {
        database: 'app',
      })
    )
      .trim()
      .split('|');
    const fill = (text: string): string =>
      text.replaceAll('{{databaseName}}', 'app').replaceAll('{{database}}', database!).replaceAll('{{schema}}', schema!).replaceAll('{{table}}', table!).replaceAll('{{index}}', index!);
    const client = await pgClient(connect.info);
    try {
      for (const s of GUI_CLIENT_STATEMENTS) {
        const result = await client.query({ text: fill(s.sql), values: s.params.map(fill) }).then(
          (r) => ({ ok: true, rows: Array.isArray(r) ? r.length : r.rowCount }),
          (err: Error) => ({ ok: false, error: err.message }),
        );
        expect({ client: s.client, what: s.what, ...result }).toMatchObject({ client: s.client, what: s.what, ok: true });
      }
      // The masked table's columns, as DBeaver lists them: every name, none of its values.
      const columns = await client.query({ text: fill(GUI_CLIENT_STATEMENTS.find((s) => s.what.startsWith('[14]'))!.sql), values: [table] });
      expect(columns.rows.filter((c: { attnum: number }) => c.attnum > 0).map((c: { attname: string }) => c.attname)).toEqual(['id', 'email', 'note', 'code']);
    } finally {
      await client.end();
    }
    expect(refusedSince(refusedBefore)).toEqual([]);
  });
});

describe('pgcli', () => {
  it('connects and describes a table: none of the catalog queries it sends is refused, and the masked column comes back masked', async () => {
    const refusedBefore = refusedSince(0).length;
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
    expect(refusedSince(refusedBefore)).toEqual([]);
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
