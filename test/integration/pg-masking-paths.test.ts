/**
 * Masking holds on every path a row can take, through `hoop connect` and for a client that talks
 * to the gateway's tunnel directly: a portal executed without any Describe (text and binary
 * results), a statement described once and executed later without a Describe (as the `postgres`
 * driver does), and a SQL cursor's portal executed by name through the protocol. Assertions are on
 * the bytes the client received.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 */
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDataRow } from '../../src/postgres/wire/rows.js';
import { REDACTED } from '../../src/policy/masking/strategies.js';
import type { MaskingPolicy } from '../../src/policy/schema.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import type { PgMessage } from '../../src/postgres/wire/reader.js';
import { bind, describePortal, execute, frontendMessage as msg, parse, sync } from '../harness/pg-frontend.js';
import { RawFrontend } from '../harness/raw-pg.js';
import { startStack, type HoopStack, type RunningConnect, WAYS_IN } from '../harness/stack.js';

const policy: MaskingPolicy = {
  columns: [{ table: 'public.customers', column: 'email', strategy: 'redact' }],
  names: [],
  detectors: [],
  derived: 'mask',
};
const EMAILS = ['alice@example.com', 'bob@example.com', 'dave@example.com'];

let stack: HoopStack;
let connected: RunningConnect;
let token: string;

beforeAll(async () => {
  await loadSqlParser();
  stack = await startStack({ gateway: { sessionPolicy: () => ({ masking: { policy } }) } });
  await stack.pg.psql(
    `create table customers (id int primary key, email text, note text);
     insert into customers values (1, 'alice@example.com', 'one'), (2, 'bob@example.com', 'two'), (3, 'dave@example.com', 'three');
     grant all on customers to public`,
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

/** A raw frontend signed in through `via`. */
async function open(via: (typeof VIA)[number]): Promise<RawFrontend> {
  if (via === 'the tunnel') return stack.tunnel('app', token);
  if (via === 'direct') return stack.direct('app', token);
  const f = await RawFrontend.tcp(connected.info.port);
  await f.startup(connected.info.password, [
    ['user', connected.info.user],
    ['database', connected.info.database],
  ]);
  return f;
}

const types = (ms: PgMessage[]): string => ms.map((m) => String.fromCharCode(m.type)).join('');
const rowsOf = (ms: PgMessage[]): Array<Array<Buffer | null>> => ms.filter((m) => m.type === 0x44).map((m) => parseDataRow(m.body));

/** Nothing the client received holds a masked value. */
function expectNoEmails(ms: PgMessage[]): void {
  const bytes = Buffer.concat(ms.map((m) => m.raw)).toString('latin1');
  for (const e of EMAILS) expect(bytes).not.toContain(e);
}

describe.each(VIA)('through %s', (via) => {
  it.each([0, 1] as const)('masks a portal executed with no Describe at all (result format %i)', async (format) => {
    const f = await open(via);
    try {
      const from = f.raw.length;
      f.write(Buffer.concat([parse('', 'select id, email, note from customers order by id'), bind('', '', format), execute(''), sync()]));
      const got = await f.messagesSince(from, 1);
      // The gateway's own Describe is answered to the gateway: the client sees what it asked for.
      expect(types(got)).toBe('12DDDCZ');
      const rows = rowsOf(got);
      expect(rows.map((r) => (format ? r[0]!.readInt32BE(0) : Number(r[0]!.toString())))).toEqual([1, 2, 3]);
      for (const r of rows) expect(r[1]!.toString()).toBe(REDACTED);
      expect(rows.map((r) => r[2]!.toString())).toEqual(['one', 'two', 'three']);
      expectNoEmails(got);
    } finally {
      f.destroy();
    }
  });

  it('masks a statement described once and executed later without a Describe (as the postgres driver does)', async () => {
    const f = await open(via);
    try {
      let from = f.raw.length;
      f.write(Buffer.concat([parse('s1', 'select id, email from customers where id <= $1 order by id'), msg('D', Buffer.from('S'), 's1'), sync()]));
      expect(types(await f.messagesSince(from, 1))).toBe('1tTZ');
      from = f.raw.length;
      const param = Buffer.from('3');
      const bindWithParam = msg('B', '', 's1', 0, 1, Buffer.from([0, 0, 0, 1]), param, 0);
      f.write(Buffer.concat([bindWithParam, execute(''), sync()]));
      const got = await f.messagesSince(from, 1);
      expect(types(got)).toBe('2DDDCZ');
      for (const r of rowsOf(got)) expect(r[1]!.toString()).toBe(REDACTED);
      expectNoEmails(got);
    } finally {
      f.destroy();
    }
  });

  it("masks a SQL cursor's portal executed by name, as FETCH is masked", async () => {
    const f = await open(via);
    try {
      let from = f.raw.length;
      f.write(
        msg('Q', 'begin; declare c cursor for select id, email, upper(email) as shout, note from customers order by id; declare b binary cursor for select id, email from customers order by id'),
      );
      await f.messagesSince(from, 1);
      from = f.raw.length;
      f.write(Buffer.concat([execute('c', 2), execute('c', 0), execute('b', 0), sync(), msg('Q', 'commit')]));
      const got = await f.messagesSince(from, 2);
      expect(types(got)).toBe('DDsDCDDDCZCZ');
      const rows = rowsOf(got);
      for (const r of rows.slice(0, 3)) {
        expect(r[1]!.toString()).toBe(REDACTED);
        // A value computed from a masked column, read through a cursor: masked too.
        expect(r[2]!.toString()).toBe(REDACTED);
      }
      expect(rows.slice(0, 3).map((r) => r[3]!.toString())).toEqual(['one', 'two', 'three']);
      // Executed through the protocol, PostgreSQL sends even a BINARY cursor's rows as text.
      expect(rows.slice(3).map((r) => r[0]!.toString())).toEqual(['1', '2', '3']);
      for (const r of rows.slice(3)) expect(r[1]!.toString()).toBe(REDACTED);
      expectNoEmails(got);
    } finally {
      f.destroy();
    }
  });

  it('costs a client that describes its portals nothing: no Describe is added', async () => {
    const f = await open(via);
    try {
      const from = f.raw.length;
      f.write(Buffer.concat([parse('', 'select id, email from customers order by id'), bind('', ''), describePortal(''), execute(''), sync()]));
      const got = await f.messagesSince(from, 1);
      expect(types(got)).toBe('12TDDDCZ');
      expectNoEmails(got);
    } finally {
      f.destroy();
    }
  });
});

describe('the postgres driver through hoop connect', () => {
  it('gets masked rows from prepared queries, unsafe queries and cursors', async () => {
    const sql = postgres({
      host: connected.info.host,
      port: connected.info.port,
      user: connected.info.user,
      database: connected.info.database,
      pass: connected.info.password,
      ssl: false,
      max: 1,
      onnotice: () => undefined,
    });
    try {
      for (let i = 0; i < 2; i++) {
        const rows = await sql`select id, email, note from customers where id > ${0} order by id`;
        expect(rows.map((r) => r.id)).toEqual([1, 2, 3]);
        for (const r of rows) expect(r.email).toBe(REDACTED);
      }
      const unsafe = await sql.unsafe('select id, email from customers order by id');
      for (const r of unsafe) expect(r.email).toBe(REDACTED);
      const seen: unknown[] = [];
      await sql`select id, email from customers order by id`.cursor(2, (rows) => void seen.push(...rows));
      expect(seen).toHaveLength(3);
      for (const r of seen as Array<{ email: string }>) expect(r.email).toBe(REDACTED);
      expect(JSON.stringify([unsafe, seen])).not.toMatch(/@example\.com/);
    } finally {
      await sql.end();
    }
  });
});
