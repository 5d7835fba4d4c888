/**
 * Side channels a statement controls: a value computed from a masked column must not come back
 * in a NOTIFY payload (pg_notify in the select list or in WHERE, heard by this session or another
 * one), in a setting the server reports back (set_config of application_name), or in the text of
 * an error or notice raised while evaluating an expression over it (a failing cast, an unknown
 * setting or relation named by the value). With `derived: mask` and `derived: deny` alike; through
 * `hoop connect` and straight to the tunnel; the assertions are on the bytes received.
 *
 * @see https://www.postgresql.org/docs/current/sql-notify.html
 * @see https://www.postgresql.org/docs/current/protocol-error-fields.html
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatementJudge } from '../../src/policy/decide.js';
import type { MaskingPolicy } from '../../src/policy/schema.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import { parseErrorFields, type PgMessage } from '../../src/postgres/wire/reader.js';
import { frontendMessage as msg } from '../harness/pg-frontend.js';
import { errorIn, RawFrontend } from '../harness/raw-pg.js';
import { startStack, type HoopStack, type RunningConnect, WAYS_IN } from '../harness/stack.js';
import { emptyPolicy } from '../harness/policy.js';

const base: MaskingPolicy = {
  columns: [{ table: 'public.customers', column: 'email', strategy: 'redact' }],
  names: [],
  detectors: [],
  derived: 'mask',
};
const SECRETS = ['alice@example.com', 'ALICE@EXAMPLE.COM', 'alice@example'];

let stack: HoopStack;
const connects = new Map<string, RunningConnect>();
const tokens = new Map<string, string>();

function judgeFor(masking: MaskingPolicy, who: { subject: string; groups: string[] }): StatementJudge {
  return new StatementJudge(emptyPolicy({ masking }), who, 'app', 'read-write');
}

beforeAll(async () => {
  await loadSqlParser();
  stack = await startStack({
    gateway: {
      sessionPolicy: (identity) => {
        const masking: MaskingPolicy = { ...base, derived: identity.groups.includes('deny') ? 'deny' : 'mask' };
        return { judge: judgeFor(masking, { subject: identity.subject, groups: identity.groups }), masking: { policy: masking } };
      },
    },
  });
  await stack.pg.psql(
    `create table customers (id int primary key, email text, note text);
     insert into customers values (1, 'alice@example.com', 'n1');
     create function shout(t text) returns boolean language plpgsql as $$ begin raise notice 'saw %', t; return true; end $$;
     create view customer_view as select id, email, note from customers;
     create view email_numbers as select id, email::int as n from customers;
     create view notes as select id, note from customers;
     grant all on customers, customer_view, email_numbers, notes to public;
     create table plain_notes (id int, note text); insert into plain_notes values (1, 'n1');
     alter table customers owner to ${stack.pg.users.scram.user}; alter table plain_notes owner to ${stack.pg.users.scram.user}; grant create on schema public to public`,
    { database: 'app' },
  );
  for (const mode of ['mask', 'deny']) {
    const token = await stack.token('alice', mode === 'deny' ? ['deny'] : []);
    tokens.set(mode, token);
    connects.set(mode, await stack.connect('app', token));
  }
});

afterAll(async () => {
  for (const c of connects.values()) await c.stop();
  await stack?.close();
});

async function open(mode: string, via: string): Promise<RawFrontend> {
  if (via === 'the tunnel') return stack.tunnel('app', tokens.get(mode)!);
  if (via === 'direct') return stack.direct('app', tokens.get(mode)!);
  const info = connects.get(mode)!.info;
  return RawFrontend.signedIn(info);
}

const bytes = (ms: PgMessage[]): string => Buffer.concat(ms.map((m) => m.raw)).toString('latin1');
const errorOf = errorIn;

describe.each(['mask', 'deny'])('derived: %s', (mode) => {
  describe.each(WAYS_IN)('through %s', (via) => {
    it('refuses pg_notify and set_config of a value computed from a masked column (select list and WHERE); the listener hears nothing', async () => {
      const listener = await open(mode, via);
      const f = await open(mode, via);
      try {
        await listener.simple('listen ch');
        for (const sql of [
          "select pg_notify('ch', email) from customers",
          "select 1 from customers where pg_notify('ch', upper(email)) is null",
          "select pg_notify('ch', (select email from customers limit 1))",
          "select pg_notify('ch', c::text) from customers c",
          "select set_config('application_name', email, false) from customers",
          // Through a view (the catalog says its column is masked), in texts of one shape: each is looked up, none passes on a verdict cached for the shape.
          "select pg_notify('ch', email) from customer_view where id = 1",
          "select pg_notify('ch', email) from customer_view where id = 2",
          "select pg_notify('ch', email) from customer_view where id = 3",
        ]) {
          const got = await f.simple(sql);
          const e = errorOf(got);
          expect(e?.code, sql).toBe('42501');
          expect(e?.message, sql).toContain('masking-side-channel');
          for (const s of SECRETS) expect(bytes(got), sql).not.toContain(s);
        }
        // A literal payload is no side channel, and the session goes on: the listener hears it as written.
        const ok = await f.simple("select pg_notify('ch', 'hello')");
        expect(errorOf(ok)).toBeUndefined();
        await listener.waitFor('A');
        await listener.simple('select 1');
        expect(listener.raw.toString('latin1')).toContain('hello');
        for (const s of SECRETS) expect(listener.raw.toString('latin1')).not.toContain(s);
        const name = await f.simple('show application_name');
        for (const s of SECRETS) expect(bytes(name) + f.raw.toString('latin1')).not.toContain(s);
      } finally {
        listener.destroy();
        f.destroy();
      }
    });

    it('withholds the text of errors and notices raised while evaluating a masked value; the SQLSTATE stays', async () => {
      const f = await open(mode, via);
      try {
        for (const [sql, code] of [
          ['select 1 from customers where email::int = 1', '22P02'],
          ['select 1 from customers where email::regclass is not null', '3F000'],
          ["select 1 from customers where current_setting(email) = 'x'", '42704'],
          ['select 1 from customers where length(email::int::text) > 0 order by 1', '22P02'],
        ] as const) {
          const got = await f.simple(sql);
          const e = errorOf(got);
          expect(e?.code, sql).toBe(code);
          expect(e?.message, sql).toContain('withheld');
          for (const s of SECRETS) expect(bytes(got), sql).not.toContain(s);
        }
        // Through a view over the masked column: an expression over its column (in the select list
        // or WHERE only), and the view's own expression, looked up when the error comes.
        for (const sql of ['select email::int from customer_view', 'select 1 from customer_view where email::int = 1', 'select n from email_numbers']) {
          const got = await f.simple(sql);
          expect(errorOf(got)?.code, sql).toBe('22P02');
          expect(errorOf(got)?.message, sql).toContain('withheld');
          for (const s of SECRETS) expect(bytes(got), sql).not.toContain(s);
        }
        // Errors of statements that read no masked value keep their text, through a view too.
        const plain = await f.simple("select 'abc'::int");
        expect(errorOf(plain)?.message).toContain('invalid input syntax for type integer: "abc"');
        expect(errorOf(await f.simple('select 1 from notes where note::int = 1'))?.message).toContain('invalid input syntax for type integer: "n1"');
        // A relation that does not exist is said as the server says it; a view the gateway cannot
        // see yet (made in the open transaction) has its errors withheld.
        expect(errorOf(await f.simple('select * from no_such_table'))?.message).toBe('relation "no_such_table" does not exist');
        await f.simple('begin');
        await f.simple('create temporary view fresh as select email::int as n from customers');
        const fresh = await f.simple('select n from fresh');
        expect(errorOf(fresh)?.code).toBe('22P02');
        for (const s of SECRETS) expect(bytes(fresh)).not.toContain(s);
        await f.simple('rollback');
        // A notice raised by a function evaluated over a masked value.
        const notice = await f.simple('select id from customers where shout(email)');
        const n = notice.find((m) => m.type === 0x4e);
        expect(n && parseErrorFields(n.body).message).toContain('withheld');
        expect(errorOf(notice)).toBeUndefined();
        for (const s of SECRETS) expect(bytes(notice)).not.toContain(s);
      } finally {
        f.destroy();
      }
    });
  });
});

describe('errors of statements that evaluate masked columns they do not read (issue 72, a third attack)', () => {
  /** Each step in an open transaction (rolled back after), the last one's error judged. */
  async function lastError(f: RawFrontend, steps: readonly string[]): Promise<PgMessage[]> {
    await f.simple('begin');
    let got: PgMessage[] = [];
    for (const sql of steps) got = await f.simple(sql);
    await f.simple('rollback');
    return got;
  }

  it.each([
    ['a NOT VALID CHECK checked by an UPDATE of another column', ['alter table customers add constraint ck check (email::int > 0) not valid', "update customers set note = 'x' where id = 1"]],
    ['an expression index evaluated by an UPDATE of another column', ['create index ci on customers ((email::int)) where id > 100', 'update customers set id = 101 where id = 1']],
    [
      'a NOT VALID CHECK checked by an INSERT … ON CONFLICT DO UPDATE',
      ['alter table customers add constraint ck check (email::int > 0) not valid', "insert into customers values (1, 'x', 'y') on conflict (id) do update set note = 'z'"],
    ],
    [
      'a NOT VALID CHECK checked by a MERGE',
      ['alter table customers add constraint ck check (email::int > 0) not valid', "merge into customers c using (select 1 as id) s on c.id = s.id when matched then update set note = 'm'"],
    ],
    [
      'a domain constraint added over a masked column',
      ['drop view customer_view, email_numbers', 'create domain dtext as text', 'alter table customers alter column email type dtext', 'alter domain dtext add constraint dchk check (value::int > 0)'],
    ],
    [
      'a domain constraint validated over a masked column',
      [
        'drop view customer_view, email_numbers',
        'create domain dtext as text',
        'alter table customers alter column email type dtext',
        'alter domain dtext add constraint dchk check (value::int > 0) not valid',
        'alter domain dtext validate constraint dchk',
      ],
    ],
  ] as const)('withholds the text (the SQLSTATE stays): %s', async (_what, steps) => {
    const f = await open('mask', 'the tunnel');
    try {
      const got = await lastError(f, steps);
      expect(errorOf(got)?.code).toBe('22P02');
      expect(errorOf(got)?.message).toContain('withheld');
      for (const s of SECRETS) expect(bytes(got)).not.toContain(s);
    } finally {
      f.destroy();
    }
  });

  it("withholds the row a view's CHECK OPTION quotes (the base table's whole row, masked columns the view does not show too), and what a trigger's function raises", async () => {
    const f = await open('mask', 'the tunnel');
    try {
      const checked = await lastError(f, ["create view v_notes as select id, note from customers where note is distinct from 'bad' with check option", "update v_notes set note = 'bad' where id = 1"]);
      expect(errorOf(checked)?.code).toBe('44000');
      expect(errorOf(checked)?.message).toContain('withheld');
      for (const s of SECRETS) expect(bytes(checked)).not.toContain(s);
      // A trigger made before (a session under masking may make none) runs on a write to a table with no masked column.
      await stack.pg.psql(
        "create function tell() returns trigger language plpgsql as $$ begin raise notice '%', (select string_agg(email, ',') from customers); return new; end $$; create trigger t before update on plain_notes for each row execute function tell()",
        { database: 'app' },
      );
      const raised = await lastError(f, ['update plain_notes set id = id']);
      const n = raised.find((m) => m.type === 0x4e);
      expect(n && parseErrorFields(n.body).message).toContain('withheld');
      for (const s of SECRETS) expect(bytes(raised)).not.toContain(s);
    } finally {
      f.destroy();
      await stack.pg.psql('drop trigger if exists t on plain_notes; drop function if exists tell()', { database: 'app' });
    }
  });

  it("withholds what a SQL function PostgreSQL inlines raises (no context field says so), and what a table's rule evaluates (the eleventh attack)", async () => {
    await stack.pg.psql(
      `create function g() returns setof int language sql stable as 'select email::int from customers';
       create function g4() returns setof text language sql stable as 'select email from customers';
       create table ruled (id int, note text); insert into ruled values (1, 'r'); alter table ruled owner to ${stack.pg.users.scram.user};
       create rule leak as on update to ruled do also update plain_notes set note = (select email from customers limit 1)::int::text`,
      { database: 'app' },
    );
    const f = await open('mask', 'the tunnel');
    try {
      for (const steps of [
        ['select * from g()'],
        ['update ruled set note = note'],
        // Run later, by EXECUTE or FETCH, as run now (the twelfth attack).
        ['prepare p as select * from g()', 'execute p'],
        ['declare c cursor for select * from g()', 'fetch all c'],
        ['prepare w as update ruled set note = note', 'execute w'],
        // EXPLAIN ANALYZE runs what it names (the thirteenth attack).
        ['prepare pc as select email::int from customers', 'explain analyze execute pc'],
        ['prepare pg as select * from g()', 'explain analyze execute pg'],
      ]) {
        const got = await lastError(f, steps);
        expect(errorOf(got)?.code, steps[0]).toBe('22P02');
        expect(errorOf(got)?.message, steps[0]).toContain('withheld');
        for (const s of SECRETS) expect(bytes(got)).not.toContain(s);
      }
      // What such a function returns is masked whole, however it is run.
      for (const steps of [['select * from g4()'], ['prepare q as select * from g4()', 'execute q'], ['declare d cursor for select * from g4()', 'fetch all d']]) {
        const got = await lastError(f, steps);
        expect(errorOf(got), steps.join('; ')).toBeUndefined();
        for (const s of SECRETS) expect(bytes(got), steps.join('; ')).not.toContain(s);
      }
      // A table with no rule, and a function of the system's, keep the server's words.
      expect(errorOf(await lastError(f, ["select 'x'::int"]))?.message).toContain('invalid input syntax for type integer');
    } finally {
      f.destroy();
      await stack.pg.psql('drop rule if exists leak on ruled; drop table if exists ruled; drop function if exists g(); drop function if exists g4()', { database: 'app' });
    }
  });

  it("withholds a deferred constraint's error at COMMIT or SET CONSTRAINTS (over a child of a masked table), and a notification's payload a trigger wrote (the twelfth attack)", async () => {
    await stack.pg.psql(
      `create table kid (tag text) inherits (customers); alter table kid add unique (tag, email) deferrable initially deferred;
       insert into kid values (10, 'alice@example.com', 'k1', 'a'), (11, 'alice@example.com', 'k2', 'b'); grant all on kid to public;
       create function tell_row() returns trigger language plpgsql as $$ begin perform pg_notify('changes', row_to_json(new)::text); return new; end $$;
       create trigger told after update on customers for each row execute function tell_row()`,
      { database: 'app' },
    );
    const f = await open('mask', 'the tunnel');
    try {
      for (const last of ['commit', 'set constraints all immediate']) {
        await f.simple('begin');
        expect(errorOf(await f.simple("update kid set tag = 'a' where tag = 'b'"))).toBeUndefined();
        const got = await f.simple(last);
        await f.simple('rollback');
        expect(errorOf(got)?.code, last).toBe('23505');
        expect(errorOf(got)?.message, last).toContain('withheld');
        for (const s of SECRETS) expect(bytes(got), last).not.toContain(s);
      }
      await f.simple('listen changes');
      const told = await f.simple("update customers set note = 'told' where id = 1");
      const n = told.find((m) => m.type === 0x41);
      expect(n).toBeDefined();
      expect(n!.body.toString('utf8')).toContain('withheld');
      for (const s of SECRETS) expect(bytes(told)).not.toContain(s);
    } finally {
      f.destroy();
      await stack.pg.psql('drop table if exists kid; drop trigger if exists told on customers; drop function if exists tell_row()', { database: 'app' });
    }
  });

  it("withholds what a cursor WITH HOLD's query quotes at the COMMIT that runs it, and masks a cursor whose view this session replaced as unreadable code (the helper's attacks)", async () => {
    const f = await open('mask', 'the tunnel');
    try {
      for (const texts of [['begin', 'declare hc cursor with hold for select email::int from customers', 'commit'], ['declare hc cursor with hold for select email::int from customers']]) {
        let got: PgMessage[] = [];
        for (const t of texts) got = await f.simple(t);
        expect(errorOf(got)?.code, texts.at(-1)).toBe('22P02');
        expect(errorOf(got)?.message, texts.at(-1)).toContain('withheld');
        for (const secret of SECRETS) expect(bytes(got)).not.toContain(secret);
      }
      await f.simple('create view hv as select id, email as x from customers');
      for (const hold of ['', ' with hold']) {
        await f.simple('begin');
        await f.simple(`declare vc cursor${hold} for select x from hv`);
        if (hold) await f.simple('commit');
        expect(errorOf(await f.simple('create or replace view hv as select id, note as x from customers'))).toBeUndefined();
        const rows = await f.simple('fetch all from vc');
        expect(errorOf(rows)).toBeUndefined();
        for (const secret of SECRETS) expect(bytes(rows), hold).not.toContain(secret);
        await f.simple(hold ? 'close vc' : 'rollback');
        await f.simple('create or replace view hv as select id, email as x from customers');
      }
    } finally {
      f.destroy();
    }
  });

  it('keeps the text of a write to a table with no masked column', async () => {
    const f = await open('mask', 'the tunnel');
    try {
      const got = await lastError(f, ['alter table plain_notes add constraint nk check (note::int > 0) not valid', 'update plain_notes set id = id']);
      expect(errorOf(got)?.message).toContain('invalid input syntax for type integer');
    } finally {
      f.destroy();
    }
  });
});

describe.each(WAYS_IN)('what masking follows, through %s', (via) => {
  /** Bytes of the frontend messages. */
  const P = (name: string, sql: string): Buffer => msg('P', name, sql, 0);
  const B = (portal: string, statement: string): Buffer => msg('B', portal, statement, 0, 0, 0);
  const E = (portal: string): Buffer => msg('E', portal, Buffer.alloc(4));
  const D = (what: 'S' | 'P', name: string): Buffer => msg('D', Buffer.from(what), name);
  const S = (): Buffer => msg('S');
  const Q = (sql: string): Buffer => msg('Q', sql);
  const DERIVED = "select email || '' as e from customers";

  async function send(f: RawFrontend, parts: Buffer[], readyForQuery: number): Promise<PgMessage[]> {
    const from = f.raw.length;
    f.write(Buffer.concat(parts));
    return f.messagesSince(from, readyForQuery);
  }

  it('a Query the server discards after an extended-protocol error (no Sync yet) does not shift which answer is which', async () => {
    const f = await open('mask', via);
    try {
      const from = f.raw.length;
      f.write(P('', 'select * from no_such_table'));
      f.write(msg('H'));
      await f.waitFor('E');
      // The server discards this Query (it waits for a Sync); the next one must be masked as itself.
      const got = await send(f, [Q('select 1'), S(), Q(DERIVED)], 2);
      expect(f.raw.subarray(from).toString('latin1')).toContain('no_such_table');
      for (const s of SECRETS) expect(bytes(got)).not.toContain(s);
      expect(bytes(got)).toContain('[redacted]');
    } finally {
      f.destroy();
    }
  });

  it('a Sync sent during COPY FROM STDIN (which the server ignores) does not shift which answer is which', async () => {
    const f = await open('mask', via);
    try {
      await f.simple('create temp table sink (t text)');
      const from = f.raw.length;
      f.write(Q('copy sink from stdin'));
      await f.waitFor('G');
      const got = await send(f, [S(), msg('d', Buffer.from('x\n')), msg('c'), Q(DERIVED)], 2);
      expect(f.raw.subarray(from).toString('latin1')).toContain('COPY 1');
      for (const s of SECRETS) expect(bytes(got)).not.toContain(s);
      expect(bytes(got)).toContain('[redacted]');
    } finally {
      f.destroy();
    }
  });

  it('COPY FROM STDIN in the extended protocol, as libpq sends it (a Sync before the data, one after CopyDone)', async () => {
    const f = await open('mask', via);
    try {
      await f.simple('create temp table sink2 (t text)');
      const from = f.raw.length;
      f.write(Buffer.concat([P('', 'copy sink2 from stdin'), B('', ''), E(''), S()]));
      await f.waitFor('G');
      const got = await send(f, [msg('d', Buffer.from('a\nb\n')), msg('c'), S(), Q(`select count(*) from sink2; ${DERIVED}`)], 2);
      expect(f.raw.subarray(from).toString('latin1')).toContain('COPY 2');
      expect(bytes(got)).toContain('[redacted]');
      for (const s of SECRETS) expect(bytes(got)).not.toContain(s);
    } finally {
      f.destroy();
    }
  });

  it('a statement replaced by SQL PREPARE after the client described it is masked as what it is now', async () => {
    const f = await open('mask', via);
    try {
      await send(f, [P('s1', 'select id::text as e from customers'), D('S', 's1'), S()], 1);
      await f.simple(`deallocate s1; prepare s1 as ${DERIVED}`);
      const got = await send(f, [B('p', 's1'), E('p'), S()], 1);
      for (const s of SECRETS) expect(bytes(got)).not.toContain(s);
      expect(bytes(got)).toContain('[redacted]');
      // Nothing of the masker's own Describe reaches the client.
      expect(got.map((m) => String.fromCharCode(m.type)).join('')).toBe('2DCZ');
    } finally {
      f.destroy();
    }
  });

  it('withholds error text of a cursor FETCH, refuses a DO block (its body could keep a masked value anywhere) and reads masking cannot trace', async () => {
    const f = await open('mask', via);
    try {
      const fetch = await f.simple('begin; declare c cursor for select email::int from customers; fetch c');
      expect(errorOf(fetch)?.code).toBe('22P02');
      expect(errorOf(fetch)?.message).toContain('withheld');
      for (const s of SECRETS) expect(bytes(fetch)).not.toContain(s);
      await f.simple('rollback');
      const notice = await f.simple("do $$ begin raise notice '%', (select email from customers limit 1); end $$");
      expect(errorOf(notice)?.message).toContain('masking-side-channel');
      for (const s of SECRETS) expect(bytes(notice)).not.toContain(s);
      await stack.pg.psql('analyze customers', { database: 'app' });
      for (const sql of ["select query_to_xml('select email from customers', true, false, '')", "select table_to_xml('customers', true, false, '')"]) {
        const got = await f.simple(sql);
        expect(errorOf(got)?.message, sql).toContain('masking-side-channel');
        for (const s of SECRETS) expect(bytes(got), sql).not.toContain(s);
      }
      // The planner's statistics are read, their values masked.
      for (const sql of ["select most_common_vals::text, histogram_bounds from pg_stats where tablename = 'customers'", 'select * from pg_catalog.pg_statistic']) {
        const got = await f.simple(sql);
        for (const s of SECRETS) expect(bytes(got), sql).not.toContain(s);
      }
    } finally {
      f.destroy();
    }
  });
});
