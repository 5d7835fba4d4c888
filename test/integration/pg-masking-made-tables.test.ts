/**
 * Tables the session's open transaction makes from others (issue 72, class 9): `CREATE TABLE …
 * AS SELECT` holds what its query computed, so a column computed from a masked one is masked when
 * the table is read; `CREATE TABLE … (LIKE …)` has the columns of the relation it copies, which are
 * followed (a whole-row read under name rules used to end the session: hoop could not tell its
 * columns). The assertions are on the bytes the client received.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDACTED } from '../../src/policy/masking/strategies.js';
import type { MaskingPolicy } from '../../src/policy/schema.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import type { PgMessage } from '../../src/postgres/wire/reader.js';
import { parseDataRow } from '../../src/postgres/wire/rows.js';
import { startStack, type HoopStack } from '../harness/stack.js';

const policy: MaskingPolicy = {
  columns: [{ table: 'public.customers', column: 'email', strategy: 'redact' }],
  names: [{ pattern: '^pii_', regex: /^pii_/i, strategy: 'redact' }],
  detectors: [],
  derived: 'mask',
};
let stack: HoopStack;

beforeAll(async () => {
  await loadSqlParser();
  stack = await startStack({ gateway: { sessionPolicy: () => ({ masking: { policy } }) } });
  await stack.pg.psql(
    `create table customers (id int, email text, pii_note text, note text); insert into customers values (1, 'alice@example.com', 'secret note', 'plain'); grant all on customers to public; alter table customers owner to ${stack.pg.users.scram.user}`,
    { database: 'app' },
  );
});

afterAll(async () => {
  await stack?.close();
});

const received = (ms: PgMessage[]): string => Buffer.concat(ms.map((m) => m.raw)).toString('latin1');
const rowsOf = (ms: PgMessage[]): string[][] => ms.filter((m) => m.type === 0x44).map((m) => parseDataRow(m.body).map((v) => v?.toString() ?? 'NULL'));

describe('a table made in the open transaction from another', () => {
  it('CREATE TABLE … AS SELECT and SELECT INTO: what the query computed from a masked column is masked when the table is read', async () => {
    const f = await stack.tunnel('app', await stack.token('alice'));
    try {
      await f.simple('begin');
      await f.simple('create table copied as select * from customers');
      await f.simple('select id, upper(email) as shout, note into shouted from customers');
      for (const sql of ['select * from copied', 'select email from copied', 'select shout from shouted', "select email || '' from copied", 'copy copied to stdout']) {
        const got = await f.simple(sql);
        expect(received(got), sql).toContain(REDACTED);
        expect(received(got).toLowerCase(), sql).not.toContain('alice@example.com');
        expect(received(got), sql).not.toContain('secret note');
      }
      // What it copied from no masked column comes back as it is.
      expect(rowsOf(await f.simple('select id, note from copied'))).toEqual([['1', 'plain']]);
      await f.simple('rollback');
    } finally {
      f.destroy();
    }
  });

  it('CREATE TABLE … (LIKE …): its columns are the copied relation’s, read by name rules, and the session goes on', async () => {
    const f = await stack.tunnel('app', await stack.token('alice'));
    try {
      await f.simple('begin');
      await f.simple('create table shaped (like customers, extra int)');
      await f.simple("insert into shaped values (2, 'bob@example.com', 'another secret', 'open', 7)");
      const got = await f.simple('select * from shaped');
      expect(received(got)).not.toContain('another secret');
      expect(rowsOf(got)).toEqual([['2', 'bob@example.com', REDACTED, 'open', '7']]);
      expect(rowsOf(await f.simple('select 1'))).toEqual([['1']]);
      await f.simple('rollback');
    } finally {
      f.destroy();
    }
  });

  it('a column the open transaction computes over a masked one (GENERATED AS) carries its lineage: masked when read', async () => {
    const f = await stack.tunnel('app', await stack.token('alice'));
    try {
      for (const [alter, read] of [
        [
          'alter table customers add column e3 text generated always as (email) stored',
          ['select id, e3 from customers', "select e3 || '' from customers", 'select * from customers', 'copy (select e3 from customers) to stdout'],
        ],
        ["alter table customers add column e4 text generated always as (lower(pii_note) || '') stored", ['select e4 from customers']],
        ['alter table customers add column e6 text generated always as (email) stored; alter table customers rename column e6 to e7', ['select e7 from customers']],
      ] as const) {
        await f.simple('begin');
        await f.simple(alter);
        for (const sql of read) {
          const got = await f.simple(sql);
          expect(received(got), `${alter}; ${sql}`).not.toContain('alice@example.com');
          expect(received(got), `${alter}; ${sql}`).not.toContain('secret note');
          expect(received(got), `${alter}; ${sql}`).toContain(REDACTED);
        }
        await f.simple('rollback');
      }
      // One computed from an unmasked column comes back as it is.
      await f.simple('begin');
      await f.simple("alter table customers add column e8 text generated always as (note || '!') stored");
      expect(rowsOf(await f.simple('select e8 from customers'))).toEqual([['plain!']]);
      await f.simple('rollback');
    } finally {
      f.destroy();
    }
  });
});
