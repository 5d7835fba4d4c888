/**
 * `hoop connections` (alias `hoop ls`) through the real stack: each identity sees the connections
 * `GET /v1/connections` admits it to, as a table or one JSON document; with a policy repo each
 * with its access mode. An unknown connection's hint names the command rather than the endpoint.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml } from '../harness/postgres.js';
import { startStack, type HoopStack } from '../harness/stack.js';

/** Runs `hoop <argv> --gateway ... --ca-file ...` on `stack` as `subject`. */
async function run(stack: HoopStack, argv: string[], subject: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return stack.run([...argv, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token(subject) });
}

/** The NAME column of a `hoop connections` table (header dropped). */
const names = (table: string): string[] =>
  table
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split(/\s+/)[0]!);

describe('hoop connections with connections from the gateway configuration', () => {
  let stack: HoopStack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('lists what each identity may use: alice and carol see different connections', async () => {
    const alice = await run(stack, ['connections'], 'alice');
    expect(alice.stderr).toBe('');
    expect(alice.code).toBe(0);
    expect(alice.stdout.split('\n')[0]).toMatch(/^NAME\s+TYPE\s+TARGET$/);
    expect(names(alice.stdout)).toEqual(['app', 'app-md5', 'app-cleartext', 'wrong-password', 'down']);
    expect(alice.stdout).toMatch(/^app\s+postgres\s+app$/m);

    const carol = await run(stack, ['ls'], 'carol');
    expect(carol.code).toBe(0);
    expect(names(carol.stdout)).toEqual(['down', 'carol-only']);
  });

  it('--json prints one JSON document with the gateway and the connections', async () => {
    const r = await run(stack, ['connections', '--json'], 'carol');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      gateway: new URL(stack.gateway.url).origin,
      connections: [
        { name: 'down', type: 'postgres', database: 'app', clientRecords: true },
        { name: 'carol-only', type: 'postgres', database: 'app', clientRecords: true },
      ],
    });
  });

  it('says the token was rejected, and an unknown connection points at hoop connections', async () => {
    const forged = await stack.run(['connections', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: 'not.a.token' });
    expect(forged.code).toBe(ExitCode.NOPERM);
    const unknown = await run(stack, ['connect', 'no-such-db'], 'alice');
    expect(unknown.code).toBe(ExitCode.DATA);
    expect(unknown.stderr).toContain('`hoop connections`');
    expect(unknown.stderr).not.toContain('/v1/connections');
  });
});

describe('hoop connections with a policy repo', () => {
  let stack: HoopStack;
  let repo: PolicyGitRepo;
  beforeAll(async () => {
    repo = new PolicyGitRepo('hoop-connections-policy-');
    stack = await startStack({
      policy: ({ pg }) => {
        repo.commit(`version: 1
connections:
${connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })}${connectionYaml(pg, { name: 'reports', password: '${env:APP_PASSWORD}' })}access:
  - { name: writers, subjects: [alice], connections: [app], mode: read-write }
  - { name: readers, subjects: [rita], connections: ["*"], mode: read-only }
`);
        return repo.gatewayBlock(['${env:APP_*}']);
      },
    });
  });
  afterAll(async () => {
    await stack?.close();
    if (repo) rmSync(repo.base, { recursive: true, force: true });
  });

  it('lists each identity its connections with its access mode', async () => {
    const alice = await run(stack, ['connections'], 'alice');
    expect(alice.code).toBe(0);
    expect(alice.stdout.split('\n')[0]).toMatch(/^NAME\s+TYPE\s+TARGET\s+MODE$/);
    expect(names(alice.stdout)).toEqual(['app']);
    expect(alice.stdout).toMatch(/^app\s+postgres\s+app\s+read-write$/m);

    const rita = await run(stack, ['ls', '--json'], 'rita');
    expect(rita.code).toBe(0);
    expect(JSON.parse(rita.stdout).connections).toEqual([
      { name: 'app', type: 'postgres', database: 'app', mode: 'read-only', clientRecords: true },
      { name: 'reports', type: 'postgres', database: 'app', mode: 'read-only', clientRecords: true },
    ]);

    const mallory = await run(stack, ['connections'], 'mallory');
    expect(mallory.code).toBe(0);
    expect(mallory.stdout).toContain('no connections of');
    expect(mallory.stdout).toContain('admit you');
  });

  it('an unknown connection points at hoop connections', async () => {
    const unknown = await run(stack, ['connect', 'nope'], 'alice');
    expect(unknown.code).toBe(ExitCode.DATA);
    expect(unknown.stderr).toContain('`hoop connections`');
  });
});
