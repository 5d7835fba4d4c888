/**
 * The gateway on every core (src/gateway/workers.ts), as an operator runs it: `hoop gateway` with
 * `workers: 2` and the PostgreSQL store forks two workers that share its port and its state
 * (each a replica of the store); sessions land on both, a review raised in one is decided through
 * the other, a direct credential minted by one signs in at the other; a worker that is killed is
 * started again while the other serves on; SIGTERM stops them all. With the file store, more than
 * one worker is refused, saying why.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callApi } from '../harness/api.js';
import { HOOP_BIN } from '../harness/hoop-process.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml, freePort, startPgCluster, type PgCluster } from '../harness/postgres.js';
import { RawFrontend, errorIn } from '../harness/raw-pg.js';
import { runCli } from '../harness/run-cli.js';
import { startStack, type HoopStack } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';
import { query as queryMessage } from '../../src/postgres/wire/messages.js';

let dir: string;
let store: PgCluster;
let stack: HoopStack;
let repo: PolicyGitRepo;
let gateway: ChildProcess;
let log = '';
let port: number;
let url: string;

const events = (): Array<Record<string, unknown>> =>
  log
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoop-workers-'));
  store = await startPgCluster();
  await store.psql('create database hoop_store');
  process.env.HOOP_STORE_URL = store.url(store.superuser, { database: 'hoop_store' });
  repo = new PolicyGitRepo('hoop-workers-policy-');
  stack = await startStack({
    extraConfig: 'store: { kind: postgres, url: "${env:HOOP_STORE_URL}", heartbeatSeconds: 0.3, deadAfterSeconds: 2 }',
    policy: ({ pg: cluster }) => {
      repo.commit(`version: 1
connections:
${connectionYaml(cluster, { name: 'app', password: '${env:APP_PASSWORD}' })}access:
  - { name: people, subjects: [alice, bob], connections: [app], mode: read-write }
statements:
  reviewers:
    - { groups: [dba], timeout: 1min }
  rules:
    - { name: truncate-review, match: { kinds: [truncate] }, action: review }
`);
      return repo.gatewayBlock(['${env:APP_*}']);
    },
  });
  await stack.pg.psql('create table marks(note text); grant all on marks to public', { database: 'app' });
  // The same gateway, on a port of its own, with two workers.
  port = await freePort();
  const text = (await readFile(stack.configFile, 'utf8')).replace(/^listen: .*$/m, `listen: 127.0.0.1:${port}\ndataDir: ${join(dir, 'data')}\nworkers: 2`);
  const file = join(dir, 'gateway.yaml');
  await writeFile(file, text);
  url = `https://127.0.0.1:${port}`;
  gateway = spawn(process.execPath, [HOOP_BIN, 'gateway', '--config', file], {
    env: { PATH: process.env.PATH, HOOP_STORE_URL: process.env.HOOP_STORE_URL, APP_PASSWORD: stack.pg.users.scram.password, HOOP_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  gateway.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  await eventually(
    () =>
      expect(
        events()
          .filter((e) => e.event === 'gateway.listening')
          .map((e) => e.worker)
          .sort(),
      ).toEqual([0, 1]),
    { timeout: 60_000, interval: 100 },
  );
});

afterAll(async () => {
  if (gateway && gateway.exitCode === null) gateway.kill('SIGKILL');
  await stack?.close();
  await store?.stop();
  delete process.env.HOOP_STORE_URL;
  if (repo) await rm(repo.base, { recursive: true, force: true });
  await rm(dir, { recursive: true, force: true });
});

/** A direct client of the workers' port, signed in with a credential minted through it. */
async function directClient(token: string): Promise<RawFrontend> {
  const minted = (await callApi(url, stack.pki.ca, 'POST', '/v1/connections/app/direct', token, {})).body as { user: string; password: string };
  const f = await RawFrontend.direct(port, stack.pki.ca);
  await f.startup(minted.password, [
    ['user', minted.user],
    ['database', 'app'],
  ]);
  return f;
}

describe('a gateway with two workers', () => {
  it('serves sessions on both workers, which share the state: a review raised in one is decided through the other', async () => {
    const alice = await stack.token('alice');
    const clients = await Promise.all(Array.from({ length: 6 }, () => directClient(alice)));
    for (const f of clients) expect(errorIn(await f.simple("insert into marks values ('w')"))).toBeUndefined();
    const servedBy = new Set(
      events()
        .filter((e) => e.event === 'session.start' || e.event === 'tunnel.open')
        .map((e) => e.worker),
    );
    expect([...servedBy].sort()).toEqual([0, 1]);
    // Whichever worker holds it, bob's approval through the port reaches it.
    const held = clients[0]!;
    const from = held.raw.length;
    held.write(queryMessage('truncate marks'));
    const review = await eventually(
      async () => {
        const list = (await callApi(url, stack.pki.ca, 'GET', '/v1/reviews?state=pending', await stack.token('bob', ['dba']))).body.reviews as Array<{ id: string }>;
        expect(list.length).toBe(1);
        return list[0]!;
      },
      { timeout: 60_000, interval: 100 },
    );
    // Each worker learns of it through the shared state (on a busy machine, a moment after the one that listed it): four asks in a row, both workers among them, find it.
    await eventually(async () => {
      for (let i = 0; i < 4; i++) expect((await callApi(url, stack.pki.ca, 'GET', `/v1/reviews/${review.id}`, await stack.token('bob', ['dba']))).status).toBe(200);
    });
    expect((await callApi(url, stack.pki.ca, 'POST', `/v1/reviews/${review.id}/approve`, await stack.token('bob', ['dba']), { reason: 'ok' })).status).toBe(200);
    expect(errorIn(await held.messagesSince(from, 1, 30_000))).toBeUndefined();
    expect((await stack.pg.psql('select count(*) from marks', { database: 'app' })).trim()).toBe('0');
    for (const f of clients) f.destroy();
    const status = await runCli(['gateway', 'status', '--config', join(dir, 'gateway.yaml')], { PATH: process.env.PATH, HOOP_STORE_URL: process.env.HOOP_STORE_URL }, dir);
    expect(status.stdout).toMatch(/replicas\s+3 live/);
  });

  it('starts a worker that dies again, while the other serves on', async () => {
    const pids = events()
      .filter((e) => e.event === 'gateway.listening')
      .map((e) => e.pid as number);
    const killed = pids[0]!;
    process.kill(killed, 'SIGKILL');
    await eventually(() => expect(events().some((e) => e.event === 'gateway.worker-died')).toBe(true), { timeout: 60_000, interval: 100 });
    // Meanwhile, and after, new sessions are served.
    const f = await directClient(await stack.token('alice'));
    expect(errorIn(await f.simple('select 1'))).toBeUndefined();
    f.destroy();
    await eventually(() => expect(events().filter((e) => e.event === 'gateway.listening').length).toBeGreaterThanOrEqual(3), { timeout: 60_000, interval: 100 });
  });

  it('stops every worker on SIGTERM', async () => {
    const exited = new Promise<number | null>((resolve) => gateway.once('exit', (code) => resolve(code)));
    gateway.kill('SIGTERM');
    expect(await exited).toBe(0);
    const pids = events()
      .filter((e) => e.event === 'gateway.listening')
      .map((e) => e.pid as number);
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
  });

  it('with the file store, more than one worker is refused, saying why', async () => {
    const text = (await readFile(stack.configFile, 'utf8')).replace(/^store: .*$/m, '').replace(/^listen: .*$/m, 'listen: 127.0.0.1:0\nworkers: 2');
    const file = join(dir, 'file-store.yaml');
    await writeFile(file, text);
    const r = await runCli(['gateway', '--config', file], { PATH: process.env.PATH, APP_PASSWORD: 'x' }, dir);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('workers: 2 workers share their state as replicas do, through the PostgreSQL store');
  });
});
