/**
 * Column origins resolved as the session's server resolves them: the session's own search_path
 * (at startup or set later), the current definition of a view (replaced in another session, or in
 * the session's own open transaction), a prepared statement whose view changed after it was
 * described, and column alias lists. Through `hoop connect` and straight to the tunnel; the
 * assertions are on the bytes the client received.
 *
 * @see https://www.postgresql.org/docs/current/ddl-schemas.html#DDL-SCHEMAS-PATH
 * @see https://www.postgresql.org/docs/current/sql-createview.html
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDataRow } from '../../src/postgres/wire/rows.js';
import { REDACTED } from '../../src/policy/masking/strategies.js';
import type { MaskingPolicy } from '../../src/policy/schema.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import type { PgMessage } from '../../src/postgres/wire/reader.js';
import { bind, execute, frontendMessage as msg, parse, sync } from '../harness/pg-frontend.js';
import { RawFrontend } from '../harness/raw-pg.js';
import { startStack, type HoopStack, type RunningConnect, WAYS_IN } from '../harness/stack.js';

const policy: MaskingPolicy = {
  columns: [
    { table: 'public.customers', column: 'email', strategy: 'redact' },
    // A partitioned table and an inheritance parent: their partitions and children are read by their own names.
    { table: 'public.accounts', column: 'email', strategy: 'redact' },
    { table: 'public.legacy', column: 'email', strategy: 'redact' },
    { table: 'decoy.cards', column: 'number', strategy: 'redact' },
    { table: 'public.people', column: 'ssn', strategy: 'redact' },
    // The other way (the helper's attack): a rule on a partition and on a child holds when the parent is read.
    { table: 'public.events_p1', column: 'secret', strategy: 'redact' },
    { table: 'public.kid', column: 'secret', strategy: 'redact' },
  ],
  names: [],
  detectors: [],
  derived: 'mask',
};
const EMAILS = ['alice@example.com', 'bob@example.com'];
const ALICE_UPPER = 'ALICE@EXAMPLE.COM';

let stack: HoopStack;
let connected: RunningConnect;
let token: string;
let owner: string;

beforeAll(async () => {
  await loadSqlParser();
  stack = await startStack({ gateway: { sessionPolicy: () => ({ masking: { policy } }) } });
  owner = stack.pg.users.scram.user;
  // A decoy schema first on the role's default search_path (the gateway's own catalog connection
  // uses it), with a harmless customers table whose columns are in another order and a table v;
  // sessions below read public, where the masked customers and a view v over it live.
  await stack.pg.psql(
    `create table public.customers (id int primary key, email text, note text);
     insert into public.customers values (1, 'alice@example.com', 'one'), (2, 'bob@example.com', 'two');
     create schema decoy authorization ${owner};
     create table decoy.customers (id int, note text, email text);
     insert into decoy.customers values (9, 'decoy', 'decoy@decoy.test');
     create table decoy.v (id int, e text);
     create view public.v as select id, note as info, email as e from public.customers;
     alter view public.v owner to ${owner};
     create table public.accounts (id int, email text) partition by range (id);
     create table public.accounts_1 partition of public.accounts for values from (0) to (100);
     insert into public.accounts values (1, 'alice@example.com');
     create table public.legacy (id int, email text);
     create table public.legacy_child (extra int) inherits (public.legacy);
     insert into public.legacy_child values (2, 'bob@example.com', 7);
     create table decoy.cards (id int, number text);
     insert into decoy.cards values (1, 'alice@example.com');
     create table public.people (id int, ssn text, ssn_digits text generated always as (replace(ssn, '-', '')) stored);
     insert into public.people (id, ssn) values (1, '123-45-1271');
     create view public.people_v as select id, ssn_digits as d from public.people;
     create table public.events (id int, secret text) partition by range (id);
     create table public.events_p1 partition of public.events for values from (0) to (100);
     insert into public.events values (1, 'alice@example.com');
     create table public.par (id int, secret text);
     create table public.kid () inherits (public.par);
     insert into public.kid values (2, 'bob@example.com');
     alter role ${owner} set search_path = decoy, public;
     grant usage on schema decoy to public;
     grant all on all tables in schema public, decoy to public`,
    { database: 'app' },
  );
  token = await stack.token('alice');
  connected = await stack.connect('app', token);
});

afterAll(async () => {
  await connected?.stop();
  await stack?.close();
});

const VIA = WAYS_IN;

/** A session through `via`; with `searchPath`, it sets it first (the gateway takes no search_path at startup). */
async function open(via: (typeof VIA)[number], searchPath?: string): Promise<RawFrontend> {
  let f: RawFrontend;
  if (via === 'direct') f = await stack.direct('app', token);
  else if (via === 'the tunnel')
    f = await stack.tunnel('app', token, {
      params: [
        ['user', 'hoop'],
        ['database', 'app'],
      ],
    });
  else {
    f = await RawFrontend.tcp(connected.info.port);
    await f.startup(connected.info.password, [
      ['user', connected.info.user],
      ['database', connected.info.database],
    ]);
  }
  if (searchPath !== undefined) await f.simple(`set search_path = ${searchPath}`);
  return f;
}

const received = (ms: PgMessage[]): string => Buffer.concat(ms.map((m) => m.raw)).toString('latin1');
const rowsOf = (ms: PgMessage[]): string[][] => ms.filter((m) => m.type === 0x44).map((m) => parseDataRow(m.body).map((v) => v?.toString() ?? 'NULL'));

function expectNoEmails(ms: PgMessage[]): void {
  const bytes = received(ms);
  for (const e of [...EMAILS, ALICE_UPPER]) expect(bytes).not.toContain(e);
}

describe.each(VIA)('through %s', (via) => {
  it("masks a partition and an inheritance child by their parent's rules, however they are read", async () => {
    const f = await open(via, 'public');
    try {
      for (const sql of [
        'select id, email from accounts_1',
        "select id, email || '' as e from accounts_1",
        'select id, email from public.legacy_child',
        'select id, upper(email) from legacy_child',
        'copy accounts_1 to stdout',
        'copy accounts_1 (email) to stdout',
        'copy (select email from legacy_child) to stdout',
        'select * from (select email from accounts_1) s',
        'select * from events',
        'select id, secret from public.events',
        'select upper(secret) from events',
        'copy (select * from events) to stdout',
        'select * from par',
        'select secret from par',
      ]) {
        const got = await f.simple(sql);
        expect(received(got), sql).toContain(REDACTED);
        expectNoEmails(got);
      }
    } finally {
      f.destroy();
    }
  });

  it('masks a stored generated column computed from a masked column, however it is read (its expression is traced as a view column is)', async () => {
    const f = await open(via, 'public');
    try {
      for (const sql of [
        'select * from people',
        'select id, ssn_digits from people',
        "select ssn_digits || '' from people",
        'select d from people_v',
        'select * from (select ssn_digits from people) s',
        // (COPY of the table leaves generated columns out, and refuses them in a column list.)
        'copy people to stdout',
        'copy (select ssn_digits from people) to stdout',
      ]) {
        const got = await f.simple(sql);
        const bytes = received(got);
        expect(bytes, sql).toContain(REDACTED);
        expect(bytes, sql).not.toContain('123451271');
        expect(bytes, sql).not.toContain('123-45-1271');
      }
      // A column of its own table that it is not computed from is as it is; COPY of the table writes id and ssn (its generated column left out), masking only ssn.
      expect(rowsOf(await f.simple('select id from people'))).toEqual([['1']]);
      expect(received(await f.simple('copy people to stdout'))).toContain(`1\t${REDACTED}\n`);
    } finally {
      f.destroy();
    }
  });

  it('masks COPY of a column list by the table the bare name means for the session', async () => {
    // The session's search_path is the role's: decoy first, where cards is.
    const f = await open(via);
    try {
      const got = await f.simple('copy cards (id, number) to stdout');
      expect(received(got)).toContain(`1\t${REDACTED}`);
      expectNoEmails(got);
    } finally {
      f.destroy();
    }
  });

  it('follows the search_path the session sets, not the one the gateway connection has', async () => {
    for (const f of [await open(via, 'public'), await open(via)]) {
      try {
        if (!(await f.simple('show search_path')).some((m) => m.type === 0x44 && m.body.toString().includes('public') && !m.body.toString().includes('decoy'))) {
          await f.simple('set search_path = public');
        }
        // COPY table: the column order is the session's table's, not the decoy's.
        const copy = await f.simple('copy customers to stdout');
        expect(received(copy)).toContain('1\t[redacted]\tone');
        // COPY (query): the query's names are read as the session reads them.
        const copyQuery = await f.simple('copy (select id, email from customers order by id) to stdout');
        expectNoEmails(copyQuery);
        // A value computed from a view's column: the view is the session's public.v.
        const derived = await f.simple('select upper(e) from v order by id');
        expect(rowsOf(derived)).toEqual([[REDACTED], [REDACTED]]);
        expectNoEmails([...copy, ...copyQuery, ...derived]);
        // COPY data in an encoding whose characters may hold a backslash byte (SJIS 'ソ' is 0x83 0x5C): with no judge, every field masked.
        expectNoEmails(await f.simple("copy customers to stdout with (encoding 'SJIS')"));
        // A NULL string of the client's own is written unescaped for a value equal to it: masked as that value (the thirteenth attack's oracle).
        const nulled = await f.simple("copy customers (email) to stdout with (null 'alice@example.com')");
        expectNoEmails(nulled);
        expect(received(nulled)).toContain(REDACTED);
      } finally {
        f.destroy();
      }
    }
  });

  it('masks what a view reads now, after another session replaced it', async () => {
    const f = await open(via, 'public');
    try {
      await stack.pg.psql('create or replace view public.v as select id, note as info, email as e from public.customers', { database: 'app' });
      expect(rowsOf(await f.simple('select id, info from v order by id'))).toEqual([
        ['1', 'one'],
        ['2', 'two'],
      ]);
      await stack.pg.psql('create or replace view public.v as select id, email as info, note as e from public.customers', { database: 'app' });
      const after = await f.simple('select id, info from v order by id');
      expect(rowsOf(after)).toEqual([
        ['1', REDACTED],
        ['2', REDACTED],
      ]);
      expectNoEmails(after);
    } finally {
      f.destroy();
      await stack.pg.psql('create or replace view public.v as select id, note as info, email as e from public.customers', { database: 'app' });
    }
  });

  it('masks a view the session itself replaces or creates in its open transaction', async () => {
    const f = await open(via, 'public');
    try {
      expect(rowsOf(await f.simple('select id, info from v order by id'))).toEqual([
        ['1', 'one'],
        ['2', 'two'],
      ]);
      // The gateway's catalog connection cannot see an uncommitted definition: the view is read as
      // the session's DDL defined it (the masked column masked, the others exact).
      const replaced = await f.simple('begin; create or replace view v as select id, email as info, note as e from customers; select id, info, e from v order by id');
      expect(rowsOf(replaced)).toEqual([
        ['1', REDACTED, 'one'],
        ['2', REDACTED, 'two'],
      ]);
      const created = await f.simple('create view w as select id, email as contact from customers; select id, contact, upper(contact) from w order by id');
      expect(rowsOf(created)).toEqual([
        ['1', REDACTED, REDACTED],
        ['2', REDACTED, REDACTED],
      ]);
      expectNoEmails([...replaced, ...created]);
      await f.simple('rollback');
    } finally {
      f.destroy();
    }
  });

  it('masks a prepared statement whose view was replaced after it was described', async () => {
    const f = await open(via, 'public');
    try {
      let from = f.raw.length;
      f.write(Buffer.concat([parse('s', 'select id, info from v order by id'), msg('D', Buffer.from('S'), 's'), sync()]));
      await f.messagesSince(from, 1);
      from = f.raw.length;
      f.write(Buffer.concat([bind('', 's'), execute(''), sync()]));
      expect(rowsOf(await f.messagesSince(from, 1))).toEqual([
        ['1', 'one'],
        ['2', 'two'],
      ]);
      await stack.pg.psql('create or replace view public.v as select id, email as info, note as e from public.customers', { database: 'app' });
      from = f.raw.length;
      f.write(Buffer.concat([bind('', 's'), execute(''), sync()]));
      const after = await f.messagesSince(from, 1);
      expect(rowsOf(after)).toEqual([
        ['1', REDACTED],
        ['2', REDACTED],
      ]);
      expectNoEmails(after);
    } finally {
      f.destroy();
      await stack.pg.psql('create or replace view public.v as select id, note as info, email as e from public.customers', { database: 'app' });
    }
  });

  it('follows column alias lists', async () => {
    const f = await open(via, 'public');
    try {
      const got = [
        ...(await f.simple('select upper(b) from customers as x(a, b, c) order by a')),
        ...(await f.simple("select x.b || '' from customers x(a, b, c) order by a")),
        ...(await f.simple('select j.y from (customers cross join (select 1) s) as j(x, y) order by x')),
        ...(await f.simple('select b from customers as x(a, b, c) order by a')),
      ];
      expect(
        rowsOf(got)
          .flat()
          .every((v) => v === REDACTED),
      ).toBe(true);
      expect(rowsOf(got)).toHaveLength(8);
      expectNoEmails(got);
    } finally {
      f.destroy();
    }
  });
});
