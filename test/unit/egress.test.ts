/**
 * Where a contained run's command may connect (`runs.egress`) and the proxy that is its only way
 * out: destinations as the policy writes them, which agents they hold for, and the proxy driven
 * over real sockets as curl, git and SDKs drive one (HTTP CONNECT, a request in absolute form,
 * SOCKS5 by name and by address), each connection told as allowed or refused.
 */
import { lookup } from 'node:dns/promises';
import { once } from 'node:events';
import { hostname } from 'node:os';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { egressProxy, type EgressDecision } from '../../src/agent/egress-proxy.js';
import { gatewayAcceptor, gatewayHostsLine, portInside } from '../../src/agent/port-bridge.js';
import { proxyVariables } from '../../src/client/run-agent.js';
import { egressAllows, egressFor, egressProblem, parseDestination } from '../../src/policy/egress.js';
import { runsSchema } from '../../src/policy/schema.js';

describe('runs.egress destinations', () => {
  it('are host:port, a subdomain wildcard, an address (IPv6 bracketed), the port a number or *', () => {
    expect(parseDestination('API.Anthropic.com.:443')).toEqual({ host: 'api.anthropic.com', port: 443 });
    expect(parseDestination('*.githubusercontent.com:443')).toEqual({ host: '*.githubusercontent.com', port: 443 });
    expect(parseDestination('10.0.0.5:*')).toEqual({ host: '10.0.0.5', port: '*' });
    expect(parseDestination('[2001:0DB8::0001]:8443')).toEqual({ host: '2001:db8::1', port: 8443 });
    for (const bad of ['example.com', 'example.com:0', 'example.com:70000', 'ex*ample.com:443', 'http://example.com:443', '[nope]:1', '-x.com:1', '2001:db8::1:443'])
      expect(egressProblem(bad), bad).toBeDefined();
  });

  it('match the host as asked (case, a final dot, an IPv6 spelling) and the port; a wildcard matches subdomains only', () => {
    const entries = ['api.anthropic.com:443', '*.example.org:443', '[2001:db8::1]:*'];
    expect(egressAllows(entries, 'API.anthropic.com.', 443)).toBe(true);
    expect(egressAllows(entries, 'api.anthropic.com', 80)).toBe(false);
    expect(egressAllows(entries, 'evil-api.anthropic.com', 443)).toBe(false);
    expect(egressAllows(entries, 'a.b.example.org', 443)).toBe(true);
    expect(egressAllows(entries, 'example.org', 443)).toBe(false);
    expect(egressAllows(entries, 'notexample.org', 443)).toBe(false);
    expect(egressAllows(entries, '2001:0db8:0000:0000:0000:0000:0000:0001', 22)).toBe(true);
  });

  it('hold for every run, or for the agents an entry names (globs); the policy file says what is wrong', () => {
    const parsed = runsSchema.parse({ egress: ['api.example.com:443', { to: ['api.anthropic.com:443'], agents: ['claude*'] }] });
    const rules = parsed.egress!.map((e) => (typeof e === 'string' ? { to: [e] } : e));
    expect(egressFor(rules, 'claude-code')).toEqual(['api.example.com:443', 'api.anthropic.com:443']);
    expect(egressFor(rules, 'codex')).toEqual(['api.example.com:443']);
    const bad = runsSchema.safeParse({ egress: ['api.example.com'] });
    expect(bad.success).toBe(false);
    expect(JSON.stringify(bad.error?.issues)).toContain('must be host:port');
  });
});

describe('the gateway inside the sandbox', () => {
  it("keeps its name (its certificate names it) on the sandbox's loopback, on a port the sandbox may serve", () => {
    expect(gatewayHostsLine('https://hoop.example.com')).toBe('127.0.0.1 hoop.example.com');
    expect(gatewayHostsLine('https://127.0.0.1:8443')).toBeUndefined();
    expect(gatewayHostsLine('https://localhost:8443')).toBeUndefined();
    expect(portInside(new Set(), 443)).toBe(10_000);
    expect(portInside(new Set([10_000]), 80)).toBe(10_001);
    expect(portInside(new Set(), 8443)).toBe(8443);
    expect(portInside(new Set([8443]), 8443)).toBe(10_000);
    expect(gatewayAcceptor('https://hoop.example.com', 10_000)).toMatchObject({ url: 'https://hoop.example.com:10000', acceptor: { host: '127.0.0.1', port: 10_000 } });
    expect(gatewayAcceptor('https://127.0.0.1:8443', 8443)).toMatchObject({ url: 'https://127.0.0.1:8443', acceptor: { host: '127.0.0.1', port: 8443 } });
    // An address elsewhere: the sandbox cannot stand in for it under its certificate.
    expect(gatewayAcceptor('https://10.1.2.3:8443', 8443)).toBeUndefined();
  });

  it('sends HTTP, HTTPS and SOCKS clients to the proxy, and what is on the loopback around it', () => {
    const env = proxyVariables(3128, ['hoop.example.com']);
    expect(env).toMatchObject({
      HTTPS_PROXY: 'http://127.0.0.1:3128',
      https_proxy: 'http://127.0.0.1:3128',
      ALL_PROXY: 'socks5h://127.0.0.1:3128',
      NO_PROXY: 'localhost,127.0.0.1,::1,hoop.example.com',
    });
  });
});

describe('the egress proxy', () => {
  let allowed: Server;
  let other: Server;
  let web: ReturnType<typeof createHttpServer>;
  let front: Server;
  let proxy: ReturnType<typeof egressProxy>;
  const decisions: EgressDecision[] = [];
  const portOf = (s: { address(): unknown }): number => (s.address() as AddressInfo).port;

  beforeAll(async () => {
    // An echo server the policy allows, one it does not, and a web server for requests in absolute form.
    const echo = (): Server => createServer((s) => s.pipe(s));
    allowed = echo().listen(0, '127.0.0.1');
    other = echo().listen(0, '127.0.0.1');
    web = createHttpServer((req, res) => res.end(`${req.method} ${req.url} host=${req.headers.host} connection=${req.headers.connection} proxy=${req.headers['proxy-connection'] ?? '-'}`)).listen(
      0,
      '127.0.0.1',
    );
    await Promise.all([once(allowed, 'listening'), once(other, 'listening'), once(web, 'listening')]);
    const entries = [`*.example.com:*`, `127.0.0.1:${portOf(allowed)}`, `localhost:${portOf(web)}`, `localhost:${portOf(allowed)}`, `${hostname()}:${portOf(allowed)}`];
    proxy = egressProxy({ port: 3128, allows: (h, p) => egressAllows(entries, h, p), onDecision: (d) => decisions.push(d) });
    // The bridge hands the proxy each client: here a plain listener does.
    front = createServer((s) => proxy.accept(s)).listen(0, '127.0.0.1');
    await once(front, 'listening');
  });

  afterAll(() => {
    proxy.close();
    for (const s of [allowed, other, front]) s.close();
    web.close();
  });

  /** A client of the proxy: writes `bytes`, resolves everything it received until the proxy or the destination closed, or `until` matched. */
  async function talk(bytes: Buffer[], until?: (got: Buffer) => boolean): Promise<Buffer> {
    const s: Socket = connect(portOf(front), '127.0.0.1');
    await once(s, 'connect');
    let got = Buffer.alloc(0);
    const done = new Promise<Buffer>((resolve) => {
      s.on('data', (d: Buffer) => {
        got = Buffer.concat([got, d]);
        if (until?.(got)) {
          s.destroy();
          resolve(got);
        }
      });
      s.on('close', () => resolve(got));
      s.on('error', () => resolve(got));
    });
    for (const b of bytes) s.write(b);
    return done;
  }

  it('CONNECT to an allowed destination tunnels both ways, bytes sent with the request included', async () => {
    const got = await talk([Buffer.from(`CONNECT 127.0.0.1:${portOf(allowed)} HTTP/1.1\r\nHost: x\r\n\r\nhello`)], (b) => b.toString().endsWith('hello'));
    expect(got.toString()).toBe('HTTP/1.1 200 Connection established\r\n\r\nhello');
    expect(decisions.at(-1)).toMatchObject({ host: '127.0.0.1', port: portOf(allowed), allowed: true });
  });

  it('refuses one the policy does not allow with 403, saying why, and tells it', async () => {
    const got = (await talk([Buffer.from(`CONNECT 127.0.0.1:${portOf(other)} HTTP/1.1\r\n\r\n`)])).toString();
    expect(got).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    expect(got).toContain(`127.0.0.1:${portOf(other)} is not among the destinations the policy allows this run (runs.egress)`);
    expect(decisions.at(-1)).toMatchObject({ host: '127.0.0.1', port: portOf(other), allowed: false });
  });

  it('refuses a name that resolves to this machine (a name the policy allows cannot be pointed at its services), unless the name is localhost', async () => {
    // This machine's own name resolves to one of its addresses (or loopback).
    expect((await lookup(hostname())).address).toBeTruthy();
    const own = (await talk([Buffer.from(`CONNECT ${hostname()}:${portOf(allowed)} HTTP/1.1\r\n\r\n`)])).toString();
    expect(own).toMatch(/^HTTP\/1\.1 403 Forbidden/);
    expect(own).toContain('resolves to this machine or a link-local address');
    const named = await talk([Buffer.from(`CONNECT localhost:${portOf(allowed)} HTTP/1.1\r\n\r\nping`)], (b) => b.toString().endsWith('ping'));
    expect(named.toString()).toContain('200 Connection established');
  });

  it('sends a request in absolute form on in origin form, its proxy headers dropped, the connection closed after', async () => {
    const got = (await talk([Buffer.from(`GET http://localhost:${portOf(web)}/a?b=1 HTTP/1.1\r\nHost: localhost:${portOf(web)}\r\nProxy-Connection: keep-alive\r\n\r\n`)])).toString();
    expect(got).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(got).toContain(`GET /a?b=1 host=localhost:${portOf(web)} connection=close proxy=-`);
  });

  it('answers a client that is not a proxy client with 400', async () => {
    expect((await talk([Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')])).toString()).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*egress proxy/);
  });

  it('refuses a name that is not one (a NUL before an allowed suffix would be looked up as what comes before it), said escaped', async () => {
    expect(egressAllows(['*.example.com:*'], 'evil.org\0.example.com', 443)).toBe(false);
    expect(egressAllows(['*.example.com:*'], 'api.example.com', 443)).toBe(true);
    const connectNul = (await talk([Buffer.from(`CONNECT 10.1.2.3\0.example.com:${portOf(allowed)} HTTP/1.1\r\n\r\n`)])).toString();
    expect(connectNul).toMatch(/^HTTP\/1\.1 403 Forbidden/);
    expect(decisions.at(-1)).toMatchObject({ host: '10.1.2.3\\u0000.example.com', allowed: false, why: '"10.1.2.3\\u0000.example.com" is not a host name' });
    const name = Buffer.from('\x1b[31mred\0.example.com', 'latin1');
    const socksNul = await talk([Buffer.from([5, 1, 0]), Buffer.concat([Buffer.from([5, 1, 0, 3, name.length]), name, Buffer.from([0, 80])])]);
    expect([...socksNul]).toEqual([5, 0, 5, 2, 0, 1, 0, 0, 0, 0, 0, 0]);
    expect(decisions.at(-1)).toMatchObject({ host: '\\u001b[31mred\\u0000.example.com', allowed: false });
  });

  it('SOCKS5: CONNECT by address and by name when allowed; refused as "not allowed by ruleset"', async () => {
    const hello = Buffer.from([5, 1, 0]);
    const byAddress = (port: number): Buffer => Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, port >> 8, port & 0xff]);
    const ok = await talk([hello, byAddress(portOf(allowed)), Buffer.from('abc')], (b) => b.length >= 2 + 10 + 3);
    expect([...ok.subarray(0, 12)]).toEqual([5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    expect(ok.subarray(12).toString()).toBe('abc');
    const name = Buffer.from('localhost');
    const byName = Buffer.concat([Buffer.from([5, 1, 0, 3, name.length]), name, Buffer.from([portOf(allowed) >> 8, portOf(allowed) & 0xff])]);
    const viaName = await talk([hello, byName, Buffer.from('xyz')], (b) => b.length >= 15);
    expect(viaName.subarray(12).toString()).toBe('xyz');
    const no = await talk([hello, byAddress(portOf(other))]);
    expect([...no]).toEqual([5, 0, 5, 2, 0, 1, 0, 0, 0, 0, 0, 0]);
    expect(decisions.at(-1)).toMatchObject({ port: portOf(other), allowed: false });
  });
});
