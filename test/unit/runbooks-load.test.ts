/**
 * Runbooks in the policy repo (src/policy/runbooks.ts): `runbooks/<name>.yaml` loads with the
 * bundle, each checked against the connections, and a wrong one refuses the bundle saying where
 * (what `hoop policy check` and `hoop policy test` print).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPolicyDir } from '../../src/policy/load.js';
import { policyRepos } from '../harness/policy.js';
import { runCli } from '../harness/run-cli.js';

const { repo, problemsOf } = policyRepos('hoop-runbooks-');

const HOOP = `version: 1
connections:
  - { name: shop-db, type: postgres, host: 127.0.0.1, database: shop, user: app, password: "\${env:X}" }
  - { name: shop-my, type: mysql, host: 127.0.0.1, database: shop, user: app, password: "\${env:X}" }
  - { name: web, type: ssh, host: 127.0.0.1, user: deploy, privateKey: "\${env:X}", hostKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"] }
access:
  - { name: all, subjects: ["*"], connections: [shop-db, shop-my, web] }
`;

const REFUND = `version: 1
description: Refund a paid order, up to 100 €
connection: shop-db
parameters:
  order_id: { type: integer, min: 1 }
  cents: { type: integer, min: 1, max: 10000 }
steps:
  - sql: update orders set status = 'refunded' where id = $1 and status = 'paid'
    params: [order_id]
  - sql: insert into refunds (order_id, cents) values ($1, $2)
    params: [order_id, cents]
run:
  - { groups: [support] }
  - { agents: ["claude*"], via: [run, mcp] }
review: { groups: [payments] }
maxAffectedRows: 1
deadline: 30s
returns: [id, status]
`;

/** A repo of {@link HOOP} and `runbooks`, name to text. */
function withRunbooks(runbooks: Record<string, string>, hoop = HOOP): string {
  const dir = repo(hoop);
  mkdirSync(join(dir, 'runbooks'));
  for (const [name, text] of Object.entries(runbooks)) writeFileSync(join(dir, 'runbooks', name), text);
  return dir;
}

describe('runbooks in the policy repo', () => {
  it('load with the bundle, each with the digest of its bytes', async () => {
    const policy = await loadPolicyDir(withRunbooks({ 'refund-order.yaml': REFUND, 'restart-web.yaml': RESTART }), { X: 'x' });
    const [refund, restart] = policy.runbooks!;
    expect(refund).toMatchObject({
      name: 'refund-order',
      file: 'runbooks/refund-order.yaml',
      digest: createHash('sha256').update(REFUND).digest('hex'),
      connection: 'shop-db',
      steps: [
        { kind: 'sql', sql: "update orders set status = 'refunded' where id = $1 and status = 'paid'", params: ['order_id'] },
        { kind: 'sql', params: ['order_id', 'cents'] },
      ],
      review: { groups: ['payments'] },
      maxAffectedRows: 1,
      deadlineMs: 30_000,
      returns: ['id', 'status'],
    });
    expect(refund!.params.specs.map((s) => s.name)).toEqual(['order_id', 'cents']);
    expect(refund!.run).toEqual([{ groups: ['support'] }, { agents: ['claude*'], via: ['run', 'mcp'] }]);
    expect(restart!.steps).toEqual([{ kind: 'ssh', words: ['sudo', 'systemctl', 'restart', { param: 'unit' }] }]);
    expect(restart!.deadlineMs).toBe(60_000);
    expect(restart!.review).toBeUndefined();
  });

  it('are shown by hoop policy show, as text and as JSON', async () => {
    const dir = withRunbooks({ 'refund-order.yaml': REFUND, 'restart-web.yaml': RESTART });
    const text = await runCli(['policy', 'show', '--dir', dir], { X: 'x' }, dir);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(
      /runbooks \(2; running them is not built yet\)\n {2}refund-order +shop-db +2 sql steps +\(order_id: integer, cents: integer\) +run by groups support \| via run,mcp; agents claude\* +reviewed by payments/,
    );
    expect(text.stdout).toMatch(/restart-web +web +1 ssh step +\(unit: enum\) +run by subjects alice +no review/);
    const json = await runCli(['policy', 'show', '--dir', dir, '--json'], { X: 'x' }, dir);
    expect(json.code).toBe(0);
    const shown = JSON.parse(json.stdout) as { runbooks: Array<{ name: string; params: unknown[] }> };
    expect(shown.runbooks[0]!.params[1]).toEqual({ name: 'cents', type: 'integer', required: true, min: 1, max: 10000 });
    const schema = await runCli(['policy', 'schema', '--runbooks'], {}, dir);
    expect(JSON.parse(schema.stdout)).toMatchObject({ title: 'hoop runbook file (runbooks/*.yaml)', required: expect.arrayContaining(['version', 'description', 'connection', 'steps', 'run']) });
  });

  it('are none when the repo has no runbooks directory', async () => {
    expect((await loadPolicyDir(repo(HOOP), { X: 'x' })).runbooks).toBeUndefined();
  });

  it('refuse the bundle for what a runbook gets wrong, saying where', async () => {
    const problems = await problemsOf(
      loadPolicyDir(
        withRunbooks({
          'Bad_Name.yaml': REFUND,
          'unknown-connection.yaml': REFUND.replace('connection: shop-db', 'connection: shop'),
          'wrong-kind.yaml': REFUND.replace('connection: shop-db', 'connection: web'),
          'unknown-param.yaml': REFUND.replace('params: [order_id, cents]', 'params: [order_id, amount]'),
          'unused-param.yaml': REFUND.replace('cents: { type: integer, min: 1, max: 10000 }', 'cents: { type: integer, min: 1, max: 10000 }\n  note: { type: string }'),
          'nobody.yaml': REFUND.replace(/run:\n.*\n.*\n/, ''),
          'bad-word.yaml': RESTART.replace('"{unit}"', '"{Unit}"'),
          'param-program.yaml': RESTART.replace('[sudo, systemctl, restart, "{unit}"]', '["{unit}", restart]'),
          'bad-default.yaml': REFUND.replace('cents: { type: integer, min: 1, max: 10000 }', 'cents: { type: integer, min: 1, max: 10000, default: 20000 }'),
          'extra-key.yaml': `${REFUND}approve: yes\n`,
          'open-word.yaml': RESTART.replace('unit: { type: enum, values: [nginx, app] }', 'unit: { type: string }'),
          'bad-bypass.yaml': `${REFUND}bypass: [no-such-rule]\n`,
        }),
        { X: 'x' },
      ),
    );
    const find = (file: string): string[] => problems.filter((p) => p.startsWith(`runbooks/${file}:`));
    expect(find('Bad_Name.yaml').join('\n')).toMatch(/lower-case letters, digits and -/);
    expect(find('unknown-connection.yaml').join('\n')).toMatch(/:3:\d+: connection: unknown connection "shop"/);
    expect(find('wrong-kind.yaml').join('\n')).toMatch(/runbooks run on PostgreSQL, MySQL and SSH connections|an SQL step on web, a ssh connection/);
    expect(find('unknown-param.yaml').join('\n')).toMatch(/steps\.1\.params\.1: unknown parameter "amount"/);
    expect(find('unused-param.yaml').join('\n')).toMatch(/parameters\.note: no step uses it/);
    expect(find('nobody.yaml').join('\n')).toMatch(/run/);
    expect(find('bad-word.yaml').join('\n')).toMatch(/"\{Unit\}" names no parameter/);
    expect(find('param-program.yaml').join('\n')).toMatch(/first word is the program/);
    expect(find('bad-default.yaml').join('\n')).toMatch(/default: parameter cents: is more than 10000/);
    expect(find('extra-key.yaml').join('\n')).toMatch(/approve/);
    expect(find('open-word.yaml').join('\n')).toMatch(/steps\.0\.ssh\.3: parameter unit is a string without a pattern/);
    expect(find('bad-bypass.yaml').join('\n')).toMatch(/bypass\.0: no statement rule is named "no-such-rule"/);
  });

  it('refuse a runbook file that is a symbolic link, as policy files are', async () => {
    const dir = withRunbooks({});
    const { symlinkSync } = await import('node:fs');
    writeFileSync(join(dir, 'elsewhere.yaml'), REFUND);
    symlinkSync(join(dir, 'elsewhere.yaml'), join(dir, 'runbooks', 'refund-order.yaml'));
    expect((await problemsOf(loadPolicyDir(dir, { X: 'x' })))[0]).toMatch(/runbooks\/refund-order\.yaml.*symbolic link/);
  });
});

const RESTART = `version: 1
description: Restart a unit of the web server
connection: web
parameters:
  unit: { type: enum, values: [nginx, app] }
steps:
  - ssh: [sudo, systemctl, restart, "{unit}"]
run:
  - { subjects: [alice] }
`;
