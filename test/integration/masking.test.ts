import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgCatalogResolver } from '../../src/policy/masking/catalog.js';
import { ResultMasker } from '../../src/postgres/pipeline/masking/result-masker.js';
import type { StatementHints } from '../../src/postgres/pipeline/masking/judging.js';
import { MaskingRules } from '../../src/policy/masking/rules.js';
import type { MaskStrategy } from '../../src/policy/masking/strategies.js';
import { keyedHash } from '../../src/policy/masking/strategies.js';
import { MessageReader } from '../../src/postgres/wire/reader.js';
import { BackendPath } from '../../src/postgres/pipeline/relay.js';
import { pump } from '../../src/tunnel/pump.js';
import { sync } from '../harness/pg-frontend.js';
import { decoded, maskingStageOf } from '../harness/relay.js';
import { runProcess } from '../harness/clients.js';
import { startPgCluster, type PgCluster } from '../harness/postgres.js';
import { copyHints, customersMaskingPolicy, EXACT, MASK, testJudge } from '../harness/masking-policy.js';

const KEY = 'integration-mask-key';
const policy = customersMaskingPolicy(KEY);
const h = (s: string): string => keyedHash(s, KEY);

let cluster: PgCluster;
let catalogClient: pg.Client;
let catalog: PgCatalogResolver;
let proxy: Server;
let proxyPort: number;
/** Hints the proxy passes with every Query/Parse (what the engine would derive from the parse tree). */
let hints: StatementHints = EXACT;
/** What the judge says of a COPY's columns (the masking stage judges them by the COPY's lineage). */
let copyStrategies: Array<MaskStrategy | undefined> = [];
const sockets = new Set<Socket>();

/** A tiny PostgreSQL proxy: client bytes pass through (recorded by the masker), server bytes are masked. */
function startProxy(): Promise<number> {
  proxy = createServer((client) => {
    sockets.add(client);
    const server = connect({ host: '127.0.0.1', port: cluster.port });
    sockets.add(server);
    const masker = new ResultMasker({ rules: policy, catalog, judge: testJudge(() => copyStrategies) });
    // This proxy relays the startup phase too: its ReadyForQuery answers the StartupMessage, as a Sync's would.
    masker.frontend(decoded(sync()));
    const frontend = new MessageReader({ side: 'frontend' });
    let startup: Buffer | undefined = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      if (startup) {
        startup = Buffer.concat([startup, chunk]);
        if (startup.length < 4 || startup.length < startup.readUInt32BE(0)) return;
        const len = startup.readUInt32BE(0);
        server.write(startup.subarray(0, len));
        chunk = startup.subarray(len);
        startup = undefined;
      }
      frontend.push(chunk);
      for (let m = frontend.next(); m; m = frontend.next()) {
        for (const before of masker.frontend(decoded(m.raw), hints) ?? []) server.write(before.msg!.raw);
        if (!server.write(m.raw)) client.pause();
      }
    });
    server.on('drain', () => client.resume());
    pump(server, client, { step: new BackendPath({ reader: new MessageReader({ side: 'backend' }), masking: maskingStageOf(masker) }).step });
    const close = (): void => {
      client.destroy();
      server.destroy();
    };
    client.on('error', close).on('close', close);
    server.on('error', close).on('close', close);
  });
  return new Promise((resolve) => proxy.listen(0, '127.0.0.1', () => resolve((proxy.address() as { port: number }).port)));
}

async function client(options: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port: proxyPort, user: cluster.superuser.user, password: cluster.superuser.password, database: 'app', ssl: false, ...options });
  await c.connect();
  return c;
}

async function q<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, options: Partial<pg.ClientConfig> = {}): Promise<R[]> {
  const c = await client(options);
  try {
    return (await c.query<R>(sql)).rows;
  } finally {
    await c.end();
  }
}

function psql(sql: string): Promise<string> {
  const uri = `postgresql://${cluster.superuser.user}:${encodeURIComponent(cluster.superuser.password)}@127.0.0.1:${proxyPort}/app?sslmode=disable&gssencmode=disable`;
  return runProcess(join(cluster.bin, 'psql'), ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', uri, '-c', sql], { env: { PGCONNECT_TIMEOUT: '10' } }).then((r) => {
    if (r.code !== 0) throw new Error(r.stderr);
    return r.stdout;
  });
}

beforeAll(async () => {
  cluster = await startPgCluster();
  await cluster.psql(
    `create table customers (id int primary key, email text unique, ssn text, card_number text, notes text, balance numeric);
     insert into customers values
       (1, 'alice@example.com', '123-45-6789', '4111 1111 1111 1111', 'prefers mail to alice.alt@example.org', 100.50),
       (2, 'bob@example.com', '536-90-4399', '5555555555554444', 'VIP; backup card 4000-0000-0000-0002', 7),
       (3, null, null, null, 'nothing special', null);
     create table orders (id int, customer_id int, total int);
     insert into orders values (1, 1, 10), (2, 1, 20), (3, 2, 5);`,
    { database: 'app' },
  );
  catalogClient = new pg.Client({ host: '127.0.0.1', port: cluster.port, user: cluster.superuser.user, password: cluster.superuser.password, database: 'app' });
  await catalogClient.connect();
  catalog = new PgCatalogResolver(async (sql, params) => (await catalogClient.query(sql, params)).rows);
  proxyPort = await startProxy();
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => proxy?.close(r));
  await catalogClient?.end();
  await cluster?.stop();
});

describe('PgCatalogResolver against real PostgreSQL', () => {
  it('resolves table OID + attnum to schema.table.column, caches per relation', async () => {
    const oid = Number((await catalogClient.query(`select 'public.customers'::regclass::oid as oid`)).rows[0].oid);
    let calls = 0;
    const r = new PgCatalogResolver(async (sql, params) => {
      calls++;
      return (await catalogClient.query(sql, params)).rows;
    });
    expect(await r.columnName(oid, 2)).toEqual({ schema: 'public', table: 'customers', column: 'email' });
    expect(await r.columnName(oid, 4)).toEqual({ schema: 'public', table: 'customers', column: 'card_number' });
    expect(await r.columnName(oid, 99)).toBeUndefined();
    expect(await r.columnName(1, 1)).toBeUndefined();
    expect(calls).toBe(2);
  });
});

describe('masking through a proxy, real PostgreSQL', () => {
  it('masks by origin through aliases, by name, and by content', async () => {
    hints = EXACT;
    const rows = await q('select id, email as e, ssn, card_number as cc, notes, balance from customers c order by id');
    expect(rows).toEqual([
      { id: 1, e: '[redacted]', ssn: '***-**-6789', cc: '**** **** **** 1111', notes: `prefers mail to ${h('alice.alt@example.org')}`, balance: null },
      { id: 2, e: '[redacted]', ssn: '***-**-4399', cc: '************4444', notes: 'VIP; backup card ****-****-****-0002', balance: null },
      { id: 3, e: null, ssn: null, cc: null, notes: 'nothing special', balance: null },
    ]);
  });

  it("casts and expressions: content rules under 'detect-only', everything under 'mask'", async () => {
    const sql = `select email::varchar(100) as x, upper(email) as u, length(notes) as n, 'ssn ' || ssn as s from customers where id = 1`;
    hints = EXACT;
    expect(await q(sql)).toEqual([{ x: h('alice@example.com'), u: h('ALICE@EXAMPLE.COM'), n: 37, s: 'ssn [redacted]' }]);
    hints = MASK;
    expect(await q(sql)).toEqual([{ x: '[redacted]', u: '[redacted]', n: null, s: '[redacted]' }]);
  });

  it('whole-row values and JSON functions', async () => {
    hints = EXACT;
    const [row] = await q<{ j: Record<string, unknown>; r: string }>('select row_to_json(c) as j, c::text as r from customers c where id = 1');
    expect(row!.j).toEqual({ id: 1, email: h('alice@example.com'), ssn: '[redacted]', card_number: '**** **** **** 1111', notes: `prefers mail to ${h('alice.alt@example.org')}`, balance: 100.5 });
    expect(row!.r).toContain('[redacted]');
    expect(row!.r).not.toContain('alice@');
    const [agg] = await q<{ j: unknown }>(`select json_agg(json_build_object('e', email)) as j from customers where id < 3`);
    expect(agg!.j).toEqual([{ e: h('alice@example.com') }, { e: h('bob@example.com') }]);
    hints = MASK;
    const [masked] = await q<{ j: unknown; b: unknown }>('select row_to_json(c) as j, to_jsonb(c) as b from customers c where id = 1');
    expect(masked).toEqual({ j: '[redacted]', b: '[redacted]' });
  });

  it('aggregates', async () => {
    hints = EXACT;
    expect(await q(`select string_agg(email, ',' order by id) as e, count(*)::int as n, max(card_number) as m from customers`)).toEqual([
      { e: `${h('alice@example.com')},${h('bob@example.com')}`, n: 3, m: '************4444' },
    ]);
    hints = MASK;
    expect(await q(`select string_agg(email, ',') as e, count(*) as n from customers`)).toEqual([{ e: '[redacted]', n: null }]);
  });

  it('binary result format (pg binary: true)', async () => {
    hints = EXACT;
    const c = await client({ binary: true } as Partial<pg.ClientConfig>);
    const r = await c.query(`select id, email, card_number, notes, balance, ssn, 4111111111111111::int8 as big, 'x'::text || email as expr from customers where id = $1`, [1]);
    await c.end();
    expect(r.fields.map((f) => f.format)).toEqual(Array(8).fill('binary'));
    const rows = r.rows as Array<Record<string, unknown>>;
    expect(rows[0]!.id).toBe(1);
    expect(rows[0]!.email).toBe('[redacted]');
    expect(rows[0]!.card_number).toBe('**** **** **** 1111');
    expect(rows[0]!.notes).toBe(`prefers mail to ${h('alice.alt@example.org')}`);
    expect(rows[0]!.balance).toBeNull();
    expect(rows[0]!.ssn).toBe('***-**-6789');
    expect(rows[0]!.big).toBeNull();
    expect(rows[0]!.expr).toBe(h('xalice@example.com'));
  });

  it('binary arrays, records, floats and types hoop does not know go through the detectors (before: passed unread)', async () => {
    hints = EXACT;
    const c = await client({ binary: true } as Partial<pg.ClientConfig>);
    const sql = `select array['4111 1111 1111 1111'::text] as arr, array[array[4111111111111111::int8]] as nested, 4111111111111111::float8 as fl,
      row('4111-1111-1111-1111'::text, 1) as rec, ('{"4111 1111 1111 1111"}'::text[])::varchar[] as vc, array['plain'::text] as plain, 2.5::float8 as small where $1::int = 1`;
    const r = await c.query(sql, [1]);
    await c.end();
    expect(r.fields.map((f) => f.format)).toEqual(Array(7).fill('binary'));
    const row = r.rows[0] as Record<string, unknown>;
    expect([row.arr, row.nested, row.fl, row.rec, row.vc]).toEqual([null, null, null, null, null]);
    expect([row.plain, row.small]).toEqual([['plain'], 2.5]);
  });

  it('COPY out with psql: \\copy (query), COPY table TO STDOUT, csv', async () => {
    hints = EXACT;
    const viaCopyQuery = await psql(`\\copy (select id, email, notes from customers order by id) to stdout`);
    expect(viaCopyQuery).toBe(
      `1\t${h('alice@example.com')}\tprefers mail to ${h('alice.alt@example.org')}\n2\t${h('bob@example.com')}\tVIP; backup card ****-****-****-0002\n3\t\\N\tnothing special\n`,
    );
    const table = await psql('COPY customers TO STDOUT');
    expect(table).not.toMatch(/alice@example\.com|123-45-6789|4111 1111 1111 1111/);
    expect(table.split('\n')[0]).toBe(`1\t${h('alice@example.com')}\t[redacted]\t**** **** **** 1111\tprefers mail to ${h('alice.alt@example.org')}\t100.50`);
    const rules = MaskingRules.of(policy, KEY);
    copyStrategies = ['id', 'email', 'ssn', 'card_number', 'notes', 'balance'].map((column) => rules.forOrigin({ schema: 'public', table: 'customers', column }) ?? rules.forName(column));
    hints = copyHints({ format: 'csv', header: true });
    const csv = await psql(`COPY (select * from customers order by id) TO STDOUT WITH (FORMAT csv, HEADER)`);
    expect(csv.split('\n').slice(0, 2)).toEqual([
      'id,email,ssn,card_number,notes,balance',
      `1,[redacted],***-**-6789,**** **** **** 1111,prefers mail to ${h('alice.alt@example.org')},${h('100.50')}`,
    ]);
  });

  it('cursors and FETCH', async () => {
    hints = EXACT;
    const c = await client();
    try {
      await c.query('begin');
      await c.query('declare cur cursor for select email, card_number, notes from customers order by id');
      const first = await c.query('fetch 1 from cur');
      const rest = await c.query('fetch all from cur');
      await c.query('commit');
      expect(first.rows).toEqual([{ email: '[redacted]', card_number: '**** **** **** 1111', notes: `prefers mail to ${h('alice.alt@example.org')}` }]);
      expect(rest.rows.map((r) => r.email)).toEqual(['[redacted]', null]);
    } finally {
      await c.end();
    }
  });

  it('notices, notifications and error messages', async () => {
    hints = EXACT;
    const c = await client();
    const listener = await client();
    try {
      const notices: string[] = [];
      c.on('notice', (n) => notices.push(n.message ?? ''));
      await c.query(`do $$ declare card text; begin select card_number into card from customers where id = 1; raise notice 'card %', card; end $$`);
      expect(notices).toEqual(['card **** **** **** 1111']);

      const got = new Promise<string>((resolve) => listener.on('notification', (n) => resolve(n.payload ?? '')));
      await listener.query('listen ch');
      await c.query(`notify ch, '4111 1111 1111 1111'`);
      // A payload a client wrote is read as written, through the detectors.
      expect(await got).toBe('**** **** **** 1111');

      const dup = await c.query(`insert into customers (id, email) values (9, 'alice@example.com')`).catch((e: unknown) => e as pg.DatabaseError);
      expect((dup as pg.DatabaseError).code).toBe('23505');
      expect((dup as pg.DatabaseError).detail).toBe('Key (email)=([redacted]) already exists.');

      const cast = await c.query('select card_number::int from customers where id = 1').catch((e: unknown) => e as pg.DatabaseError);
      expect((cast as pg.DatabaseError).message).toBe('invalid input syntax for type integer: "**** **** **** 1111"');
      expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await c.end();
      await listener.end();
    }
  });
});
