/**
 * Early statement checks in `hoop connect`: with the policy bundle given to both ends, a denied
 * statement is refused on this machine (same 42501 message, the gateway never sees it), allowed
 * statements run. Every tunnel's policy commit is compared with the CLI's: a config repo is
 * pulled when the gateway moves on; when the CLI cannot reach the gateway's commit its sessions
 * are judged by the gateway only (said once), and early checks come back when the commits match
 * again. A working tree without a commit is still used (said once); a failing `/v1/whoami`
 * leaves the gateway's checks only.
 */
import { listenOnLoopback } from '../harness/listen.js';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as http from 'node:http';
import * as https from 'node:https';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgClient, psql } from '../harness/clients.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml, type PgCluster } from '../harness/postgres.js';
import { eventually } from '../harness/wait.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';

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
${connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })}access:
  - { name: writers, subjects: [alice], connections: [app], mode: read-write }
statements:
  rules:
    - name: no-secrets
      match: { tables: [public.secrets] }
      action: deny
      message: the secrets table is off limits
${extraRules}`;

/** `hoop connect app --json <args>` with the CLI's own config dir and PATH (for git); resolves once it listens. */
async function startConnect(token: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<RunningConnect> {
  const c = await stack.connect('app', token, args, { HOOP_CONFIG_DIR: join(base, 'cli-config'), PATH: process.env.PATH, ...extraEnv });
  running.push(c);
  return c;
}

/** `hoop connect app --json` with a config repo in the environment (its copy under HOOP_CONFIG_DIR). */
function connectWithRepo(token: string, policyRepoPath = repo): Promise<RunningConnect> {
  return startConnect(token, ['--gateway', stack.gateway.url], { HOOP_POLICY_REPO: policyRepoPath, HOOP_POLICY_REF: 'main' });
}

/**
 * A TLS front of the gateway that answers `GET /v1/whoami` with 404 (as a gateway without it
 * would) and relays every other connection byte for byte. The CLI opens one connection per request.
 */
async function gatewayWithoutWhoami(): Promise<{ url: string; close(): Promise<void> }> {
  const cert = await stack.pki.issue('no-whoami', ['IP:127.0.0.1']);
  // Request by request (the CLI keeps its API connections alive): /v1/whoami is not served,
  // everything else, tunnel Upgrades included, goes to the real gateway.
  const server = https.createServer({ cert: cert.cert, key: cert.key }, (req, res) => {
    if (req.url === '/v1/whoami') {
      const body = JSON.stringify({ error: { code: 'NOT_FOUND', message: 'no such endpoint: /v1/whoami' } });
      res.writeHead(404, { 'Content-Type': 'application/json' }).end(body);
      return;
    }
    const upstream = https.request({ host: '127.0.0.1', port: stack.gateway.port, ca: stack.pki.ca, method: req.method, path: req.url, headers: req.headers, agent: false }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('upgrade', (req: http.IncomingMessage, client: Duplex, head: Buffer) => {
    const upstream = tls.connect({ host: '127.0.0.1', port: stack.gateway.port, ca: stack.pki.ca });
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    const lines = [`${req.method} ${req.url} HTTP/1.1`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
    upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
    upstream.write(head);
    client.pipe(upstream).pipe(client);
  });
  const port = await listenOnLoopback(server);
  return {
    url: `https://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The `hoop: ...` lines of `stderr` that contain `text`. */
const linesWith = (stderr: string, text: string): string[] => stderr.split('\n').filter((l) => l.includes(text));

function refusedAtGateway(): Array<Record<string, unknown>> {
  return stack.logs().filter((l) => l.event === 'statement.refused');
}

beforeAll(async () => {
  policyRepo = new PolicyGitRepo('hoop-connect-policy-');
  ({ base, dir: repo } = policyRepo);
  stack = await startStack({
    policy: ({ pg }) => {
      first = commit(bundle(pg));
      return policyRepo.gatewayBlock(['${env:APP_PASSWORD}']);
    },
  });
  await stack.pg.psql(
    `create table notes(id serial primary key, body text);
     create table secrets(id int, value text);
     create table drafts(id int, body text);
     insert into notes(body) values ('hello');
     insert into drafts values (1, 'draft');
     grant all on notes, notes_id_seq, secrets, drafts to public`,
    { database: 'app' },
  );
});

afterAll(async () => {
  for (const c of running) await c.stop();
  await stack?.close();
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('hoop connect with the policy bundle', () => {
  it("refuses a denied statement on the laptop with the gateway's message; the gateway never sees it", async () => {
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

    // The CLI's record of the pg session holds what it refused itself; the gateway's record never saw it. They still agree on the rest.
    await c.stop();
    running.splice(running.indexOf(c), 1);
    const ls = await stack.run(['sessions', 'ls', '--json', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('alice') });
    const sessions = (JSON.parse(ls.stdout) as { sessions: Array<{ id: string; statements: number; clientRecord?: string }> }).sessions.filter((s) => s.clientRecord === 'complete');
    expect(sessions.length).toBeGreaterThanOrEqual(3);
    for (const s of sessions.slice(0, 3)) {
      // The CLI's record may be in before the gateway has signed its own (a loaded machine ends sessions late).
      await eventually(
        async () => {
          const verify = await stack.run(['sessions', 'verify', s.id, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('alice') });
          expect(verify.stdout).toMatch(/cross-check: the gateway's and the CLI's records agree/);
        },
        { timeout: 60_000, interval: 200 },
      );
    }
    // The CLI told the gateway what it refused: the gateway's record keeps it on the CLI's word, counts it, and shows it (not the stand-in's error).
    const withRefusals = (JSON.parse(ls.stdout) as { sessions: Array<{ id: string; refused: number }> }).sessions.filter((s) => s.refused > 0);
    expect(withRefusals.length).toBeGreaterThanOrEqual(2);
    const shows = await Promise.all(
      withRefusals.map(async (s) => (await stack.run(['sessions', 'show', s.id, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('alice') })).stdout),
    );
    const psqlShow = shows.find((t) => t.includes('=> select * from secrets'));
    expect(psqlShow).toMatch(/=> select \* from secrets\n-- refused by hoop connect's early check before it reached the gateway \(rule "no-secrets"\)/);
    for (const t of shows) expect(t).not.toContain('hoop_denied_');
  });

  it("without a bundle the gateway refuses (today's behaviour)", async () => {
    const c = await stack.connect('app', await stack.token('alice'));
    running.push(c);
    const before = refusedAtGateway().length;
    const denied = await psql(c.info, ['-c', 'select * from secrets']);
    expect(denied.stderr).toContain('hoop: denied by rule "no-secrets": the secrets table is off limits');
    expect(refusedAtGateway().length).toBe(before + 1);
    expect(c.stderr()).not.toContain('early statement checks use');
  });

  it("a --policy-dir at another commit than the gateway's: the gateway alone judges, said once", async () => {
    const second = commit(bundle(stack.pg, `    - name: no-notes\n      match: { tables: [notes] }\n      action: deny\n      message: notes are closed\n`));
    const c = await stack.connect('app', await stack.token('alice'), ['--policy-dir', repo]);
    running.push(c);
    const before = refusedAtGateway().length;
    // Denied by the CLI's (newer) commit, allowed by the gateway's: it runs.
    const a = await psql(c.info, ['-At', '-c', 'select body from notes order by id limit 1']);
    expect(a.stderr).toBe('');
    expect(a.stdout.trim()).toBe('hello');
    const b = await psql(c.info, ['-c', 'select * from secrets']);
    expect(b.stderr).toContain('hoop: denied by rule "no-secrets": the secrets table is off limits');
    expect(refusedAtGateway().length).toBe(before + 1);
    expect(linesWith(c.stderr(), 'judged by the gateway only')).toEqual([
      `hoop: the gateway uses commit ${first} but early statement checks have commit ${second} of ${repo}; statements are now judged by the gateway only`,
    ]);
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

  it('judges a later client with the commit the gateway pulled meanwhile', async () => {
    const c = await connectWithRepo(await stack.token('alice'));
    const before = refusedAtGateway().length;
    const a = await psql(c.info, ['-c', 'select body from notes']);
    expect(a.stderr).toContain('hoop: denied by rule "no-notes-2": notes are closed again');

    const third = commit(bundle(stack.pg, `    - name: no-drafts\n      match: { tables: [drafts] }\n      action: deny\n      message: drafts stay private\n`));
    expect(await stack.gateway.policy!.refresh()).toMatchObject({ changed: true, commit: third });
    // The same hoop connect, a new client: notes are open under the new commit, drafts closed, both judged here.
    const b = await psql(c.info, ['-At', '-c', 'select body from notes order by id limit 1']);
    expect(b.stderr).toBe('');
    expect(b.stdout.trim()).toBe('hello');
    const d = await psql(c.info, ['-c', 'select * from drafts']);
    expect(d.stderr).toContain('hoop: denied by rule "no-drafts": drafts stay private');
    expect(refusedAtGateway().length).toBe(before);
    expect(c.stderr()).not.toContain('gateway only');
    expect(c.stderr()).not.toContain('early statement checks');
  });

  it("a config repo that lacks the gateway's commit: the gateway alone judges until a later commit matches again", async () => {
    const lagging = join(base, 'lagging');
    policyRepo.git('clone', '-q', repo, lagging);
    const laggingGit = (...args: string[]): string => policyRepo.git('-C', lagging, ...args);
    const behind = laggingGit('rev-parse', 'HEAD');
    const ahead = commit(bundle(stack.pg));
    expect(await stack.gateway.policy!.refresh()).toMatchObject({ changed: true, commit: ahead });

    const c = await connectWithRepo(await stack.token('alice'), lagging);
    const before = refusedAtGateway().length;
    // The CLI's commit denies drafts, the gateway's allows them: they are read.
    for (let i = 0; i < 2; i++) {
      const r = await psql(c.info, ['-At', '-c', 'select body from drafts']);
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe('draft');
    }
    const s = await psql(c.info, ['-c', 'select * from secrets']);
    expect(s.stderr).toContain('hoop: denied by rule "no-secrets"');
    expect(refusedAtGateway().length).toBe(before + 1);
    expect(linesWith(c.stderr(), 'judged by the gateway only')).toEqual([
      `hoop: the gateway uses commit ${ahead} but early statement checks have commit ${behind} of ${lagging}; statements are now judged by the gateway only`,
    ]);

    // The clone catches up and the gateway moves on: the next client is judged here again.
    const latest = commit(bundle(stack.pg, `    - name: no-drafts-again\n      match: { tables: [drafts] }\n      action: deny\n      message: drafts are closed again\n`));
    laggingGit('pull', '-q', '--ff-only');
    expect(await stack.gateway.policy!.refresh()).toMatchObject({ changed: true, commit: latest });
    const again = refusedAtGateway().length;
    const d = await psql(c.info, ['-c', 'select * from drafts']);
    expect(d.stderr).toContain('hoop: denied by rule "no-drafts-again": drafts are closed again');
    expect(refusedAtGateway().length).toBe(again);
    expect(linesWith(c.stderr(), 'judged here first again')).toEqual([`hoop: statements are judged here first again: early checks and the gateway both use commit ${latest}`]);
    expect(linesWith(c.stderr(), 'judged by the gateway only')).toHaveLength(1);
  });

  it('a working tree without a commit is still used for early checks, said once', async () => {
    const tree = join(base, 'tree');
    mkdirSync(tree);
    writeFileSync(join(tree, 'hoop.yaml'), bundle(stack.pg, `    - name: tree-notes\n      match: { tables: [notes] }\n      action: deny\n      message: notes are closed in this tree\n`));
    const gatewayCommit = stack.gateway.policy!.current().commit;
    const c = await stack.connect('app', await stack.token('alice'), ['--policy-dir', tree]);
    running.push(c);
    const before = refusedAtGateway().length;
    for (let i = 0; i < 2; i++) {
      const r = await psql(c.info, ['-c', 'select body from notes']);
      expect(r.stderr).toContain('hoop: denied by rule "tree-notes": notes are closed in this tree');
    }
    expect(refusedAtGateway().length).toBe(before);
    expect(linesWith(c.stderr(), 'early statement checks')).toEqual([
      `hoop: early statement checks use the working tree of ${tree} while the gateway uses commit ${gatewayCommit}; the gateway still decides`,
    ]);
  });

  it('when /v1/whoami fails, hoop connect still starts and the gateway alone judges', async () => {
    const front = await gatewayWithoutWhoami();
    try {
      const token = await stack.token('alice');
      const c = await startConnect(token, ['--gateway', front.url, '--policy-dir', repo]);
      const before = refusedAtGateway().length;
      const s = await psql(c.info, ['-c', 'select * from secrets']);
      expect(s.stderr).toContain('hoop: denied by rule "no-secrets"');
      expect(refusedAtGateway().length).toBe(before + 1);
      expect((await psql(c.info, ['-At', '-c', 'select body from notes order by id limit 1'])).stdout.trim()).toBe('hello');
      expect(linesWith(c.stderr(), 'hoop:')).toEqual([`hoop: cannot ask the gateway who you are (${front.url} does not serve /v1/whoami); statements are judged by the gateway only`]);
      expect(c.stderr()).not.toContain(token);
      await c.stop();
    } finally {
      await front.close();
    }
  });
});
