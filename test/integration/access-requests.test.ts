/**
 * Just-in-time access against real PostgreSQL: a requestable access rule admits nobody until a
 * request is approved (`hoop request`, then `hoop review approve`); the grant is used through
 * `hoop connect` and psql, a standing read-only access is raised to read-write for the grant's
 * time, a session that rests on a grant ends when it does (saying so), a denied request exits 3,
 * a request longer than the rule allows or under no requestable rule is refused.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { psql, pgClient } from '../harness/clients.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml } from '../harness/postgres.js';
import { HeldClock } from '../harness/held-clock.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';

let policyRepo: PolicyGitRepo;
let stack: HoopStack;
const running: RunningConnect[] = [];

const as = async (subject: string, groups: string[], argv: string[]) =>
  stack.run([...argv, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token(subject, groups) });

async function pendingRequest(subject: string): Promise<string> {
  return eventually(
    async () => {
      const ls = JSON.parse((await as('bob', ['dba'], ['review', 'ls', '--json'])).stdout) as { reviews: Array<{ id: string; kind: string; requester: { subject: string } }> };
      const r = ls.reviews.find((x) => x.kind === 'access' && x.requester.subject === subject);
      expect(r, `a pending request of ${subject}`).toBeDefined();
      return r!.id;
    },
    { timeout: 60_000, interval: 100 },
  );
}

const grantEnds = new HeldClock();

beforeAll(async () => {
  policyRepo = new PolicyGitRepo('hoop-access-requests-');
  stack = await startStack({
    // A grant's end is up for its sessions when a test fires it.
    gateway: { clock: grantEnds },
    extraConfig: 'audit: { file: audit.jsonl, flushSeconds: 0.2 }',
    policy: ({ pg }) => {
      policyRepo.commit(`version: 1
connections:
${connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })}access:
  - { name: readers, subjects: [alice], connections: [app], mode: read-only }
  - { name: oncall, groups: [oncall], connections: [app], mode: read-write, requestable: true, maxGrant: 2h, review: { groups: [dba] } }
`);
      return policyRepo.gatewayBlock(['${env:APP_*}']);
    },
  });
  await stack.pg.psql('create table incidents(id int); grant all on incidents to public', { database: 'app' });
});

afterAll(async () => {
  for (const c of running) await c.stop();
  await stack?.close();
  policyRepo?.remove();
});

describe('access requests', () => {
  it('nobody holds a requestable rule until a reviewer approves a request; then the connection works for the time asked', async () => {
    const refused = await as('carl', ['oncall'], ['connections']);
    expect(refused.stdout).not.toContain('app');
    const direct = await stack.connect('app', await stack.token('carl', ['oncall'])).catch((err: Error) => err);
    expect(String(direct)).toContain('may not use the connection "app" without an approved request');
    expect(String(direct)).toContain('hoop request app --for 1h');

    const asked = as('carl', ['oncall'], ['request', 'app', '--for', '1h', '--reason', 'incident 42', '--mode', 'read-write', '--wait', '30']);
    const id = await pendingRequest('carl');
    const show = await as('bob', ['dba'], ['review', 'show', id]);
    expect(show.stdout).toContain('asks for read-write access to app for 60 min: incident 42');
    expect((await as('carl', ['oncall', 'dba'], ['review', 'approve', id])).stderr).toContain('may not approve their own request');
    expect((await as('bob', ['dba'], ['review', 'approve', id])).code).toBe(0);
    const r = await asked;
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`request ${id}: approved by bob: read-write access to app until \\d{4}-`));
    // The audit stream has the request and its decision, with the grant's end.
    await expect
      .poll(() => {
        const file = join(stack.dir, 'audit.jsonl');
        return existsSync(file)
          ? readFileSync(file, 'utf8')
              .trim()
              .split('\n')
              .map((l) => JSON.parse(l) as Record<string, unknown>)
              .filter((e) => e.review === id)
              .map((e) => [e.event, e.kind, (e.access as { until?: string } | undefined)?.until !== undefined])
          : [];
      })
      .toEqual([
        ['review.requested', 'access', false],
        ['review.decided', 'access', true],
      ]);
    const listed = await as('carl', ['oncall'], ['connections', '--json']);
    expect(listed.stdout).toContain('"until"');

    const c = await stack.connect('app', await stack.token('carl', ['oncall']));
    running.push(c);
    const wrote = await psql(c.info, ['-c', 'insert into incidents values (42)']);
    expect(wrote.stderr).toBe('');
    expect(wrote.stdout.trim()).toBe('INSERT 0 1');
  });

  it('raises a standing read-only access to read-write for the grant, and ends sessions that rest on it when it ends', async () => {
    const before = await stack.connect('app', await stack.token('alice', ['oncall']));
    running.push(before);
    expect((await psql(before.info, ['-c', 'insert into incidents values (1)'])).stderr).toContain('read-only');

    const asked = as('alice', ['oncall'], ['request', 'app', '--for', '8s', '--reason', 'hotfix', '--mode', 'read-write', '--wait']);
    await as('bob', ['dba'], ['review', 'approve', await pendingRequest('alice')]);
    expect((await asked).code).toBe(0);
    const during = await stack.connect('app', await stack.token('alice', ['oncall']));
    running.push(during);
    const client = await pgClient(during.info);
    const ended = new Promise<Error>((resolve) => client.on('error', resolve));
    await client.query('insert into incidents values (2)');
    // The grant's end, up once the session wrote (however loaded the machine): the session is closed, saying why.
    // (The gateway's runs sweep on the same clock: its timer fires too.)
    expect(grantEnds.fire()).toBeGreaterThanOrEqual(1);
    const err = await ended;
    expect(err.message).toMatch(/hoop: your temporary access to "app" \(request rv-[0-9a-f]{16}\) ended at/);
    await client.end().catch(() => undefined);
    // A session that starts after the grant's time is read-only again.
    const until = Date.parse(/ended at (\d{4}-\d\d-\d\dT[\d:.]+Z)/.exec(err.message)?.[1] ?? '');
    expect(until).toBeGreaterThan(0);
    await eventually(() => expect(Date.now()).toBeGreaterThan(until), { timeout: 60_000, interval: 100 });
    const after = await stack.connect('app', await stack.token('alice', ['oncall']));
    running.push(after);
    expect((await psql(after.info, ['-c', 'insert into incidents values (3)'])).stderr).toContain('read-only');
  });

  it('a denied request exits 3; one too long, or under no requestable rule, is refused with what to do', async () => {
    const asked = as('dan', ['oncall'], ['request', 'app', '--for', '30min', '--reason', 'curious', '--wait']);
    await as('bob', ['dba'], ['review', 'deny', await pendingRequest('dan'), '--reason', 'not on call this week']);
    const r = await asked;
    expect(r.code).toBe(3);
    expect(r.stdout).toContain('denied by bob: not on call this week');
    const long = await as('dan', ['oncall'], ['request', 'app', '--for', '3h', '--reason', 'x']);
    expect(long.code).not.toBe(0);
    expect(long.stderr).toContain('access rule "oncall" grants at most 120 minutes; ask for less');
    const stranger = await as('eve', [], ['request', 'app', '--for', '1h', '--reason', 'x']);
    expect(stranger.code).not.toBe(0);
    expect(stranger.stderr).toContain('no access rule lets eve ask for read-only access to "app"');
  });
});
