/**
 * The write guard attacked a fifth time (issue 72): deferred triggers that defer themselves again in
 * autocommit and in a batch's own transaction, a transaction status read before the server answered,
 * a BEGIN or COMMIT the guard followed by a shadow of the statement names, the guard's own rollback
 * made to succeed by a statement planted under its name, a table renamed inside the block, and the
 * guard's own count failing under a client's Execute. Each test asserts what the database holds.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgClient } from '../harness/clients.js';
import { outcome } from '../harness/pg-outcome.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml } from '../harness/postgres.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { reviewCliOf } from '../harness/review-cli.js';
import { errorIn, RawFrontend } from '../harness/raw-pg.js';
import { bindPlain, execute, frameMessage, parseNamed, query, sync } from '../../src/postgres/wire/messages.js';

/** What a probe saw, for a reader of the test (its outcome is asserted on the database). */
const note = (..._seen: unknown[]): void => undefined;

let policyRepo: PolicyGitRepo;
let stack: HoopStack;
let c: RunningConnect;
const clients: pg.Client[] = [];

const bundle = (connection: string): string => `version: 1
connections:
${connection}access:
  - { name: people, subjects: [alice, bob], connections: [app], mode: read-write }
statements:
  reviewers:
    - { groups: [dba], timeout: 60s }
  rules:
    - { name: rev-writes, match: { tables: [public.rev] }, action: allow, maxAffectedRows: 2, overLimit: review }
    - { name: keep-kept, match: { kinds: [delete], tables: [kept, kept2] }, action: deny, message: rows of kept are kept }
    - { name: few-limited, match: { tables: [public.lim] }, action: allow, maxAffectedRows: 2 }
`;

const db = (sql: string): Promise<string> => stack.pg.psql(sql, { database: 'app' });
const count = async (table: string): Promise<number> => Number((await db(`select count(*) from ${table}`)).trim());
async function session(): Promise<pg.Client> {
  const client = await pgClient(c.info);
  client.on('error', () => undefined);
  clients.push(client);
  return client;
}
const ext = (sql: string, portal = ''): Buffer => Buffer.concat([parseNamed('', sql), bindPlain(portal, ''), execute(portal)]);
const summary = (ms: { type: number; body: Buffer }[]): string => ms.map((m) => (m.type === 0x5a ? `Z${String.fromCharCode(m.body[0]!)}` : String.fromCharCode(m.type))).join('');

const { reviewCli, pendingReview } = reviewCliOf(() => stack);

beforeAll(async () => {
  policyRepo = new PolicyGitRepo('hoop-atk1-');
  stack = await startStack({
    policy: ({ pg }) => {
      policyRepo.commit(bundle(connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })));
      return policyRepo.gatewayBlock(['${env:APP_*}']);
    },
  });
  await db(`create table kept(id int primary key); insert into kept select generate_series(1, 10);
            create table lim(id int primary key, v int); insert into lim select g, 0 from generate_series(1, 10) g;
            create table free(id int); create table rev(id int primary key, v int); insert into rev select g, 0 from generate_series(1, 5) g;
            create table def(id int); create table redefer(id int); create table def2(id int);
            create function del_kept() returns trigger language plpgsql as $$ begin delete from kept where id = (select min(id) from kept); return null; end $$;
            create function again() returns trigger language plpgsql as $$ begin set constraints all deferred; insert into def2 values (new.id); return null; end $$;
            create constraint trigger t after insert on def deferrable initially deferred for each row execute function del_kept();
            create constraint trigger t after insert on redefer deferrable initially deferred for each row execute function again();
            create constraint trigger t after insert on def2 deferrable initially deferred for each row execute function del_kept();
            grant all on all tables in schema public to public`);
  c = await stack.connect('app', await stack.token('alice'));
}, 240_000);

afterAll(async () => {
  for (const client of clients) await client.end().catch(() => undefined);
  await c?.stop();
  await stack?.close();
  policyRepo?.remove();
});

describe('attacks', () => {
  it('H2: a cursor under the count name: the extended write is skipped silently', async () => {
    const t = await session();
    expect(await outcome(t, 'UPDATE rev SET v = v WHERE id = 1')).toBe('ok');
    const m = ((await t.query("SELECT name FROM pg_prepared_statements WHERE name LIKE 'hoop%count'")).rows[0] as { name: string }).name;
    const f = await RawFrontend.signedIn(c.info as never);
    await f.simple('UPDATE rev SET v = v WHERE id = 1');
    const m2 = summary(await f.simple("SELECT name FROM pg_prepared_statements WHERE name LIKE 'hoop%count'"));
    const rows = (await f.simple("SELECT name FROM pg_prepared_statements WHERE name LIKE 'hoop%count'")).filter((x) => x.type === 0x44);
    const name = rows[0]!.body.subarray(6).toString('utf8');
    note('H2 name', name, m2, m);
    note('H2 declare', summary(await f.simple(`DECLARE ${name} CURSOR WITH HOLD FOR SELECT 1`)));
    const from = f.raw.length;
    f.write(Buffer.concat([ext('INSERT INTO free VALUES (4242)'), sync()]));
    const got = await f.messagesSince(from, 1, 30_000);
    note('H2:', summary(got));
    expect(summary(got)).toMatch(/^12(C|E)ZI$/);
    f.destroy();
  });

  it('P1-limit: the redefer chain carries a write over the row limit past the count', async () => {
    await db(`create table redefer3(id int); create table def3(id int); grant all on redefer3, def3 to public;
              create function again3() returns trigger language plpgsql as $$ begin set constraints all deferred; insert into def3 values (new.id); return null; end $$;
              create function upd_lim() returns trigger language plpgsql as $$ begin update lim set v = v + 1; return null; end $$;
              create constraint trigger t after insert on redefer3 deferrable initially deferred for each row execute function again3();
              create constraint trigger t after insert on def3 deferrable initially deferred for each row execute function upd_lim()`);
    const s = await session();
    note('P1-limit direct over-limit:', await outcome(s, 'UPDATE lim SET v = v + 1'));
    note('P1-limit:', await outcome(s, 'INSERT INTO redefer3 VALUES (1)'));
    expect((await db('select sum(v) from lim')).trim()).toBe('0');
  });
  it('H1: forged count via DO (close the kept count, prepare one of its name) / a cursor under the guard portal name', async () => {
    const s = await session();
    expect(await outcome(s, 'UPDATE rev SET v = v WHERE id = 1')).toBe('ok');
    const n = ((await s.query("SELECT name FROM pg_prepared_statements WHERE name LIKE 'hoop%count'")).rows[0] as { name: string }).name;
    note('H1 DO:', await outcome(s, `DO $$ BEGIN EXECUTE 'DEALLOCATE ${n}'; EXECUTE 'PREPARE ${n} AS SELECT ''on''::text, NULL::text'; END $$`));
    note('H1 write:', await outcome(s, 'INSERT INTO def VALUES (40)'), 'kept', await count('kept'));
    const t = await session();
    expect(await outcome(t, 'UPDATE rev SET v = v WHERE id = 1')).toBe('ok');
    const m = ((await t.query("SELECT name FROM pg_prepared_statements WHERE name LIKE 'hoop%count'")).rows[0] as { name: string }).name;
    note('H1 cursor:', await outcome(t, `DECLARE ${m} CURSOR WITH HOLD FOR SELECT 'on'::text, NULL::text`));
    note('H1 write2:', await outcome(t, 'INSERT INTO def VALUES (41)'), await outcome(t, 'INSERT INTO def VALUES ($1)', [42]), 'kept', await count('kept'));
    note('H1 after:', await outcome(t, 'SELECT 1'));
  });

  it('R12: a trigger deletes from the kept table under a name it has only inside the block (renamed by its owner), renamed back before COMMIT', async () => {
    const s = await session();
    const me = (await s.query('select current_user as u')).rows[0].u as string;
    await db(`create table kept2(id int primary key); insert into kept2 select generate_series(1, 10); alter table kept2 owner to ${me};
              create table free2(id int); grant all on free2 to public;
              create function del_renamed() returns trigger language plpgsql as $$ begin delete from kept_r where id > 5; return null; end $$;
              create trigger t after insert on free2 for each row execute function del_renamed()`);
    note('R12 direct delete refused?', await outcome(s, 'DELETE FROM kept2 WHERE id = 1'));
    await s.query('BEGIN');
    note('R12 rename:', await outcome(s, 'ALTER TABLE kept2 RENAME TO kept_r'));
    note('R12 insert (trigger deletes):', await outcome(s, 'INSERT INTO free2 VALUES (1)'));
    note('R12 rename back:', await outcome(s, 'ALTER TABLE kept_r RENAME TO kept2'));
    note('R12 commit:', await outcome(s, 'COMMIT'));
    expect(await count('kept2')).toBe(10);
  });

  it('R13: code whose body the gateway cannot read (a function given as a string, a DO block) is refused before it can rename the kept table', async () => {
    const s = await session();
    for (const sql of ["CREATE FUNCTION ren() RETURNS void LANGUAGE sql AS 'ALTER TABLE kept RENAME TO kept_f'", "DO $$ BEGIN EXECUTE 'ALTER TABLE kept RENAME TO kept_f'; END $$"])
      expect(await outcome(s, sql), sql).toMatch(/^42501: .*unguarded-code.*cannot read/);
    expect(await outcome(s, 'SELECT ren()')).toMatch(/^42883/);
    expect((await db("select to_regclass('public.kept') is not null, to_regclass('public.kept_f') is null")).trim()).toBe('t|t');
  });

  it('R14: a function whose body writes is refused when made (its writes would run uncounted when called: the fourth and fifth rounds); one whose body only reads is made and runs', async () => {
    const s = await session();
    const before = await count('kept');
    for (const sql of [
      'CREATE FUNCTION purge1() RETURNS int LANGUAGE sql BEGIN ATOMIC DELETE FROM kept WHERE id = (SELECT max(id) FROM kept); SELECT 1; END',
      'CREATE PROCEDURE purge2() LANGUAGE sql BEGIN ATOMIC DELETE FROM kept WHERE id = (SELECT max(id) FROM kept); END',
      // Through a table whose deferred trigger deletes kept rows, or past a row limit: refused as it is made.
      'CREATE FUNCTION via_def() RETURNS int LANGUAGE sql BEGIN ATOMIC INSERT INTO def VALUES (1); SELECT 1; END',
      'CREATE FUNCTION bump() RETURNS int LANGUAGE sql BEGIN ATOMIC UPDATE lim SET v = v + 1; SELECT 1; END',
    ])
      expect(await outcome(s, sql), sql).toMatch(/^42501: .*unguarded-code.*writes when it is called/);
    for (const sql of ['SELECT purge1()', 'CALL purge2()', 'SELECT via_def()', 'SELECT bump()']) expect(await outcome(s, sql), sql).toMatch(/^42883/);
    expect(await outcome(s, 'CREATE FUNCTION frees() RETURNS bigint LANGUAGE sql RETURN (SELECT count(*) FROM free)')).toBe('ok');
    expect(await outcome(s, 'SELECT frees()')).toBe('ok');
    expect(await count('kept')).toBe(before);
    expect((await db('select sum(v) from lim')).trim()).toBe('0');
  });

  it("R15: a COPY FROM STDIN is counted at its CopyDone: a trigger's delete of kept rows is refused (the fourth round); plain rows load, in a block too; a CopyFail and a COPY that fails say so and leave the session idle", async () => {
    await db(`create table trg(id int); create trigger t after insert on trg for each row execute function del_kept(); grant all on trg to public`);
    const before = await count('kept');
    const f = await RawFrontend.signedIn(c.info as never);
    const copy = async (table: string, rows: string, end: Buffer = frameMessage(0x63, Buffer.alloc(0))): Promise<string> => {
      const from = f.raw.length;
      f.write(query(`COPY ${table} FROM STDIN`));
      if ((await f.waitFor('G', 30_000)) === undefined) throw new Error('the session ended');
      f.write(Buffer.concat([frameMessage(0x64, Buffer.from(rows)), end]));
      const got = await f.messagesSince(from, 1, 30_000);
      const error = errorIn(got);
      return `${error ? `${error.code} ${error.message}` : 'ok'} Z${String.fromCharCode(got.at(-1)!.body[0]!)}`;
    };
    expect(await copy('trg', '1\n2\n')).toMatch(/^42501 .*deleted rows of public\.kept.* ZI$/);
    // A deferred trigger fires at the end of the gateway's own transaction, before the count.
    expect(await copy('def', '1\n2\n3\n')).toMatch(/^42501 .*deleted rows of public\.kept.* ZI$/);
    expect(await count('kept')).toBe(before);
    expect((await db('select (select count(*) from trg) + (select count(*) from def)')).trim()).toBe('0');
    expect(await copy('free', '501\n502\n')).toBe('ok ZI');
    await f.simple('BEGIN');
    expect(await copy('free', '503\n')).toBe('ok ZT');
    expect(await copy('trg', '4\n')).toMatch(/^42501 .*deleted rows of public\.kept.* ZE$/);
    await f.simple('ROLLBACK');
    expect(await copy('free', '504\n', frameMessage(0x66, Buffer.from('client gave up\0')))).toMatch(/^57014 .*client gave up.* ZI$/);
    expect(await copy('free', 'not a number\n')).toMatch(/^22P02 .* ZI$/);
    const missing = f.raw.length;
    f.write(query('COPY no_such_table FROM STDIN'));
    expect(errorIn(await f.messagesSince(missing, 1, 30_000))?.code).toBe('42P01');
    expect(await copy('free', '505\n')).toBe('ok ZI');
    expect((await db('select array_agg(id order by id) from free where id > 500')).trim()).toBe('{501,502,505}');
    expect(await count('kept')).toBe(before);
    // By Execute it is refused, saying to send it as a Query.
    const ext = f.raw.length;
    f.write(Buffer.concat([parseNamed('', 'COPY free FROM STDIN'), bindPlain('', ''), execute(''), sync()]));
    expect(errorIn(await f.messagesSince(ext, 1, 30_000))?.message).toMatch(/COPY FROM STDIN is counted as a Query/);
    f.destroy();
  });

  it('R11: rename the kept table inside a block, delete under the new name, rename back', async () => {
    const s = await session();
    const before = await count('kept');
    await s.query('BEGIN');
    note('R11 alter1:', await outcome(s, 'ALTER TABLE kept RENAME TO kept_x'));
    note('R11 delete:', await outcome(s, 'DELETE FROM kept_x WHERE id > 5'));
    note('R11 alter2:', await outcome(s, 'ALTER TABLE kept_x RENAME TO kept'));
    note('R11 commit:', await outcome(s, 'COMMIT'));
    note('R11 kept', before, '->', await count('kept'));
  });
  it('R11b: same in autocommit with a function-free single text', async () => {
    const s = await session();
    const before = await count('kept');
    note('R11b:', await outcome(s, 'ALTER TABLE kept RENAME TO kept_y; DELETE FROM kept_y WHERE id > 8; ALTER TABLE kept_y RENAME TO kept'));
    note('R11b kept', before, '->', await count('kept'));
    const t = await session();
    note(
      'R11c schema move:',
      await outcome(t, 'CREATE SCHEMA IF NOT EXISTS elsewhere'),
      await outcome(t, 'BEGIN'),
      await outcome(t, 'ALTER TABLE kept SET SCHEMA elsewhere'),
      await outcome(t, 'DELETE FROM elsewhere.kept WHERE id > 7'),
      await outcome(t, 'ALTER TABLE elsewhere.kept SET SCHEMA public'),
      await outcome(t, 'COMMIT'),
    );
    note('R11c kept ->', await count('kept'));
  });

  it("P4: the guard's own failing Describe (review rollback of a batch) made to succeed by a statement planted under its name", async () => {
    const s = await session();
    // A guarded write prepares the kept count; its name is visible, the abort name derives from it.
    expect(await outcome(s, 'UPDATE rev SET v = v WHERE id = 1')).toBe('ok');
    const names = await s.query("SELECT name FROM pg_prepared_statements WHERE name LIKE 'hoop%'");
    note('P4 names:', names.rows);
    const count = (names.rows as { name: string }[]).map((r) => r.name).find((n) => n.endsWith('_count'))!;
    const abort = count.replace(/_count$/, '_abort');
    note('P4 DO:', await outcome(s, `DO $$ BEGIN EXECUTE 'PREPARE ${abort} AS SELECT 1'; END $$`));
    const pending = outcome(s, 'UPDATE rev SET v = v + $1', [1]);
    const id = await pendingReview('UPDATE rev SET v = v + $1');
    const during = (await db('select sum(v) from rev')).trim();
    await reviewCli(['deny', id, '--reason', 'no']);
    note('P4 client got:', await pending);
    expect(during).toBe('0');
    expect((await db('select sum(v) from rev')).trim()).toBe('0');
  });

  it('P3: COMMIT with a leading comment is not followed: the batch stays "opened" and the next write skips SET CONSTRAINTS', async () => {
    const f = await RawFrontend.signedIn(c.info as never);
    const before = await count('kept');
    const from = f.raw.length;
    f.write(Buffer.concat([ext('BEGIN'), ext('/* x */ COMMIT'), ext('INSERT INTO def VALUES (30)'), sync()]));
    const got = await f.messagesSince(from, 1, 30_000);
    note('P3:', summary(got));
    expect(await count('kept')).toBe(before);
    f.destroy();
  });

  it('P3b: statement map stale after Close + SQL PREPARE: a SELECT portal counts as BEGIN', async () => {
    const f = await RawFrontend.signedIn(c.info as never);
    const before = await count('kept');
    let from = f.raw.length;
    f.write(Buffer.concat([parseNamed('s', 'BEGIN'), sync()]));
    await f.messagesSince(from, 1, 30_000);
    from = f.raw.length;
    f.write(Buffer.concat([(await import('../../src/postgres/wire/messages.js')).close('S', 's'), sync()]));
    await f.messagesSince(from, 1, 30_000);
    note('P3b prepare:', summary(await f.simple('PREPARE s AS SELECT 1')));
    from = f.raw.length;
    f.write(Buffer.concat([bindPlain('p', 's'), execute('p'), ext('INSERT INTO def VALUES (31)'), sync()]));
    const got = await f.messagesSince(from, 1, 30_000);
    note('P3b:', summary(got));
    expect(await count('kept')).toBe(before);
    f.destroy();
  });

  it('baseline: a deferred trigger deleting kept rows is refused in autocommit', async () => {
    const before = await count('kept');
    const s = await session();
    expect(await outcome(s, 'INSERT INTO def VALUES (1)')).toMatch(/^42501/);
    expect(await count('kept')).toBe(before);
  });

  it('P1: redefer trigger in autocommit (simple query)', async () => {
    const before = await count('kept');
    const s = await session();
    const r = await outcome(s, 'INSERT INTO redefer VALUES (2)');
    note('P1 simple:', r);
    expect(await count('kept')).toBe(before);
  });

  it('P1b: redefer trigger in an extended batch implicit transaction', async () => {
    const before = await count('kept');
    const s = await session();
    const r = await outcome(s, 'INSERT INTO redefer VALUES ($1)', [3]);
    note('P1b ext:', r);
    expect(await count('kept')).toBe(before);
  });

  it('P2: stale transaction status: ROLLBACK pipelined before an extended write', async () => {
    const before = await count('kept');
    const f = await RawFrontend.signedIn(c.info as never);
    await f.simple('BEGIN');
    const from = f.raw.length;
    f.write(Buffer.concat([query('ROLLBACK'), ext('INSERT INTO def VALUES (4)'), sync()]));
    const got = await f.messagesSince(from, 2, 30_000);
    note('P2:', summary(got));
    expect(await count('kept')).toBe(before);
    f.destroy();
  });
});
