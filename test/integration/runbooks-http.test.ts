/**
 * Runbook runs on an HTTP connection (src/gateway/api/runbook-http.ts) against a real HTTP server:
 * the credential injected by the gateway (never the caller's), each value in its one path segment
 * or query value (encoded: it can add no segment, parameter or route), the JSON body filled in, the
 * policy's HTTP rules judging each request (a refused one stops the run, named) and masking what
 * comes back.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { startStack, type HoopStack } from '../harness/stack.js';

let api: Server;
let repo: PolicyGitRepo;
let stack: HoopStack;
/** What the API received: method, raw target, authorization, body. */
const received: Array<{ method: string; url: string; auth: string | undefined; body: string }> = [];

const REFUND = `version: 1
description: Refund an order through the shop's API
connection: shop-api
parameters:
  order_id: { type: string, pattern: "[A-Za-z0-9 ./%?#&=-]{1,40}" }
  cents: { type: integer, min: 1, max: 10000 }
  note: { type: string }
steps:
  - http: { method: POST, path: "/orders/{order_id}/refund", query: { note: "{note}" }, json: { cents: "{cents}", reason: "{note}", source: runbook } }
  - http: { method: GET, path: "/orders/{order_id}" }
run:
  - { groups: [support] }
`;

const ADMIN = `version: 1
description: Look at the admin page (the policy refuses it)
connection: shop-api
steps:
  - http: { method: GET, path: /orders/1 }
  - http: { method: GET, path: /admin/users }
run:
  - { groups: [support] }
`;

beforeAll(async () => {
  api = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push({ method: req.method ?? '', url: req.url ?? '', auth: req.headers.authorization, body });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ ok: true, card: '4111 1111 1111 1111', url: req.url }));
    });
  });
  await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
  repo = new PolicyGitRepo('hoop-runbooks-http-');
  stack = await startStack({
    env: { SHOP_TOKEN: 'shop-secret-token-1' },
    policy: () => {
      mkdirSync(join(repo.dir, 'runbooks'));
      writeFileSync(join(repo.dir, 'runbooks', 'refund.yaml'), REFUND);
      writeFileSync(join(repo.dir, 'runbooks', 'admin.yaml'), ADMIN);
      repo.commit(`version: 1
connections:
  - name: shop-api
    type: http
    url: http://127.0.0.1:${(api.address() as AddressInfo).port}/v1
    plainHttp: true
    credential: { bearer: "\${env:SHOP_TOKEN}" }
access:
  - { name: nobody, subjects: [nobody], connections: [shop-api], mode: read-only }
masking:
  detectors:
    - { detector: payment-card, strategy: last4 }
http:
  rules:
    - { name: no-admin, match: { paths: ["/admin/**"] }, action: deny, message: admin is off limits }
`);
      return repo.gatewayBlock(['${env:SHOP_TOKEN}']);
    },
  });
});

afterAll(async () => {
  await stack?.close();
  repo?.remove();
  await new Promise<void>((resolve) => api?.close(() => resolve()));
});

async function hoop(argv: string[]) {
  return stack.run([...argv, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('sam', ['support']) });
}

describe('a runbook run on an HTTP connection', () => {
  it('sends each request with the credential injected and each value in its place, encoded; the answers come back masked', async () => {
    received.length = 0;
    const r = await hoop(['runbook', 'run', 'refund', '-p', 'order_id=A7', '-p', 'cents=250', '-p', 'note=late & cold', '--json']);
    expect(r.stderr).toBe('');
    const run = JSON.parse(r.stdout) as { outcome: string; steps: Array<{ tag: string; stdout?: string }> };
    expect(run.outcome).toBe('ran');
    expect(run.steps.map((s) => s.tag)).toEqual(['HTTP 200', 'HTTP 200']);
    expect(run.steps[0]!.stdout).not.toContain('4111 1111 1111 1111');
    expect(received).toEqual([
      { method: 'POST', url: '/v1/orders/A7/refund?note=late%20%26%20cold', auth: 'Bearer shop-secret-token-1', body: JSON.stringify({ cents: 250, reason: 'late & cold', source: 'runbook' }) },
      { method: 'GET', url: '/v1/orders/A7', auth: 'Bearer shop-secret-token-1', body: '' },
    ]);
  });

  it('keeps a value in its one segment: slashes, dots, queries and fragments are encoded, and a value of only dots is refused', async () => {
    received.length = 0;
    const q = await hoop(['runbook', 'run', 'refund', '-p', 'order_id=A?x=1&y#z', '-p', 'cents=1', '-p', 'note=n']);
    expect(q.code).toBe(0);
    // The lane writes the path canonically (a segment's = and & need no escape); ? and # stay encoded, in the segment.
    expect(received[0]!.url).toBe('/v1/orders/A%3Fx=1&y%23z/refund?note=n');
    // An encoded slash, which servers read differently, the HTTP lane refuses before it leaves the gateway.
    received.length = 0;
    const r = await hoop(['runbook', 'run', 'refund', '-p', 'order_id=1/../../admin', '-p', 'cents=1', '-p', 'note=n']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('step 1 failed: POST /orders/1%2F..%2F..%2Fadmin/refund?note=n was answered 400: hoop: the path has an encoded `/`');
    expect(received).toEqual([]);
    const dots = await hoop(['runbook', 'run', 'refund', '-p', 'order_id=..', '-p', 'cents=1', '-p', 'note=n']);
    expect(dots.code).toBe(ExitCode.DATA);
    expect(dots.stderr).toContain('parameter order_id: is empty or only dots');
  });

  it("is judged by the policy's HTTP rules: a refused request stops the run, named, and what ran before it stays", async () => {
    received.length = 0;
    const r = await hoop(['runbook', 'run', 'admin']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('step 2 refused');
    expect(r.stderr).toContain('admin is off limits');
    expect(r.stderr).toContain('steps 1 to 1 ran, and what they did stays');
    expect(received.map((x) => x.url)).toEqual(['/v1/orders/1']);
  });
});
