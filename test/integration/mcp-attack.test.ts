/**
 * Attacks on MCP connections at the gateway, by a client that speaks to it straight over a tunnel
 * (no hoop CLI in its path) and by a hostile server the gateway runs
 * (test/fixtures/attack-mcp-server.mjs, which logs every line it receives). Each test is an attack
 * that once worked: a message nested deep enough to overflow the gateway's stack, a server's stderr
 * (with its token) shown to the agent, card numbers in what the masking did not read, resource URIs
 * spelled past a deny rule, a reviewed call whose bytes were not what the reviewer saw, methods
 * named after Object.prototype's, completions of a denied prompt, and an agent that never reads.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newSessionId } from '../../src/tunnel/transport.js';
import { recordingEvents } from '../harness/exported-events.js';
import { rawMcp as rawMcpOf } from '../harness/mcp.js';
import { startRepoStack, type HoopStack } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';

const SERVER = resolve(import.meta.dirname, '../fixtures/attack-mcp-server.mjs');
const FILESYSTEM = join(dirname(createRequire(import.meta.url).resolve('@modelcontextprotocol/server-filesystem/package.json')), 'dist', 'index.js');
const CARD = '4111 1111 1111 1111';
const SERVER_TOKEN = 'tok-very-secret-123';

let stack: HoopStack;
let dir: string;
let callsLog: string;
let data: string;
let http: Server;
/** Each body the HTTP server was sent, as sent. */
const httpBodies: string[] = [];

/**
 * A Streamable HTTP MCP server that answers a call with an SSE stream of 200,000 log
 * notifications of 1 KiB before its result: the gateway cannot pace it (HTTP has no back-pressure
 * it could pass on).
 */
function floodingHttpServer(): Server {
  return createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      if (req.method !== 'POST') return void res.writeHead(405).end();
      const m = JSON.parse(body) as { id?: unknown; method: string; params?: { protocolVersion?: string } };
      httpBodies.push(body);
      if (m.id === undefined) return void res.writeHead(202).end();
      const name = (m.params as { name?: string } | undefined)?.name;
      if (name === 'numbers-error') return void res.writeHead(500, { 'content-type': 'application/json' }).end('{"card":4111111111111111,"order":12345678901234567890}');
      if (name === 'numbers-sse-lines') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        return void res.end(`event: message\ndata: {"jsonrpc":"2.0","id":${JSON.stringify(m.id)},\ndata: "result":{"content":[],"structuredContent":{"order":12345678901234567890}}}\n\n`);
      }
      if (name === 'numbers-json' || name === 'numbers-sse') {
        // A 19-digit card and a 20-digit id as numbers; the SSE event cut in two in the middle of the card.
        const answer = `{"jsonrpc":"2.0","id":${JSON.stringify(m.id)},"result":{"content":[],"structuredContent":{"card":4111111111111111110,"order":12345678901234567890}}}`;
        // A media type in capitals, with a parameter, is JSON to the SDK: so to the gateway.
        if (name === 'numbers-json') return void res.writeHead(200, { 'content-type': 'Application/JSON; charset=utf-8' }).end(answer);
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const event = `event: message\r\ndata: ${answer}\r\n\r\n`;
        const cut = event.indexOf('11111') + 3;
        res.write(event.slice(0, cut));
        return void setImmediate(() => res.end(event.slice(cut)));
      }
      if (m.method !== 'tools/call') {
        const result = m.method === 'initialize' ? { protocolVersion: m.params?.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'flood', version: '1' } } : {};
        return void res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'flood' }).end(JSON.stringify({ jsonrpc: '2.0', id: m.id, result }));
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const event = `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'x'.repeat(1024) } })}\n\n`;
      let left = 200_000;
      const more = (): void => {
        while (left > 0 && !res.destroyed) {
          left--;
          if (!res.write(event)) return void res.once('drain', more);
        }
        if (!res.destroyed) res.end(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { content: [] } })}\n\n`);
      };
      res.on('close', () => (left = 0));
      more();
    });
  });
}

/** A raw client of `name` as alice (session `sessionId`). */
const rawMcp = (name = 'attack', sessionId?: string) => rawMcpOf(stack, name, sessionId ? { sessionId } : {});

const errorOf = (m: Record<string, unknown>) => m.error as { code: number; message: string; data?: unknown };
const calls = async (): Promise<string[]> => (await readFile(callsLog, 'utf8')).split('\n').filter(Boolean);
const hoop = async (argv: string[], subject = 'alice', groups: string[] = []) =>
  stack.run([...argv, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token(subject, groups) });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoop-mcp-attack-'));
  callsLog = join(dir, 'calls.log');
  await writeFile(callsLog, '');
  data = join(dir, 'data');
  await mkdir(join(data, 'secret'), { recursive: true });
  await writeFile(join(data, 'secret', 'key.txt'), 'the secret key');
  await mkdir(join(data, 'Keys'), { recursive: true });
  await writeFile(join(data, 'Keys', 'k.txt'), 'the kelvin key');
  await mkdir(join(data, 'donn\u00e9es'), { recursive: true });
  await writeFile(join(data, 'donn\u00e9es', 'd.txt'), 'the composed key');
  await writeFile(join(data, 'notes.txt'), 'plain notes');
  http = floodingHttpServer();
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  stack = await startRepoStack(
    'mcp-attack',
    () => `version: 1
connections:
  - name: attack
    type: mcp
    command: [${process.execPath}, ${SERVER}]
    env: { CALLS_LOG: "\${env:APP_CALLS_LOG}", SERVER_TOKEN: "\${env:APP_SERVER_TOKEN}" }
  - name: files
    type: mcp
    command: [${process.execPath}, ${FILESYSTEM}, ${data}]
  - name: flood
    type: mcp
    url: http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp
access:
  - { name: people, subjects: [alice], connections: [attack, files, flood], mode: read-write }
statements:
  reviewers:
    - { groups: [dba], timeout: 30s }
masking:
  detectors:
    - { detector: payment-card, strategy: last4 }
mcp:
  rules:
    - { name: writes-reviewed, match: { tools: [write] }, action: review }
    - { name: no-config, match: { resources: ["file:///etc/**"] }, action: deny }
    - { name: no-admin, match: { prompts: ["admin-*"] }, action: deny }
    - { name: no-secret-dir, match: { tools: ["*"], connections: [files], arguments: { path: "${data}/secret/**" } }, action: deny }
    - { name: no-keys-dir, match: { tools: ["*"], connections: [files], arguments: { path: ["${data}/Keys/**", "${data}/donn\u00e9es/**"] } }, action: deny }
`,
    ['${env:APP_*}'],
    { allowedCommands: [`${process.execPath} ${SERVER}`, `${process.execPath} ${FILESYSTEM} ${data}`], env: { APP_SERVER_TOKEN: SERVER_TOKEN, APP_CALLS_LOG: callsLog } },
  );
});

afterAll(async () => {
  await stack?.close();
  http?.closeAllConnections();
  http?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('messages nested past what a reader can walk', () => {
  it("a server's answer nested 200,000 deep ends that session, not the gateway", async () => {
    const bystander = await rawMcp();
    const c = await rawMcp();
    // Before: the masking walked the answer recursively, and the RangeError escaped the server's stdout handler (the gateway's process ended).
    const r = await c.request(1, 'tools/call', { name: 'deep', arguments: {} });
    expect(errorOf(r).message).toMatch(/nested deeper than 256 levels/);
    await eventually(() => expect(c.ended()).toBe(true));
    expect((await bystander.request(2, 'tools/call', { name: 'echo', arguments: { still: 'here' } })).result).toBeDefined();
    bystander.close();
  });

  it("an agent's message nested 200,000 deep is refused, and its session's recording still reads", async () => {
    const sessionId = newSessionId();
    const c = await rawMcp('attack', sessionId);
    // Before: it reached the server, and `hoop sessions export` of the session failed (Maximum call stack size exceeded), hiding what came after.
    c.send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"v":${'['.repeat(200_000)}1${']'.repeat(200_000)}}}}\n`);
    expect(errorOf(await c.answer(null)).message).toMatch(/nested deeper than 256 levels/);
    await eventually(() => expect(c.ended()).toBe(true));
    expect((await calls()).some((l) => l.includes('"method":"tools/call","params":{"name":"echo","arguments":{"v":[[['))).toBe(false);
    const events = await recordingEvents(stack, sessionId);
    expect(events.some((e) => e.t === 'mcp' && typeof e.text === 'string' && e.text.startsWith('{"jsonrpc"'))).toBe(true);
  });
});

describe("the server's secrets", () => {
  it("never shows the agent the server's stderr (where a server may print its token)", async () => {
    const c = await rawMcp();
    // Before: "hoop: the MCP server exited (code 4): fatal: could not authenticate with token tok-very-secret-123".
    const r = await c.request(1, 'tools/call', { name: 'stderr-exit', arguments: {} });
    expect(errorOf(r).message).toMatch(/the MCP server exited \(code 4\)/);
    await eventually(() => expect(c.ended()).toBe(true));
    expect(JSON.stringify(c.received)).not.toContain(SERVER_TOKEN);
    // The gateway's log has it.
    await eventually(() => expect(stack.logs().some((l) => l.event === 'mcp.upstream-closed' && String(l.stderr).includes('could not authenticate'))).toBe(true));
    const mine = await hoop(['sessions', 'ls', '--json']);
    expect(mine.stdout).not.toContain(SERVER_TOKEN);
  });
});

describe('what the masking reads', () => {
  const unmasked = (m: unknown) => JSON.stringify(m).includes(CARD);

  it("masks a server's error answer to a call", async () => {
    const c = await rawMcp();
    // Before: {"code":-32603,"message":"duplicate key: card 4111 1111 1111 1111","data":{"row":{"card":"4111 1111 1111 1111"}}}
    const r = await c.request(1, 'tools/call', { name: 'error-card', arguments: {} });
    expect(errorOf(r).message).toMatch(/duplicate key: card/);
    expect(unmasked(r)).toBe(false);
    c.close();
  });

  it('masks the keys of a structured result', async () => {
    const c = await rawMcp();
    const r = await c.request(1, 'tools/call', { name: 'keys-card', arguments: {} });
    expect(JSON.stringify(r.result)).toContain('balance 10');
    expect(unmasked(r)).toBe(false);
    c.close();
  });

  it('masks a 19-digit card sent as a JSON number, and gives back a 20-digit number as the server wrote it, in the recording too', async () => {
    const sessionId = newSessionId();
    const c = await rawMcp('attack', sessionId);
    await c.request(1, 'tools/call', { name: 'card-number', arguments: {} });
    const line = c.lines.find((l) => l.includes('"order"'));
    expect(line).toContain('"structuredContent":{"card":"***************1110","order":12345678901234567890}');
    c.close();
    await recordingEvents(stack, sessionId);
    const exported = await hoop(['sessions', 'export', sessionId, '--format', 'jsonl']);
    expect(exported.stdout).toContain('"order":12345678901234567890');
    expect(exported.stdout).not.toContain('4111111111111111110');
  });

  it('over Streamable HTTP too, as JSON or as an SSE event cut in two, and the server is sent such a number as the agent wrote it', async () => {
    for (const name of ['numbers-json', 'numbers-sse']) {
      const c = await rawMcp('flood');
      c.send(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"${name}","arguments":{"ref":98765432109876543210}}}\n`);
      await c.answer(7);
      expect(
        c.lines.find((l) => l.includes('"order"')),
        name,
      ).toContain('"structuredContent":{"card":"***************1110","order":12345678901234567890}');
      expect(httpBodies.find((b) => b.includes(name))).toContain('"arguments":{"ref":98765432109876543210}');
      c.close();
    }
  });

  it("never shows the agent the gateway's mark, and masks a card in a server's error; an event's data over two lines keeps its numbers too", async () => {
    const c = await rawMcp('flood');
    c.send('{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"numbers-error","arguments":{}}}\n');
    const failed = c.lines.find((l) => l.includes('"id":8')) ?? JSON.stringify(await c.answer(8));
    expect(failed).not.toMatch(/u0000[0-9a-f]{24}/);
    expect(failed).not.toContain('4111111111111111');
    c.send('{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"numbers-sse-lines","arguments":{}}}\n');
    await c.answer(9);
    expect(c.lines.find((l) => l.includes('"id":9'))).toContain('"order":12345678901234567890');
    c.close();
  });

  it('masks an answer too long to read on the event loop as a short one (in the worker), and what the server sent after it comes after it', async () => {
    const c = await rawMcp();
    const r = await c.request(1, 'tools/call', { name: 'long-card', arguments: {} });
    expect(r.result).toEqual({ content: [{ type: 'text', text: 'card **** **** **** 1111; '.repeat(40_000) }] });
    const after = (m: Record<string, unknown>) => m.method === 'notifications/message' && JSON.stringify(m.params).includes('after');
    await eventually(() => expect(c.received.some(after)).toBe(true));
    expect(c.received.findIndex(after)).toBeGreaterThan(c.received.findIndex((m) => m.id === 1));
    expect(unmasked(c.received)).toBe(false);
    c.close();
  });

  it("records an agent's line too long to read on the event loop with what the detectors find as keyed hashes (in the worker), and takes the lines after it in turn", async () => {
    const sessionId = newSessionId();
    const c = await rawMcp('attack', sessionId);
    const long = `card ${CARD}; `.repeat(40_000);
    // One write: the long call, then a short one behind it.
    c.send(
      `${JSON.stringify({ jsonrpc: '2.0', id: 11, method: 'tools/call', params: { name: 'echo', arguments: { note: long } } })}\n${JSON.stringify({ jsonrpc: '2.0', id: 12, method: 'tools/call', params: { name: 'echo', arguments: { n: 2 } } })}\n`,
    );
    await c.answer(12);
    await c.answer(11);
    // The server got both, in the order sent.
    const sent = (await calls()).filter((l) => l.includes('"name":"echo"'));
    expect(sent.at(-2)).toContain('"note":"card');
    expect(sent.at(-1)).toContain('"n":2');
    c.close();
    const events = await recordingEvents(stack, sessionId);
    const recorded = events
      .filter((e) => e.t === 'mcp' && e.d === 'c')
      .map((e) => JSON.stringify(e.m))
      .filter((m) => m.includes('"name":"echo"'));
    expect(recorded).toHaveLength(2);
    expect(recorded[0]).toContain('[redacted:');
    expect(recorded[0]).not.toContain(CARD);
    expect(recorded[1]).toContain('"n":2');
  });

  it("masks the server's log notifications", async () => {
    const c = await rawMcp();
    await c.request(1, 'tools/call', { name: 'log-card', arguments: {} });
    const logged = c.received.filter((m) => m.method === 'notifications/message' && JSON.stringify(m).includes('read customer'));
    expect(logged).toHaveLength(1);
    expect(unmasked(logged)).toBe(false);
    c.close();
  });

  it('masks completions', async () => {
    const c = await rawMcp();
    const r = await c.request(1, 'completion/complete', { ref: { type: 'ref/prompt', name: 'customers' }, argument: { name: 'who', value: '' } });
    expect(JSON.stringify(r.result)).toContain('customer');
    expect(unmasked(r)).toBe(false);
    c.close();
  });
});

describe('resource URIs past a deny rule', () => {
  it('refuses /etc however the URI spells it; none reaches the server', async () => {
    const c = await rawMcp();
    const spellings = [
      'file:///srv/../etc/passwd',
      'file://localhost/etc/passwd',
      'FILE:///etc/passwd',
      'file:/etc/passwd',
      'file:///%65tc/passwd',
      'file:////etc/passwd',
      'file:///srv/%2e%2e/etc/shadow',
    ];
    for (const uri of spellings) expect(errorOf(await c.request(uri, 'resources/read', { uri })).code, uri).toBe(-32001);
    expect(errorOf(await c.request('sub', 'resources/subscribe', { uri: 'file://LOCALHOST/etc/passwd' })).code).toBe(-32001);
    expect((await c.request('ok', 'resources/read', { uri: 'file:///srv/shared/notes.txt' })).result).toBeDefined();
    const reached = (await calls()).filter((l) => l.includes('"method":"resources/'));
    expect(reached.filter((l) => /etc/i.test(l))).toEqual([]);
    c.close();
  });
});

describe('a held call', () => {
  it('reaches the server, once approved, as the reviewer saw it: no duplicate key, a number past double precision as written', async () => {
    const c = await rawMcp();
    // A reviewer once saw "account": 9007199254740992 and one "note"; the server (one that reads integers exactly, or keeps the first of two keys) got 9007199254740993 and both.
    c.send('{"jsonrpc":"2.0","id":"w1","method":"tools/call","params":{"name":"write","arguments":{"account":9007199254740993,"note":"pay the invoice","note":"refund"}}}\n');
    const review = await eventually(
      async () => {
        const ls = await hoop(['review', 'ls', '--json'], 'bob', ['dba']);
        const found = (JSON.parse(ls.stdout) as { reviews: Array<{ id: string; sql: string }> }).reviews.find((r) => r.sql.includes('9007199254740'));
        expect(found).toBeDefined();
        return found!;
      },
      { timeout: 60_000, interval: 100 },
    );
    const approve = await hoop(['review', 'approve', review.id], 'bob', ['dba']);
    expect(approve.code, approve.stderr).toBe(0);
    expect((await c.answer('w1')).result).toBeDefined();
    const seen = review.sql.replace(/^tools\/call /, '');
    expect(seen).toContain('"account": 9007199254740993');
    // The server sees the gateway's id for it, never the agent's, and the call as the reviewer saw it.
    const sent = (await calls()).find((l) => l.includes('"name":"write"') && l.includes('9007199254740'));
    const id = (JSON.parse(sent!) as { id: number }).id;
    expect(sent).toBe(`{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"write","arguments":{"account":9007199254740993,"note":"refund"}}}`);
    expect(seen.replace(/\s+/g, '')).toBe('{"name":"write","arguments":{"account":9007199254740993,"note":"refund"}}');
    c.close();
  });

  it('relays a method as the gateway read it: a duplicate "method" is no way to an unjudged tools/call', async () => {
    const c = await rawMcp();
    // The gateway read "ping" (JSON.parse keeps the last key) and relayed the bytes: a server that keeps the first read tools/call.
    c.send('{"jsonrpc":"2.0","id":"p1","method":"tools/call","params":{"name":"write","arguments":{"unjudged":true}},"method":"ping"}\n');
    expect((await c.answer('p1')).result).toBeDefined();
    expect((await calls()).find((l) => l.includes('"unjudged":true'))).toMatch(/^\{"jsonrpc":"2\.0","id":\d+,"method":"ping","params":\{"name":"write","arguments":\{"unjudged":true\}\}\}$/);
    c.close();
  });
});

describe("methods named after Object.prototype's", () => {
  it('answers them -32601; none reaches the server, and the session goes on', async () => {
    const c = await rawMcp();
    // Before: "constructor" was judged as `Object(params)` (an ask the agent wrote) and relayed to the server;
    // "hasOwnProperty" threw out of the relay and ended the client's whole tunnel connection, unanswered.
    for (const [i, method] of ['constructor', 'hasOwnProperty', '__proto__', 'toString', 'valueOf'].entries()) {
      const r = await c.request(`m${i}`, method, { kind: 'tool', name: 'echo', arguments: {} });
      expect(errorOf(r).code, method).toBe(-32601);
    }
    expect((await c.request('after', 'tools/call', { name: 'echo', arguments: { still: 'here' } })).result).toBeDefined();
    expect((await calls()).filter((l) => /"method":"(constructor|hasOwnProperty|__proto__|toString|valueOf)"/.test(l))).toEqual([]);
    c.close();
  });
});

describe('completions', () => {
  it('of a prompt or resource the policy refuses never reach the server', async () => {
    const c = await rawMcp();
    // Before: relayed as they came, and the server completed the arguments of a denied prompt (what values exist, of what it reads).
    const r = await c.request('c1', 'completion/complete', { ref: { type: 'ref/prompt', name: 'admin-export' }, argument: { name: 'customer', value: '4' } });
    expect(errorOf(r).code).toBe(-32001);
    const t = await c.request('c2', 'completion/complete', { ref: { type: 'ref/resource', uri: 'file:///etc/{name}' }, argument: { name: 'name', value: 'pa' } });
    expect(errorOf(t).code).toBe(-32001);
    expect((await calls()).filter((l) => l.includes('admin-export') || l.includes('file:///etc/{name}'))).toEqual([]);
    expect((await c.request('c3', 'completion/complete', { ref: { type: 'ref/prompt', name: 'summary' }, argument: { name: 'topic', value: '' } })).result).toBeDefined();
    c.close();
  });
});

describe('an agent that does not read', () => {
  it('is read no more until it does: its answers do not pile up in the gateway', async () => {
    const c = await rawMcp();
    c.channel.pause();
    // Each request is answered with its (1 MiB) method name; before, the gateway read all 128 MiB and held every answer.
    const method = 'm'.repeat(1024 * 1024);
    const total = 128;
    let taken = 0;
    while (taken < total) {
      const line = `{"jsonrpc":"2.0","id":${taken + 1},"method":"${method}"}\n`;
      const took = await new Promise<boolean>((r) => {
        const t = setTimeout(() => r(false), 1500);
        c.channel.write(line, () => {
          clearTimeout(t);
          r(true);
        });
      });
      if (!took) break;
      taken++;
    }
    expect(taken, `the gateway took ${taken} MiB of an agent that read nothing`).toBeLessThan(40);
    expect(c.ended()).toBe(false);
    // Once it reads, every request is answered and the session goes on.
    c.channel.resume();
    await eventually(() => expect(c.received.filter((m) => (m.error as { code?: number } | undefined)?.code === -32601)).toHaveLength(taken + 1), { timeout: 60_000, interval: 100 });
    expect((await c.request('after', 'tools/call', { name: 'echo', arguments: {} })).result).toBeDefined();
    c.close();
  });
});

describe('what a call is and how long it waits', () => {
  it('a cancelled call waits no more: 64 cancelled calls the server never answers do not stop the session', async () => {
    const c = await rawMcp();
    // Before: each stayed in flight (the server need not answer a cancelled request), and the 65th call was refused.
    for (let i = 1; i <= 70; i++) {
      c.send({ jsonrpc: '2.0', id: `h${i}`, method: 'tools/call', params: { name: 'hang', arguments: {} } });
      c.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: `h${i}`, reason: 'timed out' } });
    }
    expect((await c.request('after', 'tools/call', { name: 'echo', arguments: {} })).result).toBeDefined();
    c.close();
  });

  it('refuses a call whose arguments are not an object: the judge reads arguments by name', async () => {
    const c = await rawMcp();
    for (const [i, args] of [['/etc/passwd'], '/etc/passwd', 42, null].entries()) {
      const r = await c.request(`a${i}`, 'tools/call', { name: 'echo', arguments: args });
      expect(errorOf(r).code, JSON.stringify(args)).toBe(-32602);
    }
    expect((await calls()).filter((l) => /"name":"echo","arguments":[^{]/.test(l))).toEqual([]);
    c.close();
  });

  it("masks the message of a server's progress notification", async () => {
    const c = await rawMcp();
    await c.request(1, 'tools/call', { name: 'progress-card', arguments: {}, _meta: { progressToken: 'p' } });
    const progress = c.received.filter((m) => m.method === 'notifications/progress');
    expect(progress).toHaveLength(1);
    expect(JSON.stringify(progress)).not.toContain(CARD);
    c.close();
  });
});

describe('a Streamable HTTP server the agent does not read', () => {
  it("ends the session once 32 MiB wait for the agent, rather than hold the server's flood", async () => {
    const c = await rawMcp('flood');
    c.channel.pause();
    // 200 MiB of log notifications: before, the gateway held all that the agent did not read.
    c.send({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'anything', arguments: {} } });
    await eventually(() => expect(stack.logs().some((l) => l.event === 'mcp.agent-behind')).toBe(true), { timeout: 60_000, interval: 100 });
    c.close();
  });
});

describe('a relative path past a deny rule', () => {
  it("is read by the filesystem server under its directory: it meets the rule on that directory's secret/**", async () => {
    const c = await rawMcp('files');
    // Before: allowed (the rule names ${data}/secret/**, the value was secret/key.txt) and the server read ${data}/secret/key.txt.
    for (const [i, path] of ['secret/key.txt', './secret/key.txt', `../${'data'}/secret/key.txt`].entries()) {
      const r = await c.request(`r${i}`, 'tools/call', { name: 'read_text_file', arguments: { path } });
      expect(errorOf(r)?.code, path).toBe(-32001);
    }
    expect(JSON.stringify(c.received)).not.toContain('the secret key');
    const notes = await c.request('notes', 'tools/call', { name: 'read_text_file', arguments: { path: join(data, 'notes.txt') } });
    expect(JSON.stringify(notes.result)).toContain('plain notes');
    c.close();
  });
});

describe('a directory above what a deny rule protects', () => {
  it('is refused to every tool, listed read-only or not: directory_tree and search_files of the parent listed the secret tree once tools/list was called (the sixteenth attack); a move of it never runs (the fifteenth)', async () => {
    const c = await rawMcp('files');
    const call = (id: string, name: string, args: Record<string, unknown>) => c.request(id, 'tools/call', { name, arguments: args });
    await c.request('l1', 'tools/list', {});
    for (const [i, [name, args]] of (
      [
        ['directory_tree', { path: data }],
        ['search_files', { path: data, pattern: '**/*' }],
        ['list_directory', { path: data }],
        ['move_file', { source: data, destination: `${data}-moved` }],
      ] as const
    ).entries())
      expect(errorOf(await call(`a${i}`, name, args))?.code, name).toBe(-32001);
    expect(JSON.stringify(c.received)).not.toContain('key.txt');
    expect(existsSync(join(data, 'secret', 'key.txt'))).toBe(true);
    // What is beside it is read as ever.
    expect(JSON.stringify((await call('n1', 'read_text_file', { path: join(data, 'notes.txt') })).result)).toContain('plain notes');
    c.close();
  });
});

describe('a path past a deny rule in another spelling', () => {
  it('meets the rule with a line break in it (a path to the server), and in any canonically equivalent Unicode spelling', async () => {
    const c = await rawMcp('files');
    const calls: Array<[string, Record<string, unknown>]> = [
      // Before: read (and moved) the secret: a string holding a line break was no path to the judge; path.resolve reads `x\n/..` as a directory.
      ['read_multiple_files', { paths: [`${data}/x\n/../secret/key.txt`] }],
      ['read_multiple_files', { paths: ['x\n/../secret/key.txt'] }],
      ['move_file', { source: `${data}/x\n/../secret/key.txt`, destination: join(data, 'stolen.txt') }],
      // Before: read: the server opens the file whose name is the path's composed form (KELVIN SIGN is K; e and a combining accent is é).
      ['read_text_file', { path: `${data}/\u212Aeys/k.txt` }],
      ['read_text_file', { path: `${data}/donne\u0301es/d.txt` }],
      ['read_multiple_files', { paths: [`${data}/\u212Aeys/k.txt`, join(data, 'notes.txt')] }],
    ];
    for (const [i, [name, args]] of calls.entries()) expect(errorOf(await c.request(`s${i}`, 'tools/call', { name, arguments: args }))?.code, JSON.stringify(args)).toBe(-32001);
    expect(JSON.stringify(c.received)).not.toMatch(/the secret key|the kelvin key|the composed key/);
    c.close();
  });
});

describe('a server that asks and does not read', () => {
  it('is answered no more than it reads: the gateway does not hold 64 MiB of ping answers', async () => {
    const c = await rawMcp();
    const r = await c.request(1, 'tools/call', { name: 'ping-flood', arguments: {} });
    expect(JSON.stringify(r.result)).toContain('pinged');
    // The server reads again; once it answers a call sent after the flood, it has read every answer the gateway kept for it.
    expect((await c.request(2, 'tools/call', { name: 'echo', arguments: {} })).result).toBeDefined();
    const pongs = (await calls()).filter((l) => l.includes('"id":"pppp')).length;
    // Before: all 64 (1 MiB each), held in the gateway until the server read them.
    expect(pongs).toBeLessThanOrEqual(4);
    c.close();
  });
});
