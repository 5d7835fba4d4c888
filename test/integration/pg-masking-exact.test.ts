/**
 * Exact results under masking (issue 54): a value no rule masks comes back as the database sent
 * it, whatever the time since the last statement and however the gateway's catalog connection
 * fares; when hoop cannot tell a column's origin it refuses with a reason and never guesses.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MaskingPolicy } from '../../src/policy/schema.js';
import { StatementJudge } from '../../src/policy/decide.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REDACTED } from '../../src/policy/masking/strategies.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import pg from 'pg';
import { columnsQuery } from '../../src/client/mcp-tools.js';
import { pgClient, psql } from '../harness/clients.js';
import { bind, close, describePortal, execute, frontendMessage, parse, sync } from '../harness/pg-frontend.js';
import { connectionYaml } from '../harness/postgres.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';

const policy: MaskingPolicy = {
  columns: [{ table: 'public.customers', column: 'ssn', strategy: 'redact' }],
  names: [{ pattern: 'card', regex: /card/i, strategy: 'redact' }],
  detectors: [],
  derived: 'mask',
};

/** A judge with one rule on a function large objects are removed with. */
function judgeOf(who: { subject: string; groups: string[] }, connection: string): StatementJudge {
  return new StatementJudge(
    {
      connections: [],
      access: [],
      statements: { unparseable: 'deny', rules: [{ name: 'keep-large-objects', match: { functions: ['lo_unlink'] }, action: 'deny', message: 'large objects are not removed through hoop' }] },
      masking: policy,
      recording: { results: 'masked', rowCap: 1000, onFailure: 'close', auditors: [] },
      tests: [],
    },
    who,
    connection,
    'read-write',
  );
}

/** The catalog connection's idle expiry here: a gap past it is a few hundred milliseconds, not a minute. */
const CATALOG_IDLE_MS = 150;

let stack: HoopStack;
let masked: RunningConnect;
let stageOnly: RunningConnect;

beforeAll(async () => {
  await loadSqlParser();
  stack = await startStack({
    gateway: {
      postgres: { catalogIdleMs: CATALOG_IDLE_MS },
      // `stage-only`: the masking stage alone, behind no judge (what the judge refuses first, the stage still masks or refuses).
      sessionPolicy: (identity, connection) =>
        identity.groups.includes('stage-only') ? { masking: { policy } } : { masking: { policy }, judge: judgeOf({ subject: identity.subject, groups: identity.groups }, connection.name) },
    },
  });
  await stack.pg.psql(
    `create table customers (id int primary key, name text, ssn text, card_number text);
     insert into customers values (1, 'Ada', '123-45-6789', '4111111111111111'), (2, 'Grace', '536-90-4399', '5500005555555559');
     create table orders (id int primary key, customer int, total numeric, tags text[], at timestamptz);
     insert into orders values (7, 1, 12.50, '{a,b}', '2026-01-02 03:04:05+00'), (8, 2, 3, '{}', null);
     create view order_view as select o.id, o.total * 2 as doubled, c.name, upper(c.ssn) as shout from orders o join customers c on c.id = o.customer;
     grant all on customers, orders, order_view to public`,
    { database: 'app' },
  );
  masked = await stack.connect('app', await stack.token('alice'));
  stageOnly = await stack.connect('app', await stack.token('alice', ['stage-only']));
});

afterAll(async () => {
  await masked?.stop();
  await stageOnly?.stop();
  await stack?.close();
});

/** How many catalog connections of the gateway's own the database has now. */
async function catalogConnections(): Promise<number> {
  return Number((await stack.pg.psql("select count(*) from pg_stat_activity where application_name = 'hoop-catalog'")).trim());
}

async function psqlRows(sql: string): Promise<string> {
  const r = await psql(masked.info, ['-A', '-t', '-c', sql]);
  expect(r.stderr).toBe('');
  return r.stdout.trim();
}

/** A psql script's output and errors, unaligned and tuples only, as psql prints them. */
async function script(sql: string, via: RunningConnect = masked): Promise<string> {
  const r = await psql(via.info, ['-A', '-t', '-v', 'ON_ERROR_STOP=0', '-f', '-'], { input: sql });
  return `${r.stdout}${r.stderr}`.trim();
}

describe('the catalog connection', () => {
  it('a statement after the catalog connection expired comes back exact, in a new session and in one that stayed open', async () => {
    const open = await pgClient(masked.info);
    try {
      const first = await open.query('select id, name, ssn from customers order by id');
      expect(first.rows).toEqual([
        { id: 1, name: 'Ada', ssn: REDACTED },
        { id: 2, name: 'Grace', ssn: REDACTED },
      ]);
      for (let gap = 0; gap < 3; gap++) {
        // Past the idle expiry: the gateway ended its catalog connection (the open session still holds it, unused).
        await eventually(async () => expect(await catalogConnections()).toBe(0));
        expect(await psqlRows('select id, name, ssn, card_number from customers order by id')).toBe(`1|Ada|${REDACTED}|${REDACTED}\n2|Grace|${REDACTED}|${REDACTED}`);
        await eventually(async () => expect(await catalogConnections()).toBe(0));
        const again = await open.query('select id, name, ssn from customers order by id');
        expect(again.rows).toEqual(first.rows);
      }
    } finally {
      await open.end();
    }
  });

  it('a catalog connection the server ended (idle_session_timeout, an administrator) is replaced: the next statement comes back exact', async () => {
    const open = await pgClient(masked.info);
    try {
      await open.query('select id, name, ssn from customers');
      await stack.pg.psql("select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'hoop-catalog'");
      const r = await open.query('select id, name, ssn from customers order by id');
      expect(r.rows).toEqual([
        { id: 1, name: 'Ada', ssn: REDACTED },
        { id: 2, name: 'Grace', ssn: REDACTED },
      ]);
    } finally {
      await open.end();
    }
  });
});

describe('the catalog connection with the default idle expiry (30 s)', () => {
  let plain: HoopStack;

  beforeAll(async () => {
    plain = await startStack({
      gateway: { sessionPolicy: () => ({ masking: { policy } }) },
      policy: async ({ pg }) => {
        await pg.psql('create database dropme');
        await pg.psql('create table t (id int, ssn text); insert into t values (1, $$x$$); grant all on t to public', { database: 'dropme' });
        return `connections:\n${connectionYaml(pg, { name: 'dropme', database: 'dropme', password: '${env:APP_PASSWORD}', extra: ['allow: { subjects: [alice] }'] })}`;
      },
    });
  });

  afterAll(async () => {
    await plain?.close();
  });

  it('does not keep a database open once its last session ended: DROP DATABASE succeeds at once', async () => {
    const dropme = await plain.connect('dropme', await plain.token('alice'));
    try {
      const r = await psql(dropme.info, ['-A', '-t', '-c', 'select id, ssn from t']);
      expect(r.stdout.trim()).toBe('1|x');
    } finally {
      await dropme.stop();
    }
    // The catalog connection lingers a second after its last session; DROP DATABASE waits up to 5 s for other sessions to leave.
    await plain.pg.psql('drop database dropme');
  });
});

describe('values no rule masks come back exact', () => {
  it("computed columns of a statement that reads no masked column (constants through a subquery, arrays, a view's arithmetic)", async () => {
    expect(await psqlRows('select t.b, t.a[1] from (select not true as b, array[1,2] as a) t')).toBe('f|1');
    expect(await psqlRows('select count(*), max(total), sum(id + 1) from orders')).toBe('2|12.50|17');
    expect(await psqlRows('select id, doubled, name, shout from order_view order by id')).toBe(`7|25.00|Ada|${REDACTED}\n8|6|Grace|${REDACTED}`);
    expect(await psqlRows("select upper(name), length(name), name || '!' from customers order by id")).toBe('ADA|3|Ada!\nGRACE|5|Grace!');
    // Computed from a masked column: masked, next to exact ones.
    expect(await psqlRows('select upper(ssn), count(*) over (), left(card_number, 4) from customers order by id')).toBe(`${REDACTED}|2|${REDACTED}\n${REDACTED}|2|${REDACTED}`);
  });

  it('a table created in the open transaction, before and after COMMIT', async () => {
    expect(
      await script(`begin;
create table t54 (id int, x text);
insert into t54 values (1, 'a'), (2, 'b');
select count(*), max(x), min(id) + 1 from t54;
select * from t54 order by id;
commit;
select count(*), max(x) from t54;
drop table t54;`),
    ).toBe('BEGIN\nCREATE TABLE\nINSERT 0 2\n2|b|2\n1|a\n2|b\nCOMMIT\n2|b\nDROP TABLE');
    // In one message (one implicit transaction), and a column named by a rule inside it.
    expect(
      await psqlRows(
        'create temp table t55 (id int, card_number text, at timestamptz, tags text[]); insert into t55 values (1, $$4111111111111111$$, $$2026-01-01 00:00:00+00$$, $${x}$$); select id, card_number, at, tags, upper(card_number) from t55',
      ),
    ).toBe(`CREATE TABLE\nINSERT 0 1\n1|${REDACTED}|2026-01-01 00:00:00+00|{x}|${REDACTED}`);
  });

  it("hoop mcp's describe_schema query (information_schema, a recursive CTE, JSON) answers as the database does, every name and type", async () => {
    const sql = columnsQuery(undefined, undefined);
    const direct = new pg.Client({ host: '127.0.0.1', port: stack.pg.port, user: stack.pg.users.scram.user, password: stack.pg.users.scram.password, database: 'app' });
    await direct.connect();
    const hoop = await pgClient(masked.info);
    try {
      const d = (await direct.query(sql)).rows;
      expect(d.some((r) => r.column_name === 'ssn')).toBe(true);
      expect((await hoop.query(sql)).rows).toEqual(d);
    } finally {
      await direct.end();
      await hoop.end();
    }
  });

  it("notices of statements that compute nothing over masked values are the server's own", async () => {
    const r = await psql(masked.info, ['-c', 'drop table if exists nope']);
    expect(r.stderr).toContain('NOTICE:  table "nope" does not exist, skipping');
    // ALTER TABLE IF EXISTS on a table that is not there evaluates nothing: its notice names only the relation it was given.
    for (const sql of ['alter table if exists nope add column x int', 'alter table if exists nope rename column a to b'])
      expect((await psql(masked.info, ['-c', sql])).stderr, sql).toContain('NOTICE:  relation "nope" does not exist, skipping');
  });

  it('cursors (DECLARE / FETCH, WITH HOLD) and SQL PREPARE / EXECUTE: masked by what they run', async () => {
    expect(
      await script(`begin;
declare c cursor with hold for select id, name, ssn, upper(name), upper(ssn) from customers order by id;
fetch 1 from c;
commit;
fetch all from c;
close c;
prepare p(int) as select id, name, upper(name), ssn from customers where id = $1;
execute p(2);
deallocate p;`),
    ).toBe(`BEGIN\nDECLARE CURSOR\n1|Ada|${REDACTED}|ADA|${REDACTED}\nCOMMIT\n2|Grace|${REDACTED}|GRACE|${REDACTED}\nCLOSE CURSOR\nPREPARE\n2|Grace|GRACE|${REDACTED}\nDEALLOCATE`);
  });
});

describe('when hoop cannot tell, it refuses and says why', () => {
  it('a relation made by a DO block in the open transaction: the session ends with the reason, no value is guessed', async () => {
    const out = await script(
      `begin;
do $$ begin create temp table made_unseen as select 1 as n; end $$;
select n + 1 from made_unseen;`,
      stageOnly,
    );
    expect(out).toContain(
      'hoop cannot tell whether column 1 ("?column?") of this result carries a masked value: made_unseen is not in the catalog: code this transaction ran (a DO block or procedure) may have made it',
    );
    expect(out).not.toMatch(/^2$/m);
    await eventually(() => expect(stack.logs().some((l) => l.event === 'masking.cannot-tell')).toBe(true));
  });

  it('a catalog that cannot be reached: the session ends saying the lookup failed, the gateway logs it', async () => {
    const role = stack.pg.users.scram.user;
    const open = await pgClient(masked.info);
    open.on('error', () => undefined); // the refusal ends the session
    try {
      await open.query('select 1');
      // Its catalog connection gone, and no connection for the role left to open another.
      await stack.pg.psql(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'hoop-catalog'`);
      await eventually(async () => expect(await catalogConnections()).toBe(0));
      const used = Number((await stack.pg.psql(`select count(*) from pg_stat_activity where usename = '${role}'`)).trim());
      await stack.pg.psql(`alter role ${role} connection limit ${used}`);
      const refused = await open.query('select upper(name) from customers').then(
        () => undefined,
        (err: Error & { code?: string }) => err,
      );
      expect(refused?.code).toBe('58000');
      expect(refused?.message).toMatch(/hoop cannot tell whether column 1 \("upper"\) of this result carries a masked value: the catalog lookup failed/);
      await eventually(() => expect(stack.logs().some((l) => l.event === 'masking.catalog-failed')).toBe(true));
    } finally {
      await stack.pg.psql(`alter role ${role} connection limit -1`);
      await open.end().catch(() => undefined);
    }
    // Reachable again: exact again.
    expect(await psqlRows('select upper(name) from customers order by id')).toBe('ADA\nGRACE');
  });
});

describe("FunctionCall and signals to one's own backend", () => {
  it('\\lo_import and \\lo_export (FunctionCall) run, judged as the SQL calls they stand for; one a rule denies is refused', async () => {
    const file = join(stack.dir, 'lo-in.bin');
    const back = join(stack.dir, 'lo-out.bin');
    writeFileSync(file, Buffer.from(Array.from({ length: 20_000 }, (_, i) => i % 251)));
    const imported = await psql(masked.info, ['-A', '-t', '-c', `\\lo_import ${file}`]);
    expect(imported.stderr).toBe('');
    const oid = /^lo_import (\d+)$/m.exec(imported.stdout)?.[1];
    expect(oid).toBeDefined();
    const exported = await psql(masked.info, ['-A', '-t', '-c', `\\lo_export ${oid} ${back}`]);
    expect(exported.stderr).toBe('');
    expect(readFileSync(back).equals(readFileSync(file))).toBe(true);
    // lo_unlink is a FunctionCall too: the rule on it refuses it, and the object stays.
    const unlinked = await psql(masked.info, ['-c', `\\lo_unlink ${oid}`]);
    expect(unlinked.stderr).toContain('large objects are not removed through hoop');
    expect((await stack.pg.psql(`select count(*) from pg_largeobject_metadata where oid = ${oid}`, { database: 'app' })).trim()).toBe('1');
  });

  it("cancels and ends one's own backend (by pg_backend_pid() or its number); another's stays refused", async () => {
    const own = await psql(masked.info, ['-c', 'select pg_cancel_backend(pg_backend_pid())']);
    expect(own.stderr).toContain('canceling statement due to user request');
    const c = await pgClient(masked.info);
    c.on('error', () => undefined);
    try {
      const pid = (await c.query('select pg_backend_pid() as pid')).rows[0].pid as number;
      const other = await c.query('select pg_cancel_backend(pid) from pg_stat_activity where pid <> pg_backend_pid() limit 1').catch((e: { code?: string; message: string }) => e);
      expect(other).toMatchObject({ code: '42501', message: expect.stringContaining('pg_cancel_backend() is refused') });
      const byNumber = await c.query(`select pg_cancel_backend(${pid})`).catch((e: { code?: string; message: string }) => e);
      expect(byNumber).toMatchObject({ code: '57014' });
      const ended = await c.query('select pg_terminate_backend(pg_backend_pid())').catch((e: { code?: string; message: string }) => e);
      expect(ended).toMatchObject({ code: '57P01' });
    } finally {
      await c.end().catch(() => undefined);
    }
  });
});

describe('names read as PostgreSQL reads them (cases a review of issue 54 found)', () => {
  /** A psql script's rows and errors, for values that must not appear. */
  const ssns = /123-45-6789|536-90-4399/;

  it('quoted CTE names, a column of an outer level before an inner alias, WITH RECURSIVE forward references, a field of a composite column, a name with a dot', async () => {
    const out = await script(`with "A" as (select upper(ssn) as v from customers), a as (select name as v from customers) select v from "A" order by 1;
select id, (select ssn from orders ssn limit 1) as s from customers order by id;
with recursive a as (select * from orders), orders as (select upper(ssn) as u from customers) select * from a order by 1;
select (s.c).ssn from (select c from customers c) s, orders c order by 1;
create view "public.x" as select upper(ssn) as u from customers;
select u from "public.x" order by 1;
drop view "public.x";`);
    expect(out).not.toMatch(ssns);
    expect(out).toContain(`1|${REDACTED}\n2|${REDACTED}`);
  });

  it('errors quoting a value read through an outer column are withheld', async () => {
    const out = await script('select (select ssn::int from orders ssn limit 1) from customers;');
    expect(out).toContain('withheld');
    expect(out).not.toMatch(ssns);
  });

  it('a view the open transaction made does not hide a committed view of the same name; a view it made and renamed a column of is read as renamed', async () => {
    const out = await script(`begin;
create temp view order_view as select 'a'::text as shout;
select shout from public.order_view order by 1;
select shout::int from public.order_view;
rollback;
begin;
create view v9 as select id, upper(ssn) as u from customers;
alter view v9 rename column u to z;
select z from v9 order by 1;
rollback;`);
    expect(out).not.toMatch(ssns);
    expect(out).toContain(`${REDACTED}\n${REDACTED}`);
  });

  it('a star after an ALTER of an inheritance parent in the open transaction: columns are not placed by stale widths', async () => {
    await stack.pg.psql(
      'create table par (a int, b text); create table kid () inherits (par); insert into kid values (5, $$x$$); create table par2 (p int); create table kid2 () inherits (par2); insert into kid2 values (7)',
      { database: 'app', user: stack.pg.users.scram },
    );
    try {
      const out = await script(`begin;
alter table par drop column b;
alter table par2 add column z int;
select * from only kid, (select upper(ssn) u from customers where id = 1) x, only kid2;
rollback;`);
      expect(out).not.toMatch(ssns);
      expect(out).toContain(`5|${REDACTED}|7|`);
    } finally {
      await stack.pg.psql('drop table kid, par, kid2, par2', { database: 'app' });
    }
  });

  it('pg_notify and set_config of a value computed from a view over a masked column are refused', async () => {
    const out = await script(`listen c;
select pg_notify('c', shout) from order_view;
select set_config('my.x', shout, false) from order_view;
select current_setting('my.x', true);`);
    expect(out.match(/masking-side-channel/g)).toHaveLength(2);
    expect(out).not.toMatch(ssns);
  });
});

describe('what a second review of issue 54 found', () => {
  const ssns = /123-45-6789|536-90-4399|4111111111111111|5500005555555559/;
  /** What a raw session through the tunnel receives for `parts`, up to `ready` ReadyForQuery messages, as text. */
  async function raw(parts: Buffer[], ready = 1): Promise<string> {
    const f = await stack.tunnel('app', await stack.token('alice'));
    try {
      const from = f.raw.length;
      f.write(Buffer.concat(parts));
      const got = await f.messagesSince(from, ready);
      return got.map((m) => `${String.fromCharCode(m.type)} ${m.body.toString('latin1')}`).join('\n');
    } finally {
      f.destroy();
    }
  }

  it('a function that runs SQL given as text (ts_rewrite) is refused', async () => {
    const out = await script("select ts_rewrite('a'::tsquery, 'select ''a''::tsquery, quote_literal(string_agg(ssn, '' ''))::tsquery from customers');");
    expect(out).toContain('ts_rewrite');
    expect(out).not.toMatch(ssns);
  });

  it('COPY TO STDOUT is split by its own options: the second of two in one Query, one run through the extended protocol', async () => {
    const out = await script("copy (select 1) to stdout (format csv, delimiter '|') \\; copy (select name, ssn, card_number from customers order by id) to stdout;");
    expect(out).toContain(`Ada\t${REDACTED}\t${REDACTED}`);
    expect(out).not.toMatch(ssns);
    const extended = await raw([parse('', 'copy (select name, ssn, card_number from customers order by id) to stdout (format csv)'), bind('', ''), describePortal(''), execute(''), sync()]);
    expect(extended).toContain(`Ada,${REDACTED},${REDACTED}`);
    expect(extended).not.toMatch(ssns);
  });

  it('a portal that runs SQL EXECUTE is judged by the statement its Execute runs, not by what it was bound or described with', async () => {
    const out = await raw([
      parse('x', 'select name, name as x from customers'),
      parse('e', 'execute x'),
      bind('pe', 'e'),
      describePortal('pe'),
      close('S', 'x'),
      parse('x', "select upper(ssn) as name, card_number || '' as x from customers"),
      execute('pe'),
      sync(),
    ]);
    expect(out).not.toMatch(ssns);
    expect(out).toContain(REDACTED);
  });

  it('EXECUTE of a statement prepared through the protocol does what it does (DEALLOCATE, PREPARE)', async () => {
    const out = await raw(
      [
        parse('dx', 'deallocate x'),
        parse('px', "prepare x as select upper(ssn) as name, card_number || '' as x from customers"),
        sync(),
        frontendMessage('Q', 'prepare x as select name, name as x from customers'),
        frontendMessage('Q', 'execute dx'),
        frontendMessage('Q', 'execute px'),
        frontendMessage('Q', 'execute x'),
      ],
      5,
    );
    expect(out).not.toMatch(ssns);
    expect(out).toContain(REDACTED);
  });

  it('rows a rule returns for a statement whose SQL returns none are masked', async () => {
    const out = await script(
      `create temp table t1 (x int);
create rule r1 as on insert to t1 do also select upper(ssn) as u, ssn, card_number as cc from customers order by id;
insert into t1 values (1);`,
      stageOnly,
    );
    expect(out).not.toMatch(ssns);
    expect(out).toContain(REDACTED);
  });

  it('RETURNING of a write that stores values computed from masked columns is masked, in a CTE too', async () => {
    const out = await script(
      `begin;
update customers set name = ssn where id = 1 returning name, upper(name);
with u as (update customers set name = card_number returning name) select name from u;
rollback;`,
      stageOnly,
    );
    expect(out).not.toMatch(ssns);
    expect(out).toContain(REDACTED);
  });

  it('after a schema rename in the open transaction, names are not placed by the committed catalog: refused', async () => {
    const owner = stack.pg.users.scram.user;
    await stack.pg.psql(`create schema s1 authorization ${owner}; create schema s2 authorization ${owner}`, { database: 'app' });
    await stack.pg.psql('create view s1.v as select id, name as x from customers; create view s2.v as select id, upper(ssn) as x from customers', { database: 'app', user: stack.pg.users.scram });
    try {
      const out = await script(
        `begin;
alter schema s1 rename to s0;
alter schema s2 rename to s1;
select x || '' as y, x from s1.v;`,
        stageOnly,
      );
      expect(out).not.toMatch(ssns);
      expect(out).toContain('renamed a schema');
    } finally {
      await stack.pg.psql('drop schema if exists s0 cascade; drop schema if exists s1 cascade; drop schema if exists s2 cascade', { database: 'app' });
    }
  });
});
