/**
 * The audit stream: session start and end and each refused statement as JSON lines with stable
 * fields, to a file and to an HTTP endpoint that fails at first (delivered once it recovers, the
 * data path never waiting); a full queue drops the oldest events and says how many.
 */
import { readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditStream } from '../../src/gateway/audit/audit.js';
import { createLogger } from '../../src/log.js';
import { callApi } from '../harness/api.js';
import { psql } from '../harness/clients.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml } from '../harness/postgres.js';
import { startStack, type HoopStack } from '../harness/stack.js';
import { rawTunnel } from '../harness/raw-tunnel.js';
import { eventually } from '../harness/wait.js';

const received: string[] = [];
let failFirst = 2;
const receiver = createServer((req: IncomingMessage, res) => {
  let body = '';
  req.on('data', (b: Buffer) => (body += b.toString()));
  req.on('end', () => {
    if (failFirst > 0) {
      failFirst--;
      res.writeHead(503).end();
      return;
    }
    expect(req.headers['content-type']).toBe('application/x-ndjson');
    expect(req.headers.authorization).toBe('Bearer siem-token');
    received.push(...body.split('\n').filter(Boolean));
    res.writeHead(204).end();
  });
});
let stack: HoopStack;
let repo: PolicyGitRepo;

beforeAll(async () => {
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/in`;
  process.env.SIEM_AUTH = 'Bearer siem-token'; // the header's secret reference
  repo = new PolicyGitRepo('hoop-audit-policy-');
  stack = await startStack({
    extraConfig: `audit: { file: audit.jsonl, url: ${JSON.stringify(url)}, headers: { Authorization: "\${env:SIEM_AUTH}" }, flushSeconds: 0.2 }`,
    policy: ({ pg }) => {
      repo.commit(`version: 1
connections:
${connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })}access:
  - { name: people, subjects: [alice], connections: [app], mode: read-write }
statements:
  rules:
    - { name: no-drop, match: { kinds: [drop] }, action: deny, message: DROP is not allowed }
`);
      return repo.gatewayBlock(['${env:APP_PASSWORD}']);
    },
  });
});

afterAll(async () => {
  await stack?.close();
  receiver.close();
  if (repo) rmSync(repo.base, { recursive: true, force: true });
});

describe('audit stream', () => {
  it('sends session start, the refused statement and session end to the file and, after its failures, the endpoint', async () => {
    const c = await stack.connect('app', await stack.token('alice'));
    const r = await psql(c.info, ['-c', 'select 1', '-c', 'drop table items']);
    expect(r.stderr).toContain('DROP is not allowed');
    await c.stop();
    const events = async (): Promise<Array<Record<string, unknown>>> => received.map((l) => JSON.parse(l) as Record<string, unknown>);
    await eventually(async () => expect((await events()).some((e) => e.event === 'session.end')).toBe(true), { timeout: 60_000, interval: 100 });
    const got = await events();
    expect(got.map((e) => e.event)).toEqual(['session.start', 'statement.refused', 'session.end']);
    for (const e of got) expect(e).toMatchObject({ v: 1, time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), subject: 'alice', connection: 'app', session: got[0]!.session });
    expect(got[0]).toMatchObject({ kind: 'user', recorded: true, type: 'postgres' });
    expect(got[1]).toMatchObject({ action: 'deny', rule: 'no-drop', message: 'Q' });
    expect(got[2]).toMatchObject({ reason: 'client-terminated', statements: 2, refused: 1, rowsRead: 1, rowsChanged: 0 });
    expect(failFirst).toBe(0); // it was refused twice and retried
    const file = readFileSync(join(stack.dir, 'audit.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(file.map((e) => e.event)).toEqual(['session.start', 'statement.refused', 'session.end']);
  });

  it("tells of an agent's run: its start, its sessions as the run's (agent, via, run), their end with it, and its end", async () => {
    const seen = received.length;
    const begun = await callApi(stack.gateway.url, stack.pki.ca, 'POST', '/v1/runs', await stack.token('alice'), { connections: ['app'], agent: 'claude', isolation: 'bwrap' });
    const { id, token, controlToken } = begun.body as { id: string; token: string; controlToken: string };
    const raw = await stack.tunnel('app', token);
    await raw.simple('select 1');
    await callApi(stack.gateway.url, stack.pki.ca, 'POST', `/v1/runs/${id}/end`, controlToken);
    await raw.closed();
    const events = (): Array<Record<string, unknown>> => received.slice(seen).map((l) => JSON.parse(l) as Record<string, unknown>);
    await eventually(() => expect(events().some((e) => e.event === 'session.end')).toBe(true), { timeout: 60_000, interval: 100 });
    const got = events();
    expect(got.map((e) => e.event).sort()).toEqual(['agent.first-use', 'run.end', 'run.start', 'session.end', 'session.start']);
    const of = (event: string): Record<string, unknown> => got.find((e) => e.event === event)!;
    expect(of('run.start')).toMatchObject({ run: id, subject: 'alice', agent: 'claude', via: 'run', isolation: 'bwrap', connections: ['app'] });
    expect(of('session.start')).toMatchObject({ run: id, subject: 'alice', agent: 'claude', via: 'run', connection: 'app' });
    // claude had never been on app for alice: a first use.
    expect(of('agent.first-use')).toMatchObject({ run: id, subject: 'alice', agent: 'claude', connection: 'app', session: of('session.start').session });
    expect(of('session.end')).toMatchObject({ run: id, reason: 'run-ended' });
    expect(of('run.end')).toMatchObject({ run: id, agent: 'claude', reason: 'ended' });
  });

  it('a full queue drops the oldest events and says how many, never blocking', async () => {
    const file = join(stack.dir, 'overflow.jsonl');
    const stream = new AuditStream({ file, batchSize: 1000, flushMs: 60_000, maxQueue: 100 }, createLogger({ level: 'error', sink: { write: () => undefined } }));
    // emit() is synchronous: nothing waits for the file, however full the queue.
    for (let i = 0; i < 10_000; i++) expect(stream.emit('statement.refused', { i })).toBeUndefined();
    await stream.close();
    const lines = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ v: 1, event: 'audit.dropped', count: 9900 });
    expect(lines.slice(1).map((l) => l.i)).toEqual(Array.from({ length: 100 }, (_, k) => 9900 + k));
  });

  it('puts every refused credential on record (auth.refused: why, what it claimed, signed or not, from where; never the token), and a flood as a count', async () => {
    const file = join(stack.dir, 'audit.jsonl');
    const refusals = (): Array<Record<string, unknown>> =>
      readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((e) => String(e.event).startsWith('auth.refused'));
    const before = refusals().length;
    // Not a token at all, at the API.
    expect((await callApi(stack.gateway.url, stack.pki.ca, 'GET', '/v1/whoami', 'not-a-jwt')).status).toBe(401);
    // Signed by the issuer, for another audience, at the API: the issuer's word on who it is.
    const misaddressed = await stack.oidc.token({ subject: 'mallory', audience: 'another-service' });
    expect((await callApi(stack.gateway.url, stack.pki.ca, 'GET', '/v1/connections', misaddressed)).status).toBe(401);
    // Forged: alice's token with its payload swapped, at the tunnel endpoint.
    const [h, , sig] = (await stack.token('alice')).split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ iss: JSON.parse(Buffer.from((await stack.token('alice')).split('.')[1]!, 'base64url').toString()).iss, sub: 'root', aud: 'x', exp: 9999999999 })).toString('base64url')}.${sig}`;
    await expect(rawTunnel(stack.gateway.url, stack.pki.ca, 'app', { Authorization: `Bearer ${forged}` })).rejects.toMatchObject({ status: 401 });
    await eventually(() => expect(refusals().length).toBe(before + 3), { timeout: 60_000, interval: 100 });
    const [garbage, wrongAudience, forgery] = refusals().slice(before);
    expect(garbage).toMatchObject({ v: 1, reason: 'malformed', at: 'api', path: '/v1/whoami', remote: '127.0.0.1', signed: false });
    expect(wrongAudience).toMatchObject({ reason: 'wrong-audience', at: 'api', tokenIssuer: stack.oidc.issuer, tokenSubject: 'mallory', signed: true });
    expect(forgery).toMatchObject({ reason: 'bad-signature', at: 'tunnel', tokenSubject: 'root', signed: false, remote: '127.0.0.1' });
    const text = readFileSync(file, 'utf8');
    for (const token of [misaddressed, forged]) expect(text).not.toContain(token.split('.')[2]!);

    // A source that keeps trying: 20 a minute in full, the rest counted once the gateway closes its minute (here: at shutdown).
    await Promise.all(Array.from({ length: 30 }, () => callApi(stack.gateway.url, stack.pki.ca, 'GET', '/v1/whoami', 'garbage')));
    await eventually(() => expect(refusals().length).toBe(before + 20), { timeout: 60_000, interval: 100 });
    await stack.gateway.close();
    const summary = refusals().at(-1);
    expect(summary).toMatchObject({ event: 'auth.refused.suppressed', remote: '127.0.0.1', count: 13 });
  });
});
