/**
 * Masking of row data that comes back in pieces: SQL cursors (DECLARE / FETCH, also WITH HOLD
 * and through the pg driver) and extended-protocol portals suspended mid-result (Execute with a
 * row limit, PortalSuspended, then Execute again), in text and binary format. Every DataRow of
 * every piece is masked.
 *
 * @see https://www.postgresql.org/docs/current/sql-declare.html
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDACTED } from '../../src/policy/masking/strategies.js';
import type { MaskingPolicy } from '../../src/policy/schema.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import { parseDataRow } from '../../src/postgres/wire/rows.js';
import { pgClient, psql } from '../harness/clients.js';
import { RawFrontend } from '../harness/raw-pg.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { bind, describePortal, execute, frontendMessage as msg, parse, sync } from '../harness/pg-frontend.js';

const policy: MaskingPolicy = {
  columns: [{ table: 'public.customers', column: 'email', strategy: 'redact' }],
  names: [{ pattern: '^ssn$', regex: /^ssn$/i, strategy: 'last4' }],
  detectors: [{ detector: 'payment-card', strategy: 'last4' }],
  derived: 'mask',
};

const SECRETS = ['alice@example.com', 'bob@example.com', 'dave@example.com', '123-45', '536-90', '078-05', '4111 1111 1111 1111'];

let stack: HoopStack;
let masked: RunningConnect;

beforeAll(async () => {
  await loadSqlParser();
  stack = await startStack({ gateway: { sessionPolicy: () => ({ masking: { policy } }) } });
  await stack.pg.psql(
    `create table customers (id int primary key, email text unique, ssn text, note text);
     insert into customers values
       (1, 'alice@example.com', '123-45-6789', 'card 4111 1111 1111 1111 on file'),
       (2, 'bob@example.com', '536-90-4399', 'nothing'),
       (3, 'dave@example.com', '078-05-1120', 'card 4111 1111 1111 1111 again');
     grant all on customers to public`,
    { database: 'app' },
  );
  masked = await stack.connect('app', await stack.token('alice'));
});

afterAll(async () => {
  await masked?.stop();
  await stack?.close();
});

const expectNoSecrets = (text: string): void => {
  for (const s of SECRETS) expect(text).not.toContain(s);
};

describe('SQL cursors', () => {
  it('masks every FETCH of a cursor (psql), also WITH HOLD after COMMIT and with an alias', async () => {
    const r = await psql(masked.info, ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1'], {
      input: `begin;
declare c cursor for select id, email, ssn, note from customers order by id;
fetch 2 from c;
fetch next from c;
close c;
commit;
declare h cursor with hold for select id, email as contact, ssn from customers order by id;
fetch 1 from h;
fetch all from h;
close h;
`,
    });
    expect(r.stderr).toBe('');
    expectNoSecrets(r.stdout);
    const lines = r.stdout.split('\n').filter((l) => /^\d\|/.test(l));
    expect(lines.map((l) => l.split('|')[0])).toEqual(['1', '2', '3', '1', '2', '3']);
    for (const l of lines) expect(l.split('|')[1]).toBe(REDACTED);
    expect(lines[0]).toMatch(/\|[^|]*6789\|/);
  });

  it('masks FETCH through the pg driver', async () => {
    const c = await pgClient(masked.info);
    try {
      await c.query('begin');
      await c.query('declare c cursor for select id, email, ssn, note from customers order by id');
      const first = (await c.query('fetch 2 from c')).rows;
      const rest = (await c.query('fetch 2 from c')).rows;
      await c.query('commit');
      expect([...first, ...rest].map((r) => r.id)).toEqual([1, 2, 3]);
      for (const row of [...first, ...rest]) expect(row.email).toBe(REDACTED);
      expectNoSecrets(JSON.stringify([first, rest]));
    } finally {
      await c.end();
    }
  });
});

describe('portals suspended mid-result (raw extended protocol)', () => {
  for (const format of [0, 1] as const) {
    it(`masks each DataRow of Execute(maxRows=1), Execute(maxRows=1), Execute(0) (${format ? 'binary' : 'text'})`, async () => {
      const f = await RawFrontend.tcp(masked.info.port);
      try {
        await f.startup(masked.info.password, [
          ['user', masked.info.user],
          ['database', masked.info.database],
        ]);
        const from = f.raw.length;
        f.write(
          Buffer.concat([
            parse('s1', 'select id, email, ssn, note from customers order by id'),
            bind('p1', 's1', format),
            describePortal('p1'),
            execute('p1', 1),
            execute('p1', 1),
            execute('p1', 0),
            sync(),
          ]),
        );
        const all = await f.messagesSince(from, 1);
        const types = all.map((m) => String.fromCharCode(m.type)).join('');
        expect(types).toBe('12TDsDsDCZ');
        const rows = all.filter((m) => m.type === 0x44).map((m) => parseDataRow(m.body));
        expect(rows.map((r) => (format ? String(r[0]!.readInt32BE(0)) : r[0]!.toString()))).toEqual(['1', '2', '3']);
        for (const r of rows) {
          expect(r[1]!.toString()).toBe(REDACTED);
          expect(r[2]!.toString()).toMatch(/\d{4}$/);
        }
        expect(rows[1]![3]!.toString()).toBe('nothing');
        expect(rows[0]![3]!.toString()).toContain('1111');
        expectNoSecrets(Buffer.concat(all.map((m) => m.raw)).toString('latin1'));
      } finally {
        f.destroy();
      }
    });
  }

  it('masks a portal resumed in a later Sync batch inside a transaction', async () => {
    const f = await RawFrontend.tcp(masked.info.port);
    try {
      await f.startup(masked.info.password, [
        ['user', masked.info.user],
        ['database', masked.info.database],
      ]);
      let from = f.raw.length;
      f.write(Buffer.concat([msg('Q', 'begin'), parse('', 'select email, id from customers order by id'), bind('p', '', 0), describePortal('p'), execute('p', 2), sync()]));
      const first = await f.messagesSince(from, 2);
      from = f.raw.length;
      f.write(Buffer.concat([execute('p', 0), sync(), msg('Q', 'commit')]));
      const second = await f.messagesSince(from, 2);
      const rows = [...first, ...second].filter((m) => m.type === 0x44).map((m) => parseDataRow(m.body));
      expect(rows.map((r) => r[1]!.toString())).toEqual(['1', '2', '3']);
      for (const r of rows) expect(r[0]!.toString()).toBe(REDACTED);
      expect(first.map((m) => String.fromCharCode(m.type)).join('')).toContain('DDs');
    } finally {
      f.destroy();
    }
  });

  it('masks a suspended portal the client never described, and a value computed from a masked column (only that one)', async () => {
    const f = await RawFrontend.tcp(masked.info.port);
    try {
      await f.startup(masked.info.password, [
        ['user', masked.info.user],
        ['database', masked.info.database],
      ]);
      const from = f.raw.length;
      f.write(Buffer.concat([parse('', 'select email::text, email, id::text, ssn from customers order by id'), bind('', '', 0), execute('', 1), execute('', 0), sync()]));
      const all = await f.messagesSince(from, 1);
      expect(all.map((m) => String.fromCharCode(m.type)).join('')).toBe('12DsDDCZ');
      const rows = all.filter((m) => m.type === 0x44).map((m) => parseDataRow(m.body));
      expect(rows).toHaveLength(3);
      rows.forEach((r, i) => {
        expect(r[0]!.toString()).toBe(REDACTED);
        expect(r[1]!.toString()).toBe(REDACTED);
        // email::text is computed from a masked column and masked; id::text is computed from no
        // masked value and stays readable (the plain SELECT says which output is which expression).
        expect(r[2]!.toString()).toBe(String(i + 1));
        expect(i).toBeLessThan(3);
      });
      expectNoSecrets(Buffer.concat(all.map((m) => m.raw)).toString('latin1'));
    } finally {
      f.destroy();
    }
  });
});
