/**
 * The HTTP lane end to end: a real Node HTTP server as the API (it checks the bearer token the
 * gateway injects), json-server (a REST server from npm) and Debian's nginx over TLS as others,
 * `hoop connect` serving its local port (and the gateway's own port, `--direct`), and real clients (Node's fetch, curl,
 * Python's urllib) and raw sockets calling it. The credential never reaches a client, whatever the
 * API echoes; the policy refuses, holds and reads only; JSON, gzip and event streams are masked as
 * they stream; what cannot be masked is refused; the recording holds what crossed.
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { HOOP_BIN, spawnHoop } from '../harness/hoop-process.js';
import { givePerson, personDir, testPeople, type TestPerson } from '../harness/people.js';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect as tcpConnect, type AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { deflateSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectHttpJson } from '../../src/connect-json.js';
import type { HttpDirectJson } from '../../src/client/connect-direct.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { startNginx, type Nginx } from '../harness/nginx.js';
import { startRepoStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { workerPki } from '../harness/worker-shared.js';
import { eventually } from '../harness/wait.js';

const run = promisify(execFile);
const TOKEN = 'tok-3f9a1c7e5b2d4a6f8e0c';
const CARD = '4111 1111 1111 1111';

let stack: HoopStack;
let nginx: Nginx;
let nginxDir: string;
const NGINX_KEY = 'key-8c1d2e3f4a5b6c7d';
let api: Server;
let base: string;
/** json-server (a REST server from npm) over a file of accounts, and that file. */
let rest: Server;
let restDb: string;
let alice: RunningConnect;
let url: string;
/** The API wrote its late second answer to a request (`/two-delayed`). */
let lateSent = false;
/** Every request the API received: method, path and fields. */
const seen: Array<{ method: string; url: string; headers: IncomingMessage['headers']; body: string }> = [];

/** The API: each route answers only with the bearer token the gateway holds. */
function startApi(): Promise<Server> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      if (req.headers.authorization !== `Bearer ${TOKEN}`) return void res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"no token"}');
      const json = (status: number, value: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
      const path = req.url!.split('?')[0];
      if (path === '/v1/customers') return json(200, [{ id: 1, name: 'Ada', email: 'ada@example.com', card: CARD }]);
      if (path === '/v1/echo') return json(200, { youSent: req.headers.authorization, query: req.url });
      if (path === '/v1/gz') return void res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(gzipSync(JSON.stringify({ card: CARD })));
      if (path === '/v1/redirect') return void res.writeHead(302, { location: `${base}/customers` }).end();
      if (path === '/v1/text') return void res.writeHead(200, { 'content-type': 'text/plain' }).end(`card ${CARD}`);
      if (path === '/v1/events') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`event: row\ndata: {"card": "${CARD}"}\n\n`);
        return void res.end(`data: plain ${CARD}\n\n`);
      }
      if (path === '/v1/big') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('[');
        for (let i = 0; i < 20_000; i++) res.write(`${i ? ',' : ''}{"i":${i},"card":"${CARD}"}`);
        return void res.end(']');
      }
      if (path?.startsWith('/v1/orders/') || path?.startsWith('/v1/export')) return json(200, { ok: true, got: body });
      // Hostile answers: a Range honoured, bare values, a long number, an event's id, escapes, a reason and a field name that echo the token, a coded body with a byte after its end.
      const whole = Buffer.from(`{"card":"${CARD}"}`);
      const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      if (path === '/v1/range' && range)
        return void res
          .writeHead(206, { 'content-type': 'application/json', 'content-range': `bytes ${range[1]}-${range[2]}/${whole.length}` })
          .end(whole.subarray(Number(range[1]), Number(range[2]) + 1));
      if (path === '/v1/range') return void res.writeHead(200, { 'content-type': 'application/json' }).end(whole);
      if (path === '/v1/fraction') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"n":4111111111111111.5}');
      if (path === '/v1/echo-b64')
        return void res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ b: Buffer.from(`{"auth":"${req.headers.authorization}"}`).toString('base64'), hex: Buffer.from(`${req.headers.authorization}`).toString('hex') }));
      if (path === '/v1/bare') return void res.writeHead(200, { 'content-type': 'application/json' }).end(CARD);
      if (path === '/v1/long-number') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"pan":4000000000000079190}');
      if (path === '/v1/event-id') return void res.writeHead(200, { 'content-type': 'text/event-stream' }).end(`id: ${CARD}\n: ${CARD}\ndata: x\n\n`);
      if (path === '/v1/escaped') return void res.writeHead(200, { 'content-type': 'application/json' }).end(`{"t":"\\u0074${TOKEN.slice(1)}"}`);
      if (path === '/v1/reason') return void res.writeHead(400, `bad Bearer ${TOKEN}`, { 'content-type': 'application/json', [TOKEN]: '1' }).end('{}');
      if (path === '/v1/sock') return json(200, { port: req.socket.remotePort });
      if (path === '/v1/nocontent') return void res.writeHead(204, { 'content-length': '40' }).end();
      if (path === '/v1/two-delayed') {
        json(200, { first: true });
        // A second answer to the same request, later: an upstream that answers twice (or late, after a timeout).
        return void setTimeout(() => req.socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n{"second":"LATE!!"}', () => (lateSent = true)), 300);
      }
      if (path === '/v1/coding-echo') return void res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': `x-${TOKEN}` }).end('{}');
      if (path === '/v1/deflate-trailing')
        return void res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'deflate' }).end(Buffer.concat([deflateSync('{"a":1}'), Buffer.from('\n')]));
      json(404, { error: 'no such route' });
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** json-server's own server (its documented module API: defaults, then the router of a JSON file), on a port of its own. */
function startJsonServer(file: string): Promise<Server> {
  const jsonServer = createRequire(import.meta.url)('json-server') as {
    create(): { use(h: unknown): void; listen(port: number, host: string, done: () => void): Server };
    defaults(o: { logger: boolean }): unknown;
    router(file: string): unknown;
  };
  const app = jsonServer.create();
  app.use(jsonServer.defaults({ logger: false }));
  app.use(jsonServer.router(file));
  return new Promise((resolve) => {
    const server = app.listen(0, '127.0.0.1', () => resolve(server));
  });
}

/** Sends raw bytes to `port`; resolves what came back once the other side closed, or once this side ended after `endMs`. */
function rawExchange(port: number, bytes: string, endMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect(port, '127.0.0.1');
    let got = '';
    s.on('data', (b: Buffer) => (got += b.toString('latin1')));
    s.on('close', () => resolve(got));
    s.on('error', reject);
    s.write(bytes);
    setTimeout(() => s.end(), endMs).unref();
  });
}

beforeAll(async () => {
  nginxDir = await mkdtemp(join(tmpdir(), 'hoop-nginx-'));
  restDb = join(nginxDir, 'db.json');
  writeFileSync(restDb, JSON.stringify({ accounts: [{ id: 1, owner: 'Ada', card: CARD }] }));
  rest = await startJsonServer(restDb);
  const { pki } = await workerPki();
  nginx = await startNginx(nginxDir, await pki.issue('nginx', ['DNS:localhost', 'IP:127.0.0.1']), NGINX_KEY, {
    'customers.json': JSON.stringify([{ id: 1, name: 'Ada', card: CARD }]),
  });
  api = await startApi();
  base = `http://127.0.0.1:${(api.address() as AddressInfo).port}/v1`;
  stack = await startRepoStack(
    'http-lane',
    () => `version: 1
connections:
  - name: api
    type: http
    url: ${base}
    plainHttp: true
    credential: { bearer: "\${env:APP_API_TOKEN}" }
  - name: static
    type: http
    url: https://localhost:${nginx.port}/v2
    tls: { ca: ${pki.caFile} }
    credential: { header: { name: X-Api-Key, value: "\${env:APP_NGINX_KEY}" } }
  - name: rest
    type: http
    url: http://127.0.0.1:${(rest.address() as AddressInfo).port}
    plainHttp: true
    credential: { bearer: "\${env:APP_API_TOKEN}" }
  - name: static-unverified
    type: http
    url: https://localhost:${nginx.port}/v2
    credential: { header: { name: X-Api-Key, value: "\${env:APP_NGINX_KEY}" } }
access:
  - { name: people, subjects: [alice], connections: [api, static, static-unverified, rest], mode: read-write }
  - { name: readers, subjects: [carol], connections: [api], mode: read-only }
statements:
  reviewers:
    - { groups: [dba], timeout: 30s }
masking:
  detectors:
    - { detector: payment-card, strategy: last4 }
http:
  rules:
    - { name: no-admin, match: { paths: ["/admin/**"] }, action: deny, message: admin is off limits }
    - { name: refunds-reviewed, match: { methods: [POST], paths: ["/orders/*/refund"] }, action: review }
    - { name: no-vip, match: { methods: [POST], paths: ["/orders/**"], body: { tier: vip } }, action: deny }
    - { name: no-csv, match: { paths: ["/export"], query: { format: csv } }, action: deny }
    - { name: no-get-report, match: { methods: [GET], paths: ["/report"] }, action: deny }
    - { name: no-debug, match: { headers: { x-debug: "*" } }, action: deny }
    - { name: no-debug-mode, match: { query: { debug_mode: "*" } }, action: deny }
    - { name: accounts-reviewed, match: { methods: [POST], paths: ["/accounts"] }, action: review }
    - { name: no-account-delete, match: { methods: [DELETE], paths: ["/accounts/*"] }, action: deny }
alerts:
  - { name: http-refusals, when: { event: refused, count: 3, within: 10min } }
  - { name: http-pull, when: { event: bytes-sent, count: 500000, within: 1min } }
`,
    ['${env:APP_*}'],
    { env: { APP_API_TOKEN: TOKEN, APP_NGINX_KEY: NGINX_KEY } },
  );
  alice = await stack.connect('api', await stack.token('alice'));
  url = (alice.info as unknown as ConnectHttpJson).url;
}, 120_000);

afterAll(async () => {
  await alice?.stop();
  await stack?.close();
  api?.close();
  rest?.close();
  nginx?.process.kill();
  if (nginxDir) await rm(nginxDir, { recursive: true, force: true });
});

describe('the HTTP lane', () => {
  it('injects the credential: a client with none reaches the API, its own never goes upstream', async () => {
    const res = await fetch(`${url}/customers`, { headers: { authorization: 'Bearer the-callers-own' } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual([{ id: 1, name: 'Ada', email: 'ada@example.com', card: '**** **** **** 1111' }]);
    expect(seen.at(-1)!.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(seen.some((s) => JSON.stringify(s.headers).includes('the-callers-own'))).toBe(false);
  });

  it('never hands the credential back, whatever the API echoes', async () => {
    const res = await fetch(`${url}/echo`);
    const text = await res.text();
    expect(text).not.toContain(TOKEN);
    expect(text).toContain('*'.repeat(TOKEN.length));
  });

  it("refuses a request without the port's per-run path, and one the policy denies", async () => {
    const port = new URL(url).port;
    const other = await fetch(`http://127.0.0.1:${port}/customers`);
    expect(other.status).toBe(404);
    const admin = await fetch(`${url}/admin/users`);
    expect(admin.status).toBe(403);
    expect(((await admin.json()) as { error: string }).error).toMatch(/admin is off limits/);
    expect(seen.some((s) => s.url.startsWith('/v1/admin'))).toBe(false);
  });

  it('judges the path as forwarded: encoded and dotted spellings of a denied route are refused', async () => {
    for (const p of ['/%61dmin/users', '/x/../admin/users', '/ADMIN/users', '//admin/users', '/admin%2fusers']) {
      const { stdout } = await run('curl', ['-s', '--path-as-is', '-o', '/dev/null', '-w', '%{http_code}', `${url}${p}`]);
      expect(['400', '403'], p).toContain(stdout);
    }
    expect(seen.some((s) => /admin/i.test(s.url))).toBe(false);
  });

  it('refuses a body field a deny rule names, and reads a key written twice as unread', async () => {
    const vip = await fetch(`${url}/orders/7/pay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"tier":"vip"}' });
    expect(vip.status).toBe(403);
    const twice = await fetch(`${url}/orders/7/pay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"tier":"std","tier":"vip"}' });
    expect(twice.status).toBe(403);
    const ok = await fetch(`${url}/orders/7/pay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"tier":"std"}' });
    expect(ok.status).toBe(200);
    expect(seen.filter((s) => s.url === '/v1/orders/7/pay').map((s) => s.body)).toEqual(['{"tier":"std"}']);
  });

  it('holds a refund for review: nothing reaches the API until a reviewer approves the request shown', async () => {
    const pending = fetch(`${url}/orders/42/refund`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"amount":10}' });
    const bob = { HOOP_TOKEN: await stack.token('bob', ['dba']) };
    const gw = ['--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile];
    const review = await eventually(async () => {
      const ls = await stack.run(['review', 'ls', '--json', ...gw], bob);
      const r = (JSON.parse(ls.stdout) as { reviews: Array<{ id: string; sql: string }> }).reviews.find((x) => x.sql.includes('/orders/42/refund'));
      expect(r).toBeDefined();
      return r!;
    });
    expect(review.sql).toContain('{"amount":10}');
    expect(seen.some((s) => s.url === '/v1/orders/42/refund')).toBe(false);
    expect((await stack.run(['review', 'approve', review.id, ...gw], bob)).code).toBe(0);
    const res = await pending;
    expect(res.status).toBe(200);
    expect(seen.filter((s) => s.url === '/v1/orders/42/refund')).toHaveLength(1);
  });

  it('binds an approval to every field forwarded: a cookie is shown as its hash, and one changed after approval is another review', async () => {
    const gw = ['--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile];
    const alice = { HOOP_TOKEN: await stack.token('alice') };
    const bob = { HOOP_TOKEN: await stack.token('bob', ['dba']) };
    const send = (cookie: string) => stack.run(['exec', 'api', 'POST', '/orders/43/refund', '--json', '{"amount":10}', '-H', `Cookie: ${cookie}`, '--no-wait', ...gw], alice);
    const waiting = await send('acct=alice');
    expect(waiting.code).toBe(4);
    const id = waiting.stdout.trim();
    const shown = JSON.parse((await stack.run(['review', 'show', id, '--json', ...gw], bob)).stdout) as { sql: string };
    expect(shown.sql).toMatch(/\ncookie: \[redacted(:[0-9a-f]{8})?\]\n/);
    expect(shown.sql).not.toContain('acct=alice');
    expect((await stack.run(['review', 'approve', id, ...gw], bob)).code).toBe(0);
    // The same request but its cookie: not the one approved, so it waits for a review of its own, and nothing reaches the API.
    const swapped = await send('acct=victim; role=admin');
    expect(swapped.code).toBe(4);
    expect(swapped.stdout.trim()).not.toBe(id);
    expect(seen.filter((s) => s.url === '/v1/orders/43/refund')).toHaveLength(0);
    const approved = await send('acct=alice');
    expect(approved.code, approved.stderr).toBe(0);
    expect(seen.filter((s) => s.url === '/v1/orders/43/refund').map((s) => s.headers.cookie)).toEqual(['acct=alice']);
  });

  it('runs only GET, HEAD and OPTIONS under read-only access', async () => {
    const carol = await stack.connect('api', await stack.token('carol'));
    try {
      const u = (carol.info as unknown as ConnectHttpJson).url;
      expect((await fetch(`${u}/customers`)).status).toBe(200);
      const del = await fetch(`${u}/orders/1`, { method: 'DELETE' });
      expect(del.status).toBe(403);
      expect(((await del.json()) as { error: string }).error).toMatch(/read-only/);
    } finally {
      await carol.stop();
    }
  });

  it('masks a gzip body, an event stream and a large JSON body as they stream', async () => {
    const gz = await fetch(`${url}/gz`);
    expect(await gz.json()).toEqual({ card: '**** **** **** 1111' });
    const events = await (await fetch(`${url}/events`)).text();
    expect(events).not.toContain(CARD);
    expect(events).toContain('event: row');
    const { stdout } = await run('curl', ['-s', `${url}/big`], { maxBuffer: 64 * 1024 * 1024 });
    const rows = JSON.parse(stdout) as Array<{ i: number; card: string }>;
    expect(rows).toHaveLength(20_000);
    expect(rows.every((r) => r.card === '**** **** **** 1111')).toBe(true);
  });

  it('refuses a type it cannot mask, and gives redirects back through the port', async () => {
    expect((await fetch(`${url}/text`)).status).toBe(502);
    const r = await fetch(`${url}/redirect`, { redirect: 'manual' });
    expect(r.status).toBe(302);
    expect(r.headers.get('location')).toBe(`${new URL(url).pathname}/customers`);
  });

  it('serves Python urllib and curl alike', async () => {
    const py = await run('python3', ['-c', `import urllib.request,json;print(json.load(urllib.request.urlopen("${url}/customers"))[0]["name"])`]);
    expect(py.stdout.trim()).toBe('Ada');
    const { stdout } = await run('curl', ['-s', '-H', 'Authorization: Basic eDp5', `${url}/customers`]);
    expect(JSON.parse(stdout)[0].card).toBe('**** **** **** 1111');
  });

  it('refuses smuggling and answers pipelined requests in order', async () => {
    const port = Number(new URL(url).port);
    const prefix = new URL(url).pathname;
    const exchange = (bytes: string): Promise<string> => rawExchange(port, bytes, 2000);
    const smuggled = await exchange(`POST ${prefix}/orders/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET ${prefix}/admin HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(smuggled).toMatch(/^HTTP\/1\.1 400 /);
    expect(smuggled.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    const two = await exchange(`GET ${prefix}/customers HTTP/1.1\r\nHost: x\r\n\r\nGET ${prefix}/echo?n=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    const statuses = [...two.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
    expect(statuses).toEqual(['200', '200']);
    expect(two.indexOf('Ada')).toBeLessThan(two.indexOf('n=2'));
  });

  it('makes one request with hoop exec, as curl would, with exit codes a script reads', async () => {
    const gw = ['--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile];
    const token = { HOOP_TOKEN: await stack.token('alice') };
    const get = await stack.run(['exec', 'api', 'GET', '/customers', ...gw], token);
    expect(get.code).toBe(0);
    expect(JSON.parse(get.stdout)[0].card).toBe('**** **** **** 1111');
    const post = await stack.run(['exec', 'api', 'POST', '/orders/9/pay', '--json', '{"tier":"std"}', '-i', ...gw], token);
    expect(post.code).toBe(0);
    expect(post.stdout).toMatch(/^HTTP\/1\.1 200 /);
    expect(seen.at(-1)!.body).toBe('{"tier":"std"}');
    expect((await stack.run(['exec', 'api', 'GET', '/admin/x', ...gw], token)).code).toBe(3);
    expect((await stack.run(['exec', 'api', 'GET', '/nowhere', ...gw], token)).code).toBe(1);
    const usage = await stack.run(['exec', 'api', 'GET', ...gw], token);
    expect(usage.code).toBe(64);
    expect(usage.stderr).toMatch(/METHOD PATH/);
  });

  it("serves hoop run's command the connection in <NAME>_URL, as the run: curl, fetch and urllib reach the API, never its credential", async () => {
    const script = [
      'echo "base=$API_URL"',
      'curl -s "$API_URL/customers"; echo',
      `${JSON.stringify(process.execPath)} -e 'fetch(process.env.API_URL + "/echo").then(r => r.text()).then(t => console.log("fetch=" + t))'`,
      "python3 -c \"import os,urllib.request;print('py=' + urllib.request.urlopen(os.environ['API_URL'] + '/customers').read().decode())\"",
      '(env | grep -c tok- || true)',
    ].join(' && ');
    const r = await stack.run(['run', '--connect', 'api', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile, '--', 'sh', '-c', script], {
      HOOP_TOKEN: await stack.token('alice'),
      PATH: process.env.PATH ?? '/usr/bin:/bin',
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^base=http:\/\/127\.0\.0\.1:\d+\/[A-Za-z0-9_-]{24}$/m);
    expect(r.stdout).toContain('"card":"**** **** **** 1111"');
    expect(r.stdout).toMatch(/^fetch=\{"youSent":"Bearer \*+"/m);
    expect(r.stdout).toMatch(/^py=\[\{"id":1/m);
    expect(r.stdout).not.toContain(TOKEN);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('0');
  });

  it('offers an agent under hoop mcp an http_request tool: answers masked, refusals named, a held request runs once approved', async () => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [HOOP_BIN, 'mcp', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile],
      env: { PATH: process.env.PATH!, HOOP_TOKEN: await stack.token('alice'), HOOP_CONFIG_DIR: join(stack.dir, 'cli-mcp') },
      stderr: 'pipe',
    });
    const client = new Client({ name: 'test-agent', version: '1.0.0' });
    await client.connect(transport);
    try {
      type Answer = { content: Array<{ type: string; text: string }>; isError?: boolean };
      const call = async (args: Record<string, unknown>): Promise<Answer> => (await client.callTool({ name: 'http_request', arguments: { connection: 'api', ...args } })) as Answer;
      const json = (a: Answer): Record<string, unknown> => JSON.parse(a.content[0]!.text) as Record<string, unknown>;
      const got = json(await call({ method: 'GET', path: '/customers' }));
      expect(got.status).toBe(200);
      expect(JSON.parse(got.body as string)[0].card).toBe('**** **** **** 1111');
      const denied = await call({ method: 'GET', path: '/admin/x' });
      expect(denied.isError).toBe(true);
      expect(json(denied).body).toMatch(/admin is off limits/);
      const held = json(await call({ method: 'POST', path: '/orders/77/refund', json: { amount: 5 } }));
      expect(held.state).toBe('pending');
      expect(seen.some((s) => s.url === '/v1/orders/77/refund')).toBe(false);
      const gw = ['--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile];
      expect((await stack.run(['review', 'approve', String(held.review), ...gw], { HOOP_TOKEN: await stack.token('bob', ['dba']) })).code).toBe(0);
      const again = json(await call({ method: 'POST', path: '/orders/77/refund', json: { amount: 5 } }));
      expect(again.status).toBe(200);
      expect(seen.filter((s) => s.url === '/v1/orders/77/refund')).toHaveLength(1);
    } finally {
      await client.close();
    }
  });

  it("records each request and answer, the caller's credential and the card redacted", async () => {
    await fetch(`${url}/customers?marker=recorded`, { headers: { authorization: 'Bearer callers-own-secret' } });
    const gw = ['--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile];
    const token = { HOOP_TOKEN: await stack.token('alice') };
    const { id, events } = await eventually(async () => {
      const ls = await stack.run(['sessions', 'ls', '--json', ...gw], token);
      const ids = (JSON.parse(ls.stdout) as { sessions: Array<{ id: string; connection: string }> }).sessions.filter((s) => s.connection === 'api').map((s) => s.id);
      for (const id of ids) {
        const ex = await stack.run(['sessions', 'export', id, ...gw], token);
        if (ex.stdout.includes('marker=recorded')) return { id, events: ex.stdout };
      }
      throw new Error('not recorded yet');
    });
    // The index finds it by path and method.
    const byPath = async (...args: string[]): Promise<string[]> =>
      (JSON.parse((await stack.run(['sessions', 'ls', '--json', ...args, ...gw], token)).stdout) as { sessions: Array<{ id: string }> }).sessions.map((s) => s.id);
    expect(await byPath('--path', '/customers')).toContain(id);
    expect(await byPath('--path', '/cust*', '--method', 'get')).toContain(id);
    expect(await byPath('--path', '/customers', '--method', 'POST')).not.toContain(id);
    expect(await byPath('--path', '/admin/**')).not.toContain(id);
    // As curl -v prints an exchange.
    const shown = (await stack.run(['sessions', 'show', id, ...gw], token)).stdout;
    expect(shown).toContain('> GET /customers?marker=recorded HTTP/1.1');
    expect(shown).toContain('< HTTP/1.1 200 OK');
    expect(shown).toContain('**** **** **** 1111');
    const replayed = await stack.run(['sessions', 'replay', id, '--no-tty', ...gw], token);
    expect(replayed.code, replayed.stderr).toBe(0);
    expect(replayed.stdout).toContain('> GET /customers?marker=recorded HTTP/1.1');
    expect(events).not.toContain('callers-own-secret');
    expect(events).not.toContain(TOKEN);
    expect(events).not.toContain(CARD);
    expect(events).toContain('"status":200');
  });
});

describe('hostile requests and answers', () => {
  /** Sends raw bytes to the port; resolves what came back once the gateway closed, or after a second. */
  const exchange = (bytes: string): Promise<string> => rawExchange(Number(new URL(url).port), bytes, 1000);
  const status = async (path: string, init?: RequestInit): Promise<number> => (await fetch(`${url}${path}`, init)).status;

  it('judges the method the upstream acts on: a lower-case method and every method override are refused', async () => {
    const prefix = new URL(url).pathname;
    const lower = await exchange(`post ${prefix}/orders/142/refund HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}`);
    expect(lower).toMatch(/^HTTP\/1\.1 400 /);
    expect(await status('/orders/105/pay', { method: 'POST', headers: { 'x-http-method-override': 'DELETE' } })).toBe(400);
    expect(await status('/orders/105/pay?_method=DELETE', { method: 'POST' })).toBe(400);
    expect(await status('/orders/105/pay', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '_method=DELETE' })).toBe(400);
    expect(seen.some((s) => s.url.startsWith('/v1/orders/142/') || s.url.startsWith('/v1/orders/105/'))).toBe(false);
  });

  it("keeps each session on an upstream connection of its own: a second or late answer never reaches another's request, and a body that reads as a request is refused", async () => {
    const gw = ['--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile];
    const bob = await stack.connect('api', await stack.token('carol'));
    try {
      const bobUrl = (bob.info as unknown as ConnectHttpJson).url;
      const port = async (base: string): Promise<number> => ((await (await fetch(`${base}/sock`)).json()) as { port: number }).port;
      const alicePort = await port(url);
      const bobPort = await port(bobUrl);
      expect(bobPort).not.toBe(alicePort);
      // Alice's request is answered twice, the second 300 ms late; Bob's next request is his own.
      expect(await (await fetch(`${url}/two-delayed`)).json()).toEqual({ first: true });
      await eventually(() => expect(lateSent).toBe(true));
      for (let i = 0; i < 3; i++) {
        const got = (await (await fetch(`${bobUrl}/sock`)).json()) as { port?: number };
        expect(Object.keys(got)).toEqual(['port']);
        expect(got.port).not.toBe(alicePort);
      }
    } finally {
      await bob.stop();
    }
    // A body that begins as an HTTP request (one a server reading no body there would take for the next request): refused, nothing forwarded.
    const before = seen.length;
    for (const body of ['GET /v1/admin/secret HTTP/1.1\r\nX-Ignore: ', '\r\nPOST /v1/admin/x HTTP/1.0\r\n\r\n']) {
      const raw = await exchange(`GET ${new URL(url).pathname}/echo HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      expect(raw).toMatch(/^HTTP\/1\.1 400 /);
      expect(raw).toContain('begins as an HTTP request');
    }
    expect(seen.length).toBe(before);
    expect(await status('/echo', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'GET is a word; HTTP too' })).toBe(200);
    // A 204 goes on without the length the upstream wrongly gave it.
    const nothing = await exchange(`GET ${new URL(url).pathname}/nocontent HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(nothing).toMatch(/^HTTP\/1\.1 204 /);
    expect(nothing.toLowerCase()).not.toContain('content-length');
    void gw;
  });

  it('answers Expect: 100-continue with a refusal before the body when the head alone is refused, and with 100 Continue otherwise', async () => {
    const prefix = new URL(url).pathname;
    const before = seen.length;
    const denied = await exchange(`POST ${prefix}/admin/x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n`);
    expect(denied).toMatch(/^HTTP\/1\.1 403 /);
    expect(denied).not.toContain('100 Continue');
    expect(denied).toMatch(/admin is off limits/);
    const allowed = await exchange(`POST ${prefix}/echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n`);
    expect(allowed).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\n/);
    // A body rule waits for the body: the head alone does not meet it.
    const vip = await exchange(`POST ${prefix}/orders/3/pay HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: 14\r\nConnection: close\r\n\r\n`);
    expect(vip).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\n/);
    expect(seen.length).toBe(before);
  });

  it("refuses a field that asks for another route than the one judged, and forwards none of the caller's claims of who and where the client is", async () => {
    const before = seen.length;
    for (const [name, value] of [
      ['x-original-url', '/v1/admin/x'],
      ['x-rewrite-url', '/v1/admin/x'],
      ['x-forwarded-uri', '/v1/admin/x'],
      ['x-forwarded-prefix', '/v1/admin'],
      ['x-envoy-original-path', '/v1/admin/x'],
      ['x-original-method', 'DELETE'],
    ])
      expect(await status('/echo', { headers: { [name]: value } }), name).toBe(400);
    const raw = await exchange(`GET ${new URL(url).pathname}/echo HTTP/1.1\r\nHost: x\r\nX_Original_URL: /v1/admin/x\r\nConnection: close\r\n\r\n`);
    expect(raw).toMatch(/^HTTP\/1\.1 400 /);
    expect(seen.length).toBe(before);
    const claims = { 'x-forwarded-for': '10.0.0.1', forwarded: 'for=10.0.0.1;host=admin.internal', 'x-forwarded-host': 'admin.internal', 'x-real-ip': '10.0.0.1', 'x-forwarded-proto': 'https' };
    expect(await status('/echo', { headers: claims })).toBe(200);
    const got = seen.at(-1)!.headers;
    for (const name of Object.keys(claims)) expect(got[name], name).toBeUndefined();
  });

  it("reads a request as every router it could reach reads it: a trailing slash, a route's root, bracketed and form parameters, key case", async () => {
    const before = seen.length;
    for (const path of ['/admin', '/admin/users/', '/export/?format=csv', '/export?format[]=csv', '/export?FORMAT=csv', '/export?format[0]=csv']) expect(await status(path), path).toBe(403);
    expect(await status('/export', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'format=csv' })).toBe(403);
    const multipart = new FormData();
    multipart.append('format', 'csv');
    expect(await status('/export', { method: 'POST', body: multipart })).toBe(403);
    expect(await status('/orders/8/pay', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"Tier":"vip"}' })).toBe(403);
    expect(seen.length).toBe(before);
    expect(await status('/export?format=json')).toBe(200);
  });

  it('refuses a _method wherever a body may carry it, and reads a request as routers that fold names, suffixes and HEAD do', async () => {
    const before = seen.length;
    const multipart = new FormData();
    multipart.append('_method', 'DELETE');
    expect(await status('/orders/106/pay', { method: 'POST', body: multipart })).toBe(400);
    expect(await status('/orders/106/pay', { method: 'POST', body: '_method=DELETE' })).toBe(400);
    expect(await status('/orders/106/pay', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"_method":"DELETE"}' })).toBe(400);
    expect(await status('/report', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded, text/plain' }, body: 'debug_mode=1' })).toBe(403);
    for (const path of ['/admin.json', '/admin/users.json', '/report?x=1']) expect(await status(path, { method: path.startsWith('/report') ? 'HEAD' : 'GET' }), path).toBe(403);
    expect(await status('/customers', { headers: { x_debug: '1' } })).toBe(403);
    for (const q of ['debug.mode=1', 'debug+mode=1', 'debug[mode=1', 'Debug-Mode=1']) expect(await status(`/customers?${q}`), q).toBe(403);
    expect(seen.length).toBe(before);
  });

  it("masks what a Range, bare values, a long number or an event's id would carry out", async () => {
    const partial = await fetch(`${url}/range`, { headers: { range: 'bytes=9-27' } });
    expect(await partial.text()).not.toContain(CARD);
    expect(seen.at(-1)!.headers.range).toBeUndefined();
    const bare = await fetch(`${url}/bare`).then(
      (r) => r.text(),
      () => 'cut',
    );
    expect(bare).not.toContain(CARD);
    const long = await (await fetch(`${url}/long-number`)).text();
    expect(long).not.toContain('4000000000000079190');
    const events = await (await fetch(`${url}/event-id`)).text();
    expect(events).not.toContain(CARD);
    expect(await (await fetch(`${url}/fraction`)).text()).not.toContain('4111111111111111');
  });

  it('never hands the credential back: escaped in JSON, in the reason phrase, as a field name', async () => {
    const encoded = (await (await fetch(`${url}/echo-b64`)).json()) as { b: string; hex: string };
    expect(Buffer.from(encoded.b, 'base64').toString('latin1')).not.toContain(TOKEN.slice(2, -2));
    expect(encoded.hex).not.toContain(Buffer.from(TOKEN).toString('hex'));
    const escaped = await (await fetch(`${url}/escaped`)).text();
    expect(JSON.parse(escaped).t).not.toContain(TOKEN.slice(1));
    const raw = await exchange(`GET ${new URL(url).pathname}/reason HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(raw).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(raw).not.toContain(TOKEN);
    // Nor in what hoop itself says of the answer it refused (its reason quotes the upstream's coding).
    const refused = await fetch(`${url}/coding-echo`);
    expect(refused.status).toBe(502);
    const said = await refused.text();
    expect(said).toMatch(/coded/);
    expect(said).not.toContain(TOKEN);
  });

  it('cuts an answer whose coded body has bytes after its end, and never hangs', async () => {
    const started = Date.now();
    const got = await fetch(`${url}/deflate-trailing`).then(
      (r) => r.text(),
      () => 'cut',
    );
    expect(got).not.toBe('{"a":1}');
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('opens no session for local clients without the per-run path: forty silent ones take no slot', async () => {
    const port = Number(new URL(url).port);
    const silent = Array.from({ length: 40 }, () => tcpConnect(port, '127.0.0.1'));
    await Promise.all(silent.map((s) => new Promise((r) => s.once('connect', r))));
    try {
      expect(await status('/customers')).toBe(200);
    } finally {
      for (const s of silent) s.destroy();
    }
  });
});

describe("the policy's alerts", () => {
  it("count an HTTP session's refused requests and the bytes its client got", async () => {
    const gw = ['--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile];
    const carol = { HOOP_TOKEN: await stack.token('carol') };
    // Read-only: each write is refused.
    for (let i = 0; i < 3; i++) expect((await stack.run(['exec', 'api', 'POST', `/orders/${i}/pay`, '--json', '{}', ...gw], carol)).code).toBe(3);
    const big = await stack.run(['exec', 'api', 'GET', '/big', ...gw], carol);
    expect(big.code).toBe(0);
    expect(big.stdout.length).toBeGreaterThan(500_000);
    await eventually(async () => {
      const ls = await stack.run(['alerts', 'ls', '--json', ...gw], carol);
      const rules = (JSON.parse(ls.stdout) as { alerts: Array<{ rule: string }> }).alerts.map((a) => a.rule);
      expect(rules).toEqual(expect.arrayContaining(['http-refusals', 'http-pull']));
    });
  });
});

describe('json-server (a REST server from npm) as the API', () => {
  it('reads its records masked, holds a create until a reviewer approves it (then the server holds it, once), and refuses a delete in any spelling json-server reads', async () => {
    const gw = ['--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile];
    const token = { HOOP_TOKEN: await stack.token('alice') };
    const held = (): Array<{ id: number; owner: string }> => (JSON.parse(readFileSync(restDb, 'utf8')) as { accounts: Array<{ id: number; owner: string }> }).accounts;
    const read = await stack.run(['exec', 'rest', 'GET', '/accounts/1', ...gw], token);
    expect(read.code, read.stderr).toBe(0);
    expect(JSON.parse(read.stdout)).toEqual({ id: 1, owner: 'Ada', card: '**** **** **** 1111' });
    // A create is held: nothing reaches json-server until a reviewer approves it; then the same request runs once.
    const create = ['exec', 'rest', 'POST', '/accounts', '--json', '{"owner":"Bea"}', ...gw];
    const waiting = await stack.run([...create, '--no-wait'], token);
    expect(waiting.code).toBe(4);
    const review = waiting.stdout.trim();
    expect(held().map((a) => a.owner)).toEqual(['Ada']);
    expect((await stack.run(['review', 'approve', review, ...gw], { HOOP_TOKEN: await stack.token('bob', ['dba']) })).code).toBe(0);
    const made = await stack.run(create, token);
    expect(made.code, made.stderr).toBe(0);
    expect(JSON.parse(made.stdout)).toMatchObject({ owner: 'Bea' });
    expect(held().map((a) => a.owner)).toEqual(['Ada', 'Bea']);
    // A delete is denied, and so is json-server's method override (a POST it would read as DELETE).
    expect((await stack.run(['exec', 'rest', 'DELETE', '/accounts/1', ...gw], token)).code).toBe(3);
    const local = await stack.connect('rest', token.HOOP_TOKEN);
    try {
      const url = (local.info as unknown as ConnectHttpJson).url;
      for (const [name, value] of [
        ['x-http-method-override', 'DELETE'],
        ['x-method-override', 'DELETE'],
      ] as const) {
        const r = await fetch(`${url}/accounts/1`, { method: 'POST', headers: { [name]: value } });
        expect(r.status, name).toBe(400);
      }
      expect((await fetch(`${url}/accounts/1?_method=DELETE`, { method: 'POST' })).status).toBe(400);
    } finally {
      await local.stop();
    }
    expect(held().map((a) => a.owner)).toEqual(['Ada', 'Bea']);
  });
});

describe('hoop connect --direct of an HTTP connection', () => {
  it("serves a client at the gateway's own port under a base URL holding the credential: judged, masked, recorded; a wrong or revoked credential and a second spelling of the path are refused", async () => {
    const gw = ['--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile];
    const token = await stack.token('alice');
    const running = await stack.connect('api', token, ['--direct']);
    const d = running.info as unknown as HttpDirectJson;
    const curl = async (target: string, ...more: string[]): Promise<{ code: string; body: string }> => {
      const { stdout } = await run('curl', ['-s', '--path-as-is', '--cacert', stack.pki.caFile, '-w', '\\n%{http_code}', ...more, target]);
      const at = stdout.lastIndexOf('\n');
      return { body: stdout.slice(0, at), code: stdout.slice(at + 1) };
    };
    let id: string;
    try {
      expect(d).toMatchObject({ connection: 'api', port: stack.gateway.port });
      expect(d.url).toBe(`${stack.gateway.url}/direct/${d.user}/${d.password}`);
      expect(readFileSync(d.urlFile, 'utf8').trim()).toBe(d.url);
      const got = await curl(`${d.url}/customers?marker=direct`, '-H', 'authorization: Bearer the-callers-own');
      expect(got.code).toBe('200');
      expect(JSON.parse(got.body)).toEqual([{ id: 1, name: 'Ada', email: 'ada@example.com', card: '**** **** **** 1111' }]);
      expect(seen.at(-1)!.headers.authorization).toBe(`Bearer ${TOKEN}`);
      expect((await curl(`${d.url}/admin/users`)).code).toBe('403');
      expect((await curl(`${d.url}/%61dmin/users`)).code).toMatch(/^40[03]$/);
      // Two requests on one connection: the second without the credential's path is refused by the session, never the API's.
      const two = await run('curl', [
        '-s',
        '--cacert',
        stack.pki.caFile,
        '-w',
        '%{http_code} %{num_connects}\\n',
        '-o',
        '/dev/null',
        `${d.url}/customers`,
        '-o',
        '/dev/null',
        `${stack.gateway.url}/v1/connections`,
      ]);
      expect(two.stdout.trim().split('\n')).toEqual(['200 1', '404 0']);
      // A wrong password, an unknown user, none at all: 401, nothing opened.
      const wrong = d.password.slice(0, -1) + (d.password.endsWith('A') ? 'B' : 'A');
      for (const bad of [`/direct/${d.user}/${wrong}/customers`, `/direct/dc_${'x'.repeat(22)}/${d.password}/customers`, '/direct/customers']) {
        const r = await curl(`${stack.gateway.url}${bad}`);
        expect(r.code, bad).toBe('401');
        expect(r.body).toMatch(/direct credential/);
      }
      // A redirect the API gives comes back under the base URL; a Referer holding it reaches the API without it.
      const moved = await run('curl', ['-s', '--cacert', stack.pki.caFile, '-o', '/dev/null', '-w', '%{redirect_url}', `${d.url}/redirect?marker=direct`]);
      expect(moved.stdout).toBe(`${d.url}/customers`);
      expect((await curl(`${d.url}/echo`, '-H', `referer: ${d.url}/page`)).code).toBe('200');
      expect(seen.at(-1)!.headers.referer).toBe(`${stack.gateway.url}/page`);
      expect(JSON.stringify(seen)).not.toContain(d.password);
      // The API on the same port is as it was.
      expect((await curl(`${stack.gateway.url}/v1/connections`, '-H', `authorization: Bearer ${token}`)).code).toBe('200');
      id = await eventually(async () => {
        const ls = JSON.parse((await stack.run(['sessions', 'ls', '--json', '--path', '/customers', ...gw], { HOOP_TOKEN: token })).stdout) as { sessions: Array<{ id: string; via: string }> };
        const direct = ls.sessions.filter((s) => s.via === 'direct');
        expect(direct.length).toBeGreaterThan(0);
        return direct[0]!.id;
      });
    } finally {
      await running.stop();
    }
    // Its recordings hold the requests as forwarded, never the credential's path: not in the target, not in a field (the Referer sent above).
    const events = await eventually(async () => {
      const ex = await stack.run(['sessions', 'export', id, ...gw], { HOOP_TOKEN: token });
      expect(ex.code, ex.stderr).toBe(0);
      return ex.stdout;
    });
    expect(events).not.toContain(d.password);
    expect(events).not.toContain(TOKEN);
    const all = JSON.parse((await stack.run(['sessions', 'ls', '--json', '--path', '/echo', ...gw], { HOOP_TOKEN: token })).stdout) as { sessions: Array<{ id: string; via: string }> };
    const refererSessions = all.sessions.filter((s) => s.via === 'direct');
    expect(refererSessions.length).toBeGreaterThan(0);
    for (const s of refererSessions) {
      const ex = await eventually(async () => {
        const e = await stack.run(['sessions', 'export', s.id, ...gw], { HOOP_TOKEN: token });
        expect(e.code, e.stderr).toBe(0);
        return e.stdout;
      });
      expect(ex).not.toContain(d.password);
    }
    // Stopped, it revoked the credential.
    const after = await curl(`${d.url}/customers`);
    expect(after.code).toBe('401');
    expect(after.body).toContain(`direct credential ${d.id} was revoked`);
  });

  it('answers a client that ends its side after its requests (a half-close), at the local port and directly', async () => {
    // Python's socket at the local port: two requests, then shutdown(SHUT_WR); it reads to the end.
    const target = new URL(url);
    const requests = `GET ${target.pathname}/customers HTTP/1.1\\r\\nHost: x\\r\\n\\r\\nGET ${target.pathname}/echo?n=half HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n`;
    const py = await run('python3', [
      '-c',
      [
        'import socket,sys',
        `s=socket.create_connection(("127.0.0.1",${target.port}))`,
        `s.sendall(b"${requests}")`,
        's.shutdown(socket.SHUT_WR)',
        'got=b""',
        'while True:',
        '  b=s.recv(65536)',
        '  if not b: break',
        '  got+=b',
        'sys.stdout.write(got.decode("latin1"))',
      ].join('\n'),
    ]);
    expect([...py.stdout.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1])).toEqual(['200', '200']);
    expect(py.stdout).toContain('**** **** **** 1111');
    expect(py.stdout).toContain('n=half');
    // Node's TLS client at the gateway's port: a request, then its end (close_notify and FIN); it reads the answer whole.
    const running = await stack.connect('api', await stack.token('alice'), ['--direct']);
    try {
      const path = new URL((running.info as unknown as HttpDirectJson).url).pathname;
      const got = await new Promise<string>((resolve, reject) => {
        const s = tlsConnect(
          { host: '127.0.0.1', port: stack.gateway.port, ca: readFileSync(stack.pki.caFile), servername: 'localhost', ALPNProtocols: ['http/1.1'], ...{ allowHalfOpen: true } },
          () => s.end(`GET ${path}/customers HTTP/1.1\r\nHost: x\r\n\r\n`),
        );
        let text = '';
        s.on('data', (b: Buffer) => (text += b.toString('latin1')));
        s.on('end', () => resolve(text));
        s.on('error', reject);
      });
      expect(got).toMatch(/^HTTP\/1\.1 200 /);
      expect(got).toContain('**** **** **** 1111');
      expect(got).toMatch(/0\r\n\r\n$/);
    } finally {
      await running.stop();
    }
  });
});

describe('an nginx over TLS as the API', () => {
  it("reaches it verified against the connection's CA, with the key in its header: the files masked, the key never echoed, and nothing without it", async () => {
    const gw = ['--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile];
    const token = { HOOP_TOKEN: await stack.token('alice') };
    const got = await stack.run(['exec', 'static', 'GET', '/customers.json', '-H', 'X-Api-Key: mine', ...gw], token);
    expect(got.code, got.stderr).toBe(0);
    expect(JSON.parse(got.stdout)).toEqual([{ id: 1, name: 'Ada', card: '**** **** **** 1111' }]);
    const echo = await stack.run(['exec', 'static', 'GET', '/echo', ...gw], token);
    expect(echo.stdout).not.toContain(NGINX_KEY);
    expect(JSON.parse(echo.stdout).key).toBe('*'.repeat(NGINX_KEY.length));
    // Straight to nginx, without the key: refused.
    const { stdout } = await run('curl', ['-s', '--cacert', stack.pki.caFile, `https://localhost:${nginx.port}/v2/customers.json`]);
    expect(stdout).toContain('no key');
    // Without the CA, the gateway does not trust the certificate, and says so.
    const unverified = await stack.run(['exec', 'static-unverified', 'GET', '/customers.json', ...gw], token);
    expect(unverified.code).toBe(1);
    expect(unverified.stdout).toMatch(/could not be reached: .*(self-signed|unable to verify|certificate)/i);
  });
});

describe.each(testPeople())('an agent contained by hoop run, as $label', (person: TestPerson) => {
  it('calls the API through <NAME>_URL and by its real name (its egress proxy routes it to the connection, TLS ended by a CA of the run), and finds its credential nowhere: not in its environment, its files or any answer', async () => {
    const base = personDir(person, '.hoop-http-');
    try {
      writeFileSync(join(base, 'ca.pem'), readFileSync(stack.pki.caFile));
      mkdirSync(join(base, 'work'));
      mkdirSync(join(base, 'xdg'), { mode: 0o700 });
      givePerson(person, base);
      const script = [
        'curl -s "$API_URL/customers"; echo',
        'curl -s "$API_URL/echo"; echo',
        // The API's real name (here this machine's, which the proxy variables leave out: the proxy is named), through the run's egress proxy.
        `curl -s --noproxy '' -x "$HTTPS_PROXY" https://localhost:${nginx.port}/v2/customers.json; echo`,
        `(env; cat "$HOOP_CA_FILE") | grep -c ${TOKEN} || true`,
        // The files it may read of its person's and of the run's (this test's own source, which holds the token, lies elsewhere).
        `grep -rl ${TOKEN} "$HOME" "$(dirname "$HOOP_CA_FILE")" "$XDG_RUNTIME_DIR" 2>/dev/null | wc -l`,
      ].join('; ');
      const r = await spawnHoop(
        ['run', '--quiet', '--gateway', stack.gateway.url, '--ca-file', join(base, 'ca.pem'), '--isolation', 'bwrap', '--connect', 'api', '--connect', 'static', '--', 'sh', '-c', script],
        {
          env: { HOOP_TOKEN: await stack.token('alice'), HOOP_CONFIG_DIR: join(base, 'config'), XDG_RUNTIME_DIR: join(base, 'xdg') },
          cwd: join(base, 'work'),
          as: person,
        },
      );
      expect(r.code, r.stderr).toBe(0);
      const [customers, echo, routed, inEnv, inFiles] = r.stdout.trim().split('\n');
      expect(JSON.parse(customers!)[0].card).toBe('**** **** **** 1111');
      expect(JSON.parse(routed!)).toEqual([{ id: 1, name: 'Ada', card: '**** **** **** 1111' }]);
      expect(echo).toMatch(/"youSent":"Bearer \*+"/);
      expect([inEnv, inFiles]).toEqual(['0', '0']);
      expect(r.stdout).not.toContain(TOKEN);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
