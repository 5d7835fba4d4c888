/**
 * The gateway behind a real HAProxy (Debian's, TCP mode, TLS passed through) that sends a PROXY
 * protocol v2 header (`send-proxy-v2`) from 127.0.0.9, the one balancer `proxyProtocol.from` lists.
 * Clients reach HAProxy from addresses of their own on loopback (127.0.0.2, .3, …: Linux routes
 * all of 127/8 to lo). What each guarantee looks like:
 *
 * - a session and a refused token through the balancer are on record with the client's address,
 *   never the balancer's;
 * - the connections one address may hold before a token (`connectionsPerAddress: 3`) are counted
 *   per client: one client's idle sockets through the balancer do not lock another out;
 * - a connection from the balancer without a header is closed, said in the log, and one that
 *   sends half a header is closed at the connection's deadline;
 * - a header from anywhere else (straight to the gateway, or a client's own behind the balancer's)
 *   is not believed: the connection is closed, and the address it claims is nowhere on record.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect as tcpConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintDirect } from '../../src/api-client/direct.js';
import { PROXY_V2_SIGNATURE } from '../../src/gateway/front/proxy-header.js';
import { startHaproxy } from '../harness/haproxy.js';
import { RawFrontend } from '../harness/raw-pg.js';
import { startStack, type HoopStack } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';

/** The balancer's own address, the one listed; the clients' addresses. */
const BALANCER = '127.0.0.9';
/** How long a connection may stay silent (the header's wait included). */
const DEADLINE_MS = 8_000;

let stack: HoopStack;
let haproxy: ChildProcess;
let lbPort: number;
let gwPort: number;
const opened: Socket[] = [];

/** Every event of the gateway's audit file so far. */
function auditEvents(): Array<Record<string, unknown>> {
  let text = '';
  try {
    text = readFileSync(join(stack.dir, 'audit.jsonl'), 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** A TCP connection from `localAddress` to `port` (the balancer's by default), open. */
async function tcpFrom(localAddress: string, port = lbPort): Promise<Socket> {
  const s = tcpConnect({ host: '127.0.0.1', port, localAddress });
  s.on('error', () => undefined);
  opened.push(s);
  await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('close', () => reject(new Error('closed before connecting'))));
  return s;
}

/** A TLS connection over `socket` to the gateway (through the balancer or not), handshake done. */
function tlsOver(socket: Socket, alpn?: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const t = tlsConnect({ socket, servername: 'localhost', ca: stack.pki.ca, ...(alpn ? { ALPNProtocols: [alpn] } : {}) }, () => resolve(t));
    t.once('error', reject);
  });
}

/** Whether `socket` closes within `ms` (it is destroyed if not): under the connection's deadline (DEADLINE_MS), said of a close that is no timeout. */
function closesWithin(socket: Socket, ms: number): Promise<boolean> {
  if (socket.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** `GET path` through the balancer from `localAddress`, with `token`: the status. */
function getFrom(localAddress: string, path: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port: lbPort, path, localAddress, ca: stack.pki.ca, servername: 'localhost', agent: false, headers: { Authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A PROXY protocol v2 header of the command PROXY over TCP4 saying `client:port` came. */
function forgedHeader(client: string, port: number): Buffer {
  const b = Buffer.alloc(28);
  PROXY_V2_SIGNATURE.copy(b);
  b[12] = 0x21;
  b[13] = 0x11;
  b.writeUInt16BE(12, 14);
  Buffer.from(client.split('.').map(Number)).copy(b, 16);
  Buffer.from([127, 0, 0, 1]).copy(b, 20);
  b.writeUInt16BE(port, 24);
  b.writeUInt16BE(gwPort, 26);
  return b;
}

/** HAProxy in TCP mode before the gateway, sending PROXY v2 from the listed address. */
async function startBalancer(dir: string): Promise<void> {
  const lb = await startHaproxy(dir, `  server a 127.0.0.1:${gwPort} send-proxy-v2 source ${BALANCER}\n`);
  lbPort = lb.port;
  haproxy = lb.process;
}

beforeAll(async () => {
  stack = await startStack({
    gateway: { firstRequestTimeoutMs: DEADLINE_MS },
    extraConfig: `connectionsPerAddress: 3\nproxyProtocol: { from: ["${BALANCER}"] }\naudit: { file: audit.jsonl, flushSeconds: 0.1 }`,
  });
  gwPort = stack.gateway.port;
  await startBalancer(stack.dir);
});

afterAll(async () => {
  for (const s of opened) s.destroy();
  haproxy?.kill('SIGKILL');
  await stack?.close();
});

describe('the client behind the balancer', () => {
  it("is on record with its own address: a direct session's and a tunnel's start, a refused token", async () => {
    const alice = await stack.token('alice');
    // A direct PostgreSQL client from 127.0.0.2 through the balancer (TLS with ALPN postgresql).
    const credential = await mintDirect({ gateway: stack.gateway.url, ca: stack.pki.ca }, alice, 'app', {});
    const direct = new RawFrontend(await tlsOver(await tcpFrom('127.0.0.2'), 'postgresql'));
    await direct.startup(credential.password, [
      ['user', credential.user],
      ['database', credential.database],
    ]);
    expect(await direct.simple('select 1')).toBeDefined();
    // A tunnel through the balancer from the test's own address (127.0.0.1).
    const tunnel = await stack.tunnel('app', alice, { gateway: `https://127.0.0.1:${lbPort}` });
    expect(await tunnel.simple('select 1')).toBeDefined();
    // A token refused at the API, from 127.0.0.3 through the balancer.
    expect(await getFrom('127.0.0.3', '/v1/whoami', 'not-a-jwt')).toBe(401);

    const starts = await eventually(() => {
      const s = auditEvents().filter((e) => e.event === 'session.start');
      expect(s).toHaveLength(2);
      return s;
    });
    expect(starts.map((e) => String(e.remote).replace(/:\d+$/, '')).sort()).toEqual(['127.0.0.1', '127.0.0.2']);
    const refused = await eventually(() => {
      const r = auditEvents().find((e) => e.event === 'auth.refused');
      expect(r).toBeDefined();
      return r!;
    });
    expect(refused.remote).toBe('127.0.0.3');
    expect(JSON.stringify(auditEvents())).not.toContain(BALANCER);
    direct.destroy();
    tunnel.destroy();
  });

  it("counts the connections before a token per client: one client's idle sockets do not lock out another on the same balancer", async () => {
    const bob = await stack.token('bob');
    // Four silent connections from 127.0.0.4: the balancer may hand them on in any order, and the one the gateway sees last is cut at once.
    const four = [await tcpFrom('127.0.0.4'), await tcpFrom('127.0.0.4'), await tcpFrom('127.0.0.4'), await tcpFrom('127.0.0.4')];
    const closed = new Set<Socket>();
    for (const s of four) s.once('close', () => closed.add(s));
    await eventually(() => expect(closed.size).toBeGreaterThan(0), { timeout: DEADLINE_MS - 2_000, interval: 10 });
    const held = four.filter((s) => !closed.has(s));
    expect(held).toHaveLength(3);
    // The gateway holds those three: a fifth from 127.0.0.4 is cut at once.
    expect(await closesWithin(await tcpFrom('127.0.0.4'), 2_000)).toBe(true);
    // Another client through the same balancer is served, and may hold idle connections of its own.
    const others = [await tcpFrom('127.0.0.5'), await tcpFrom('127.0.0.5')];
    expect(await getFrom('127.0.0.5', '/v1/whoami', bob)).toBe(200);
    expect(
      held.every((s) => !closed.has(s)),
      "127.0.0.4's idle sockets were closed before the other client was served: the deadline, not the count, let it in",
    ).toBe(true);
    expect(others.every((s) => !s.destroyed)).toBe(true);
    for (const s of [...held, ...others]) s.destroy();
  });
});

describe('the header', () => {
  it('must come from the listed balancer: without one the connection is closed, said in the log; half of one is closed at the deadline', async () => {
    const refusedBefore = stack.logs().filter((l) => JSON.stringify(l).includes('front.proxy-header-refused')).length;
    // From the balancer's address, straight to the gateway, a TLS ClientHello with no header.
    const bare = await tcpFrom(BALANCER, gwPort);
    await expect(tlsOver(bare)).rejects.toThrow();
    expect(await closesWithin(bare, DEADLINE_MS - 1_000)).toBe(true);
    await eventually(() => {
      const lines = stack.logs().filter((l) => JSON.stringify(l).includes('front.proxy-header-refused'));
      expect(lines.length).toBeGreaterThan(refusedBefore);
      expect(JSON.stringify(lines.at(-1))).toContain('no PROXY protocol v2 signature');
    });
    // Half a header, then nothing: closed at the connection's deadline, not before, not never.
    const half = await tcpFrom(BALANCER, gwPort);
    const since = Date.now();
    half.write(PROXY_V2_SIGNATURE.subarray(0, 7));
    expect(await closesWithin(half, DEADLINE_MS + 5_000)).toBe(true);
    expect(Date.now() - since).toBeGreaterThanOrEqual(DEADLINE_MS - 200);
  });

  it('from anywhere else is not believed: straight to the gateway, or behind the balancer’s, the connection is closed and the address it claims is nowhere', async () => {
    const alice = await stack.token('alice');
    // Straight to the gateway from 127.0.0.6 (not listed), a header claiming 203.0.113.7, then a request.
    const straight = await tcpFrom('127.0.0.6', gwPort);
    straight.write(forgedHeader('203.0.113.7', 1234));
    expect(await closesWithin(straight, DEADLINE_MS - 1_000)).toBe(true);
    // Through the balancer: its header first, then the client's own forged one.
    const behind = await tcpFrom('127.0.0.6');
    behind.write(forgedHeader('203.0.113.8', 1234));
    expect(await closesWithin(behind, DEADLINE_MS - 1_000)).toBe(true);
    // The gateway goes on serving 127.0.0.6, as itself.
    expect(await getFrom('127.0.0.6', '/v1/whoami', 'forged-then-refused')).toBe(401);
    expect(await getFrom('127.0.0.6', '/v1/whoami', alice)).toBe(200);
    await eventually(() => expect(auditEvents().some((e) => e.event === 'auth.refused' && e.remote === '127.0.0.6')).toBe(true));
    expect(JSON.stringify(auditEvents())).not.toMatch(/203\.0\.113\./);
    expect(JSON.stringify(stack.logs())).not.toMatch(/203\.0\.113\./);
  });
});
