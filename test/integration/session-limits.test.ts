/**
 * Limits and deadlines (issue 38, class B). Each identity's sessions on a gateway are bounded:
 * past its limit a new session is refused before it reaches the database — SQLSTATE 53300 saying
 * whose limit and how many through `hoop connect`, HTTP 429 with HOOP_TOO_MANY_SESSIONS to a
 * client that speaks to the tunnel itself — while others go on, and a session that ends frees its
 * place. A connection to the gateway that says nothing (no TLS handshake, or no request after
 * one) is closed at its deadline, and one address holds only so many such connections.
 */
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callApi } from '../harness/api.js';
import type pg from 'pg';
import { pgClient } from '../harness/clients.js';
import type { RawFrontend } from '../harness/raw-pg.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';

let stack: HoopStack;
let alice: string;
let bob: string;
let connected: RunningConnect;

beforeAll(async () => {
  stack = await startStack({
    gateway: { sessionPolicy: (identity) => ({ maxSessions: identity.subject === 'alice' ? 2 : 100 }), firstRequestTimeoutMs: 2000 },
    extraConfig: 'connectionsPerAddress: 3',
  });
  alice = await stack.token('alice');
  bob = await stack.token('bob');
  connected = await stack.connect('app', alice);
});

afterAll(async () => {
  await connected?.stop();
  await stack?.close();
});

/** Sessions of the gateway's database role that the server holds. */
async function upstreamSessions(): Promise<number> {
  return Number((await stack.pg.psql(`select count(*) from pg_stat_activity where usename = '${stack.pg.users.scram.user}'`, { database: 'app' })).trim());
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  await eventually(async () => expect(await check(), `timed out waiting for ${what}`).toBe(true));
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
    expect(third).toMatchObject({ code: '53300', message: expect.stringMatching(/alice has 2 sessions open through the gateway, the most the policy allows \(2\)/) });
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

    // An agent's run counts on its own: at its limit it holds back neither alice nor a second of its kind beyond it.
    const run = (await callApi(stack.gateway.url, stack.pki.ca, 'POST', '/v1/runs', alice, { connections: ['app'], agent: 'claude', isolation: 'none' })).body as {
      id: string;
      token: string;
      controlToken: string;
    };
    const agents = [await stack.tunnel('app', run.token), await stack.tunnel('app', run.token)];
    const past = await stack.tunnel('app', run.token).then(
      () => undefined,
      (err: { status?: number; message?: string }) => err,
    );
    expect(past).toMatchObject({ status: 429 });
    expect(past?.message).toContain(`run ${run.id} of alice has 2 sessions open through the gateway`);
    for (const a of agents) a.destroy();
    await callApi(stack.gateway.url, stack.pki.ca, 'POST', `/v1/runs/${run.id}/end`, run.controlToken);

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

/** Resolves with how long `socket` stayed open once it closes (or rejects after 30 s). */
function closedAfter(socket: Socket, since: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('still open after 30 s')), 30_000);
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - since);
    });
  });
}

/**
 * Whether a connection from `at` that speaks at once (a TLS handshake, then a request without a
 * token) is answered: an accepted connection gets its 401, one cut on arrival gets nothing, however
 * long either takes.
 */
function answered(at: { host: string; port: number }, ca: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    let got = false;
    const s = tlsConnect({ ...at, ca, servername: 'localhost' }, () => s.write('GET /v1/whoami HTTP/1.1\r\nHost: x\r\n\r\n'));
    s.on('error', () => undefined);
    s.once('data', () => {
      got = true;
      s.destroy();
    });
    s.once('close', () => resolve(got));
  });
}

describe('connections that say nothing', () => {
  it('are closed at the deadline, with no TLS handshake or no request after one; one address holds only so many; clients that speak are served', async () => {
    const { hostname, port } = new URL(stack.gateway.url);
    const at = { host: hostname, port: Number(port) };
    const started = Date.now();
    const silent = tcpConnect(at);
    const handshook = tlsConnect({ ...at, ca: stack.pki.ca, servername: 'localhost' });
    handshook.on('error', () => undefined);
    await new Promise<void>((r) => handshook.once('secureConnect', () => r()));
    const third = tcpConnect(at);
    const thirdClosed = closedAfter(third, started);
    await new Promise<void>((r) => third.once('connect', () => r()));
    // A fourth from the same address is cut on arrival, unanswered though it speaks at once; the first three at their deadline (2 s), not before.
    expect(await answered(at, stack.pki.ca)).toBe(false);
    const [a, b, c] = await Promise.all([closedAfter(silent, started), closedAfter(handshook, started), thirdClosed]);
    for (const t of [a, b, c]) expect(t).toBeGreaterThanOrEqual(1900);
    // The gateway goes on serving: an API call, and a tunnel.
    expect((await callApi(stack.gateway.url, stack.pki.ca, 'GET', '/v1/whoami', bob)).status).toBe(200);
    const f = await stack.tunnel('app', bob);
    expect(await f.simple('select 1')).toBeDefined();
    f.destroy();
  });

  it("a later request whose headers trickle in is cut at the same deadline, its connection someone's (the front door hands Node's HTTP server sockets it never accepted: its timers must run)", async () => {
    const { hostname, port } = new URL(stack.gateway.url);
    const s = tlsConnect({ host: hostname, port: Number(port), ca: stack.pki.ca, servername: 'localhost' });
    s.on('error', () => undefined);
    let said = '';
    s.on('data', (b: Buffer) => (said += b.toString('latin1')));
    await new Promise<void>((r) => s.once('secureConnect', () => r()));
    s.write(`GET /v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${bob}\r\n\r\n`);
    await eventually(() => expect(said).toMatch(/^HTTP\/1\.1 200/));
    // A second request's headers, a byte every 300 ms: never idle, never whole.
    const started = Date.now();
    s.write('GET /v1/whoami HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    const drip = setInterval(() => s.write('a'), 300);
    const closed = await new Promise<number>((r) => {
      s.once('close', () => r(Date.now() - started));
      setTimeout(() => r(Number.POSITIVE_INFINITY), 15_000).unref();
    });
    s.destroy();
    clearInterval(drip);
    expect(closed).toBeGreaterThanOrEqual(1900);
    expect(closed).toBeLessThan(15_000);
  });

  it('a connection that only ever sends requests without a valid token stays a stranger: one address holds three; connections with a token are not counted', async () => {
    const { hostname, port } = new URL(stack.gateway.url);
    const at = { host: hostname, port: Number(port), ca: stack.pki.ca, servername: 'localhost' };
    // A tunnel with a token: its connection is someone's, and is not counted.
    const tunnel = await stack.tunnel('app', bob);
    // Three strangers that each asked once without a token (answered 401) and keep their connection alive.
    const strangers = await Promise.all(
      [0, 1, 2].map(
        () =>
          new Promise<ReturnType<typeof tlsConnect>>((resolve) => {
            const s = tlsConnect(at, () => s.write('GET /v1/whoami HTTP/1.1\r\nHost: x\r\n\r\n'));
            s.on('error', () => undefined);
            s.once('data', () => resolve(s));
          }),
      ),
    );
    // A fourth stranger from the same address is cut on arrival, unanswered; the tunnel goes on.
    expect(await answered({ host: hostname, port: Number(port) }, stack.pki.ca)).toBe(false);
    expect(await tunnel.simple('select 1')).toBeDefined();
    for (const s of strangers) s.destroy();
    tunnel.destroy();
    await until(async () => (await callApi(stack.gateway.url, stack.pki.ca, 'GET', '/v1/whoami', bob).catch(() => ({ status: 0 }))).status === 200, 'a place for a new connection');
    // With places again, a stranger that speaks is answered (its 401).
    expect(await answered({ host: hostname, port: Number(port) }, stack.pki.ca)).toBe(true);
  });
});
