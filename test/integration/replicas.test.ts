/**
 * Two gateway replicas on one PostgreSQL store, behind a real load balancer (HAProxy from Debian,
 * TCP mode, TLS passed through): replica A runs in this process (the stack's gateway), replica B
 * is a separate `hoop gateway` process. What each guarantee looks like to a user:
 *
 * - sessions made through the balancer land on both replicas, and each replica lists, shows and
 *   verifies all of them;
 * - a statement held for review on A is approved through B and runs on A (NOTIFY wakes A);
 * - a runbook run held through A, approved through B, runs once through B;
 * - a CancelRequest that reaches B cancels the query running on A;
 * - the store stopped under load: running sessions go on untouched, new ones follow
 *   `recording.onFailure` (close: refused, saying why), and the gateway recovers by itself;
 * - B SIGKILLed mid-session: its clients get an error and reconnect through the balancer to A,
 *   A takes B over (B's sessions truncated, verifiable to their last checkpoint; the statement B
 *   held for review expired, never approved);
 * - one audit stream reaches the SIEM from both replicas, each event once, through a SIEM outage;
 *   a replica's death is told there by the replica that took it over;
 * - `hoop gateway status` says all of it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callApi } from '../harness/api.js';
import { startHaproxy } from '../harness/haproxy.js';
import { pgClient, psql } from '../harness/clients.js';
import { HOOP_BIN } from '../harness/hoop-process.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml, freePort, startPgCluster, type PgCluster } from '../harness/postgres.js';
import { runCli } from '../harness/run-cli.js';
import { RawFrontend } from '../harness/raw-pg.js';
import { cancelRequest, query as queryMessage } from '../../src/postgres/wire/messages.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { eventually, quietFor } from '../harness/wait.js';

let store: PgCluster;
let stack: HoopStack;
let repo: PolicyGitRepo;
let dir: string;
let b: ChildProcess;
let bLog = '';
let bUrl: string;
let haproxy: ChildProcess;
let lbUrl: string;
let env: NodeJS.ProcessEnv;
const running: RunningConnect[] = [];
/** The idle sessions of the load test, on each replica. */
/** Sessions held open on each replica through a restart of the store. */
const PER_REPLICA = 150;
let loadOnA: RawFrontend[] = [];
let loadOnB: RawFrontend[] = [];
const clients: pg.Client[] = [];
/** What the SIEM received (every line of every POST), and whether it answers 503 for now. */
let siem: Server;
const siemEvents: Array<{ event: string; replica?: string; session?: string; reason?: string; takenOverFrom?: string; state?: string; because?: string; review?: string }> = [];
let siemDown = false;
const eventsOf = (session: string): string[] => siemEvents.filter((e) => e.session === session).map((e) => e.event);

const bundle = (connection: string): string => `version: 1
connections:
${connection}  - { name: bastion, type: ssh, host: 127.0.0.1, port: 1, user: ops, password: "\${env:APP_PASSWORD}", hostKeys: ["SHA256:${'A'.repeat(43)}"] }
access:
  - { name: everyone, subjects: [alice, bob, carol, dora], connections: [app, bastion], mode: read-write, maxSessions: 2000 }
  - { name: dave, subjects: [dave], connections: [app], mode: read-write, maxSessions: 2 }
statements:
  reviewers:
    - groups: [dba]
      timeout: 60s
  rules:
    - { name: wide-delete, match: { kinds: [delete], missingWhere: true }, action: review, message: a DELETE of every row needs a DBA }
    - { name: no-drop, match: { kinds: [drop] }, action: deny, message: no DROP here }
recording:
  auditors: [auditors]
alerts:
  - { name: drop-burst, when: { event: refused, count: 3, within: 10min }, suspend: true }
  - { name: bulk-am, when: { event: rows-read, table: pg_am, count: 10, within: 10min } }
`;

/** A runbook a reviewer approves: held on one replica, it may be approved and run through another. */
const ADD_NOTE = `version: 1
description: Add a note, with a DBA's approval
connection: app
parameters:
  body: { type: string, pattern: "[a-z-]+" }
steps:
  - sql: insert into approved_notes(body) values ($1)
    params: [body]
run:
  - { subjects: [alice] }
review: { groups: [dba] }
`;

/** `hoop <argv>` as `subject` against the gateway at `url`. */
async function hoop(url: string, argv: string[], subject = 'alice', groups: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  return stack.run([...argv, '--gateway', url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token(subject, groups) });
}

interface Listed {
  id: string;
  subject: string;
  endedAt?: string;
  reason: string;
  recording: string;
  statements: number;
}
const sessionsOn = async (url: string): Promise<Listed[]> => (JSON.parse((await hoop(url, ['sessions', 'ls', '--json'], 'audrey', ['auditors'])).stdout) as { sessions: Listed[] }).sessions;

/** Polls `fn` until it returns something other than undefined (at most `ms`). */
async function until<T>(fn: () => Promise<T | undefined>, ms = 30_000, what = 'the condition'): Promise<T> {
  return eventually(
    async () => {
      const v = await fn();
      expect(v, `timed out waiting for ${what}`).toBeDefined();
      return v as T;
    },
    { timeout: ms, interval: 150 },
  );
}

const status = async (): Promise<string> => (await runCli(['gateway', 'status', '--config', stack.configFile], env, dir)).stdout;
/** Lines of a one-column query on the store. */
const storeRows = async (sql: string): Promise<string[]> => (await store.psql(sql, { database: 'hoop_store' })).trim().split('\n').filter(Boolean);
const replicaIdOf = async (url: string): Promise<string> => (await storeRows(`select id from hoop.replicas where url = '${url}'`))[0]!;
/** Running sessions in the store, per replica id. */
/** Sessions running per replica in the store (those started since `since`, when given: not the earlier tests' that are still closing). */
const runningPerReplica = async (since?: string): Promise<Map<string, number>> =>
  new Map(
    (await storeRows(`select replica || ' ' || count(*) from hoop.sessions where ended_at is null${since ? ` and started_at >= '${since}'` : ''} group by replica`)).map((l) => [
      l.split(' ')[0]!,
      Number(l.split(' ')[1]),
    ]),
  );
const notes = async (): Promise<number> => Number((await stack.pg.psql('select count(*) from notes', { database: 'app' })).trim());

async function connectVia(url: string, subject = 'alice'): Promise<RunningConnect> {
  const c = await stack.connect('app', await stack.token(subject), ['--gateway', url]);
  running.push(c);
  return c;
}

async function client(c: RunningConnect): Promise<pg.Client> {
  const cl = await pgClient(c.info);
  cl.on('error', () => undefined);
  clients.push(cl);
  return cl;
}

/** Waits until each replica takes new sessions again (its heartbeat found the store back). */
async function bothTakeNewSessions(): Promise<void> {
  for (const url of [stack.gateway.url, bUrl]) {
    const c = await connectVia(url);
    await until(async () => ((await psql(c.info, ['-c', 'select 1'])).code === 0 ? true : undefined), 60_000, `${url} to take new sessions`);
  }
}

/** Starts replica B: the stack's configuration, its own port and data directory. */
async function startReplicaB(): Promise<void> {
  const port = await freePort();
  // One process (with the store, `workers: auto` would be one per core): this replica is the test's second.
  const text = (await readFile(stack.configFile, 'utf8')).replace(/^listen: .*$/m, `listen: 127.0.0.1:${port}\ndataDir: ${join(dir, 'b')}\nworkers: 1`);
  const file = join(dir, 'gateway-b.yaml');
  await writeFile(file, text);
  bUrl = `https://127.0.0.1:${port}`;
  b = spawn(process.execPath, [HOOP_BIN, 'gateway', '--config', file], { env: { ...env, HOOP_LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
  b.stderr!.on('data', (d: Buffer) => (bLog += d.toString()));
  await until(async () => (bLog.includes('gateway.listening') ? true : b.exitCode !== null ? Promise.reject(new Error(`replica B exited: ${bLog}`)) : undefined), 60_000, 'replica B to listen');
}

/** HAProxy in TCP mode in front of both replicas (TLS goes through to them), checking each every 300 ms. */
async function startBalancer(): Promise<void> {
  const a = new URL(stack.gateway.url);
  const b = new URL(bUrl);
  const lb = await startHaproxy(
    dir,
    `  balance roundrobin
  retries 3
  option redispatch
  server a ${a.hostname}:${a.port} check inter 300 fall 3 rise 1
  server b ${b.hostname}:${b.port} check inter 300 fall 3 rise 1
`,
    4096,
  );
  haproxy = lb.process;
  lbUrl = `https://127.0.0.1:${lb.port}`;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoop-replicas-'));
  store = await startPgCluster();
  await store.psql('create database hoop_store');
  process.env.HOOP_STORE_URL = store.url(store.superuser, { database: 'hoop_store' });
  repo = new PolicyGitRepo('hoop-replicas-policy-');
  siem = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      if (siemDown) return void res.writeHead(503).end();
      for (const line of body.split('\n').filter(Boolean)) siemEvents.push(JSON.parse(line) as (typeof siemEvents)[number]);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => siem.listen(0, '127.0.0.1', resolve));
  const siemUrl = `http://127.0.0.1:${(siem.address() as { port: number }).port}/siem`;
  stack = await startStack({
    pgConfig: { max_connections: '400' },
    extraConfig: `store: { kind: postgres, url: "\${env:HOOP_STORE_URL}", heartbeatSeconds: 0.3, deadAfterSeconds: 5 }\nrecording: { checkpointSeconds: 1 }\naudit: { url: "${siemUrl}", flushSeconds: 0.2 }`,
    policy: ({ pg: cluster }) => {
      mkdirSync(join(repo.dir, 'runbooks'));
      writeFileSync(join(repo.dir, 'runbooks', 'add-note.yaml'), ADD_NOTE);
      repo.commit(bundle(connectionYaml(cluster, { name: 'app', password: '${env:APP_PASSWORD}' })));
      return repo.gatewayBlock(['${env:APP_*}']);
    },
  });
  await stack.pg.psql('create table notes(id serial primary key, body text); create table approved_notes(body text); grant all on notes, notes_id_seq, approved_notes to public', { database: 'app' });
  env = { PATH: process.env.PATH, HOOP_STORE_URL: process.env.HOOP_STORE_URL, APP_PASSWORD: stack.pg.users.scram.password };
  await startReplicaB();
  await startBalancer();
});

afterAll(async () => {
  for (const f of [...loadOnA, ...loadOnB]) f.stream.destroy();
  for (const c of clients) await c.end().catch(() => undefined);
  for (const c of running) await c.stop().catch(() => undefined);
  haproxy?.kill('SIGKILL');
  siem?.close();
  if (b && b.exitCode === null) b.kill('SIGKILL');
  await stack?.close();
  await store?.stop();
  delete process.env.HOOP_STORE_URL;
  if (repo) await rm(repo.base, { recursive: true, force: true });
  await rm(dir, { recursive: true, force: true });
});

describe('two replicas behind a load balancer', () => {
  it('hoop gateway status sees both replicas and the store', async () => {
    const text = await until(async () => ((await status()).includes('2 live') ? status() : undefined), 60_000, 'two live replicas');
    expect(text).toMatch(/^store {6}127\.0\.0\.1:\d+\/hoop_store: reachable, schema at version 14$/m);
    expect(text).toContain(`live     ${bUrl}`);
    expect(text).toContain(`live     ${stack.gateway.url}`);
    expect(text).toMatch(/^reviews {4}0 pending$/m);
    // `hoop connect bastion` pins the SSH host key of whichever replica the balancer picks: each replica publishes every one.
    const token = await stack.token('alice');
    const hostKeys = (url: string): Promise<string[]> =>
      new Promise((resolve, reject) => {
        const req = httpsRequest(new URL('/v1/connections/bastion', url), { ca: stack.pki.ca, headers: { Authorization: `Bearer ${token}` } }, (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve((JSON.parse(text) as { hostKeys: string[] }).hostKeys));
        });
        req.on('error', reject);
        req.end();
      });
    const keys = await hostKeys(stack.gateway.url);
    expect(keys).toHaveLength(2);
    expect(await hostKeys(bUrl)).toEqual(keys);
  });

  it('spreads sessions over both replicas, and each replica lists and verifies every one', async () => {
    // Round robin alternates between the replicas per connection: a hoop connect carries all its
    // sessions over one (hoop-mux/1), so they share a replica, and the next hoop connect gets the
    // other (more only if a health check flapped under load).
    let made = 0;
    const replicasUsed = async (): Promise<string> => (await store.psql("select count(distinct replica) from hoop.sessions where summary->>'subject' = 'alice'", { database: 'hoop_store' })).trim();
    while (made < 6 || ((await replicasUsed()) !== '2' && made < 30)) {
      const c = await connectVia(lbUrl);
      for (let i = 0; i < 2; i++) {
        expect((await psql(c.info, ['-c', `insert into notes(body) values ('via balancer ${made}')`])).code).toBe(0);
        made++;
      }
      await c.stop();
      // Its two sessions went to one replica.
      const pair = `select count(*) as n, count(distinct replica) as replicas from (select replica from hoop.sessions where summary->>'subject' = 'alice' order by summary->>'startedAt' desc limit 2) last`;
      expect(
        await until(
          async () =>
            (
              await store.psql(`select replicas from (${pair}) p where n = 2 and (select count(*) from hoop.sessions where summary->>'subject' = 'alice') = ${made}`, { database: 'hoop_store' })
            ).trim() || undefined,
          60_000,
          'the sessions in the store',
        ),
      ).toBe('1');
    }
    expect(await replicasUsed()).toBe('2');
    await stack.pg.psql(`delete from notes where id > 6`, { database: 'app' });
    expect(await notes()).toBe(6);
    for (const url of [stack.gateway.url, bUrl]) {
      await until(async () => {
        const all = (await sessionsOn(url)).filter((s) => s.subject === 'alice');
        return all.length === made && all.every((s) => s.recording === 'complete') ? all : undefined;
      });
      // Each replica verifies a session the other one recorded.
      const [other] = await storeRows(`select id from hoop.sessions where summary->>'subject' = 'alice' and replica <> '${await replicaIdOf(url)}' limit 1`);
      const verify = await hoop(url, ['sessions', 'verify', other!]);
      expect(verify.stdout).toMatch(/verified: \d+ chunk\(s\), \d+ events, complete/);
    }
  });

  it('sends the SIEM one audit stream from both replicas: each event once, none lost while the SIEM is down', async () => {
    const ids = (await sessionsOn(stack.gateway.url)).filter((s) => s.subject === 'alice').map((s) => s.id);
    await until(async () => (ids.every((id) => eventsOf(id).includes('session.end')) ? true : undefined), 60_000, "the sessions' events at the SIEM");
    for (const id of ids) expect(eventsOf(id)).toEqual(['session.start', 'session.end']);
    expect(new Set(siemEvents.map((e) => e.replica)).size).toBe(2);
    siemDown = true;
    const c = await connectVia(lbUrl);
    for (let i = 0; i < 4; i++) expect((await psql(c.info, ['-c', 'select 1'])).code).toBe(0);
    const during = await until(async () => {
      const all = (await sessionsOn(stack.gateway.url)).filter((s) => s.subject === 'alice' && !ids.includes(s.id));
      return all.length === 4 && all.every((s) => s.endedAt) ? all.map((s) => s.id) : undefined;
    });
    // The events wait in the store, and `hoop gateway status` says so.
    expect(await until(async () => ((await status()).match(/^audit {6}(\d+) events wait for delivery to the audit url$/m) ? true : undefined), 60_000, 'the backlog in status')).toBe(true);
    expect(during.some((id) => eventsOf(id).length > 0)).toBe(false);
    siemDown = false;
    await until(async () => (during.every((id) => eventsOf(id).includes('session.end')) ? true : undefined), 60_000, 'the backlog to reach the SIEM');
    for (const id of [...ids, ...during]) expect(eventsOf(id)).toEqual(['session.start', 'session.end']);
    expect(await status()).not.toMatch(/^audit /m);
  });

  it("bounds an identity's sessions over both replicas together: one on A and one on B, the third is refused on either; one ended, another opens", async () => {
    const token = await stack.token('dave');
    const onA = await stack.tunnel('app', token);
    const onB = await stack.tunnel('app', token, { gateway: bUrl });
    for (const url of [stack.gateway.url, bUrl]) {
      const refused = await stack.tunnel('app', token, { gateway: url }).then(
        () => undefined,
        (err: { status?: number; message?: string }) => err,
      );
      expect(refused, url).toMatchObject({ status: 429, message: expect.stringContaining('dave has 2 sessions open through the gateway, the most the policy allows (2)') });
    }
    onB.destroy();
    const again = await eventually(() => stack.tunnel('app', token), { timeout: 60_000, interval: 100 });
    expect(await again.simple('select 1')).toBeDefined();
    for (const f of [onA, again]) f.destroy();
  });

  it('releases a statement held on replica A when a reviewer approves it through replica B', async () => {
    const c = await connectVia(stack.gateway.url);
    const cl = await client(c);
    const deleting = cl.query('delete from notes');
    const id = await until(async () => {
      const ls = JSON.parse((await hoop(bUrl, ['review', 'ls', '--json'], 'bob', ['dba'])).stdout) as { reviews: Array<{ id: string; state: string; sql: string }> };
      return ls.reviews.find((r) => r.state === 'pending' && r.sql === 'delete from notes')?.id;
    });
    expect(await notes()).toBe(6);
    const approve = await hoop(bUrl, ['review', 'approve', id], 'bob', ['dba']);
    expect(approve.code).toBe(0);
    const done = await deleting;
    expect(done.rowCount).toBe(6);
    expect(await notes()).toBe(0);
    const seenOnA = JSON.parse((await hoop(stack.gateway.url, ['review', 'show', id, '--json'], 'bob', ['dba'])).stdout) as { state: string; decisions: Array<{ subject: string }> };
    expect(seenOnA).toMatchObject({ state: 'approved', decisions: [{ subject: 'bob' }] });
  });

  it('runs a runbook held through replica A once, when it is approved through B and run again through the balancer', async () => {
    const held = await hoop(stack.gateway.url, ['runbook', 'run', 'add-note', '-p', 'body=across-replicas', '--no-wait']);
    expect(held.code).toBe(4);
    const id = held.stdout.trim();
    expect((await hoop(bUrl, ['review', 'approve', id], 'bob', ['dba'])).code).toBe(0);
    const added = async (): Promise<string> => (await stack.pg.psql('select count(*) from approved_notes', { database: 'app' })).trim();
    expect(await added()).toBe('0');
    const ran = await hoop(bUrl, ['runbook', 'run', 'add-note', '-p', 'body=across-replicas', '--no-wait']);
    expect(ran.stderr).toBe('');
    expect(ran.code).toBe(0);
    // The approval is used once, whichever replica is asked next.
    for (const url of [stack.gateway.url, bUrl, lbUrl]) expect((await hoop(url, ['runbook', 'run', 'add-note', '-p', 'body=across-replicas', '--no-wait'])).code).toBe(4);
    expect(await added()).toBe('1');
  });

  it("bounds one requester's pending reviews across replicas: 20 held through A, the next raised on B is refused", async () => {
    const dora = await stack.token('dora');
    const pending = async (url: string): Promise<number> =>
      (JSON.parse((await hoop(url, ['review', 'ls', '--json'], 'bob', ['dba'])).stdout) as { reviews: Array<{ state: string; requester: { subject: string } }> }).reviews.filter(
        (r) => r.state === 'pending' && r.requester.subject === 'dora',
      ).length;
    // Clients that do not wait: each review stays pending after its session is gone.
    for (let i = 0; i < 20; i++) {
      const raw = await stack.tunnel('app', dora, { detachReviews: true });
      raw.write(queryMessage('delete from notes as d')); // not the text other tests look for
      await until(async () => ((await pending(stack.gateway.url)) === i + 1 ? true : undefined));
      raw.destroy();
    }
    // B knows them (each change is told to every replica).
    await until(async () => ((await pending(bUrl)) === 20 ? true : undefined));
    const onB = await stack.tunnel('app', dora, { gateway: bUrl, detachReviews: true });
    const answer = await onB.simple('delete from notes as d');
    const error = answer.find((m) => m.type === 0x45);
    expect(error?.body.toString()).toContain('dora has 20 statements waiting for review already');
    onB.destroy();
    expect(await pending(bUrl)).toBe(20);
  });

  it("gives a proposed session id to one session only, when two replicas are asked for it at once: its recording is that one session's", async () => {
    const token = await stack.token('bob');
    const proposed = `both-replicas-${Date.now()}`;
    const pair = await Promise.all([stack.tunnel('app', token, { sessionId: proposed }), stack.tunnel('app', token, { sessionId: proposed, gateway: bUrl })]);
    for (const [i, f] of pair.entries()) {
      expect((await f.simple(`select ${i} as which`)).some((m) => m.type === 0x44)).toBe(true);
      f.destroy();
    }
    const rows = async (): Promise<string> => (await store.psql(`select count(*) from hoop.session_claims where id = '${proposed}'`, { database: 'hoop_store' })).trim();
    expect(await rows()).toBe('1');
    const sessions = await until(
      async () => {
        const s = (
          await store.psql(
            `select id, replica from hoop.sessions where summary->>'subject' = 'bob' and (summary->>'startedAt')::timestamptz > now() - interval '1 minute' and summary->>'endedAt' is not null`,
            { database: 'hoop_store' },
          )
        )
          .trim()
          .split('\n')
          .filter(Boolean);
        return s.length >= 2 ? s : undefined;
      },
      60_000,
      'both sessions in the store',
    );
    expect(sessions.filter((l) => l.startsWith(`${proposed}|`))).toHaveLength(1);
  });

  it("knows an agent's run on every replica: begun through B, its credential works on A, and ended through B, its session on A ends", async () => {
    const alice = await stack.token('alice', ['dba', 'engineers']);
    const begun = await callApi(bUrl, stack.pki.ca, 'POST', '/v1/runs', alice, { connections: ['app'], agent: 'claude', isolation: 'bwrap' });
    expect(begun.status).toBe(201);
    const { id, token, controlToken } = begun.body as { id: string; token: string; controlToken: string };
    const onA = await stack.tunnel('app', token);
    expect((await onA.simple('select 1')).some((m) => m.type === 0x44)).toBe(true);
    // A heartbeat through A brings alice's current token (no longer in engineers): B sees the run with the groups left; one with them all again widens nothing.
    expect((await callApi(stack.gateway.url, stack.pki.ca, 'POST', `/v1/runs/${id}/heartbeat`, controlToken, { personToken: await stack.token('alice', ['dba']) })).status).toBe(200);
    expect((await callApi(bUrl, stack.pki.ca, 'GET', '/v1/whoami', token)).body).toMatchObject({ subject: 'alice', groups: ['dba'], run: { id } });
    expect((await callApi(bUrl, stack.pki.ca, 'POST', `/v1/runs/${id}/heartbeat`, controlToken, { personToken: await stack.token('alice', ['dba', 'engineers']) })).status).toBe(200);
    expect((await callApi(stack.gateway.url, stack.pki.ca, 'GET', '/v1/whoami', token)).body).toMatchObject({ groups: ['dba'] });
    expect((await callApi(bUrl, stack.pki.ca, 'POST', `/v1/runs/${id}/end`, controlToken)).status).toBe(200);
    const ended = await onA.error(30_000);
    expect(ended).toMatchObject({ severity: 'FATAL', message: `hoop: run ${id} ended (its hoop ended it); its sessions end with it` });
    expect((await callApi(stack.gateway.url, stack.pki.ca, 'GET', '/v1/whoami', token)).status).toBe(401);
  });

  it('counts an alert rule over both replicas: refusals on A and on B raise one alert, which suspends the person on both until it is cleared through either', async () => {
    const carol = await stack.token('carol');
    const onA = await stack.tunnel('app', carol, { gateway: stack.gateway.url });
    const onB = await stack.tunnel('app', carol, { gateway: bUrl });
    const idleOnB = await stack.tunnel('app', carol, { gateway: bUrl });
    expect((await onA.simple('drop table notes')).some((m) => m.type === 0x45)).toBe(true);
    expect((await onB.simple('drop table notes')).some((m) => m.type === 0x45)).toBe(true);
    await onA.simple('drop table notes').catch(() => undefined); // the third: the session ends right after its refusal
    const alertsOn = async (url: string) =>
      (JSON.parse((await hoop(url, ['alerts', 'ls', '--json'], 'audrey', ['auditors'])).stdout) as { alerts: Array<{ id: string; subject: string; count: number; state: string }> }).alerts.filter(
        (a) => a.subject === 'carol',
      );
    // One alert, counted over both replicas, known to both.
    const [alert] = await eventually(
      async () => {
        const [a, b] = [await alertsOn(stack.gateway.url), await alertsOn(bUrl)];
        expect(a).toEqual([expect.objectContaining({ count: 3, state: 'open' })]);
        expect(b.map((x) => x.id)).toEqual(a.map((x) => x.id));
        return a;
      },
      { timeout: 60_000, interval: 150 },
    );
    expect(await storeRows("select count(*) from hoop.alerts where rule = 'drop-burst'")).toEqual(['1']);
    // Raised on A, it ends carol's session on B too, and both refuse her new ones.
    expect(await idleOnB.closed(30_000)).toBe(true);
    for (const url of [stack.gateway.url, bUrl]) {
      const refused = await stack.tunnel('app', carol, { gateway: url }).then(
        () => 'admitted',
        (e: Error) => e.message,
      );
      expect(refused).toContain(`carol is suspended by alert ${alert!.id}`);
    }
    // Cleared through B (by an auditor), carol connects through A again.
    const cleared = await hoop(bUrl, ['alerts', 'clear', alert!.id, '--reason', 'a test of the rule'], 'audrey', ['auditors']);
    expect(cleared.code, cleared.stderr).toBe(0);
    const again = await eventually(() => stack.tunnel('app', carol, { gateway: stack.gateway.url }), { timeout: 60_000, interval: 150 });
    expect((await again.simple('select 1')).some((m) => m.type === 0x44)).toBe(true);
    again.stream.end();
  });

  it('weighs a rows-read rule by rows over both replicas: the rows of pg_am read on A and on B raise one alert of both', async () => {
    const bob = await stack.token('bob');
    const per = Number((await stack.pg.psql('select count(*) from pg_am')).trim());
    expect(per).toBeGreaterThan(5);
    for (const url of [stack.gateway.url, bUrl]) {
      const t = await stack.tunnel('app', bob, { gateway: url });
      expect((await t.simple('select amname from pg_am')).filter((m) => m.type === 0x44)).toHaveLength(per);
      t.stream.end();
    }
    const alerts = await eventually(
      async () => {
        const listed = (JSON.parse((await hoop(bUrl, ['alerts', 'ls', '--json'], 'audrey', ['auditors'])).stdout) as { alerts: Array<{ rule: string; subject: string; count: number; event: string }> })
          .alerts;
        const mine = listed.filter((a) => a.subject === 'bob' && a.rule === 'bulk-am');
        expect(mine).toEqual([expect.objectContaining({ count: 2 * per, event: 'rows-read' })]);
        return mine;
      },
      { timeout: 60_000, interval: 150 },
    );
    expect(alerts).toHaveLength(1);
    // Counted in the store, weighed by rows; raised, its window starts afresh.
    expect(await storeRows("select count(*) from hoop.alert_hits where rule = 'bulk-am'")).toEqual(['0']);
  });

  it("tells of an agent's first use of a connection once, whichever replica its sessions reach (the shared index knows)", async () => {
    const sessionOfRun = async (url: string): Promise<void> => {
      const begun = await callApi(url, stack.pki.ca, 'POST', '/v1/runs', await stack.token('bob'), { connections: ['app'], agent: 'aider', isolation: 'bwrap' });
      const raw = await stack.tunnel('app', (begun.body as { token: string }).token, { gateway: url });
      expect((await raw.simple('select 1')).some((m) => m.type === 0x44)).toBe(true);
      raw.stream.end();
      await raw.closed();
    };
    const firstUses = () => siemEvents.filter((e) => e.event === 'agent.first-use' && (e as { agent?: string }).agent === 'aider');
    await sessionOfRun(stack.gateway.url);
    await eventually(() => expect(firstUses()).toHaveLength(1), { timeout: 60_000, interval: 150 });
    // Once the store lists that session, replica B (which never saw aider) knows it is no first use.
    await eventually(async () => expect(await storeRows("select count(*) from hoop.sessions where summary->>'agent' = 'aider'")).toEqual(['1']), { timeout: 60_000, interval: 150 });
    await sessionOfRun(bUrl);
    await eventually(async () => expect(await storeRows("select count(*) from hoop.sessions where summary->>'agent' = 'aider' and summary ? 'endedAt'")).toEqual(['2']), {
      timeout: 30_000,
      interval: 150,
    });
    // The second session's end is at the SIEM; a first use is told once the index answers (asked when the session opened), and the
    // audit's batches go out every second: a second first use would be in one batch later.
    await eventually(() => expect(siemEvents.filter((e) => e.event === 'session.end' && (e as { agent?: string }).agent === 'aider')).toHaveLength(2), { interval: 150 });
    await quietFor(1000);
    expect(firstUses()).toHaveLength(1);
  });

  it('knows a direct credential on every replica: minted through B, it signs in at A; a CancelRequest in the clear at B cancels its query on A; revoked through B, its session on A ends', async () => {
    const alice = await stack.token('alice');
    const minted = await callApi(bUrl, stack.pki.ca, 'POST', '/v1/connections/app/direct', alice, {});
    expect(minted.status).toBe(201);
    const { id, user, password } = minted.body as { id: string; user: string; password: string };
    // A run's own count against the run in the shared store too.
    const run = (await callApi(bUrl, stack.pki.ca, 'POST', '/v1/runs', alice, { connections: ['app'], agent: 'claude', isolation: 'none' })).body as {
      id: string;
      token: string;
      controlToken: string;
    };
    expect((await callApi(stack.gateway.url, stack.pki.ca, 'POST', '/v1/connections/app/direct', run.token, {})).status).toBe(201);
    await callApi(stack.gateway.url, stack.pki.ca, 'POST', `/v1/runs/${run.id}/end`, run.controlToken);
    const onA = await RawFrontend.direct(stack.gateway.port, stack.pki.ca);
    await onA.startup(password, [
      ['user', user],
      ['database', 'app'],
    ]);
    const key = (await onA.messagesSince(0, 1)).find((m) => m.type === 0x4b)!.body;
    onA.write(queryMessage('select pg_sleep(30) /* direct on A */'));
    await eventually(async () =>
      expect((await stack.pg.psql("select count(*) from pg_stat_activity where query like '%direct on A%' and state = 'active' and pid <> pg_backend_pid()")).trim()).toBe('1'),
    );
    const clear = await RawFrontend.tcp(Number(new URL(bUrl).port));
    clear.write(cancelRequest(key.readUInt32BE(0), key.readUInt32BE(4)));
    expect(await onA.error(30_000)).toMatchObject({ code: '57014' });
    expect((await callApi(bUrl, stack.pki.ca, 'DELETE', `/v1/direct/${id}`, alice)).status).toBe(200);
    expect(await onA.error(30_000)).toMatchObject({ severity: 'FATAL', message: expect.stringContaining(`direct credential ${id} was revoked`) });
  });

  it('cancels a query running on replica A with a CancelRequest that reaches replica B, only for the identity that owns the session', async () => {
    const onA = await connectVia(stack.gateway.url);
    const onB = await connectVia(bUrl);
    const cl = await client(onA);
    const sleeping = cl.query('select pg_sleep(30)').then(
      () => undefined,
      (e: { code?: string }) => e,
    );
    // The statement runs on the server: a cancel now has something to cancel.
    await eventually(async () => expect((await stack.pg.psql("select count(*) from pg_stat_activity where query = 'select pg_sleep(30)' and state = 'active'")).trim()).toBe('1'));
    const { processID, secretKey } = cl as unknown as { processID: number; secretKey: number };
    const cancel = Buffer.alloc(16);
    cancel.writeInt32BE(16, 0);
    cancel.writeInt32BE(80877102, 4);
    cancel.writeInt32BE(processID, 8);
    cancel.writeInt32BE(secretKey, 12);
    const send = (port: number): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        const s = netConnect(port, '127.0.0.1', () => s.end(cancel));
        s.on('close', () => resolve());
        s.on('error', reject);
      });
    // Another identity holding the right key, through the other replica: nothing is cancelled.
    const asBob = await connectVia(bUrl, 'bob');
    await send(asBob.info.port);
    // A window in which a wrongly honoured cancel would end the statement.
    expect(await Promise.race([sleeping.then(() => 'ended'), quietFor(1500).then(() => 'still running')])).toBe('still running');
    await send(onB.info.port);
    // 57014 (query_canceled): the cancel through B ended it, not the end of its 30 s.
    const err = await sleeping;
    expect(err).toMatchObject({ code: '57014' });
  });

  it('keeps running sessions going while the store is down, refuses new ones saying why, and recovers by itself', async () => {
    const c = await connectVia(stack.gateway.url);
    const cl = await client(c);
    await cl.query("insert into notes(body) values ('before')");
    const onB = await client(await connectVia(bUrl));
    await onB.query('select 1');
    await store.halt();
    const down = Date.now();
    try {
      await until(async () => ((await psql(c.info, ['-c', 'select 1'])).stderr.includes('cannot reach its store') ? true : undefined), 60_000, 'new sessions to be refused');
      // The session that was running is untouched: the data path never waits on the store.
      for (let i = 0; i < 20; i++) await cl.query('insert into notes(body) values ($1)', [`during ${i}`]);
      // An outage longer than the dead-after time (5 s; shorter, a busy machine's late heartbeat was taken for a death): no replica could say it was alive meanwhile.
      await until(async () => (Date.now() - down > 6_000 ? true : undefined), 60_000, 'an outage of 6 s');
    } finally {
      await store.start();
    }
    await until(async () => ((await psql(c.info, ['-c', "insert into notes(body) values ('after')"])).code === 0 ? true : undefined), 60_000, 'new sessions to work again');
    await bothTakeNewSessions();
    expect(await notes()).toBe(22);
    // Nobody took anybody over for the outage: B's session goes on, and both replicas are live.
    expect((await onB.query('select 2 as two')).rows).toEqual([{ two: 2 }]);
    expect(stack.logs().filter((l) => l.event === 'replica.taken-over')).toEqual([]);
    expect(bLog).not.toContain('replica.fenced');
    await onB.end();
    await cl.end();
    // Its recording reaches the store once it ends, complete, and is listed by the other replica.
    await until(async () => ((await sessionsOn(bUrl)).some((s) => s.statements === 21 && s.recording === 'complete') ? true : undefined), 60_000, 'the recording to reach the store');
  });

  // How many sessions a replica holds, and what an idle one costs its memory, is the benchmark's: test/perf/idle-session-memory.test.ts (npm run bench:tests).
  it('holds hundreds of concurrent sessions over both replicas, through a store restart', async () => {
    const token = await stack.token('alice');
    const [aId, bId] = [await replicaIdOf(stack.gateway.url), await replicaIdOf(bUrl)];
    const since = (await storeRows('select now()'))[0]!;
    const open = async (url: string, n: number): Promise<RawFrontend[]> => {
      const out: RawFrontend[] = [];
      for (let i = 0; i < n; i += 50) out.push(...(await Promise.all(Array.from({ length: Math.min(50, n - i) }, () => stack.tunnel('app', token, { gateway: url })))));
      return out;
    };
    loadOnA = await open(stack.gateway.url, PER_REPLICA);
    loadOnB = await open(bUrl, PER_REPLICA);
    // Exactly as many more running on each replica, in the store.
    const added = await until(
      async () => {
        const now = await runningPerReplica(since);
        const more = [aId, bId].map((id) => now.get(id) ?? 0);
        return more.every((n) => n === PER_REPLICA) ? more : undefined;
      },
      60_000,
      `${2 * PER_REPLICA} running sessions in the store`,
    );
    expect(added).toEqual([PER_REPLICA, PER_REPLICA]);
    await store.halt();
    try {
      // Under load, with the store down: every session still answers.
      const sample = [...loadOnA.slice(0, 25), ...loadOnB.slice(0, 25)];
      const answers = await Promise.all(sample.map((f) => f.simple('select 1')));
      expect(answers.every((m) => m.some((x) => x.type === 0x44))).toBe(true);
    } finally {
      await store.start();
    }
    const last = await Promise.all([...loadOnA.slice(-25), ...loadOnB.slice(-25)].map((f) => f.simple('select 2')));
    expect(last.every((m) => m.some((x) => x.type === 0x44))).toBe(true);
    await bothTakeNewSessions();
  });

  it('when replica B is killed mid-session: its clients get an error, A takes it over, and clients reconnect through the balancer', async () => {
    const c = await connectVia(bUrl);
    const idle = await client(c);
    await idle.query("insert into notes(body) values ('on b')");
    const held = await client(c);
    const deleting = held.query('delete from notes').then(
      () => 'ran',
      (e: Error) => e.message,
    );
    const reviewId = await until(async () => {
      const ls = JSON.parse((await hoop(stack.gateway.url, ['review', 'ls', '--json'], 'bob', ['dba'])).stdout) as { reviews: Array<{ id: string; state: string; sql: string }> };
      return ls.reviews.find((r) => r.state === 'pending' && r.sql === 'delete from notes')?.id;
    });
    const [aId, bId] = [await replicaIdOf(stack.gateway.url), await replicaIdOf(bUrl)];
    // A second statement held on B, approved in the store as B stops (it never learns of it, never claims it to run): the take-over must not leave it approved.
    const held2 = await client(c);
    const deleting2 = held2.query('DELETE FROM notes').then(
      () => 'ran',
      (e: Error) => e.message,
    );
    const reviewId2 = await until(async () => (await storeRows(`select id from hoop.reviews where state = 'pending' and review->>'sql' = 'DELETE FROM notes'`))[0]);
    // A statement running on B's upstream, its cancel key in the store: A's take-over cancels it.
    const sleeper = await client(c);
    const sleeping = sleeper.query('select pg_sleep(40)').then(
      () => 'ran',
      (e: Error) => e.message,
    );
    const sleepers = async (): Promise<string[]> =>
      (await stack.pg.psql("select pid from pg_stat_activity where query = 'select pg_sleep(40)' and state = 'active'", { database: 'app' })).split('\n').filter(Boolean);
    const sleepPid = await until(async () => (await sleepers())[0]);
    await until(
      async () => ((await storeRows(`select count(*) from hoop.sessions where replica = '${bId}' and upstream->>'processId' = '${sleepPid}'`))[0] === '1' ? true : undefined),
      60_000,
      "the sleeper's upstream key in the store",
    );
    // B's journal, as far as a commit of the sleeper's statement, is in the store: what A cuts B's sessions from.
    await eventually(
      async () => {
        const copies = await storeRows(`select translate(encode(data, 'base64'), E'\\n', '') from hoop.recording_journals where replica = '${bId}' order by name, "offset"`);
        expect(copies.some((c) => gunzipSync(Buffer.from(c, 'base64')).includes(Buffer.from('select pg_sleep(40)')))).toBe(true);
      },
      { timeout: 60_000, interval: 100 },
    );
    const openOnB = (await storeRows(`select id from hoop.sessions where replica = '${bId}' and ended_at is null`)).sort();
    expect(openOnB.length).toBeGreaterThanOrEqual(PER_REPLICA + 2);
    const bobToken = await stack.token('bob', ['dba']);
    b.kill('SIGSTOP');
    await storeRows(`update hoop.reviews set state = 'approved', version = version + 1, review = review || '{"state": "approved"}' where id = '${reviewId2}'`);
    b.kill('SIGKILL');
    // B died a moment ago (its heartbeat still fresh, not taken over): its life line dropped with it, so an approval through A is refused at once, never saved (nothing would run it).
    await until(
      async () =>
        (await storeRows(`select count(*) from pg_locks where locktype = 'advisory' and classid = hashtext('hoop.replica')::oid and objid = hashtext('${bId}')::oid`))[0] === '0' ? true : undefined,
      60_000,
      "B's life line to drop",
    );
    const approving = callApi(stack.gateway.url, stack.pki.ca, 'POST', `/v1/reviews/${reviewId}/approve`, bobToken, {});
    const lost = await idle.query('select 1').then(
      () => 'answered',
      (e: Error) => e.message,
    );
    expect(lost).not.toBe('answered');
    expect(await deleting).not.toBe('ran');
    // A takes B over: its sessions truncated, its held statement expired (never approved).
    const truncated = await until(
      async () => {
        const cut = (await sessionsOn(stack.gateway.url)).filter((s) => s.reason === 'gateway-stopped');
        return cut.length >= 2 ? cut : undefined;
      },
      60_000,
      "B's sessions to be taken over",
    );
    expect(truncated.every((s) => s.recording === 'truncated')).toBe(true);
    // Exactly the sessions B held (the idle ones of the load test among them) are cut, each truncated; A's answer on.
    expect((await storeRows(`select id from hoop.sessions where summary->>'reason' = 'gateway-stopped' and summary->>'recording' = 'truncated'`)).sort()).toEqual(openOnB);
    expect(loadOnB.every((f) => f.ended)).toBe(true);
    const stillOnA = await Promise.all(loadOnA.slice(0, 50).map((f) => f.simple('select 3')));
    expect(stillOnA.every((m) => m.some((x) => x.type === 0x44))).toBe(true);
    // Once the take-over is committed, A cuts each of B's sessions from the journal it sent: every one of them has a signed recording in the store, and B's journals are gone.
    await eventually(
      async () => {
        expect(await storeRows(`select count(*) from hoop.recording_journals where replica = '${bId}'`)).toEqual(['0']);
        expect(
          await storeRows(
            `select count(*) from hoop.sessions s where replica = '${bId}' and summary->>'reason' = 'gateway-stopped' and not exists (select 1 from hoop.recording_files f where f.session = s.id and f.name like 'checkpoint-%.sig')`,
          ),
        ).toEqual(['0']);
      },
      { timeout: 60_000, interval: 100 },
    );
    // A truncated recording is no whole evidence: verify fails unless told to accept it.
    const verify = await hoop(stack.gateway.url, ['sessions', 'verify', truncated[0]!.id]);
    expect(verify.stdout).toContain('truncated at its last checkpoint');
    expect(verify.code).toBe(1);
    expect(verify.stderr).toContain('verifies only up to its last checkpoint');
    expect(await hoop(stack.gateway.url, ['sessions', 'verify', truncated[0]!.id, '--accept-truncated'])).toMatchObject({ code: 0 });
    const review = JSON.parse((await hoop(stack.gateway.url, ['review', 'show', reviewId, '--json'], 'bob', ['dba'])).stdout) as { state: string; closedBecause: string };
    expect(review).toMatchObject({ state: 'expired', closedBecause: 'the gateway replica holding its statement stopped; the statement did not run' });
    // Before: approved, though nothing ran it.
    expect(JSON.parse((await hoop(stack.gateway.url, ['review', 'show', reviewId2, '--json'], 'bob', ['dba'])).stdout)).toMatchObject({
      state: 'expired',
      closedBecause: 'the gateway replica holding its statement stopped as it was approved, before it ran it; the statement did not run',
    });
    expect(await deleting2).not.toBe('ran');
    await until(async () => ((await sleepers()).length === 0 ? true : undefined), 60_000, "B's running statement to be cancelled");
    expect(await sleeping).not.toBe('ran');
    expect(await storeRows(`select count(*) from hoop.sessions where upstream is not null and ended_at is not null`)).toEqual(['0']);
    const approved = await approving;
    expect(approved.status).toBe(409);
    // Reaching B's holder as it died, A once it had taken over, or A as it took over: each way, said why nothing ran.
    expect(JSON.stringify(approved.body)).toMatch(
      /the gateway process holding its statement is gone|expired already \(since [^)]*\): the gateway replica holding its statement stopped|changed while you decided \(it is expired now: the gateway replica holding its statement stopped/,
    );
    // The SIEM hears of it from A: B's sessions ended, and the review it held expired.
    await until(async () => (siemEvents.some((e) => e.review === reviewId && e.event === 'review.decided') ? true : undefined), 60_000, 'the expired review at the SIEM');
    expect(siemEvents.filter((e) => e.review === reviewId && e.event === 'review.decided')).toEqual([expect.objectContaining({ state: 'expired', because: review.closedBecause, replica: aId })]);
    await until(async () => (openOnB.every((id) => eventsOf(id).includes('session.end')) ? true : undefined), 60_000, "the taken-over sessions' ends at the SIEM");
    // One end per session B held, each told by A.
    const endedByTakeOver = siemEvents.filter((e) => e.event === 'session.end' && e.takenOverFrom === bId);
    expect(endedByTakeOver.map((e) => e.session).sort()).toEqual(openOnB);
    expect(endedByTakeOver.every((e) => e.reason === 'gateway-stopped' && e.replica === aId)).toBe(true);
    expect(await notes()).toBeGreaterThan(0);
    expect(await status()).toMatch(/^replicas {3}1 live, 1 stopped$/m);
    // Through the balancer, new connections reach A.
    const again = await connectVia(lbUrl);
    for (let i = 0; i < 3; i++) expect((await psql(again.info, ['-c', 'select 1'])).code).toBe(0);
  });

  it('a replica paused past the dead-after time is taken over; awake, it ends the sessions the store says ended, and serves again', async () => {
    if (b.exitCode === null && b.signalCode === null) {
      b.kill('SIGKILL');
      await new Promise((resolve) => b.once('exit', resolve));
    }
    bLog = '';
    await startReplicaB();
    const bId = await replicaIdOf(bUrl);
    const onB = await client(await connectVia(bUrl));
    await onB.query('select 1');
    const told = new Promise<{ code?: string; message: string }>((resolve) => onB.once('error', resolve));
    const session = await until(async () => (await storeRows(`select id from hoop.sessions where replica = '${bId}' and ended_at is null`))[0], 60_000, "B's session in the store");
    b.kill('SIGSTOP');
    try {
      await until(
        async () => ((await storeRows(`select id from hoop.sessions where id = '${session}' and summary->>'reason' = 'gateway-stopped'`)).length ? true : undefined),
        60_000,
        'A to take the paused B over',
      );
    } finally {
      b.kill('SIGCONT');
    }
    await until(async () => (bLog.includes('replica.fenced') ? true : undefined), 60_000, 'B to find itself taken over');
    // Its session ended as the store says (57P01: connect again), and B takes new sessions again.
    expect(await told).toMatchObject({ code: '57P01', message: expect.stringContaining('another replica ended its sessions') });
    expect(
      await onB.query('select 1').then(
        () => 'answered',
        () => 'closed',
      ),
    ).toBe('closed');
    const fresh = await connectVia(bUrl);
    await until(async () => ((await psql(fresh.info, ['-c', 'select 1'])).code === 0 ? true : undefined), 60_000, 'B to take new sessions');
    await until(async () => ((await status()).match(/^replicas {3}2 live/m) ? true : undefined), 60_000, 'both replicas live');
  });
});
