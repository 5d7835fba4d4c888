/**
 * Each identity's sessions on a gateway are bounded (issue 38, class B): past its limit a new
 * session is refused before it reaches the database — SQLSTATE 53300 saying whose limit and how
 * many through `hoop connect`, HTTP 429 with HOOP_TOO_MANY_SESSIONS to a client that speaks to
 * the tunnel itself — while others go on, and a session that ends frees its place.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { pgClient } from '../harness/clients.js';
import type { RawFrontend } from '../harness/raw-pg.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';

let stack: HoopStack;
let alice: string;
let bob: string;
let connected: RunningConnect;

beforeAll(async () => {
  stack = await startStack({ gateway: { sessionPolicy: (identity) => ({ maxSessions: identity.subject === 'alice' ? 2 : 100 }) } });
  alice = await stack.token('alice');
  bob = await stack.token('bob');
  connected = await stack.connect('app', alice);
}, 120_000);

afterAll(async () => {
  await connected?.stop();
  await stack?.close();
});

/** Sessions of the gateway's database role that the server holds. */
async function upstreamSessions(): Promise<number> {
  return Number((await stack.pg.psql(`select count(*) from pg_stat_activity where usename = '${stack.pg.users.scram.user}'`, { database: 'app' })).trim());
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (const end = Date.now() + 10_000; !(await check()); ) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('sessions per identity', () => {
  it('refuses the one past the limit with 53300 (and 429 on the tunnel), before the database sees it; others and freed places go on', async () => {
    const base = await upstreamSessions();
    const first = await pgClient(connected.info);
    const second: RawFrontend = await stack.tunnel('app', alice);
    expect(await upstreamSessions()).toBe(base + 2);

    const third = await pgClient(connected.info).then(
      (c) => c,
      (err: { code?: string; message?: string }) => err,
    );
    expect(third).toMatchObject({ code: '53300', message: expect.stringMatching(/alice has 2 sessions open on this gateway, the most the policy allows \(2\)/) });
    const direct = await stack.tunnel('app', alice).then(
      () => undefined,
      (err: { status?: number; code?: string }) => err,
    );
    expect(direct).toMatchObject({ status: 429, code: 'HOOP_TOO_MANY_SESSIONS' });
    expect(await upstreamSessions()).toBe(base + 2);

    // Another identity is not held back by alice's sessions.
    const bobs = await stack.tunnel('app', bob);
    expect(await bobs.simple('select 1')).toBeDefined();
    bobs.destroy();

    // A session that ends frees its place.
    await first.end();
    await until(async () => {
      const c = await pgClient(connected.info).then(
        (x: pg.Client) => x,
        () => undefined,
      );
      if (!c) return false;
      expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
      await c.end();
      return true;
    }, "alice's freed place");
    second.destroy();
  });
});
