/**
 * Hostile MCP clients and servers at the gateway. Clients speak straight to the gateway over a
 * tunnel (no hoop CLI in their path): malformed JSON, batches, lines past the cap, unknown
 * methods, cancellations of a held call, progress floods. A hostile server (a real program the
 * gateway runs, test/fixtures/hostile-mcp-server.mjs) sends an oversized answer, a malformed one,
 * unsolicited answers and requests of its own (sampling, elicitation, roots). Each is refused or
 * cut, the session says why, and the gateway serves everyone else.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newSessionId, openTunnel } from '../../src/tunnel/transport.js';
import { rawMcp as rawMcpOf } from '../harness/mcp.js';
import { startRepoStack, type HoopStack } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';

const SERVER = resolve(import.meta.dirname, '../fixtures/hostile-mcp-server.mjs');

let stack: HoopStack;
let dir: string;
let callsLog: string;

/** A raw client of `name` as `subject`. */
const rawMcp = (name = 'hostile', subject = 'alice') => rawMcpOf(stack, name, { subject });

const errorOf = (m: Record<string, unknown>) => m.error as { code: number; message: string; data?: unknown };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoop-mcp-hostile-'));
  callsLog = join(dir, 'calls.log');
  await writeFile(callsLog, '');
  stack = await startRepoStack(
    'mcp-hostile',
    () => `version: 1
connections:
  - name: hostile
    type: mcp
    command: [${process.execPath}, ${SERVER}]
    env: { CALLS_LOG: "\${env:APP_CALLS_LOG}" }
access:
  - { name: people, subjects: [alice, dave], connections: [hostile], mode: read-write }
statements:
  reviewers:
    - { groups: [dba], timeout: 30s }
mcp:
  rules:
    - { name: writes-reviewed, match: { tools: [write] }, action: review }
    - { name: no-secrets, match: { tools: [echo], arguments: { secret: "*" } }, action: deny }
    - { name: no-etc, match: { resources: ["file:///etc/**"] }, action: deny }
alerts:
  - name: refusal-burst
    when: { event: refused, count: 3, within: 10min }
`,
    ['${env:APP_*}'],
    { allowedCommands: [`${process.execPath} ${SERVER}`], env: { APP_CALLS_LOG: callsLog } },
  );
});

afterAll(async () => {
  await stack?.close();
  await rm(dir, { recursive: true, force: true });
});

const calls = async (): Promise<string[]> => (await readFile(callsLog, 'utf8')).split('\n').filter(Boolean);

describe('a hostile client, straight to the gateway', () => {
  it('answers a line that is not JSON, and ends that session only', async () => {
    const bystander = await rawMcp();
    const c = await rawMcp();
    c.send('{"jsonrpc": "2.0", "id": 1, "method": \n');
    expect(errorOf(await c.answer(null)).code).toBe(-32700);
    await eventually(() => expect(c.ended()).toBe(true));
    // Everyone else is served.
    expect((await bystander.request(5, 'tools/call', { name: 'echo', arguments: { still: 'here' } })).result).toBeDefined();
    bystander.close();
  });

  it('refuses a batch', async () => {
    const c = await rawMcp();
    c.send([{ jsonrpc: '2.0', id: 1, method: 'tools/list' }]);
    expect(errorOf(await c.answer(null)).message).toMatch(/batch/);
    await eventually(() => expect(c.ended()).toBe(true));
  });

  it('cuts a message past 4 MiB without holding it', async () => {
    const c = await rawMcp();
    c.send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"x":"${'a'.repeat(5 * 1024 * 1024)}"}}}\n`);
    expect(errorOf(await c.answer(null)).message).toMatch(/over 4194304 bytes/);
    await eventually(() => expect(c.ended()).toBe(true));
    expect((await calls()).some((l) => l.length > 4 * 1024 * 1024)).toBe(false);
  });

  it('refuses methods it cannot judge, and the session goes on', async () => {
    const c = await rawMcp();
    expect(errorOf(await c.request(1, 'tools/secret_backdoor', {})).code).toBe(-32601);
    expect(errorOf(await c.request(2, 'tools/call', { arguments: {} })).code).toBe(-32602);
    expect((await c.request(3, 'tools/call', { name: 'echo', arguments: { a: 1 } })).result).toBeDefined();
    expect((await calls()).some((l) => l.includes('secret_backdoor'))).toBe(false);
    c.close();
  });

  it('withdraws a held call the client cancels: it never reaches the server', async () => {
    const c = await rawMcp();
    c.send({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'write', arguments: { marker: 'cancelled-write' } } });
    await eventually(() => expect(c.received.some((m) => m.method === 'notifications/message' && JSON.stringify(m).includes('held for review'))).toBe(true));
    c.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 7, reason: 'changed my mind' } });
    await eventually(async () => {
      const now = await stack.run(['review', 'ls', '--state', 'all', '--json', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('bob', ['dba']) });
      const r = (JSON.parse(now.stdout) as { reviews: Array<{ sql: string; state: string }> }).reviews.find((x) => x.sql.includes('cancelled-write'));
      expect(r?.state).toBe('withdrawn');
    });
    expect((await calls()).some((l) => l.includes('cancelled-write'))).toBe(false);
    // No answer comes for a cancelled request, and the session goes on.
    expect((await c.request(8, 'tools/call', { name: 'echo', arguments: {} })).result).toBeDefined();
    expect(c.received.some((m) => m.id === 7)).toBe(false);
    c.close();
  });

  it('relays at most a trickle of a progress flood, either way', async () => {
    const c = await rawMcp();
    const before = (await calls()).filter((l) => l.includes('notifications/progress')).length;
    for (let i = 0; i < 1000; i++) c.send({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'x', progress: i } });
    expect((await c.request(1, 'tools/call', { name: 'progress', arguments: {}, _meta: { progressToken: 'p' } })).result).toBeDefined();
    const relayedUp = (await calls()).filter((l) => l.includes('notifications/progress')).length - before;
    expect(relayedUp).toBeLessThanOrEqual(60);
    expect(c.received.filter((m) => m.method === 'notifications/progress').length).toBeLessThanOrEqual(60);
    c.close();
  });
});

describe('alerts', () => {
  it('count MCP refusals as they count statements', async () => {
    const c = await rawMcp('hostile', 'dave');
    for (let id = 1; id <= 3; id++) expect(errorOf(await c.request(id, 'tools/call', { name: 'echo', arguments: { secret: 'x' } })).data).toMatchObject({ rule: 'no-secrets' });
    c.close();
    await eventually(async () => {
      const r = await stack.run(['alerts', 'ls', '--json', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('dave') });
      expect((JSON.parse(r.stdout) as { alerts: Array<{ rule: string; subject: string }> }).alerts).toContainEqual(expect.objectContaining({ rule: 'refusal-burst', subject: 'dave' }));
    });
  });
});

describe('a hostile server behind the gateway', () => {
  it("is not told of the agent's capabilities the policy keeps it from using", async () => {
    const { channel } = await openTunnel({ gateway: stack.gateway.url, connection: 'hostile', token: await stack.token('alice'), sessionId: newSessionId(), clientVersion: 'test', ca: stack.pki.ca });
    const marker = `caps-${Date.now()}`;
    channel.write(
      `${JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: { sampling: {}, elicitation: {}, roots: { listChanged: true }, experimental: { [marker]: {} } }, clientInfo: { name: 'raw', version: '1' } } })}\n`,
    );
    const seen = await eventually(async () => {
      const line = (await calls()).find((l) => l.includes(marker));
      expect(line).toBeDefined();
      return JSON.parse(line!) as { params: { capabilities: Record<string, unknown> } };
    });
    expect(Object.keys(seen.params.capabilities)).toEqual(['experimental']);
    channel.destroy();
  });

  it("refuses the server's requests to the agent (sampling, elicitation, roots) and unknown ones; none reach the client", async () => {
    const c = await rawMcp();
    const r = await c.request(1, 'tools/call', { name: 'ask', arguments: {} });
    const replies = JSON.parse((r.result as { content: Array<{ text: string }> }).content[0]!.text) as Array<{ error?: { code: number; message: string } }>;
    expect(replies.map((x) => x.error?.code)).toEqual([-32001, -32001, -32001, -32601]);
    expect(replies[0]!.error!.message).toMatch(/mcp\.serverRequests/);
    expect(c.received.some((m) => typeof m.method === 'string' && !String(m.method).startsWith('notifications/'))).toBe(false);
    c.close();
  });

  it('tells the agent of updates to resources it may read only', async () => {
    const c = await rawMcp();
    await c.request(1, 'tools/call', { name: 'updated', arguments: {} });
    const updated = c.received.filter((m) => m.method === 'notifications/resources/updated').map((m) => (m.params as { uri: string }).uri);
    expect(updated).toEqual(['file:///srv/ok']);
    c.close();
  });

  it('drops answers nobody asked for and notifications it does not know', async () => {
    const c = await rawMcp();
    const r = await c.request(1, 'tools/call', { name: 'unsolicited', arguments: {} });
    expect(JSON.stringify(r.result)).toContain('after the unsolicited answer');
    expect(c.received.some((m) => m.id === 424242 || m.method === 'notifications/unknown')).toBe(false);
    c.close();
  });

  it('ends the session when the server sends an answer past 4 MiB, answering what was asked; others are served', async () => {
    const bystander = await rawMcp();
    const c = await rawMcp();
    const r = await c.request(1, 'tools/call', { name: 'huge', arguments: {} });
    expect(errorOf(r).message).toMatch(/over 4194304 bytes/);
    await eventually(() => expect(c.ended()).toBe(true));
    expect((await bystander.request(2, 'tools/call', { name: 'echo', arguments: {} })).result).toBeDefined();
    bystander.close();
  });

  it('ends the session when the server sends a line that is not JSON', async () => {
    const c = await rawMcp();
    const r = await c.request(1, 'tools/call', { name: 'malformed', arguments: {} });
    expect(errorOf(r).message).toMatch(/MCP server sent not JSON/);
    await eventually(() => expect(c.ended()).toBe(true));
  });

  it('answers what was asked when the server exits, and ends the session', async () => {
    const c = await rawMcp();
    const r = await c.request(1, 'tools/call', { name: 'exit', arguments: {} });
    expect(errorOf(r).message).toMatch(/the MCP server exited \(code 3\)/);
    // Its stderr is the gateway's log's, never the agent's.
    expect(errorOf(r).message).not.toMatch(/going away/);
    await eventually(() => expect(c.ended()).toBe(true));
    await eventually(() => expect(stack.logs().some((l) => l.event === 'mcp.upstream-closed' && l.stderr === 'going away')).toBe(true));
  });
});
