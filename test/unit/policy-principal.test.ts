/**
 * Rules that single out agents: `via`, `agents` and `isolated` in access rules, statement rules,
 * masking entries and SSH rules, loaded from a bundle as written and judged for a person and for
 * an agent's run acting for the same person; policy test cases and `describedPrincipal`; what the
 * loader refuses.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessFor } from '../../src/policy/access.js';
import { StatementJudge } from '../../src/policy/decide.js';
import { runPolicyTests } from '../../src/policy/evaluate.js';
import { loadPolicyDir, PolicyInvalidError } from '../../src/policy/load.js';
import { agentName, describedPrincipal, maskingFor, principalMatches, type Principal } from '../../src/policy/principal.js';
import type { Policy, Who } from '../../src/policy/schema.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import { sshJudgeFor } from '../../src/policy/ssh.js';

const BUNDLE = `version: 1
connections:
  - { name: prod, type: postgres, host: db, database: app, user: app, password: "\${env:P}" }
  - { name: box, type: ssh, host: box, user: deploy, password: "\${env:P}", hostKeys: ["SHA256:2jmj7l5rSw0yVb/vlWAYkK/YBwk3Iq9Dkm6hWmjvHbU"] }
access:
  - { name: engineers, groups: [engineers], connections: [prod, box], mode: read-write }
  - { name: bots-read, groups: [engineers], agents: ["ci-*"], connections: [prod], mode: read-only }
statements:
  rules:
    - { name: agents-write-review, match: { via: [run, mcp], kinds: [write] }, action: review }
    - { name: loose-agents, match: { isolated: false }, action: deny, message: run your agent contained }
    - { name: no-claude-drop, match: { agents: ["claude*"], kinds: [drop] }, action: deny }
  reviewers:
    - { groups: [dba] }
masking:
  columns:
    - { table: public.customers, column: email, strategy: redact, agents: ["*"] }
    - { table: public.customers, column: ssn, strategy: last4 }
  detectors:
    - { detector: payment-card, strategy: last4, via: [mcp] }
ssh:
  default: allow
  rules:
    - { name: agents-no-shell, match: { shell: true, via: [run, mcp] }, action: deny }
runs: { maxSeconds: 3600, heartbeatTimeout: 30s, requireIsolation: true, egress: [pypi.org:443, { to: ["api.anthropic.com:443"], agents: [Claude*] }], apply: gate, review: [ci-*], applyControls: [.vscode/settings.json] }
reviews: { requireSignInWithin: 15min }
`;

const TESTS = `tests:
  - { name: person-writes, as: { subject: ada, groups: [engineers] }, connection: prod, sql: "update orders set x = 1 where id = 1", expect: allow }
  - { name: agent-write-held, as: { subject: ada, groups: [engineers], via: run, agent: claude }, connection: prod, sql: "update orders set x = 1 where id = 1", expect: review, rule: agents-write-review }
  - { name: loose-agent-refused, as: { subject: ada, groups: [engineers], agent: claude, isolated: false }, connection: prod, sql: "select 1", expect: deny, rule: loose-agents }
`;

let base: string;
let policy: Policy;
const ada: Who = { subject: 'ada', groups: ['engineers'] };
const as = (principal: Principal): Who => ({ ...ada, principal });
const claude: Principal = { via: 'run', run: 'run-1', agent: 'claude', isolated: true };

beforeAll(async () => {
  await loadSqlParser();
  base = mkdtempSync(join(tmpdir(), 'hoop-principal-'));
  mkdirSync(join(base, 'policy', 'tests'), { recursive: true });
  writeFileSync(join(base, 'policy', 'main.yaml'), BUNDLE);
  writeFileSync(join(base, 'policy', 'tests', 'agents.yaml'), TESTS);
  policy = await loadPolicyDir(base);
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

describe('principal keys', () => {
  it('match the way in, the agent by glob, and containment only for runs', () => {
    expect(principalMatches({ via: ['run'] }, claude)).toBe(true);
    expect(principalMatches({ via: ['run'] }, undefined)).toBe(false); // a person's own session comes via connect
    expect(principalMatches({ agents: ['cl*'] }, claude)).toBe(true);
    expect(principalMatches({ agents: ['*'] }, { via: 'exec' })).toBe(false); // a person is never an agent
    expect(principalMatches({ isolated: true }, claude)).toBe(true);
    expect(principalMatches({ isolated: false }, claude)).toBe(false);
    expect(principalMatches({ isolated: false }, { via: 'connect' })).toBe(false);
    expect(principalMatches({}, undefined)).toBe(true);
    expect(agentName('/usr/local/bin/Claude Code')).toBe('claude-code');
    expect(agentName('...')).toBe('agent');
  });

  it('the bundle loads them everywhere, with the runs and reviews settings', () => {
    expect(policy.access[1]).toMatchObject({ name: 'bots-read', agents: ['ci-*'] });
    expect(policy.statements.rules[0]!.match).toMatchObject({ via: ['run', 'mcp'], kinds: ['write'] });
    expect(policy.masking.columns[0]).toEqual({ table: 'public.customers', column: 'email', strategy: 'redact', agents: ['*'] });
    expect(policy.runs).toEqual({
      maxSeconds: 3600,
      heartbeatTimeoutMs: 30_000,
      requireIsolation: true,
      egress: [{ to: ['pypi.org:443'] }, { to: ['api.anthropic.com:443'], agents: ['claude*'] }],
      apply: 'gate',
      review: ['ci-*'],
      applyControls: ['.vscode/settings.json'],
    });
    expect(policy.reviews).toEqual({ requireSignInWithinMs: 900_000 });
  });

  it('access: a rule for some agents admits only them, and the person keeps their own access', () => {
    expect(accessFor(policy, ada, 'prod')).toMatchObject({ mode: 'read-write', rules: ['engineers'] });
    expect(accessFor(policy, as({ via: 'run', run: 'r', agent: 'ci-deploy', isolated: true }), 'prod')?.rules).toEqual(['engineers', 'bots-read']);
    expect(accessFor(policy, as(claude), 'prod')?.rules).toEqual(['engineers']);
  });

  it("statements: an agent's write is held where the person's own runs; a run not contained is refused", () => {
    const write = 'update orders set x = 1 where id = 1';
    expect(new StatementJudge(policy, ada, 'prod', 'read-write').judge(write).action).toBe('allow');
    expect(new StatementJudge(policy, as(claude), 'prod', 'read-write').judge(write)).toMatchObject({ action: 'review', rule: 'agents-write-review' });
    expect(new StatementJudge(policy, as({ ...claude, via: 'mcp' }), 'prod', 'read-write').judge(write).action).toBe('review');
    expect(new StatementJudge(policy, as({ ...claude, isolated: false }), 'prod', 'read-write').judge('select 1')).toMatchObject({ action: 'deny', rule: 'loose-agents' });
    expect(new StatementJudge(policy, as(claude), 'prod', 'read-write').judge('drop table orders')).toMatchObject({ action: 'deny', rule: 'no-claude-drop' });
    expect(new StatementJudge(policy, ada, 'prod', 'read-write').judge('drop table orders').action).toBe('allow');
  });

  it('masking: entries for agents apply to agents only, and sessions alike share one section', () => {
    const person = maskingFor(policy.masking, undefined);
    expect(person.columns.map((c) => c.column)).toEqual(['ssn']);
    expect(person.detectors).toEqual([]);
    const agent = maskingFor(policy.masking, claude);
    expect(agent.columns.map((c) => c.column)).toEqual(['email', 'ssn']);
    expect(agent.detectors).toEqual([]);
    expect(maskingFor(policy.masking, { ...claude, run: 'run-2' })).toBe(agent);
    expect(maskingFor(policy.masking, { ...claude, via: 'mcp' }).detectors.map((d) => d.detector)).toEqual(['payment-card']);
  });

  it('ssh: an agent gets no shell where the person does', () => {
    expect(sshJudgeFor(policy, ada, 'box', 'read-write').decide({ kind: 'shell' }, 'bash').action).toBe('allow');
    expect(sshJudgeFor(policy, as(claude), 'box', 'read-write').decide({ kind: 'shell' }, 'bash')).toMatchObject({ action: 'deny', rule: 'agents-no-shell' });
  });

  it('policy test cases judge as the principal they describe', async () => {
    const results = await runPolicyTests(policy);
    expect(results.map((r) => [r.test.name, r.passed])).toEqual([
      ['person-writes', true],
      ['agent-write-held', true],
      ['loose-agent-refused', true],
    ]);
  });

  it('refuses agent and isolated for a person, and unknown ways in', async () => {
    expect(describedPrincipal({ via: 'connect', agent: 'x' })).toMatch(/use them with via: run or mcp/);
    expect(describedPrincipal({ via: 'exec' })).toEqual({ via: 'exec' });
    const dir = join(base, 'bad');
    mkdirSync(join(dir, 'policy', 'tests'), { recursive: true });
    writeFileSync(join(dir, 'policy', 'main.yaml'), BUNDLE.replace('via: [run, mcp], kinds', 'via: [ssh], kinds'));
    writeFileSync(join(dir, 'policy', 'tests', 't.yaml'), 'tests:\n  - { name: t, as: { subject: a, via: exec, isolated: false }, connection: prod, sql: "select 1", expect: allow }\n');
    const err = await loadPolicyDir(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyInvalidError);
    const text = (err as Error).message;
    expect(text).toMatch(/policy\/main\.yaml:\d+:\d+: statements\.rules\.0\.match\.via\.0: must be one of connect, exec, direct, run, mcp/);
    expect(text).toMatch(/policy\/tests\/t\.yaml:\d+:\d+: tests\.0\.as: agent and isolated describe an agent's run/);
  });

  it("refuses a rule that tells a person's connect from their exec: the client says which, so nothing could hold it", async () => {
    const dir = join(base, 'person-split');
    mkdirSync(join(dir, 'policy'), { recursive: true });
    writeFileSync(join(dir, 'policy', 'main.yaml'), BUNDLE.replace('via: [run, mcp], kinds', 'via: [exec, run], kinds'));
    const err = await loadPolicyDir(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyInvalidError);
    expect((err as Error).message).toMatch(/statements\.rules\.0\.match\.via: names connect or exec without the other: a person's client says which of the two it is/);
    writeFileSync(join(dir, 'policy', 'main.yaml'), BUNDLE.replace('via: [run, mcp], kinds', 'via: [connect, exec], kinds'));
    await expect(loadPolicyDir(dir)).resolves.toBeDefined();
  });
});
