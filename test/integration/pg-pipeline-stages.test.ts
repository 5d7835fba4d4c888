/**
 * The stateful stages of the PostgreSQL data path — the write guard, masking, the statement
 * gate and the server state — driven directly through the relay's paths (test/harness/pg-pipeline.ts)
 * against a real server: no gateway, tunnel or CLI in between. The client's bytes are cut at
 * every point of a message, so a stage that keeps state across chunks is tested where it can
 * break; what the client received is compared with what the database holds.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html
 * @see src/postgres/pipeline/write-guard.ts
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatementJudge } from '../../src/policy/decide.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import { bindText, query } from '../../src/postgres/wire/messages.js';
import { parseDataRow } from '../../src/postgres/wire/rows.js';
import type { PgMessage } from '../../src/postgres/wire/reader.js';
import { customersMaskingPolicy } from '../harness/masking-policy.js';
import { bind, describePortal, execute, parse, sync } from '../harness/pg-frontend.js';
import { letters, openPipeline, sqlstateOf, type Pipeline } from '../harness/pg-pipeline.js';
import { emptyPolicy } from '../harness/policy.js';
import { startPgCluster, type PgCluster } from '../harness/postgres.js';
import { eventually } from '../harness/wait.js';

let cluster: PgCluster;
const open: Pipeline[] = [];

const policy = emptyPolicy({
  statements: {
    unparseable: 'deny',
    reviewers: [{ groups: ['dba'] }],
    rules: [
      { name: 'small-writes', match: { tables: ['public.wg_items'] }, action: 'allow', maxAffectedRows: 3 },
      { name: 'ledger-writes', match: { tables: ['public.wg_ledger'] }, action: 'allow', maxAffectedRows: 2, overLimit: 'review' },
    ],
  },
});
const judge = () => new StatementJudge(policy, { subject: 'agent', groups: [] }, 'app', 'read-write');

const db = (sql: string): Promise<string> => cluster.psql(sql, { user: cluster.users.scram });
const items = async (): Promise<string> => (await db("select count(*) || ':' || coalesce(sum(v), 0) from wg_items")).trim();
const reset = (): Promise<string> =>
  db('truncate wg_items, wg_ledger; insert into wg_items select g, 0 from generate_series(1, 10) g; insert into wg_ledger select g, 10 from generate_series(1, 3) g');

async function pipeline(o: Parameters<typeof openPipeline>[1] = { judge: judge() }): Promise<Pipeline> {
  const p = await openPipeline(cluster, o);
  open.push(p);
  return p;
}

/** The text of each DataRow's fields. */
const rows = (messages: readonly PgMessage[]): Array<Array<string | null>> =>
  messages.filter((m) => m.type === 0x44).map((m) => parseDataRow(m.body).map((f) => (f === null ? null : f.toString('utf8'))));
const tagOf = (messages: readonly PgMessage[]): string | undefined =>
  messages
    .find((m) => m.type === 0x43)
    ?.body.toString('utf8')
    .replace(/\0$/, '');
const statusOf = (messages: readonly PgMessage[]): string => String.fromCharCode(messages.at(-1)!.body[0]!);

/** Cuts of `bytes` in two, at every `step`-th byte. */
function cutsOf(bytes: Buffer, step = 1): number[][] {
  const out: number[][] = [];
  for (let at = 1; at < bytes.length; at += step) out.push([at]);
  return out;
}

beforeAll(async () => {
  await loadSqlParser();
  cluster = await startPgCluster();
  await db(`create table wg_items (id int primary key, v int not null);
    create table wg_ledger (id int primary key, v int not null);
    create table customers (id int primary key, name text, email text, card_number text);
    insert into customers values (1, 'Ada', 'ada@example.com', '4111111111111111'), (2, 'Bob', 'bob@example.com', '5500005555555559')`);
  await reset();
});

afterAll(async () => {
  await Promise.allSettled(open.map((p) => p.close()));
  await cluster?.stop();
});

describe('the write guard, through the relay paths', () => {
  it('refuses a DELETE over its limit with 42501 and rolls it back, wherever the Query is cut', async () => {
    const p = await pipeline();
    const q = query('delete from wg_items where id > 0');
    for (const cuts of cutsOf(q, 3)) {
      await p.send(q, cuts);
      const got = await p.answers();
      expect(letters(got), `cut at ${cuts}`).toBe('EZ');
      expect(sqlstateOf(got[0]!)).toBe('42501');
      expect(got[0]!.body.toString()).toContain('changed 10 rows, over the limit of 3');
      expect(statusOf(got)).toBe('I');
    }
    expect(await items()).toBe('10:0');
    expect(p.refusals.map((r) => r.rule)).toContain('small-writes');
  });

  it('commits a write within the limit with its own tag and RETURNING rows, in autocommit', async () => {
    await reset();
    const p = await pipeline();
    await p.send(query('update wg_items set v = 1 where id <= 3 returning id'));
    const got = await p.answers();
    expect(letters(got)).toBe('TDDDCZ');
    expect(tagOf(got)).toBe('UPDATE 3');
    expect(rows(got)).toEqual([['1'], ['2'], ['3']]);
    expect(statusOf(got)).toBe('I');
    expect(await items()).toBe('10:3');
  });

  it('fails the client’s own transaction block on a write over the limit, as an error would', async () => {
    await reset();
    const p = await pipeline();
    await p.send(query('begin; update wg_items set v = 5 where id = 1'));
    expect(letters(await p.answers())).toBe('CCZ');
    await p.send(query('delete from wg_items where id > 1'));
    const over = await p.answers();
    expect(letters(over)).toBe('EZ');
    expect(statusOf(over)).toBe('E');
    await p.send(query('commit'));
    const end = await p.answers();
    expect(tagOf(end)).toBe('ROLLBACK');
    expect(await items()).toBe('10:0');
  });

  it('counts a write its tag does not count (in a WITH) from the table statistics', async () => {
    await reset();
    const p = await pipeline();
    await p.send(query('with d as (delete from wg_items where id <= 2 returning id) select count(*) from d'));
    const within = await p.answers();
    expect(rows(within)).toEqual([['2']]);
    expect(await items()).toBe('8:0');
    await p.send(query('with d as (delete from wg_items returning id) select count(*) from d'));
    const over = await p.answers();
    expect(letters(over)).toBe('EZ');
    expect(sqlstateOf(over[0]!)).toBe('42501');
    expect(await items()).toBe('8:0');
  });

  it('refuses an Execute over the limit and keeps its batch from committing, wherever the batch is cut', async () => {
    await reset();
    const p = await pipeline();
    const literal = Buffer.concat([parse('', 'delete from wg_items where id > 5'), bind('', ''), execute(''), sync()]);
    for (const cuts of cutsOf(literal, 4)) {
      await p.send(literal, cuts);
      const got = await p.answers();
      expect(letters(got), `cut at ${cuts}`).toBe('12EZ');
      expect(sqlstateOf(got.find((m) => m.type === 0x45)!)).toBe('42501');
    }
    expect(await items()).toBe('10:0');
    await p.send(Buffer.concat([parse('', 'delete from wg_items where id > 8'), bind('', ''), describePortal(''), execute(''), sync()]));
    const within = await p.answers();
    expect(letters(within)).toBe('12nCZ');
    expect(tagOf(within)).toBe('DELETE 2');
    expect(await items()).toBe('8:0');
  });

  it('refuses, never holds, an over-limit Execute whose Bind was streamed (not kept): an earlier Bind of its portal is not run again in its place', async () => {
    await reset();
    const p = await pipeline({ judge: judge(), reviews: true });
    const sql = 'update wg_ledger set v = $1 where id > 0 and $2::text is not null';
    // The second Bind of the unnamed portal is over 1 MiB: the relay streams it, and the guard cannot keep it for a run again.
    await p.send(Buffer.concat([parse('s', sql), bindText('', 's', ['1', 'x']), bindText('', 's', ['2', 'x'.repeat(1_100_000)]), execute(''), sync()]));
    const got = await p.answers();
    expect(letters(got)).toBe('122EZ');
    expect(sqlstateOf(got.find((m) => m.type === 0x45)!)).toBe('42501');
    expect(p.reviews).toHaveLength(0);
    expect((await db('select sum(v) from wg_ledger')).trim()).toBe('30');
  });

  it('refuses a Query under a limit that follows extended messages not yet synced', async () => {
    await reset();
    const p = await pipeline();
    await p.send(Buffer.concat([parse('', 'select 1'), bind('', ''), execute(''), query('delete from wg_items where id = 1')]));
    await p.send(sync());
    const got = await p.answers();
    const error = got.find((m) => m.type === 0x45)!;
    expect(sqlstateOf(error)).toBe('42501');
    expect(error.body.toString()).toContain('send a Sync first');
    expect(await items()).toBe('10:0');
  });

  it('holds a write over an `overLimit: review` limit rolled back; approved, it runs again; denied, it is refused', async () => {
    await reset();
    const p = await pipeline({ judge: judge(), reviews: true });
    await p.send(query('update wg_ledger set v = 0 where id > 0'));
    const held = await eventually(() => {
      expect(p.reviews).toHaveLength(1);
      return p.reviews[0]!;
    });
    expect(held.ask.sql).toBe('update wg_ledger set v = 0 where id > 0');
    expect(held.ask.message).toContain('changed 3 rows, over the limit of 2');
    // Rolled back while it waits: nothing of it is visible, and the client has no answer yet.
    expect((await db('select sum(v) from wg_ledger')).trim()).toBe('30');
    expect(p.received.filter((m) => m.type === 0x43)).toHaveLength(0);
    held.decide({ state: 'approved', by: ['bob'], windowMs: 0 });
    const approved = await p.answers();
    expect(letters(approved)).toBe('CZ');
    expect(tagOf(approved)).toBe('UPDATE 3');
    expect((await db('select sum(v) from wg_ledger')).trim()).toBe('0');

    await p.send(query('update wg_ledger set v = 7 where id > 0'));
    const second = await eventually(() => {
      expect(p.reviews).toHaveLength(2);
      return p.reviews[1]!;
    });
    second.decide({ state: 'denied', by: 'bob', reason: 'not today' });
    const denied = await p.answers();
    expect(letters(denied)).toBe('EZ');
    expect(denied[0]!.body.toString()).toContain('not today');
    expect((await db('select sum(v) from wg_ledger')).trim()).toBe('0');
  });
});

describe('masking, through the relay paths', () => {
  const { columns = [], detectors = [] } = customersMaskingPolicy('k');
  const masking = { policy: { columns: [...columns], detectors: [...detectors], names: [], derived: 'mask' as const }, key: 'a-test-key' };

  it('masks rows by their columns’ origins, looked up in the catalog, wherever the Query is cut', async () => {
    const p = await pipeline({ judge: judge(), masking });
    const q = query('select name, email, card_number from customers order by id');
    for (const cuts of cutsOf(q, 5)) {
      await p.send(q, cuts);
      const got = await p.answers();
      expect(letters(got), `cut at ${cuts}`).toBe('TDDCZ');
      const [ada, bob] = rows(got);
      expect(ada![0]).toBe('Ada');
      expect(ada![1]).not.toContain('ada@example.com');
      expect(ada![2]).toMatch(/1111$/);
      expect(ada![2]).not.toBe('4111111111111111');
      expect(bob![1]).not.toContain('bob@example.com');
    }
  });

  it('masks an Execute whose client never described it, handing on only the messages the client asked for', async () => {
    const p = await pipeline({ judge: judge(), masking });
    await p.send(Buffer.concat([parse('', 'select email from customers where id = 1'), bind('', ''), execute(''), sync()]));
    const got = await p.answers();
    expect(letters(got)).toBe('12DCZ');
    expect(rows(got)[0]![0]).not.toContain('ada@example.com');
  });

  it('masks COPY ... TO STDOUT by the table’s column order, looked up before the rows are handed on', async () => {
    const p = await pipeline({ judge: judge(), masking });
    await p.send(query('copy customers to stdout'));
    const got = await p.answers();
    expect(letters(got)).toBe('HddcCZ');
    const lines = got.filter((m) => m.type === 0x64).map((m) => m.body.toString('utf8'));
    expect(lines[0]).toMatch(/^1\tAda\t/);
    expect(lines.join('')).not.toContain('ada@example.com');
    expect(lines.join('')).not.toContain('4111111111111111');
  });
});

describe('the statement tally, through the relay paths', () => {
  it('says what each statement read and changed, counting only the client’s own statements', async () => {
    await reset();
    const p = await pipeline({ judge: judge(), tally: true });
    await p.send(query('select id from wg_items order by id'));
    await p.answers();
    // A write under the guard's limit: its count queries and BEGIN / COMMIT are the gateway's, not counted.
    await p.send(query('update wg_items set v = 2 where id <= 2 returning id'));
    await p.answers();
    // Several statements in one Query: one end each, with the Query's tables.
    await p.send(query('select 1; delete from wg_ledger where id = 3'));
    await p.answers();
    // The extended protocol, a portal read in two pieces.
    await p.send(Buffer.concat([parse('', 'select id from wg_items'), bind('', ''), execute('', 6), execute('', 0), sync()]));
    await p.answers();
    // COPY both ways, and a statement that fails.
    await p.send(query('copy wg_items to stdout'));
    await p.answers();
    await p.send(query('select 1/0 from wg_items'));
    await p.answers();
    expect(p.statements).toEqual([
      { verb: 'SELECT', rows: 10, changed: 0, tables: ['wg_items'], failed: false },
      { verb: 'UPDATE', rows: 2, changed: 2, tables: ['wg_items'], failed: false },
      { verb: 'SELECT', rows: 1, changed: 0, tables: ['wg_ledger'], failed: false },
      { verb: 'DELETE', rows: 0, changed: 1, tables: ['wg_ledger'], failed: false },
      { verb: '', rows: 6, changed: 0, tables: ['wg_items'], failed: false },
      { verb: 'SELECT', rows: 4, changed: 0, tables: ['wg_items'], failed: false },
      { verb: 'COPY', rows: 10, changed: 0, tables: ['wg_items'], failed: false },
      { verb: '', rows: 0, changed: 0, tables: ['wg_items'], failed: true },
    ]);
  });

  it('attributes rows read through a cursor or a prepared statement to the tables they read', async () => {
    await reset();
    const p = await pipeline({ judge: judge(), tally: true });
    await p.send(query('begin; declare c cursor for select id from wg_items'));
    await p.answers();
    await p.send(query('fetch 4 from c'));
    await p.answers();
    await p.send(query('commit'));
    await p.answers();
    await p.send(query('prepare ledger as select id from wg_ledger'));
    await p.answers();
    await p.send(query('execute ledger'));
    await p.answers();
    const reads = p.statements.filter((st) => st.rows > 0);
    expect(reads).toEqual([
      { verb: 'FETCH', rows: 4, changed: 0, tables: ['wg_items'], failed: false },
      { verb: 'SELECT', rows: 3, changed: 0, tables: ['wg_ledger'], failed: false },
    ]);
  });

  it('counts rows read into a table (CREATE TABLE AS), a protocol Execute of a SQL cursor, and a long read in parts', async () => {
    await reset();
    const p = await pipeline({ judge: judge(), tally: true });
    await p.send(query('create temp table copied as select * from wg_items'));
    await p.answers();
    expect(p.statements.at(-1)).toEqual({ verb: 'SELECT', rows: 10, changed: 0, tables: ['copied', 'wg_items'], failed: false });
    // A cursor DECLAREd in SQL, run by the protocol's Execute: its rows count against the cursor's tables.
    await p.send(query('begin; declare cur cursor for select id from wg_ledger'));
    await p.answers();
    await p.send(Buffer.concat([execute('cur', 2), sync()]));
    await p.answers();
    expect(p.statements.at(-1)).toEqual({ verb: '', rows: 2, changed: 0, tables: ['wg_ledger'], failed: false });
    await p.send(query('commit'));
    await p.answers();
    // 25,000 rows: told in parts of at least 10,000 as they come (a run of rows is counted at its end), then the rest with the end.
    const before = p.statements.length;
    await p.send(query('select g from generate_series(1, 25000) g'));
    await p.answers();
    const parts = p.statements.slice(before);
    expect(parts.length).toBeGreaterThanOrEqual(2);
    expect(parts.slice(0, -1).every((st) => st.partial === true && st.rows >= 10_000)).toBe(true);
    expect(parts.at(-1)).toMatchObject({ verb: 'SELECT', failed: false });
    expect(parts.at(-1)!.partial).toBeUndefined();
    expect(parts.reduce((n, st) => n + st.rows, 0)).toBe(25_000);
  });

  it('counts a COPY FROM as rows changed, a write the guard refused as the server counted it, and the gate’s refusals not at all', async () => {
    await reset();
    const p = await pipeline({ judge: judge(), tally: true });
    await p.send(query('copy wg_ledger from stdin'));
    await eventually(() => expect(p.received.some((m) => m.type === 0x47)).toBe(true)); // CopyInResponse
    const data = Buffer.from('10\t1\n11\t1\n');
    const copyData = Buffer.concat([Buffer.from([0x64, 0, 0, 0, 0]), data]);
    copyData.writeInt32BE(data.length + 4, 1);
    await p.send(Buffer.concat([copyData, Buffer.from([0x63, 0, 0, 0, 4])]));
    await p.answers();
    // Over the guard's limit: refused after the server counted it; its rows are the server's count.
    await p.send(query('delete from wg_items'));
    expect(letters(await p.answers())).toBe('EZ');
    // Refused by the gate (it does not parse): the server never ran it.
    await p.send(query('selec 1 from wg_items'));
    expect(letters(await p.answers())).toBe('EZ');
    expect(p.statements).toEqual([
      { verb: 'COPY', rows: 0, changed: 2, tables: ['wg_ledger'], failed: false },
      { verb: 'DELETE', rows: 0, changed: 10, tables: ['wg_items'], failed: false },
    ]);
    expect(await items()).toBe('10:0');
  });
});
