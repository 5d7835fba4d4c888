/**
 * What a contained agent changes reaches its person only through the gate, tried as an attacker
 * would with the built CLI, bubblewrap and the kernel's overlayfs, as root and as a user who is not:
 * - a hostile agent (../fixtures/agent-hostile-tree.mjs) leaves set-user-ID files, a FIFO, a
 *   socket, links out of the tree, a hard link, repositories, hooks, `.hoop.yaml`, editors' and MCP
 *   clients' configuration, 2,000 small files and a huge one: the person's tree gets its ordinary
 *   work (its commit included) as regular files and directories with no s-bit, nothing else, and
 *   the person's own `git status` runs nothing it chose; each refusal is said and in the run's record;
 * - `--review` on a terminal applies what the person accepts; `--apply never` keeps the layer for
 *   `hoop run diff`, `apply` and `discard`; the policy's `runs.apply: gate` refuses `--apply live`;
 * - the run ends whole: what detached from the command (setsid, a double fork, nohup) dies with it,
 *   and when its `hoop run` is stopped (Ctrl-Z) the sandbox is frozen, and when it is then killed,
 *   nothing of the run goes on and its changes are kept, said at the person's next hoop command;
 * - a `--share` path swapped for a link to the home (renameat2 RENAME_EXCHANGE, in a loop) while
 *   runs begin never gives a run the home: a run begins on the directory it checked, or not at all.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProfileStore } from '../../src/auth/profiles.js';
import { FileSecretStore } from '../../src/auth/secret-store.js';
import { spawnHoop, type HoopProcessResult } from '../harness/hoop-process.js';
import { givePerson, personDir, testPeople, type TestPerson } from '../harness/people.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml, type PgCluster } from '../harness/postgres.js';
import { startStack, type HoopStack } from '../harness/stack.js';
import { swapper } from '../harness/racer.js';
import { eventually, quietFor } from '../harness/wait.js';

const HOSTILE = resolve(import.meta.dirname, '../fixtures/agent-hostile-tree.mjs');
const PEOPLE = testPeople();
let stack: HoopStack;
let repo: PolicyGitRepo;
let alice: string;
let runs = 'heartbeatTimeout: 5s';
let cluster: PgCluster;

const policy = (): string => `version: 1
connections:
${connectionYaml(cluster, { name: 'app', password: '${env:APP_PASSWORD}' })}access:
  - { name: people, subjects: [alice], connections: [app], mode: read-write }
runs: { ${runs} }
`;

/** Where one person keeps their login, their state and their work: a home of theirs in their own (the command's /tmp is its own). */
interface Places {
  person: TestPerson;
  base: string;
  home: string;
  login: string;
  state: string;
  xdg: string;
  work: string;
  ca: string;
}

async function placesFor(person: TestPerson): Promise<Places> {
  const base = personDir(person, '.hoop-agent-gate-');
  const p: Places = {
    person,
    base,
    home: join(base, 'home'),
    login: join(base, 'home/.config/hoop'),
    state: join(base, 'home/.local/state'),
    xdg: join(base, 'xdg'),
    work: join(base, 'work'),
    ca: join(base, 'ca.pem'),
  };
  for (const d of [p.login, p.state, p.work]) mkdirSync(d, { recursive: true });
  mkdirSync(p.xdg, { mode: 0o700 });
  writeFileSync(join(p.home, '.bashrc'), '# hers\n');
  const key = await new ProfileStore(p.login).put({ gateway: stack.gateway.url, tokenType: 'access', subject: 'alice', kind: 'user', store: 'file', loggedInAt: new Date().toISOString() });
  await new FileSecretStore(p.login).write(key, { accessToken: alice, refreshToken: 'alice-refresh-token' });
  writeFileSync(p.ca, readFileSync(stack.pki.caFile));
  givePerson(person, base);
  return p;
}

/** The environment of a hoop command of the person of `p`. */
const envOf = (p: Places, more: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  HOME: p.home,
  HOOP_TOKEN: alice,
  HOOP_CONFIG_DIR: p.login,
  HOOP_TOKEN_STORE: 'file',
  XDG_RUNTIME_DIR: p.xdg,
  XDG_STATE_HOME: p.state,
  ...more,
});

/** `hoop <args>` as the person of `p`, in `cwd` (their work by default). */
function hoop(p: Places, args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv; onStdout?: Parameters<typeof spawnHoop>[1]['onStdout']; detached?: boolean } = {}): Promise<HoopProcessResult> {
  const gateway = args[0] === 'run' && !['ls', 'diff', 'apply', 'discard'].includes(args[1]!) ? ['--gateway', stack.gateway.url, '--ca-file', p.ca] : [];
  return spawnHoop([...args.slice(0, 1), ...gateway, ...args.slice(1)], {
    env: envOf(p, o.env),
    cwd: o.cwd ?? p.work,
    as: p.person,
    ...(o.onStdout ? { onStdout: o.onStdout } : {}),
    ...(o.detached ? { detached: true } : {}),
  });
}

/** Runs `cmd` as the person of `p` (git, sh), in `cwd`. */
function asPerson(p: Places, cmd: string, args: string[], cwd: string): ReturnType<typeof spawnSync> {
  return spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: p.home }, ...(p.person.other ? { uid: p.person.uid, gid: p.person.gid } : {}) });
}

/** Every entry under `dir` but the person's own git objects: its path, type and mode. */
function entriesUnder(dir: string): Array<{ path: string; type: string; mode: number; target?: string }> {
  const out: Array<{ path: string; type: string; mode: number; target?: string }> = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      const s = lstatSync(path);
      const type = s.isFile() ? 'file' : s.isDirectory() ? 'dir' : s.isSymbolicLink() ? 'link' : 'other';
      out.push({ path: relative(dir, path), type, mode: s.mode & 0o7777, ...(type === 'link' ? { target: readlinkSync(path) } : {}) });
      if (type === 'dir') {
        if (!(s.mode & 0o400)) spawnSync('chmod', ['u+rx', path]);
        walk(path);
      }
    }
  };
  walk(dir);
  return out;
}

beforeAll(async () => {
  repo = new PolicyGitRepo('hoop-agent-gate-');
  stack = await startStack({
    policy: async ({ pg }) => {
      cluster = pg;
      repo.commit(policy());
      return repo.gatewayBlock(['${env:APP_*}']);
    },
  });
  alice = await stack.token('alice');
});

afterAll(async () => {
  await stack?.close();
  if (repo) rmSync(repo.base, { recursive: true, force: true });
});

/** Applies the policy with `runs:` as given. */
async function runsPolicy(text: string): Promise<void> {
  runs = text;
  repo.commit(policy());
  await stack.gateway.policy!.refresh();
}

describe.each(PEOPLE)('a contained agent, as $label', (who) => {
  let p: Places;
  beforeAll(async () => {
    p = await placesFor(who);
  });
  afterAll(() => rmSync(p.base, { recursive: true, force: true }));

  it('leaves its person only data, through the gate: no s-bit, FIFO, socket, device, link out, repository or control; its ordinary work applies, and git runs nothing it chose', async () => {
    const tree = join(p.work, 'hostile');
    mkdirSync(tree);
    givePerson(who, tree);
    expect(asPerson(p, process.execPath, [HOSTILE, 'prepare', tree], tree).status).toBe(0);
    const marker = join(p.home, 'ran');
    const r = await hoop(p, ['run', '--connect', 'app', '--', process.execPath, HOSTILE, JSON.stringify({ marker, home: p.home, files: 2_000 })], { cwd: tree });
    expect(r.stderr).not.toContain('isolation: none');
    expect(r.code, r.stderr).toBe(0);
    const tried = JSON.parse(r.stdout) as Record<string, string>;
    // Inside its layer, it could do all of it (but make a device, a hard link to a file outside, or write its person's home).
    expect(tried).toEqual({
      work: 'ok',
      suid: 'ok',
      fifo: 'ok',
      device: 'failed',
      socket: 'ok',
      links: 'ok',
      hardlink: 'ok',
      hardlinkOut: 'EXDEV',
      home: 'EROFS',
      repository: 'ok',
      own: 'ok',
      controls: 'ok',
      many: 'ok',
      huge: 'ok',
      names: 'ok',
      locked: 'ok',
    });
    // The person's tree: its ordinary work, as regular files, directories and a link in the tree, none with an s-bit.
    const entries = entriesUnder(tree).filter((e) => !e.path.startsWith('.git/objects/'));
    expect(entries.filter((e) => e.type !== 'file' && e.type !== 'dir' && !(e.type === 'link' && e.path === 'in'))).toEqual([]);
    expect(entries.filter((e) => (e.mode & 0o7000) !== 0)).toEqual([]);
    expect(readFileSync(join(tree, 'src/app.txt'), 'utf8')).toBe('one\ntwo\nthree\nfour\n');
    expect(readFileSync(join(tree, 'notes/new.md'), 'utf8')).toBe('# the agent was here\n');
    expect(existsSync(join(tree, 'old.txt'))).toBe(false);
    expect(readdirSync(join(tree, 'gone'))).toEqual(['fresh.txt']);
    expect(readFileSync(join(tree, 'hard'), 'utf8')).toBe('one\ntwo\nthree\nfour\n');
    expect(statSync(join(tree, 'tool.sh')).mode & 0o7777).toBe(0o755);
    // A file the command made writable by all is not, past the person's umask (hoop's tests run with 022 or tighter).
    expect(statSync(join(tree, 'sticky')).mode & 0o7702).toBe(0o700);
    expect(readdirSync(join(tree, 'many'))).toHaveLength(2_000);
    expect(readFileSync(join(tree, 'locked/inside.txt'), 'utf8')).toBe('inside\n');
    for (const gone of [
      'pipe',
      'sock',
      'dev-null',
      'out',
      'bashrc',
      'up',
      'huge.bin',
      'sub/repo/.git',
      'sub/.git',
      'vendor/bare',
      '.envrc',
      '.mcp.json',
      '.vscode/tasks.json',
      '.git/hooks/pre-commit',
      '.git/rebase-merge',
    ]) {
      expect({ gone, there: existsSync(join(tree, gone)) || lstatSync(join(tree, gone), { throwIfNoEntry: false }) !== undefined }).toEqual({ gone, there: false });
    }
    expect(readFileSync(join(tree, '.hoop.yaml'), 'utf8')).toBe('connections: [app]\n');
    expect(readFileSync(join(tree, '.git/config'), 'utf8')).not.toContain('fsmonitor');
    expect(readFileSync(join(p.home, '.bashrc'), 'utf8')).toBe('# hers\n');
    // Its commit is data: the person's repository has it, and the person's git runs nothing the agent chose, anywhere in the tree.
    expect(asPerson(p, 'git', ['log', '--format=%s'], tree).stdout).toBe("the agent's\nthe person's\n");
    for (const dir of [tree, join(tree, 'sub')]) asPerson(p, 'git', ['status'], dir);
    asPerson(p, 'sh', ['-c', 'git commit --allow-empty -qm after'], tree);
    expect(existsSync(marker)).toBe(false);
    // Each refusal said, with why.
    for (const said of [
      'refused: pipe: it is not a file, a directory or a link',
      'refused: out: a symbolic link: it leads out of the tree, to /etc/passwd',
      'refused: sub/repo/.git (and the ',
      'refused: .git/hooks/pre-commit: git runs its hooks as you',
      "refused: .git/config: git's configuration names programs git runs as you",
      'refused: vendor/bare (and the 4 entries in it): it is a repository the command made',
      'refused: .git/rebase-merge (and the 1 entry in it): rebase-merge in a git directory is one of the controls git acts on as you',
      'refused: sub/.git: a .git that is not a directory',
      'refused: .hoop.yaml: it names the connections your next hoop run serves',
      'refused: .envrc: direnv runs it as you',
      'refused: huge.bin: it is larger than 256 MiB',
      'applied with fewer permissions than the command gave it (no special bit; group and others get no more than before): tool.sh',
      'applied with fewer permissions than the command gave it (no special bit; group and others get no more than before): sticky',
      'refused: bad\uFFFD.txt: its name is not UTF-8 text',
    ]) {
      expect(r.stderr).toContain(said);
    }
    // A name that would steer the terminal is applied (it is data) and said as escapes, never as what it does.
    expect(readFileSync(join(tree, 'evil\x1b[2K\rname.txt'), 'utf8')).toBe('hidden\x1b[2K\r line\n');
    expect(r.stderr).not.toContain('\x1b');
    expect(readdirSync(tree, { encoding: 'buffer' }).some((n) => n.includes(0xff))).toBe(false);
    // No layer is left behind.
    expect(readdirSync(join(p.state, 'hoop', 'layers'))).toEqual([]);
  });

  it('--review shows the diff on a terminal and applies only what its person accepts; no, and no terminal, keep it for later', async () => {
    const tree = join(p.work, 'reviewed');
    mkdirSync(tree);
    writeFileSync(join(tree, 'a.txt'), 'one\n');
    writeFileSync(join(tree, 'b.txt'), 'two\n');
    givePerson(who, tree);
    const agent = `printf 'one\\nmore\\n' > a.txt; printf 'new\\033[1A\\033[2K\\n' > c.txt; rm b.txt; mkfifo f`;
    // On a terminal: select, accept the first change (a.txt), refuse the rest.
    const selected = await onTerminal(p, ['run', '--review', '--connect', 'app', '--', 'sh', '-c', agent], tree, [
      { after: /\[s\]elect one by one: $/, send: 's\n' },
      { after: /apply this change\? .*: $/, send: 'y\n' },
      { after: /apply this change\? .*: $/, send: 'n\n' },
      { after: /apply this change\? .*: $/, send: 'n\n' },
    ]);
    expect(selected.code, selected.output).toBe(0);
    // The diff as git prints it, the refused FIFO headed by why; then what was applied.
    expect(selected.output).toContain('diff --git a/a.txt b/a.txt');
    expect(selected.output).toMatch(/@@ -1,1 \+1,2 @@\r?\n one\r?\n\S*\+more/);
    expect(selected.output).toContain('new file mode 100644');
    expect(selected.output).toContain('deleted file mode 100644');
    expect(selected.output).toContain('# hoop refuses this change: it is not a file, a directory or a link');
    expect(selected.output).toContain('you accepted 1 change of 3');
    // What would move the cursor up and erase the line above it is shown as escapes: the reviewer sees the whole diff.
    expect(selected.output).toContain('+new\\x1b[1A\\x1b[2K');
    expect(selected.output).not.toContain('\x1b[1A');
    expect(readFileSync(join(tree, 'a.txt'), 'utf8')).toBe('one\nmore\n');
    expect(readFileSync(join(tree, 'b.txt'), 'utf8')).toBe('two\n');
    expect(existsSync(join(tree, 'c.txt'))).toBe(false);
    // No: kept, then applied later with hoop run apply. What was typed into the command's own question, which it never read, answers nothing of hoop's.
    const asks = `echo later > d.txt; printf 'Run the tests now? [y/N] '; sleep 1.5`;
    const kept = await onTerminal(p, ['run', '--review', '--connect', 'app', '--', 'sh', '-c', asks], tree, [
      { after: /Run the tests now\? \[y\/N\] $/, send: 'y\n' },
      { after: /\[s\]elect one by one: $/, send: 'n\n' },
    ]);
    expect(kept.output).toMatch(/the command's 1 change is kept, not applied \(you kept them for later\): `hoop run diff (run-\S+)`/);
    const id = /hoop run diff (run-[A-Za-z0-9_-]+)/.exec(kept.output)![1]!;
    expect(existsSync(join(tree, 'd.txt'))).toBe(false);
    const listed = await hoop(p, ['run', 'ls', '--json']);
    expect(JSON.parse(listed.stdout)).toMatchObject({ runs: [{ run: id, state: 'kept', places: [tree] }] });
    const diff = await hoop(p, ['run', 'diff', id], { cwd: tree });
    expect(diff.stdout).toContain('diff --git a/d.txt b/d.txt\nnew file mode 100644\n');
    expect((await hoop(p, ['run', 'apply', id], { cwd: tree })).code).toBe(0);
    expect(readFileSync(join(tree, 'd.txt'), 'utf8')).toBe('later\n');
    expect((await hoop(p, ['run', 'ls', '--json'])).stdout).toContain('"runs":[]');
    // No terminal to review on: kept, and said so; discard drops it.
    const piped = await hoop(p, ['run', '--review', '--connect', 'app', '--', 'sh', '-c', 'echo dropped > e.txt'], { cwd: tree });
    expect(piped.stderr).toContain('kept, not applied (a review needs a terminal to answer on)');
    const dropped = /hoop run discard (run-[A-Za-z0-9_-]+)/.exec(piped.stderr)![1]!;
    expect((await hoop(p, ['run', 'discard', dropped], { cwd: tree })).stderr).toBe(`hoop: run ${dropped}: its changes were discarded\n`);
    expect(existsSync(join(tree, 'e.txt'))).toBe(false);
    expect((await hoop(p, ['run', 'apply', dropped])).code).toBe(64);
  });

  it('gives a shared directory and a shared file layers of their own, applied through the same gate', async () => {
    const tree = join(p.work, 'shares');
    const state = join(p.home, '.agent-state');
    const file = join(p.home, '.agent.json');
    for (const d of [tree, join(state, 'sessions')]) mkdirSync(d, { recursive: true });
    writeFileSync(join(state, 'sessions', 'old.jsonl'), '{}\n');
    writeFileSync(file, '{"n":1}\n');
    givePerson(who, p.home);
    givePerson(who, tree);
    const agent = `echo '{"n":2}' > ${file}; echo '{}' > ${state}/sessions/new.jsonl; mkdir -p ${state}/.claude && echo '{"hooks":{}}' > ${state}/.claude/settings.json; echo work > done.txt`;
    const r = await hoop(p, ['run', '--quiet', '--share', state, '--share', file, '--connect', 'app', '--', 'sh', '-c', agent], { cwd: tree });
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe('{"n":2}\n');
    expect(readdirSync(join(state, 'sessions')).sort()).toEqual(['new.jsonl', 'old.jsonl']);
    expect(readFileSync(join(tree, 'done.txt'), 'utf8')).toBe('work\n');
    expect(existsSync(join(state, '.claude', 'settings.json'))).toBe(false);
    expect(r.stderr).toContain(`refused: ${join(state, '.claude', 'settings.json').slice(1)}: Claude Code runs its hooks, MCP servers and helpers as you`);
  });

  it('--apply never keeps the changes; what its person changed since is theirs (not applied, kept) until --force', async () => {
    const tree = join(p.work, 'never');
    mkdirSync(tree);
    writeFileSync(join(tree, 'mine.txt'), 'v1\n');
    givePerson(who, tree);
    const r = await hoop(p, ['run', '--apply', 'never', '--quiet', '--connect', 'app', '--', 'sh', '-c', 'echo agent > mine.txt; echo agent > theirs.txt'], { cwd: tree });
    expect(r.code).toBe(0);
    const id = /hoop run apply (run-[A-Za-z0-9_-]+)/.exec(r.stderr)![1]!;
    expect(readFileSync(join(tree, 'mine.txt'), 'utf8')).toBe('v1\n');
    // Meanwhile the person edits the same file.
    asPerson(p, 'sh', ['-c', 'echo person > mine.txt'], tree);
    const applied = await hoop(p, ['run', 'apply', id], { cwd: tree });
    expect(applied.stderr).toContain('not applied: mine.txt: you changed it since the run began');
    expect(readFileSync(join(tree, 'mine.txt'), 'utf8')).toBe('person\n');
    expect(readFileSync(join(tree, 'theirs.txt'), 'utf8')).toBe('agent\n');
    expect((await hoop(p, ['run', 'apply', id, '--force'], { cwd: tree })).code).toBe(0);
    expect(readFileSync(join(tree, 'mine.txt'), 'utf8')).toBe('agent\n');
    expect((await hoop(p, ['run', 'ls', '--json'])).stdout).toContain('"runs":[]');
  });

  it('mounts a --share path by descriptor: swapped for a link to the home while runs begin (RENAME_EXCHANGE in a loop), no run gets the home, layered or live', async () => {
    const race = join(p.work, 'race');
    const cwd = join(p.work, 'race-cwd');
    for (const d of [join(race, 'shared'), cwd]) mkdirSync(d, { recursive: true });
    writeFileSync(join(race, 'shared', 'mine'), 'shared\n');
    symlinkSync(p.home, join(race, 'homelink'));
    givePerson(who, p.work);
    const racer = swapper(join(race, 'shared'), join(race, 'homelink'), { pauseMs: 0.2, ...(who.other ? { uid: who.uid, gid: who.gid } : {}) });
    const outcomes: string[] = [];
    try {
      for (const how of [[], ['--apply', 'live']]) {
        for (let i = 0; i < 6; i++) {
          const r = await hoop(
            p,
            [
              'run',
              ...how,
              '--quiet',
              '--share',
              join(race, 'shared'),
              '--connect',
              'app',
              '--',
              'sh',
              '-c',
              `ls -a ${race}/shared; cat ${race}/shared/.config/hoop/tokens/* 2>/dev/null; echo x > ${race}/shared/probe`,
            ],
            { cwd },
          );
          // Refused as it began (the place was the home's link, or changed under it), or run on the shared directory (which the racer keeps renaming under it).
          const refused = /it holds your home directory|changed while the run began|could not start the command's sandbox/.test(r.stderr);
          outcomes.push(refused ? 'refused' : 'ran');
          if (refused) expect(r.code).not.toBe(0);
          // Never the home to write, nor hoop's tokens in it to read (the home itself it reads, as every run does).
          expect(r.stdout).not.toContain('alice-refresh-token');
        }
      }
    } finally {
      racer.kill();
    }
    // The home has nothing of any run's; what ran wrote the shared directory (live), or its layer (kept when the place had moved by its end).
    expect(readFileSync(join(p.home, '.bashrc'), 'utf8')).toBe('# hers\n');
    expect(existsSync(join(p.home, 'probe'))).toBe(false);
    expect(outcomes).toHaveLength(12);
    expect(outcomes).toContain('refused'); // the race was on
    for (const l of JSON.parse((await hoop(p, ['run', 'ls', '--json'])).stdout).runs as Array<{ run: string }>) await hoop(p, ['run', 'discard', l.run]);
  });

  it('ends whole: what left the command (setsid, a double fork, nohup) dies with it; stopped, its sandbox is frozen; killed then, nothing goes on and its changes are kept', async () => {
    const tree = join(p.work, 'whole');
    mkdirSync(tree);
    givePerson(who, tree);
    // Writers that leave the command's session and process group, and outlive it.
    const writer = (name: string): string => `while :; do date +%s%N >> ${name}.log; sleep 0.05; done`;
    const detach = `setsid sh -c '${writer('setsid')}' & ( ( sh -c '${writer('fork')}' & ) & ) ; nohup sh -c '${writer('nohup')}' >/dev/null 2>&1 &`;
    // It tries to stop its sandbox's first process (SIGSTOP, ptrace), and to reach its memory: the kernel lets it do none.
    const pid1 = `kill -STOP 1; python3 -c '${PID1_PROBE}' > pid1.txt`;
    const quick = await hoop(p, ['run', '--quiet', '--connect', 'app', '--', 'sh', '-c', `${detach} ${pid1}; sleep 0.3; mkdir -p .git/hooks; echo made > made.txt`], { cwd: tree });
    expect(quick.code, quick.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(tree, 'pid1.txt'), 'utf8'))).toEqual({ seize: 'EPERM', mem: 'EACCES', getfd: 'EPERM' });
    // Nothing of it runs after its hoop run ended: no writer, and nothing they wrote after the gate read the layer.
    expect(runningWith(tree)).toEqual([]);
    expect(readFileSync(join(tree, 'made.txt'), 'utf8')).toBe('made\n');
    const sizes = ['setsid', 'fork', 'nohup'].map((n) => statSync(join(tree, `${n}.log`)).size);
    await quietFor(300);
    expect(['setsid', 'fork', 'nohup'].map((n) => statSync(join(tree, `${n}.log`)).size)).toEqual(sizes);
    // Stopped (Ctrl-Z stops its process group), the sandbox is frozen, the escaped writer too; then killed, nothing of it goes on.
    let child: import('node:child_process').ChildProcess | undefined;
    const started = new Promise<void>((ready) => {
      void hoop(p, ['run', '--quiet', '--connect', 'app', '--', 'sh', '-c', `setsid sh -c '${writer('escaped')}; ' & echo started; sleep 60`], {
        cwd: tree,
        detached: true,
        onStdout: (text, c) => {
          child = c;
          if (text.includes('started')) ready();
        },
      });
    });
    await started;
    const escaped = await eventually(() => {
      const [pid] = runningWith(tree, 'escaped');
      expect(pid).toBeDefined();
      return pid!;
    });
    process.kill(child!.pid!, 'SIGSTOP');
    await eventually(() => expect(isStopped(escaped)).toBe(true), { timeout: 60_000 });
    process.kill(child!.pid!, 'SIGKILL');
    await eventually(() => expect(runningWith(tree)).toEqual([]), { timeout: 60_000 });
    expect(existsSync(join(tree, 'escaped.log'))).toBe(false);
    // The person's next hoop command says the run's changes were kept, once.
    await keptAndSaidOnce(p);
    // The same with Ctrl-Z on a terminal, in a shell with job control, then kill -9.
    const shell = onTerminal(p, ['run', '--quiet', '--connect', 'app', '--', 'sh', '-c', `setsid sh -c '${writer('ctrlz')}; ' & echo started; sleep 60`], tree, [], { jobControl: true });
    const stopped = await eventually(() => {
      const [pid] = runningWith(tree, 'ctrlz');
      expect(pid).toBeDefined();
      return pid!;
    });
    shell.type('\x1a');
    await eventually(() => expect(isStopped(stopped)).toBe(true), { timeout: 60_000 });
    // (a process may end between the listing and the reading of its command line)
    const cmdline = (pid: string): string => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        return '';
      }
    };
    const [hoopPid] = readdirSync('/proc').filter((d) => /^\d+$/.test(d) && cmdline(d).split('\0')[1]?.endsWith('bin/hoop.js') && cmdline(d).includes('ctrlz.log'));
    expect(processState(Number(hoopPid))).toBe('T');
    process.kill(Number(hoopPid), 'SIGKILL');
    await eventually(() => expect(runningWith(tree)).toEqual([]), { timeout: 60_000 });
    shell.type('\n');
    await shell.done;
    expect(existsSync(join(tree, 'ctrlz.log'))).toBe(false);
    await keptAndSaidOnce(p);
    // A command ended by a signal applies nothing of what it half did: kept, and said why.
    const ended = await hoop(p, ['run', '--connect', 'app', '--', 'sh', '-c', 'echo half > half.txt; kill -TERM $$'], { cwd: tree });
    expect(ended.code).toBe(143);
    expect(ended.stderr).toContain('kept, not applied (the command was ended by SIGTERM)');
    expect(existsSync(join(tree, 'half.txt'))).toBe(false);
    await hoop(p, ['run', 'discard', /hoop run discard (run-[A-Za-z0-9_-]+)/.exec(ended.stderr)![1]!]);
  });
});

/** That the next hoop command of `p`'s person says once that the changes of a run whose hoop run was killed are kept; then drops them. */
async function keptAndSaidOnce(p: Places): Promise<void> {
  const next = await hoop(p, ['--version']);
  const id = /run (run-[A-Za-z0-9_-]+)'s hoop run stopped before its command ended: what the command changed is kept, not applied/.exec(next.stderr)?.[1];
  expect(id, next.stderr).toBeDefined();
  expect((await hoop(p, ['--version'])).stderr).toBe('');
  expect(JSON.parse((await hoop(p, ['run', 'ls', '--json'])).stdout)).toMatchObject({ runs: [{ run: id, state: 'left' }] });
  expect((await hoop(p, ['run', 'discard', id!])).code).toBe(0);
}

describe('the policy', () => {
  it("runs.apply: gate refuses runs that write the tree themselves (--apply live, not contained); runs.review keeps its agents' changes for review", async () => {
    const p = await placesFor(PEOPLE[0]!);
    try {
      await runsPolicy('heartbeatTimeout: 5s, apply: gate, review: [careful-*], applyControls: [.vscode/settings.json]');
      for (const how of [
        ['--apply', 'live'],
        ['--isolation', 'none'],
      ]) {
        const r = await hoop(p, ['run', ...how, '--connect', 'app', '--', 'sh', '-c', 'echo x > live.txt']);
        expect({ how, code: r.code }).toEqual({ how, code: 77 });
        expect(r.stderr).toContain("the policy wants a run's changes to reach its person only through the gate (runs.apply: gate)");
      }
      expect(existsSync(join(p.work, 'live.txt'))).toBe(false);
      const careful = await hoop(p, ['run', '--agent', 'careful-bot', '--connect', 'app', '--', 'sh', '-c', 'echo x > careful.txt']);
      expect(careful.stderr).toContain('kept, not applied (a review needs a terminal to answer on)');
      expect(existsSync(join(p.work, 'careful.txt'))).toBe(false);
      const other = await hoop(p, ['run', '--agent', 'bold-bot', '--quiet', '--connect', 'app', '--', 'sh', '-c', 'echo x > bold.txt']);
      expect(other).toMatchObject({ code: 0, stderr: '' });
      expect(existsSync(join(p.work, 'bold.txt'))).toBe(true);
      // A control the policy names goes through; the others do not.
      const vscode = await hoop(p, ['run', '--agent', 'bold-bot', '--quiet', '--connect', 'app', '--', 'sh', '-c', 'mkdir .vscode; echo {} > .vscode/settings.json; echo {} > .vscode/tasks.json']);
      expect(vscode.stderr).toContain('refused: .vscode/tasks.json: VS Code runs the programs its settings, tasks and launch configurations name, as you');
      expect(readdirSync(join(p.work, '.vscode'))).toEqual(['settings.json']);
    } finally {
      await runsPolicy('heartbeatTimeout: 5s');
      rmSync(p.base, { recursive: true, force: true });
    }
  });
});

/** Tries to stop process 1 with ptrace, read its memory and take a descriptor of it; prints each outcome's errno name. */
const PID1_PROBE = `import ctypes, errno, json
l = ctypes.CDLL(None, use_errno=True)
out = {}
out["seize"] = "ok" if l.ptrace(0x4206, 1, 0, 0) == 0 else errno.errorcode[ctypes.get_errno()]
try:
    open("/proc/1/mem", "rb").close(); out["mem"] = "ok"
except OSError as e:
    out["mem"] = errno.errorcode[e.errno]
fd = l.syscall(434, 1, 0)
out["getfd"] = "ok" if fd >= 0 and l.syscall(438, fd, 0, 0) >= 0 else errno.errorcode[ctypes.get_errno()]
print(json.dumps(out))`;

/** The pids of the writer loops (`sh -c 'while :; do date … >> NAME.log …'`) working in `dir`, of `log` alone when named. */
function runningWith(dir: string, log = ''): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .flatMap((pid) => {
      try {
        const [sh, c, script] = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        const loop = sh === 'sh' && c === '-c' && script?.startsWith(`while :; do date +%s%N >> ${log}`);
        return loop && readlinkSync(`/proc/${pid}/cwd`).startsWith(dir) ? [Number(pid)] : [];
      } catch {
        return [];
      }
    });
}

/**
 * Whether process `pid` is stopped: its state T, or D while every child it waits for is (a
 * shell that vforked, dash's way, waits uninterruptibly for a child stopped before it ran).
 */
function isStopped(pid: number): boolean {
  const state = processState(pid);
  if (state === 'T') return true;
  if (state !== 'D') return false;
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  } catch {
    return false;
  }
  return children.length > 0 && children.every(isStopped);
}

/** The state letter of process `pid` (R, S, T, ...). */
function processState(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[0];
  } catch {
    return undefined;
  }
}

/**
 * `hoop <args>` as the person of `p` on a terminal of its own (util-linux `script`), answering
 * each prompt of `answers` in turn once the output ends with it.
 */
function onTerminal(
  p: Places,
  args: string[],
  cwd: string,
  answers: Array<{ after: RegExp; send: string }>,
  o: { jobControl?: boolean } = {},
): Promise<{ code: number | null; output: string }> & { type(text: string): void; done: Promise<unknown>; output(): string } {
  const gateway = ['--gateway', stack.gateway.url, '--ca-file', p.ca];
  const quote = (a: string): string => `'${a.replace(/'/g, "'\\''")}'`;
  const hoopLine = [process.execPath, join(import.meta.dirname, '../../bin/hoop.js'), args[0]!, ...gateway, ...args.slice(1)].map(quote).join(' ');
  // With job control: an interactive bash runs it as a job of its own, as a person's shell does (Ctrl-Z stops that job), then waits for a line.
  const line = o.jobControl ? `bash --norc --noprofile -ic ${quote(`${hoopLine}; echo after; read line`)}` : hoopLine;
  const child = spawn('script', ['-qefc', line, '/dev/null'], {
    cwd,
    env: { PATH: process.env.PATH, TERM: 'dumb', ...envOf(p) },
    stdio: ['pipe', 'pipe', 'pipe'],
    ...(p.person.other ? { uid: p.person.uid, gid: p.person.gid } : {}),
  });
  let output = '';
  const pending = [...answers];
  const take = (d: Buffer): void => {
    output += d.toString();
    if (pending[0]?.after.test(output)) {
      child.stdin.write(pending.shift()!.send);
      output += '\n';
    }
  };
  child.stdout.on('data', take);
  child.stderr.on('data', take);
  const done = new Promise<{ code: number | null; output: string }>((resolve) => child.on('close', (code) => resolve({ code, output })));
  return Object.assign(done, { type: (text: string) => void child.stdin.write(text), done, output: () => output });
}
