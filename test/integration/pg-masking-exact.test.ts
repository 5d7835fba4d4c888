/**
 * Exact results under masking (issue 54): a value no rule masks comes back as the database sent
 * it, whatever the time since the last statement and however the gateway's catalog connection
 * fares; when hoop cannot tell a column's origin it refuses with a reason and never guesses.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MaskingPolicy } from '../../src/policy/schema.js';
import { REDACTED } from '../../src/policy/masking/strategies.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import { pgClient, psql } from '../harness/clients.js';
import { connectionYaml } from '../harness/postgres.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';

const policy: MaskingPolicy = {
  columns: [{ table: 'public.customers', column: 'ssn', strategy: 'redact' }],
  names: [{ pattern: 'card', regex: /card/i, strategy: 'redact' }],
  detectors: [],
  derived: 'mask',
};

/** The catalog connection's idle expiry here: a gap past it is a few hundred milliseconds, not a minute. */
const CATALOG_IDLE_MS = 150;

let stack: HoopStack;
let masked: RunningConnect;

beforeAll(async () => {
  await loadSqlParser();
  stack = await startStack({
    gateway: { postgres: { catalogIdleMs: CATALOG_IDLE_MS }, sessionPolicy: () => ({ masking: { policy } }) },
  });
  await stack.pg.psql(
    `create table customers (id int primary key, name text, ssn text, card_number text);
     insert into customers values (1, 'Ada', '123-45-6789', '4111111111111111'), (2, 'Grace', '536-90-4399', '5500005555555559');
     grant all on customers to public`,
    { database: 'app' },
  );
  masked = await stack.connect('app', await stack.token('alice'));
}, 120_000);

afterAll(async () => {
  await masked?.stop();
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
  }, 120_000);

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
