/**
 * How long other sessions wait while the judge parses a 100 MB statement (npm run bench:tests):
 * the parse runs off the event loop, so another session's `select 1` answers within a second
 * throughout. test/integration/pg-limits.test.ts checks that the other session answers meanwhile
 * and that the statement is judged; this, how promptly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatementJudge } from '../../src/policy/decide.js';
import type { MaskingPolicy } from '../../src/policy/schema.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import type { PgMessage } from '../../src/postgres/wire/reader.js';
import { frontendMessage as msg } from '../harness/pg-frontend.js';
import { emptyPolicy } from '../harness/policy.js';
import { answersWhile } from '../harness/event-loop.js';
import { RawFrontend, selectOne } from '../harness/raw-pg.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';

const masking: MaskingPolicy = { columns: [{ table: 'public.customers', column: 'email', strategy: 'redact' }], names: [], detectors: [], derived: 'mask' };

let stack: HoopStack;
let big: RunningConnect;

beforeAll(async () => {
  await loadSqlParser();
  stack = await startStack({
    gateway: {
      sessionPolicy: (identity, connection) => ({
        judge: new StatementJudge(emptyPolicy(), { subject: identity.subject, groups: identity.groups }, connection.name, 'read-write', {}),
        masking: { policy: masking },
      }),
      postgres: { maxStatementBytes: 110 * 1024 * 1024, maxMaskedMessageBytes: 1024 * 1024 },
    },
  });
  await stack.pg.psql(`create table customers (id int, email text); insert into customers values (1, 'alice@example.com'); grant all on customers to public`, { database: 'app' });
  big = await stack.connect('app', await stack.token('alice', ['big']));
});

afterAll(async () => {
  await big?.stop();
  await stack?.close();
});

const value = (ms: PgMessage[]): string | undefined =>
  ms
    .find((m) => m.type === 0x44)
    ?.body.subarray(6)
    .toString();

describe('a 100 MB statement judged off the event loop', () => {
  it('keeps every answer to another session under a second while it is parsed', async () => {
    const f = await RawFrontend.signedIn(big.info);
    const other = await RawFrontend.signedIn(big.info);
    try {
      const n = 100 * 1024 * 1024;
      const from = f.raw.length;
      f.write(msg('Q', `select length('${'x'.repeat(n)}') as n`));
      const started = Date.now();
      const { answers, worst } = await answersWhile(() => selectOne(other), f.messagesSince(from, 1, 120_000));
      expect(value(await f.messagesSince(from, 1))).toBe(String(n));
      process.stdout.write(`judge of a 100 MB statement: ${Date.now() - started} ms; another session answered ${answers} times, the slowest in ${worst} ms\n`);
      // Without the worker, the parse alone held every session for seconds.
      expect(worst).toBeLessThan(1000);
    } finally {
      f.destroy();
      other.destroy();
    }
  });
});
