/**
 * A PostgreSQL connection's ceiling (`maxSessions` on the connection): sessions the gateway holds
 * on it at once, whoever's, so that a few identities each under their own limit cannot take every
 * slot of the server. The one past it is refused before the server sees it, as the server refuses
 * one past max_connections (53300), and a freed place is taken again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectionYaml } from '../harness/postgres.js';
import type { RawFrontend } from '../harness/raw-pg.js';
import { startRepoStack, type HoopStack } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';

let stack: HoopStack;

beforeAll(async () => {
  stack = await startRepoStack(
    'hoop-ceiling-',
    (pg) => `version: 1
connections:
${connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}', extra: ['maxSessions: 3'] })}access:
  - { name: people, subjects: [alice, bob, carol], connections: [app], mode: read-write, maxSessions: 2 }
`,
  );
});

afterAll(async () => {
  await stack?.close();
});

/** Sessions of the gateway's database role that the server holds. */
async function upstream(): Promise<number> {
  return Number((await stack.pg.psql(`select count(*) from pg_stat_activity where usename = '${stack.pg.users.scram.user}'`, { database: 'app' })).trim());
}

describe("a connection's ceiling", () => {
  it('refuses the session past it whoever asks (each under their own limit), before the server sees it; a freed place is taken again', async () => {
    const base = await upstream();
    const open: RawFrontend[] = [await stack.tunnel('app', await stack.token('alice')), await stack.tunnel('app', await stack.token('alice')), await stack.tunnel('app', await stack.token('bob'))];
    expect(await upstream()).toBe(base + 3);
    const refused = await stack.tunnel('app', await stack.token('carol')).then(
      () => undefined,
      (err: { status?: number; code?: string; message?: string }) => err,
    );
    expect(refused).toMatchObject({ status: 429, code: 'HOOP_TOO_MANY_SESSIONS' });
    expect(refused?.message).toContain('connection "app" has 3 sessions open through the gateway, the most it allows (3)');
    expect(await upstream()).toBe(base + 3);
    open.shift()!.destroy();
    const carolToken = await stack.token('carol');
    const carol = await eventually(() => stack.tunnel('app', carolToken), { timeout: 60_000, interval: 100 });
    expect(await carol.simple('select 1')).toBeDefined();
    for (const s of [...open, carol]) s.destroy();
  });
});
