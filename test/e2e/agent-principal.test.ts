/**
 * An agent under `hoop run` is a principal of its own and never its person, tried as an attacker
 * would, with the built CLI and bubblewrap:
 * - the contained agent looks for credentials in its environment, under every hoop directory of
 *   its person and in every process it can see, and tries each on the gateway's API: it finds
 *   only its run's, which may not decide reviews, ask for access, read sessions, register keys,
 *   begin runs or upload records; hoop with every hoop variable unset reaches nothing; `hoop
 *   review approve`, `hoop request` and `hoop login` inside the run are refused; the review stays
 *   pending and the database holds only what the run may write;
 * - once the run ended (or its hoop was killed), every credential it handed out is refused;
 * - a policy singles the agent out: its write is held for review while the same person's own
 *   psql runs the same kind of write; a run that is not contained is refused where the policy
 *   says so; the session index and the review name the agent and how it came;
 * - the kernel keyrings and TIOCSTI are refused inside; a runtime directory another user made
 *   first is refused, naming it; a decision needs a recent sign-in where the policy says so.
 */
import { chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { type ChildProcess, spawnSync } from 'node:child_process';
import { networkInterfaces, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installRoot } from '../../src/agent/sandbox.js';
import { ProfileStore } from '../../src/auth/profiles.js';
import { FileSecretStore } from '../../src/auth/secret-store.js';
import { callApi, type ApiAnswer } from '../harness/api.js';
import { HOOP_BIN, spawnHoop, type HoopProcessResult } from '../harness/hoop-process.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml, type PgCluster } from '../harness/postgres.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { psql } from '../harness/clients.js';
import { eventually } from '../harness/wait.js';
import { givePerson, personDir, testPeople, type TestPerson } from '../harness/people.js';

const ATTACKER = resolve(import.meta.dirname, '../fixtures/agent-attacker.mjs');
const REACH = resolve(import.meta.dirname, '../fixtures/agent-reach.mjs');
let stack: HoopStack;
let cluster: PgCluster;
let repo: PolicyGitRepo;
let alice: string;
/** Root's places (this process's user's), for the tests that are not tried as every person. */
let places: Places;
let aliceConnect: RunningConnect;
const PEOPLE = testPeople();
let bobReview: string;

/** The policy, with `runs` its runs: section and `extra` more sections. */
const policy = (runs = 'heartbeatTimeout: 5s', extra = ''): string => `version: 1
connections:
${connectionYaml(cluster, { name: 'app', password: '${env:APP_PASSWORD}' })}access:
  - { name: people, subjects: [alice, bob], connections: [app], mode: read-write }
statements:
  reviewers:
    - { groups: [dba], timeout: 10min }
  rules:
    - { name: agents-writes-review, match: { via: [run, mcp], kinds: [update, delete] }, action: review, message: "an agent's writes need a reviewer" }
    - { name: loose-agents, match: { isolated: false }, action: deny, message: run the agent contained }
    - { name: bob-deletes-review, match: { subjects: [bob], kinds: [delete] }, action: review }
masking:
  columns:
    - { table: public.marks, column: note, strategy: redact, agents: ["*"] }
runs: { ${runs} }
${extra}`;

/** Applies `text` as the policy in force. */
async function applyPolicy(text: string): Promise<void> {
  repo.commit(text);
  const r = await stack.gateway.policy!.refresh();
  expect(r).toMatchObject({ changed: true });
}

function gatewayArgs(): string[] {
  return ['--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile];
}

/**
 * Where alice keeps what she runs agents with, as one person of {@link PEOPLE} (a directory of
 * theirs under /tmp, which a contained command does not see): her hoop login (`hoop login` with
 * the file store), her session runtime directory, her project, a workload token file of hers, her
 * CLI's own state and the gateway's CA.
 */
interface Places {
  person: TestPerson;
  login: string;
  xdg: string;
  work: string;
  idToken: string;
  cli: string;
  ca: string;
}

/** Makes `person`'s {@link Places}. */
async function placesFor(person: TestPerson): Promise<Places> {
  const base = personDir(person, 'hoop-agent-principal-', tmpdir());
  const p: Places = { person, login: join(base, 'alice-hoop'), xdg: join(base, 'xdg'), work: join(base, 'work'), idToken: join(base, 'id-token'), cli: join(base, 'cli'), ca: join(base, 'ca.pem') };
  mkdirSync(p.xdg, { mode: 0o700 });
  for (const d of [p.work, p.cli]) mkdirSync(d);
  const key = await new ProfileStore(p.login).put({ gateway: stack.gateway.url, tokenType: 'access', subject: 'alice', kind: 'user', store: 'file', loggedInAt: new Date().toISOString() });
  await new FileSecretStore(p.login).write(key, { accessToken: await stack.token('alice', ['dba']), refreshToken: 'alice-refresh-token' });
  writeFileSync(p.idToken, await stack.token('alice', ['dba']), { mode: 0o600 });
  writeFileSync(p.ca, readFileSync(stack.pki.caFile));
  givePerson(person, base);
  return p;
}

/** `hoop run <args>` as alice would start it, as the person of `o.places` (default root's): her token in HOOP_TOKEN, her login on disk, her runtime directory. */
function hoopRun(args: string[], o: { places?: Places; env?: NodeJS.ProcessEnv; cwd?: string; onStdout?: Parameters<typeof spawnHoop>[1]['onStdout'] } = {}): Promise<HoopProcessResult> {
  const p = o.places ?? places;
  return spawnHoop(['run', '--quiet', '--gateway', stack.gateway.url, '--ca-file', p.ca, ...args], {
    env: { HOOP_TOKEN: alice, HOOP_CONFIG_DIR: p.login, HOOP_TOKEN_STORE: 'file', XDG_RUNTIME_DIR: p.xdg, XDG_STATE_HOME: p.cli, HOOP_ID_TOKEN_FILE: p.idToken, ...o.env },
    cwd: o.cwd ?? p.work,
    as: p.person,
    ...(o.onStdout ? { onStdout: o.onStdout } : {}),
  });
}

/** What the database holds in `marks`, sorted. */
async function marks(): Promise<string[]> {
  return (await stack.pg.psql('select note from marks order by note', { user: stack.pg.users.scram })).split('\n').filter(Boolean);
}

/** `GET /v1/whoami` with `token`. */
function whoami(token: string): Promise<ApiAnswer> {
  return callApi(stack.gateway.url, stack.pki.ca, 'GET', '/v1/whoami', token);
}

/** The reviews `token` may see. */
async function reviews(token: string): Promise<Array<Record<string, unknown>>> {
  return (JSON.parse((await stack.run(['review', 'ls', '--json', '--state', 'all', ...gatewayArgs()], { HOOP_TOKEN: token })).stdout) as { reviews: Array<Record<string, unknown>> }).reviews;
}

beforeAll(async () => {
  repo = new PolicyGitRepo('hoop-agent-principal-');
  stack = await startStack({
    policy: async ({ pg }) => {
      await pg.psql("create table marks (note text); insert into marks values ('seed'), ('seed2'); grant all on marks to public", { user: pg.users.scram });
      cluster = pg;
      repo.commit(policy());
      return repo.gatewayBlock(['${env:APP_*}']);
    },
  });
  alice = await stack.token('alice', ['dba']);
  places = await placesFor(PEOPLE[0]!);
  // Her own hoop connect, whose per-session password sits in her runtime directory.
  aliceConnect = await stack.connect('app', alice, [], { XDG_RUNTIME_DIR: places.xdg });
  // Bob's delete, waiting for a reviewer: alice (dba) may approve it, her agent must not.
  const bob = await stack.token('bob');
  const held = await stack.run(['exec', 'app', '--no-wait', '-c', "delete from marks where note = 'seed'", ...gatewayArgs()], { HOOP_TOKEN: bob });
  expect(held.code).toBe(4);
  bobReview = held.stdout.trim();
});

afterAll(async () => {
  await aliceConnect?.stop();
  if (places) rmSync(dirname(places.work), { recursive: true, force: true });
  await stack?.close();
  if (repo) rmSync(repo.base, { recursive: true, force: true });
});

describe.each(PEOPLE)('a contained agent, as $label', (who) => {
  let p: Places;
  /** Her own hoop connect as this person (another person's than root's is a process of theirs). */
  let theirs: ChildProcess | undefined;
  beforeAll(async () => {
    if (!who.other) return void (p = places);
    p = await placesFor(who);
    await new Promise<void>((ready) => {
      void spawnHoop(['connect', 'app', '--json', '--gateway', stack.gateway.url, '--ca-file', p.ca], {
        env: { HOOP_TOKEN: alice, HOOP_CONFIG_DIR: p.login, HOOP_TOKEN_STORE: 'file', XDG_RUNTIME_DIR: p.xdg },
        as: who,
        onStdout: (text, child) => {
          theirs = child;
          if (text.includes('\n')) ready();
        },
      });
    });
  });
  afterAll(() => {
    theirs?.kill();
    if (who.other && p) rmSync(dirname(p.work), { recursive: true, force: true });
  });

  it('finds no credential of its person, and its run credential can do nothing a person does', async () => {
    const out = join(p.work, 'seen-run-token');
    const attack = {
      hoop: HOOP_BIN,
      paths: [p.login, join(p.xdg, 'hoop'), p.idToken, p.cli],
      gateway: stack.gateway.url,
      caFile: p.ca,
      review: bobReview,
      out,
    };
    const r = await hoopRun(['--agent', 'claude', '--connect', 'app', '--', process.execPath, ATTACKER, JSON.stringify(attack)], { places: p });
    expect(r.stderr).not.toContain('isolation: none');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const seen = JSON.parse(r.stdout) as {
      files: string[];
      tokens: string[];
      pids: number;
      tried: Array<Record<string, { status: number; body: string }> & { kind: string }>;
      unset: HoopProcessResult;
      own: HoopProcessResult;
      approve: HoopProcessResult;
      request: HoopProcessResult;
      login: HoopProcessResult;
    };
    // Nothing of hers: not her tokens on disk, her id-token file, her HOOP_TOKEN, her other port's password; only this run's files.
    expect(seen.tokens).toEqual(['hooprun_']);
    // Of her files, only the id-token file is there at all, and it is empty (no token was found above).
    expect(seen.files.filter((f) => !f.includes('/hoop/run-'))).toEqual([p.idToken]);
    expect(seen.files.some((f) => f.endsWith('.pgpass'))).toBe(true); // the run's own port
    expect(seen.pids).toBeLessThan(10); // its own namespace's processes, none of hers
    // The run's credential: who it is, and nothing a person does.
    const [run] = seen.tried;
    expect(run!.whoami.status).toBe(200);
    expect(JSON.parse(run!.whoami.body)).toMatchObject({ subject: 'alice', run: { agent: 'claude', via: 'run', isolated: true, connections: ['app'] } });
    for (const what of ['approve', 'request', 'sessions', 'devices', 'runs', 'record'] as const) {
      expect({ what, status: run![what]!.status }).toEqual({ what, status: 403 });
      expect(JSON.parse(run![what]!.body)).toMatchObject({ error: { code: 'HOOP_RUN_FORBIDDEN' } });
    }
    // hoop with every hoop variable unset has nothing to sign in with.
    expect(seen.unset.code).toBe(77);
    expect(seen.unset.stderr).toMatch(/not logged in/);
    // The run's own way works, as the run.
    expect(seen.own.code).toBe(0);
    // What only a person does is refused inside the run.
    expect(seen.approve).toMatchObject({ code: 77 });
    expect(seen.approve.stderr).toContain("a run's credential cannot decide reviews");
    expect(seen.request.code).toBe(77);
    expect(seen.login.code).toBe(77);
    expect(seen.login.stderr).toContain("inside hoop run, hoop acts with the run's credential only");
    // What holds: bob's review still waits, alice asked for no access, the database has the run's row and no other.
    const all = await reviews(alice);
    expect(all.find((x) => x.id === bobReview)).toMatchObject({ state: 'pending', decisions: [] });
    expect(all.filter((x) => x.kind === 'access')).toEqual([]);
    expect(await marks()).toEqual([...PEOPLE.slice(0, PEOPLE.indexOf(who) + 1).map(() => 'run'), 'seed', 'seed2']); // one row per person's run so far
    // The credential it saw is refused once the run has ended.
    const after = await whoami(readFileSync(out, 'utf8'));
    expect(after.status).toBe(401);
    expect(after.body).toMatchObject({ error: { reason: 'run-ended' } });
    // Its sessions are in the index as the run's, for the person, with the agent and how it came.
    const ls = JSON.parse((await stack.run(['sessions', 'ls', '--json', '--agent', 'claude', ...gatewayArgs()], { HOOP_TOKEN: alice })).stdout) as { sessions: Array<Record<string, unknown>> };
    expect(ls.sessions.length).toBeGreaterThan(0);
    expect(ls.sessions[0]).toMatchObject({ subject: 'alice', via: 'run', agent: 'claude', isolated: true, runId: expect.stringMatching(/^run-/) });
  });

  it("cannot have its person's other processes act for it (sockets, abstract sockets, loopback), leave code that runs as its person later, or read what signs its person in; its own work goes on", async () => {
    // Her home, runtime and project outside /tmp (the command's /tmp is its own).
    const outside = personDir(who, '.hoop-reach-');
    const home = join(outside, 'home');
    const runtime = join(outside, 'runtime');
    const work = join(outside, 'work');
    const meeting = mkdtempSync(join('/tmp', 'hoop-reach-')); // where a tmux server keeps its socket
    for (const d of [home, runtime, work, join(home, '.local/bin'), join(home, '.mozilla/firefox/p'), join(runtime, 'systemd'), join(home, '.ssh'), join(work, '.git/hooks')])
      mkdirSync(d, { recursive: true });
    writeFileSync(join(home, '.bashrc'), '# hers\n');
    // Her startup file lives in a dotfiles repository, which is where the agent works; her project is a repository.
    writeFileSync(join(work, 'dotprofile'), '# hers too\n');
    symlinkSync(join(work, 'dotprofile'), join(home, '.profile'));
    writeFileSync(join(work, '.git/config'), '[core]\n\trepositoryformatversion = 0\n');
    writeFileSync(join(home, '.ssh/id_ed25519'), '-----BEGIN OPENSSH PRIVATE KEY-----\nher-key\n');
    // Her hoop login, in her home (not under /tmp, which the command does not see at all).
    const login = join(home, '.config/hoop');
    cpSync(p.login, login, { recursive: true });
    writeFileSync(join(home, '.mozilla/firefox/p/cookies.sqlite'), 'the identity provider session');
    writeFileSync(join(home, '.pgpass'), '*:*:*:*:direct-password\n');
    const planted = join(installRoot(), `hoop-agent-was-here-${process.pid}`);
    // Her unconfined servers (tmux, systemd --user, the session bus): whoever connects and asks, they serve.
    // And on the network she shares with it: an abstract socket (a session bus or an X server without a file) and a service on her loopback.
    const served: string[] = [];
    // And a socket in her home that a read-only mount leaves open: an SSH control master's.
    // And a service listening on every address: the machine's own non-loopback address reaches it.
    const paths = [join(meeting, 'default'), join(runtime, 'systemd', 'private'), join(runtime, 'bus'), `\0hoop-reach-${process.pid}`, join(home, '.ssh', 'cm-her@db:22')];
    const servers = await Promise.all(
      [...paths, 'tcp', 'any'].map(
        (where) =>
          new Promise<Server>((ready) => {
            const server = createServer((s) => s.on('data', () => served.push(where)));
            if (where === 'tcp') server.listen(0, '127.0.0.1', () => ready(server));
            else if (where === 'any') server.listen(0, '0.0.0.0', () => ready(server));
            else server.listen(where, () => ready(server));
          }),
      ),
    );
    // All of it hers: her servers' sockets too (whoever she is, she may connect to them).
    givePerson(who, outside);
    givePerson(who, meeting);
    const portOf = (s: Server): number => (s.address() as { port: number }).port;
    const own = Object.values(networkInterfaces())
      .flat()
      .filter((a) => a !== undefined && a.family === 'IPv4' && !a.internal)
      .map((a) => a!.address);
    const sockets = [...paths, `tcp:${portOf(servers.at(-2)!)}`, ...own.map((a) => `tcp:${a}:${portOf(servers.at(-1)!)}`)];
    try {
      const attack = {
        sockets,
        writes: [join(home, '.bashrc'), join(home, '.local/bin/hoop'), planted, join(home, '.profile'), join(work, '.git/config')],
        reads: [join(home, '.mozilla/firefox/p/cookies.sqlite'), join(home, '.pgpass'), join(home, '.ssh/id_ed25519')],
        renames: [join(work, '.git')],
        creates: [join(work, '.git/commondir'), join(work, '.hoop.yaml')],
        plants: [
          { dir: join(work, 'src', 'deep'), marker: join(home, 'fsmonitor-ran') },
          { dir: join(work, 'vendor', 'bare'), marker: join(home, 'bare-ran'), kind: 'bare' },
          { dir: join(work, 'locked'), marker: join(home, 'locked-ran'), kind: 'locked' },
          { dir: work, marker: join(home, 'rebase-ran'), kind: 'rebase' },
        ],
        undo: login,
      };
      const env = {
        HOME: home,
        HOOP_CONFIG_DIR: login,
        XDG_RUNTIME_DIR: runtime,
        PATH: `${join(home, '.local/bin')}:${process.env.PATH}`,
        DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(runtime, 'bus')}`,
        TMUX: `${sockets[0]},1,0`,
      };
      const r = await hoopRun(['--connect', 'app', '--', process.execPath, REACH, JSON.stringify(attack)], { places: p, env, cwd: work });
      expect(r.stderr).not.toContain('isolation: none');
      expect(r.code, r.stderr).toBe(0);
      const seen = JSON.parse(r.stdout) as Record<'sockets' | 'writes' | 'reads' | 'renames' | 'creates' | 'plants' | 'work', Record<string, string>> & {
        undo: { said: string; files: Record<string, string> };
        capabilities: string;
        terminals: string[];
      };
      // None of her servers could be reached, and none served anything.
      expect(Object.keys(seen.sockets)).toHaveLength(6 + own.length);
      expect(Object.values(seen.sockets).filter((v) => v === 'ok')).toEqual([]);
      expect(served).toEqual([]);
      // Nothing that runs as her later could be changed: her shell's startup (where it really is), her PATH, hoop itself;
      // her repository's config only in the command's own layer, which the gate does not apply.
      expect(Object.values(seen.writes)).toEqual(['EROFS', 'EROFS', 'EROFS', 'EROFS', 'ok']);
      expect(readFileSync(join(home, '.bashrc'), 'utf8')).toBe('# hers\n');
      expect(readFileSync(join(work, 'dotprofile'), 'utf8')).toBe('# hers too\n');
      expect(readFileSync(join(work, '.git/config'), 'utf8')).toBe('[core]\n\trepositoryformatversion = 0\n');
      expect(existsSync(join(home, '.local/bin/hoop'))).toBe(false);
      expect(existsSync(planted)).toBe(false);
      // Her repository is not renamed away (its layer cannot rename a directory it only reads); what it made that git or hoop would act on is refused.
      expect(seen.renames).toEqual({ [join(work, '.git')]: 'EXDEV' });
      expect(seen.creates).toEqual({ [join(work, '.git/commondir')]: 'ok', [join(work, '.hoop.yaml')]: 'ok' });
      expect(existsSync(join(work, '.git/commondir'))).toBe(false);
      expect(existsSync(join(work, '.hoop.yaml'))).toBe(false);
      expect(r.stderr).toMatch(/refused: \.hoop\.yaml: it names the connections your next hoop run serves/);
      expect(r.stderr).toMatch(/refused: \.git\/commondir: commondir in a git directory is one of the controls git acts on as you/);
      // The repositories it made deeper in the tree (one in a directory it made unwritable, one under no .git, one in a directory it made
      // unlistable) and the rebase it left in progress in hers never reach her tree: her own git status there finds no repository of its, and runs nothing.
      const deep = join(work, 'src', 'deep');
      const [bare, locked] = [join(work, 'vendor', 'bare'), join(work, 'locked')];
      expect(seen.plants).toEqual({ [deep]: 'ok', [bare]: 'ok', [locked]: 'ok', [work]: 'ok' });
      const gitStatus = (dir: string) =>
        spawnSync('git', ['-C', dir, 'status'], { encoding: 'utf8', ...(who.other ? { uid: who.uid, gid: who.gid } : {}), env: { PATH: process.env.PATH, HOME: home } });
      expect(existsSync(join(deep, '.git'))).toBe(false);
      expect(gitStatus(deep).stderr).toContain('not a git repository'); // her project's .git here is a stand-in
      gitStatus(bare); // a repository of data now (its HEAD, objects and refs, no configuration): git runs nothing of it
      expect(existsSync(join(bare, 'config'))).toBe(false);
      expect(existsSync(join(locked, 'inner', '.git'))).toBe(false);
      expect(existsSync(join(work, '.git', 'rebase-merge'))).toBe(false);
      for (const ran of ['fsmonitor-ran', 'bare-ran', 'locked-ran', 'rebase-ran']) expect(existsSync(join(home, ran)), ran).toBe(false);
      // No capability, not even as root; her login stays hidden through every attempt to unmount what hides it.
      expect(seen.capabilities).toBe('0000000000000000');
      expect(JSON.stringify(seen.undo)).not.toMatch(/alice-refresh-token|accessToken/);
      // No terminal of hers to read or write: a /dev/pts of its own.
      expect(seen.terminals).toEqual(['ptmx']);
      // Her browser's session, her direct database password and her SSH key are not there to read.
      expect(seen.reads).toEqual({ [join(home, '.mozilla/firefox/p/cookies.sqlite')]: 'ENOENT', [join(home, '.pgpass')]: '', [join(home, '.ssh/id_ed25519')]: '' });
      // Its own work: a file in its working directory (hers to see), scratch in a /tmp of its own.
      expect(seen.work).toEqual({ cwd: 'ok', tmp: 'ok' });
      expect(readFileSync(join(work, 'agent-output.txt'), 'utf8')).toBe('the work');
      expect(existsSync('/tmp/agent-scratch.txt')).toBe(false);
    } finally {
      for (const server of servers) server.close();
      rmSync(meeting, { recursive: true, force: true });
      rmSync(outside, { recursive: true, force: true });
      rmSync(planted, { force: true });
    }
  });

  it('killed, its run applies nothing; its changes are kept, said at its person next hoop command, and the repository the command made never applies', async () => {
    const tree = join(p.work, 'killed');
    mkdirSync(tree);
    givePerson(who, tree);
    const marker = join(tree, 'fsmonitor-ran');
    let hoop: ChildProcess | undefined;
    const ended = new Promise<HoopProcessResult>((done) => {
      void hoopRun(['--connect', 'app', '--', 'sh', '-c', `git init -q sub && git -C sub config core.fsmonitor "touch ${marker}; false" && echo planted; sleep 60`], {
        places: p,
        cwd: tree,
        onStdout: (text, child) => {
          hoop = child;
          if (text.includes('planted')) hoop.kill('SIGKILL');
        },
      }).then(done);
    });
    expect((await ended).code).toBe(null);
    // Nothing of the command's reached her tree.
    expect(existsSync(join(tree, 'sub'))).toBe(false);
    // Her next hoop command, whatever it is, says so.
    const next = await spawnHoop(['--version'], { env: { XDG_STATE_HOME: p.cli }, as: who, cwd: tree });
    expect(next.code).toBe(0);
    const id = /run (run-\S+)'s hoop run stopped before its command ended: what the command changed is kept, not applied/.exec(next.stderr)?.[1];
    expect(id, next.stderr).toBeDefined();
    // Once: the command after says nothing.
    expect((await spawnHoop(['--version'], { env: { XDG_STATE_HOME: p.cli }, as: who })).stderr).toBe('');
    // Applied later, through the gate: the directory, not the repository the command made in it.
    const applied = await spawnHoop(['run', 'apply', id!], { env: { XDG_STATE_HOME: p.cli }, as: who, cwd: tree });
    expect(applied.stderr).toContain('refused: sub/.git (and the ');
    expect(existsSync(join(tree, 'sub', '.git'))).toBe(false);
    const status = spawnSync('git', ['-C', join(tree, 'sub'), 'status'], { encoding: 'utf8', ...(who.other ? { uid: who.uid, gid: who.gid } : {}), env: { PATH: process.env.PATH, HOME: who.home } });
    expect(status.stderr).toContain('not a git repository');
    expect(existsSync(marker)).toBe(false);
  });

  it("leaves links to its person's login where hoop reads and writes files of the tree: hoop refuses each, and no token leaves the login", async () => {
    const tree = join(p.work, 'links');
    mkdirSync(tree);
    givePerson(who, tree);
    const tokens = join(p.login, 'tokens');
    const tokenFile = join(tokens, readdirSync(tokens)[0]!);
    const before = readFileSync(tokenFile, 'utf8');
    // Inside its sandbox the login is hidden: the links dangle, nothing looks wrong. Through the gate, none reaches the tree (each leads out of it);
    // written to the tree itself (--apply live), each is there for hoop to meet.
    const plant = `ln -s ${tokenFile} prompt.md && ln -s ${tokenFile} q.sql && ln -s ${tokenFile} .mcp.json && ln -s ${p.login} policy && ln -s ${tokens} t`;
    const gated = await hoopRun(['--connect', 'app', '--', 'sh', '-c', plant], { places: p, cwd: tree });
    expect(gated.stderr.match(/refused: \S+: a symbolic link: it leads out of the tree/g)).toHaveLength(4);
    expect(gated.stderr).toContain('refused: .mcp.json: an MCP client starts the programs it names'); // a control, link or not
    expect(readdirSync(tree)).toEqual([]);
    expect((await hoopRun(['--apply', 'live', '--connect', 'app', '--', 'sh', '-c', plant], { places: p, cwd: tree })).code).toBe(0);
    const env = { HOOP_TOKEN: alice, HOOP_CONFIG_DIR: p.login, HOOP_TOKEN_STORE: 'file', XDG_RUNTIME_DIR: p.xdg, XDG_STATE_HOME: p.cli };
    const tries = [
      await hoopRun(['--prompt-file', 'prompt.md', '--connect', 'app', '--', 'true'], { places: p, cwd: tree }),
      await hoopRun(['--prompt-file', `t/${tokenFile.split('/').at(-1)}`, '--connect', 'app', '--', 'true'], { places: p, cwd: tree }),
      await hoopRun(['--policy-dir', 'policy', '--connect', 'app', '--', 'true'], { places: p, cwd: tree }),
      await spawnHoop(['exec', 'app', '-f', 'q.sql', '--gateway', stack.gateway.url, '--ca-file', p.ca], { env, as: who, cwd: tree }),
      await spawnHoop(['mcp', 'config', '--client', 'claude-code', '--write'], { env, as: who, cwd: tree }),
    ];
    const said = tries.map((t) => `${t.code} ${t.stderr.split('\n')[0]}`);
    expect(said).toEqual([
      '64 hoop: hoop will not use prompt.md: it is a symbolic link',
      `64 hoop: hoop will not use t/${tokenFile.split('/').at(-1)}: it is in hoop's own ${p.login}, which holds your login and tokens`,
      '64 hoop: hoop will not use policy: it is a symbolic link',
      '64 hoop: hoop will not use q.sql: it is a symbolic link',
      `64 hoop: hoop will not use ${join(tree, '.mcp.json')}: it is a symbolic link`,
    ]);
    for (const t of tries) expect(`${t.stdout}${t.stderr}`).not.toMatch(/alice-refresh-token|accessToken/);
    expect(readFileSync(tokenFile, 'utf8')).toBe(before);
  });

  it('refuses the kernel keyrings and pushing input into the terminal', async () => {
    const script = join(p.work, 'keys.py');
    writeFileSync(
      script,
      `import ctypes, fcntl, termios\nlibc = ctypes.CDLL(None, use_errno=True)\nr = libc.syscall(250 if ctypes.sizeof(ctypes.c_void_p) == 8 else 288, 0, -3, 0)\nprint("keyctl", r, ctypes.get_errno())\ntry:\n    fcntl.ioctl(1, termios.TIOCSTI, b"x")\n    print("tiocsti 0")\nexcept OSError as e:\n    print("tiocsti", e.errno)\n`,
    );
    const r = await hoopRun(['--connect', 'app', '--', 'python3', script], { places: p });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('keyctl -1 1\n'); // EPERM
    expect(r.stdout).toContain('tiocsti 1\n'); // EPERM (not ENOTTY: refused before the terminal is asked)
  });
});

describe('the run credential lives as long as the run', () => {
  it('dies soon after its hoop is killed (no heartbeat), and its sessions with it', async () => {
    const file = 'killed-run-token';
    let hoop: ChildProcess | undefined;
    let token = '';
    const ready = new Promise<void>((resolveReady) => {
      void hoopRun(['--connect', 'app', '--', 'sh', '-c', `printf '%s\\n' "$HOOP_RUN_TOKEN" > ${file}; cat ${file}; echo ready; sleep 60`], {
        onStdout: (text, child) => {
          hoop = child;
          token = text.split('\n')[0]!;
          if (text.includes('ready')) resolveReady();
        },
      });
    });
    await ready;
    // A session opened elsewhere with the credential the command saw (copied out, say).
    const copied = await stack.tunnel('app', token);
    expect((await whoami(token)).status).toBe(200);
    // Its sandbox's processes, as hoop started them: bubblewrap and the command.
    const processes = (): Array<{ pid: string; ppid: string; cmd: string }> =>
      readdirSync('/proc')
        .filter((d) => /^\d+$/.test(d))
        .flatMap((pid) => {
          try {
            return [{ pid, ppid: readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]!, cmd: readFileSync(`/proc/${pid}/cmdline`, 'utf8') }];
          } catch {
            return [];
          }
        });
    const sandbox = processes()
      .filter((p) => (p.ppid === String(hoop!.pid) && p.cmd.includes('bwrap')) || p.cmd.includes(file))
      .map((p) => p.pid);
    expect(sandbox.length).toBeGreaterThanOrEqual(2);
    hoop!.kill('SIGKILL');
    // The policy's heartbeatTimeout is 5 s; the gateway sweeps every second: the run's credential dies with no hoop to beat for it.
    await eventually(async () => expect((await whoami(token)).status).toBe(401), { timeout: 60_000, interval: 200 });
    const ended = await copied.error(30_000);
    expect(ended).toMatchObject({ severity: 'FATAL', code: '28000' });
    expect(ended!.message).toMatch(/^hoop: run run-\S+ ended \(its hoop stopped answering\); its sessions end with it$/);
    expect(await copied.closed()).toBe(true);
    // Nothing of the sandbox outlives its hoop: neither the command nor bubblewrap.
    const left = (): string[] =>
      processes()
        .filter((p) => sandbox.includes(p.pid))
        .map((p) => p.cmd);
    await eventually(() => expect(left()).toEqual([]), { timeout: 60_000, interval: 100 });
    // What the command wrote is kept in its layer, not applied: dropped here.
    const kept = JSON.parse((await spawnHoop(['run', 'ls', '--json'], { env: { XDG_STATE_HOME: places.cli } })).stdout) as { runs: Array<{ run: string }> };
    expect(kept.runs).toHaveLength(1);
    expect((await spawnHoop(['run', 'discard', kept.runs[0]!.run], { env: { XDG_STATE_HOME: places.cli } })).code).toBe(0);
  });

  it('belongs to the person who began it: another may not upload its record, and nobody a record of a run the gateway never began', async () => {
    const r = await hoopRun(['--connect', 'app', '--', 'sh', '-c', 'printf %s "$HOOP_RUN_ID"']);
    expect(r.code).toBe(0);
    const runId = r.stdout;
    const bob = await stack.token('bob');
    const put = async (id: string, token: string): Promise<number> =>
      (await callApi(stack.gateway.url, stack.pki.ca, 'PUT', `/v1/runs/${id}/files/events-000001.jsonl.gz`, token, Buffer.from('x'))).status;
    expect(await put(runId, bob)).toBe(403);
    expect(await put('run-nobody-began-this-one', alice)).toBe(404);
  });
});

describe('the policy sees the agent', () => {
  it("holds the agent's write for review while the same person's own psql runs the same kind of write", async () => {
    const agent = await hoopRun([
      '--agent',
      'claude',
      '--connect',
      'app',
      '--',
      process.execPath,
      HOOP_BIN,
      'exec',
      'app',
      '--no-wait',
      '-c',
      "update marks set note = 'by-agent' where note = 'seed2'",
    ]);
    expect(agent.code).toBe(4);
    const held = agent.stdout.trim();
    const own = await psql(aliceConnect.info, ['-c', "update marks set note = 'by-alice' where note = 'seed2'"]);
    expect(own.code).toBe(0);
    expect(await marks()).toContain('by-alice');
    expect(await marks()).not.toContain('by-agent');
    const review = (await reviews(alice)).find((x) => x.id === held);
    expect(review).toMatchObject({ state: 'pending', rule: 'agents-writes-review', via: 'run', agent: 'claude', run: expect.stringMatching(/^run-/) });
    // Its run has ended: only a session of that run could claim an approval, so none is taken; a denial is recorded.
    const carol = await stack.token('carol', ['dba']);
    const approve = await callApi(stack.gateway.url, stack.pki.ca, 'POST', `/v1/reviews/${held}/approve`, carol, {});
    expect(approve.status).toBe(409);
    expect((approve.body.error as { message: string }).message).toMatch(/of run run-\S+, which has ended \([^)]+\): no session of it can run the statement now/);
    const deny = await callApi(stack.gateway.url, stack.pki.ca, 'POST', `/v1/reviews/${held}/deny`, carol, { reason: 'its run ended' });
    expect(deny).toMatchObject({ status: 200, body: { state: 'denied' } });
  });

  it('masks for the agent what its person sees', async () => {
    const agent = await hoopRun(['--connect', 'app', '--', process.execPath, HOOP_BIN, 'exec', 'app', '--csv', '-c', "select note from marks where note = 'seed'"]);
    expect(agent.stdout).toBe('note\n[redacted]\n');
    const own = await psql(aliceConnect.info, ['-XAt', '-c', "select note from marks where note = 'seed'"]);
    expect(own.stdout).toBe('seed\n');
  });

  it("with --direct, the contained agent's psql signs in at the gateway's own port with the run's direct credential: rows masked for the agent, the session the run's and direct", async () => {
    const agent = await hoopRun(['--direct', '--agent', 'claude', '--connect', 'app', '--', 'psql', '-XAt', '-c', "select note from marks where note = 'seed'"]);
    expect(agent.stderr).not.toContain('error');
    expect(agent.stdout).toBe('[redacted]\n');
    const sessions = (await callApi(stack.gateway.url, stack.pki.ca, 'GET', '/v1/sessions?agent=claude', alice)).body.sessions as Array<Record<string, unknown>>;
    expect(sessions.find((x) => x.direct === true)).toMatchObject({ via: 'run', agent: 'claude', isolated: true, connection: 'app' });
  });

  it('a run that is not contained says so, is recorded so, and is refused where the policy says', async () => {
    const loose = await hoopRun(['--isolation', 'none', '--connect', 'app', '--', process.execPath, HOOP_BIN, 'exec', 'app', '-c', 'select 1']);
    expect(loose.stderr).toContain('isolation: none (asked for with --isolation none)');
    expect(loose.code).toBe(3); // the statement rule for runs not contained
    expect(loose.stderr).toContain('run the agent contained');
    await applyPolicy(policy('heartbeatTimeout: 5s, requireIsolation: true'));
    try {
      const refused = await hoopRun(['--isolation', 'none', '--connect', 'app', '--', 'true']);
      expect(refused.code).toBe(77);
      expect(refused.stderr).toContain('the policy refuses runs whose command is not contained');
      const contained = await hoopRun(['--connect', 'app', '--', 'true']);
      expect(contained.code).toBe(0);
    } finally {
      await applyPolicy(policy());
    }
  });

  it('a decision needs a recent sign-in where the policy says so: a token that does not say when, says too long ago, in the future or after it was issued, is refused', async () => {
    await applyPolicy(policy(undefined, 'reviews: { requireSignInWithin: 15min }\n'));
    try {
      const now = Math.floor(Date.now() / 1000);
      const tries: Array<[number | undefined, RegExp]> = [
        [undefined, /no auth_time/],
        [now - 3600, /the last sign-in was 60 min ago/],
        [now + 3600, /the token says they did 3[56]\d\d s from now, which no sign-in can be/],
        // Within the clock tolerance (30 s), but after the token's own issue.
        [now + 20, /after it was issued \(auth_time after iat\)/],
      ];
      for (const [authTime, why] of tries) {
        const r = await stack.run(['review', 'approve', bobReview, ...gatewayArgs()], { HOOP_TOKEN: await stack.token('alice', ['dba'], authTime) });
        expect(r.code).toBe(77);
        expect(r.stderr).toMatch(/to approve a review, alice must have signed in within the last 15 minutes/);
        expect(r.stderr).toMatch(why);
        expect(r.stderr).toContain('hoop login --reauth');
      }
      expect((await reviews(alice)).find((x) => x.id === bobReview)).toMatchObject({ state: 'pending' });
      const fresh = await stack.run(['review', 'approve', bobReview, ...gatewayArgs()], { HOOP_TOKEN: await stack.token('alice', ['dba'], now - 60) });
      expect(fresh.code).toBe(0);
      expect((await reviews(alice)).find((x) => x.id === bobReview)).toMatchObject({ state: 'approved' });
    } finally {
      await applyPolicy(policy());
    }
  });
});

describe('private client files', () => {
  it('refuses a runtime directory another user made first, or a symbolic link, naming it', async () => {
    if (process.getuid?.() !== 0) return; // making another user's directory needs root (CI runs as root)
    for (const make of ['other-user', 'symlink'] as const) {
      const tmp = join(stack.dir, `tmp-${make}`);
      mkdirSync(tmp, { recursive: true });
      const planted = join(tmp, `hoop-${process.getuid!()}`);
      if (make === 'other-user') {
        mkdirSync(planted, { mode: 0o777 });
        chownSync(planted, 65534, 65534);
      } else {
        mkdirSync(join(tmp, 'elsewhere'));
        symlinkSync(join(tmp, 'elsewhere'), planted);
      }
      const r = await hoopRun(['--connect', 'app', '--', 'true'], { env: { XDG_RUNTIME_DIR: '', TMPDIR: tmp } });
      expect(r.code).toBe(78);
      expect(r.stderr).toContain(`hoop will not use ${planted}: ${make === 'other-user' ? 'it belongs to another user (uid 65534)' : 'it is a symbolic link'}`);
      expect(existsSync(join(tmp, 'elsewhere', 'run'))).toBe(false);
    }
  });
});
