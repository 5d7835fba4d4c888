/**
 * Runbooks through a real gateway (src/gateway/api/runbooks.ts, `hoop runbook ls|show`): from the
 * policy repo in force, each caller sees the runbooks it may run and nothing of the rest (a
 * person by subject or group, an agent's run by its agent and way in), with its parameters and
 * steps as written; a name mistyped is answered with the nearest of the caller's own.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import { callApi } from '../harness/api.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml } from '../harness/postgres.js';
import { startStack, type HoopStack } from '../harness/stack.js';

let stack: HoopStack;
let repo: PolicyGitRepo;

const REFUND = `version: 1
description: Refund a paid order, up to 100 €
connection: app
parameters:
  order_id: { type: integer, min: 1 }
  cents: { type: integer, min: 1, max: 10000, description: the amount in cents }
steps:
  - sql: update orders set status = 'refunded' where id = $1
    params: [order_id]
  - sql: insert into refunds (order_id, cents) values ($1, $2)
    params: [order_id, cents]
run:
  - { groups: [support] }
  - { agents: ["claude*"], via: [run] }
review: { groups: [payments] }
maxAffectedRows: 1
deadline: 30s
`;

const LOOKUP = `version: 1
description: Look up a customer
connection: app
parameters:
  email: { type: string, pattern: "[a-z0-9.]+@[a-z0-9.]+" }
steps:
  - sql: select id, email from customers where email = $1
    params: [email]
run:
  - { subjects: [alice] }
`;

beforeAll(async () => {
  repo = new PolicyGitRepo('hoop-runbooks-api-');
  stack = await startStack({
    policy: ({ pg }) => {
      mkdirSync(join(repo.dir, 'runbooks'));
      writeFileSync(join(repo.dir, 'runbooks', 'refund-order.yaml'), REFUND);
      writeFileSync(join(repo.dir, 'runbooks', 'lookup-customer.yaml'), LOOKUP);
      repo.commit(`version: 1
connections:
${connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })}access:
  - { name: people, subjects: [alice, bob, carol], connections: [app], mode: read-write }
`);
      return repo.gatewayBlock(['${env:APP_PASSWORD}']);
    },
  });
});

afterAll(async () => {
  await stack?.close();
  if (repo) rmSync(repo.base, { recursive: true, force: true });
});

/** `hoop <argv>` against the stack's gateway as `subject` of `groups`, or with `token`. */
async function hoop(argv: string[], who: { subject: string; groups?: string[] } | { token: string }) {
  const token = 'token' in who ? who.token : await stack.token(who.subject, who.groups);
  return stack.run([...argv, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: token });
}

describe('the runbooks a caller may run', () => {
  it('are listed by who may run them, and no others', async () => {
    const names = async (who: { subject: string; groups?: string[] }) =>
      (JSON.parse((await hoop(['runbook', 'ls', '--json'], who)).stdout) as { runbooks: Array<{ name: string }> }).runbooks.map((r) => r.name).sort();
    expect(await names({ subject: 'alice' })).toEqual(['lookup-customer']);
    expect(await names({ subject: 'bob', groups: ['support'] })).toEqual(['refund-order']);
    expect(await names({ subject: 'carol' })).toEqual([]);
    const none = await hoop(['runbook', 'ls'], { subject: 'carol' });
    expect(none.code).toBe(0);
    expect(none.stdout).toBe('no runbook of the policy is one you may run\n');
    const table = await hoop(['runbook', 'ls'], { subject: 'bob', groups: ['support'] });
    expect(table.stdout).toMatch(/NAME +CONNECTION +PARAMETERS +REVIEW +DESCRIPTION\n *refund-order +app +order_id,cents +yes +Refund a paid order, up to 100 €/);
  });

  it("are an agent's run's by its agent and way in, not by its person's groups alone", async () => {
    const begin = async (agent: string) => {
      const begun = await callApi(stack.gateway.url, stack.pki.ca, 'POST', '/v1/runs', await stack.token('carol'), { connections: ['app'], agent, isolation: 'bwrap' });
      expect(begun.status).toBe(201);
      return (begun.body as { token: string }).token;
    };
    const claude = await hoop(['runbook', 'ls', '--json'], { token: await begin('claude-code') });
    expect((JSON.parse(claude.stdout) as { runbooks: Array<{ name: string }> }).runbooks.map((r) => r.name)).toEqual(['refund-order']);
    const devin = await hoop(['runbook', 'ls', '--json'], { token: await begin('devin') });
    expect(JSON.parse(devin.stdout)).toEqual({ runbooks: [] });
  });

  it('are shown whole: parameters, steps as written, review, limits and the file they came from', async () => {
    const shown = await hoop(['runbook', 'show', 'refund-order'], { subject: 'bob', groups: ['support'] });
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('runbook     refund-order: Refund a paid order, up to 100 €\nconnection  app\nreview      a run waits for a reviewer\nlimits      at most 1 rows changed, 30s\n');
    expect(shown.stdout).toContain('  order_id  integer ≥ 1\n  cents  integer ≥ 1 ≤ 10000 — the amount in cents\n');
    expect(shown.stdout).toContain(
      "  1. update orders set status = 'refunded' where id = $1   [$1 = order_id]\n  2. insert into refunds (order_id, cents) values ($1, $2)   [$1 = order_id, $2 = cents]\n",
    );
    const json = JSON.parse((await hoop(['runbook', 'show', 'refund-order', '--json'], { subject: 'bob', groups: ['support'] })).stdout) as Record<string, unknown>;
    expect(json).toMatchObject({ name: 'refund-order', connection: 'app', review: true, maxAffectedRows: 1, deadlineSeconds: 30, commit: repo.git('rev-parse', 'HEAD') });
    expect(json.digest).toMatch(/^[0-9a-f]{64}$/);
  });

  it("answers one the caller may not run as one that does not exist, with the nearest of the caller's own", async () => {
    const hidden = await hoop(['runbook', 'show', 'refund-order'], { subject: 'alice' });
    expect(hidden.code).toBe(ExitCode.DATA);
    expect(hidden.stderr).toContain('no runbook "refund-order" that you may run');
    const typo = await hoop(['runbook', 'show', 'lookup-custmer'], { subject: 'alice' });
    expect(typo.code).toBe(ExitCode.DATA);
    expect(typo.stderr).toContain('did you mean "lookup-customer"?');
    const raw = await callApi(stack.gateway.url, stack.pki.ca, 'GET', '/v1/runbooks/refund-order', await stack.token('carol'));
    expect(raw.status).toBe(404);
    expect((raw.body as { error: { code: string } }).error.code).toBe('HOOP_RUNBOOK_UNKNOWN');
  });
});
