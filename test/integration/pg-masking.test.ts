/**
 * Masking end to end: real PostgreSQL, the gateway with a session masking policy, `hoop connect`,
 * and real clients (psql, the pg driver). Rows in text and binary format, COPY out, notices,
 * notifications and error details are masked; a table without rules is untouched; a big result
 * streams through without being held.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDACTED } from '../../src/policy/masking/strategies.js';
import type { MaskingPolicy } from '../../src/policy/schema.js';
import { StatementJudge } from '../../src/policy/decide.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import { pgClient, psql } from '../harness/clients.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';

const policy: MaskingPolicy = {
  columns: [{ table: 'public.customers', column: 'email', strategy: 'redact' }],
  names: [{ pattern: '^ssn$', regex: /^ssn$/i, strategy: 'last4' }],
  detectors: [{ detector: 'payment-card', strategy: 'last4' }],
  derived: 'mask',
};

let stack: HoopStack;
let masked: RunningConnect;
let plain: RunningConnect;
let judged: RunningConnect;

beforeAll(async () => {
  await loadSqlParser();
  stack = await startStack({
    gateway: {
      sessionPolicy: (identity, connection) => {
        if (identity.groups.includes('nomask')) return undefined;
        if (!identity.groups.includes('judged')) return { masking: { policy } };
        const judge = new StatementJudge(
          {
            connections: [],
            access: [],
            statements: { unparseable: 'deny', rules: [{ name: 'no-drop', match: { kinds: ['drop'] }, action: 'deny', message: 'DROP is not allowed here' }] },
            masking: policy,
            recording: { results: 'masked', rowCap: 1000, onFailure: 'close' },
            tests: [],
          },
          { subject: identity.subject, groups: identity.groups },
          connection.name,
          'read-write',
        );
        return { judge, masking: { policy } };
      },
    },
  });
  await stack.pg.psql(
    `create table customers (id int primary key, email text unique, ssn text, note text);
     insert into customers values
       (1, 'alice@example.com', '123-45-6789', 'card 4111 1111 1111 1111 on file'),
       (2, 'bob@example.com', '536-90-4399', 'nothing');
     create table orders (id int, email text, total int);
     insert into orders values (1, 'carol@example.com', 10);
     grant all on customers, orders to public`,
    { database: 'app' },
  );
  masked = await stack.connect('app', await stack.token('alice'));
  plain = await stack.connect('app', await stack.token('bob', ['nomask']));
  judged = await stack.connect('app', await stack.token('alice', ['judged']));
}, 120_000);

afterAll(async () => {
  await masked?.stop();
  await plain?.stop();
  await judged?.stop();
  await stack?.close();
});

async function rows(sql: string, options: { binary?: boolean } = {}): Promise<Array<Record<string, unknown>>> {
  const c = await pgClient(masked.info);
  try {
    return (await c.query({ text: sql, ...(options.binary ? { binary: true } : {}) })).rows;
  } finally {
    await c.end();
  }
}

async function run(info: RunningConnect['info'], sql: string): Promise<string> {
  const r = await psql(info, ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=0', '-c', sql]);
  return `${r.stdout}\n${r.stderr}`;
}

describe('masking through the gateway', () => {
  it('masks a plain select by origin, name and content', async () => {
    const r = await rows('select id, email, ssn, note from customers order by id');
    expect(r[0]).toEqual({ id: 1, email: REDACTED, ssn: expect.stringMatching(/6789$/), note: expect.stringContaining('1111') });
    expect(r[0]!.ssn).not.toContain('123-45');
    expect(r[0]!.note).not.toContain('4111 1111 1111 1111');
    expect(r[1]!.email).toBe(REDACTED);
  });

  it('masks through an alias, a cast and an expression', async () => {
    const r = await rows("select email as contact, email::varchar(100) as c2, upper(email) as up, email || '' as cat, row(c.*)::text as whole from customers c where id = 1");
    for (const v of Object.values(r[0]!)) expect(String(v)).not.toMatch(/alice/i);
    expect(r[0]!.contact).toBe(REDACTED);
  });

  it('masks binary-format results', async () => {
    const r = await rows('select email, ssn from customers where id = 1', { binary: true });
    expect(String(r[0]!.email)).not.toContain('alice');
    expect(String(r[0]!.ssn ?? '')).not.toContain('123-45');
  });

  it('masks COPY ... TO STDOUT (text and csv)', async () => {
    const text = await run(masked.info, 'copy customers to stdout');
    expect(text).not.toContain('alice@example.com');
    expect(text).not.toContain('4111 1111 1111 1111');
    expect(text).toMatch(/^1\t/m);
    const csv = await run(masked.info, 'copy customers (id, email, note) to stdout with (format csv, header)');
    expect(csv).toContain('id,email,note');
    expect(csv).not.toContain('alice@example.com');
    expect(csv).toMatch(/^1,/m);
  });

  it('masks a NOTICE, a NOTIFY payload and an error detail', async () => {
    const notice = await run(masked.info, "do $$ begin raise notice 'card %', '4111 1111 1111 1111'; end $$");
    expect(notice).toContain('NOTICE');
    expect(notice).not.toContain('4111 1111 1111 1111');

    const c = await pgClient(masked.info);
    try {
      const got = new Promise<string>((resolve) => c.on('notification', (n) => resolve(n.payload ?? '')));
      await c.query('listen ch');
      await c.query("notify ch, 'pay with 4111 1111 1111 1111'");
      const payload = await got;
      expect(payload).toContain('1111');
      expect(payload).not.toContain('4111 1111 1111 1111');
      const err = await c.query("insert into customers values (3, 'alice@example.com', null, null)").then(
        () => undefined,
        (e: { detail?: string; code?: string }) => e,
      );
      expect(err?.code).toBe('23505');
      expect(err?.detail ?? '').not.toContain('alice@example.com');
      expect((await c.query('select 1 as one')).rows[0]).toEqual({ one: 1 });
    } finally {
      await c.end();
    }
  });

  it('leaves a table without rules untouched, and sessions without masking untouched', async () => {
    const r = await rows('select email, total from orders');
    expect(r[0]).toEqual({ email: 'carol@example.com', total: 10 });
    const out = await run(plain.info, 'select email from customers where id = 1');
    expect(out).toContain('alice@example.com');
  });

  it('masks named prepared statements and keeps working beside the statement gate', async () => {
    const c = await pgClient(judged.info);
    try {
      const q = { name: 'by-id', text: 'select email, id from customers where id = $1', values: [2] };
      expect((await c.query(q)).rows[0]).toEqual({ email: REDACTED, id: 2 });
      const refused = await c.query('drop table orders').then(
        () => undefined,
        (e: { code?: string; message?: string }) => e,
      );
      expect(refused?.code).toBe('42501');
      expect(refused?.message).toContain('no-drop');
      expect((await c.query({ ...q, values: [1] })).rows[0]).toEqual({ email: REDACTED, id: 1 });
      expect((await c.query('select email from orders')).rows[0]).toEqual({ email: 'carol@example.com' });
    } finally {
      await c.end();
    }
    const out = await run(judged.info, 'drop table orders; select email from customers where id = 1');
    expect(out).toContain('no-drop');
    expect(out).not.toContain('alice@example.com');
  });

  it('streams a big masked result without holding it', async () => {
    const client = await pgClient(masked.info);
    const stream = (client as unknown as { connection: { stream: import('node:net').Socket } }).connection.stream;
    try {
      const n = 200_000;
      const before = process.memoryUsage();
      const result = client.query(`select g, 'x' || g || '@example.com' as email, repeat('y', 1000) as pad from generate_series(1, ${n}) g`);
      await new Promise((r) => setTimeout(r, 300));
      stream.pause();
      await new Promise((r) => setTimeout(r, 2000));
      const during = process.memoryUsage();
      expect(during.arrayBuffers - before.arrayBuffers).toBeLessThan(64 * 1024 * 1024);
      stream.resume();
      const r = await result;
      expect(r.rowCount).toBe(n);
    } finally {
      await client.end();
    }
  }, 60_000);
});
