/**
 * Early statement checks in `hoop connect`: with the policy bundle given to both ends, a denied
 * statement is refused on this machine (same 42501 message, the gateway never sees it), allowed
 * statements run, and a CLI bundle at another commit than the gateway's is announced once.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { pgClient, psql } from '../harness/clients.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import type { PgCluster } from '../harness/postgres.js';
import { startStack, type ConnectInfo, type HoopStack, type RunningConnect } from '../harness/stack.js';

let base: string;
let repo: string;
let policyRepo: PolicyGitRepo;
let stack: HoopStack;
let first: string;
const running: RunningConnect[] = [];

const git = (...args: string[]): string => policyRepo.git(...args);
const commit = (text: string): string => policyRepo.commit(text);

const bundle = (pg: PgCluster, extraRules = ''): string => `version: 1
connections:
  - name: app
    type: postgres
    host: 127.0.0.1
    port: ${pg.port}
    database: app
    user: ${pg.users.scram.user}
    password: \${env:APP_PASSWORD}
    tls: { mode: disable }
access:
  - { name: writers, subjects: [alice], connections: [app], mode: read-write }
statements:
  rules:
    - name: no-secrets
      match: { tables: [public.secrets] }
      action: deny
      message: the secrets table is off limits
${extraRules}`;

/** `hoop connect app --json` with the config repo in the environment (its copy under HOOP_CONFIG_DIR). */
async function connectWithRepo(token: string): Promise<RunningConnect> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let err = '';
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  const controller = new AbortController();
  const firstLine = new Promise<string>((resolve) => {
    let buf = '';
    stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('\n')) resolve(buf.slice(0, buf.indexOf('\n')));
    });
  });
  const env = { HOOP_TOKEN: token, XDG_RUNTIME_DIR: stack.dir, HOOP_CONFIG_DIR: join(base, 'cli-config'), HOOP_POLICY_REPO: repo, HOOP_POLICY_REF: 'main', PATH: process.env.PATH };
  const done = main(['connect', 'app', '--json', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { stdout, stderr, env, cwd: stack.dir, signal: controller.signal });
  const line = await Promise.race([firstLine, done.then((code) => Promise.reject(new Error(`hoop connect exited ${code}: ${err}`)))]);
  const c: RunningConnect = {
    info: JSON.parse(line) as ConnectInfo,
    stderr: () => err,
    stop: async () => {
      controller.abort();
      return done;
    },
  };
  running.push(c);
  return c;
}

function refusedAtGateway(): Array<Record<string, unknown>> {
  return stack.logs().filter((l) => l.event === 'statement.refused');
}

beforeAll(async () => {
  policyRepo = new PolicyGitRepo('hoop-connect-policy-');
  ({ base, dir: repo } = policyRepo);
  stack = await startStack({
    policy: ({ pg }) => {
      first = commit(bundle(pg));
      return `policy:\n  repo: ${repo}\n  ref: main\n  pullIntervalSeconds: 3600\n`;
    },
  });
  await stack.pg.psql(
    `create table notes(id serial primary key, body text);
     create table secrets(id int, value text);
     insert into notes(body) values ('hello');
     grant all on notes, notes_id_seq, secrets to public`,
    { database: 'app' },
  );
}, 120_000);

afterAll(async () => {
  for (const c of running) await c.stop();
  await stack?.close();
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('hoop connect with the policy bundle', () => {
  it('refuses a denied statement on the laptop with the gateway\'s message; the gateway never sees it', async () => {
    const c = await stack.connect('app', await stack.token('alice'), ['--policy-dir', repo]);
    running.push(c);
    const before = refusedAtGateway().length;

    const denied = await psql(c.info, ['-c', 'select * from secrets']);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain('hoop: denied by rule "no-secrets": the secrets table is off limits');
    expect((await psql(c.info, ['-At', '-c', 'select body from notes order by id limit 1'])).stdout.trim()).toBe('hello');

    // The extended protocol: a refused Parse, then the session goes on.
    const client = await pgClient(c.info);
    try {
      const err = await client.query('select value from secrets where id = $1', [1]).then(
        () => undefined,
        (e: unknown) => e as { code?: string; message?: string },
      );
      expect(err?.code).toBe('42501');
      expect(err?.message).toBe('hoop: denied by rule "no-secrets": the secrets table is off limits');
      expect((await client.query('select body from notes where id = $1', [1])).rows).toEqual([{ body: 'hello' }]);
      await client.query('begin');
      await expect(client.query('select * from secrets')).rejects.toMatchObject({ code: '42501' });
      await expect(client.query('select 1')).rejects.toMatchObject({ code: '25P02' });
      await client.query('rollback');
      expect((await client.query('select 2 as two')).rows).toEqual([{ two: 2 }]);
    } finally {
      await client.end();
    }
    expect(refusedAtGateway().length).toBe(before);
    expect(c.stderr()).not.toContain('early statement checks use');
  });

  it('without a bundle the gateway refuses (today\'s behaviour)', async () => {
    const c = await stack.connect('app', await stack.token('alice'));
    running.push(c);
    const before = refusedAtGateway().length;
    const denied = await psql(c.info, ['-c', 'select * from secrets']);
    expect(denied.stderr).toContain('hoop: denied by rule "no-secrets": the secrets table is off limits');
    expect(refusedAtGateway().length).toBe(before + 1);
    expect(c.stderr()).not.toContain('early statement checks use');
  });

  it('says once that early checks use another commit than the gateway; the gateway still decides', async () => {
    const second = commit(bundle(stack.pg, `    - name: no-notes\n      match: { tables: [notes] }\n      action: deny\n      message: notes are closed\n`));
    const c = await stack.connect('app', await stack.token('alice'), ['--policy-dir', repo]);
    running.push(c);
    const a = await psql(c.info, ['-c', 'select body from notes']);
    expect(a.stderr).toContain('hoop: denied by rule "no-notes": notes are closed');
    await psql(c.info, ['-c', 'select 1']);
    const notices = c.stderr().split('\n').filter((l) => l.includes('early statement checks use'));
    expect(notices).toEqual([`hoop: early statement checks use commit ${second} while the gateway uses commit ${first}; the gateway still decides`]);
  });

  it('pulls the config repo once when the gateway announces a newer commit, and judges with it', async () => {
    expect((await stack.gateway.policy!.refresh()).commit).toBe(git('rev-parse', 'HEAD'));
    const c = await connectWithRepo(await stack.token('alice'));
    const newer = commit(bundle(stack.pg, `    - name: no-notes-2\n      match: { tables: [notes] }\n      action: deny\n      message: notes are closed again\n`));
    expect(await stack.gateway.policy!.refresh()).toMatchObject({ changed: true, commit: newer });
    const before = refusedAtGateway().length;
    const a = await psql(c.info, ['-c', 'select body from notes']);
    expect(a.stderr).toContain('hoop: denied by rule "no-notes-2": notes are closed again');
    expect(refusedAtGateway().length).toBe(before);
    expect(c.stderr()).not.toContain('early statement checks use');
  });
});
