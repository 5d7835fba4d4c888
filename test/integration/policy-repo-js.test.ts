/**
 * The config repo without the git program: PolicyRepo's isomorphic-git backend (src/policy/git-js.ts)
 * against the CLI backend on the same repos (refs, pulls, refusals, fallback), the backend choice
 * on a host whose PATH has no git, repos made by createPolicyRepo read by the real git, and crafted
 * trees the JS checkout refuses.
 *
 * @see https://git-scm.com/docs/gitrevisions
 * @see https://git-scm.com/docs/git-hash-object (--literally, for trees git itself would refuse)
 * @see https://git-scm.com/docs/git-fsck#_fsck_messages
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../harness/run-cli.js';
import { ErrorCode } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { MAX_CHECKOUT_BYTES, MAX_CHECKOUT_ENTRIES, commitPolicyFiles, createPolicyRepo } from '../../src/policy/git-js.js';
import { PolicyRepo, cliPolicyWorkDir, type PolicyRepoOptions } from '../../src/policy/repo.js';

let base: string;
let gitEnv: NodeJS.ProcessEnv;
/** A PATH holding only `node`: no git, no ssh-keygen. */
let nodeOnly: string;
let n = 0;

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd, env: gitEnv, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

function gitInput(cwd: string, input: Buffer | string, ...args: string[]): string {
  return execFileSync('git', args, { cwd, env: gitEnv, input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] }).trim();
}

function newRepo(): string {
  const dir = join(base, `repo${n++}`);
  mkdirSync(dir);
  git(dir, 'init', '-q', '-b', 'main');
  return dir;
}

function commit(repo: string, files: Record<string, string>): string {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(repo, path, '..'), { recursive: true });
    writeFileSync(join(repo, path), text);
  }
  git(repo, 'add', '-A');
  git(repo, 'commit', '-q', '--allow-empty', '-m', `change ${n++}`);
  return git(repo, 'rev-parse', 'HEAD');
}

/** A tree object built byte by byte (git's own tools refuse duplicate names). */
function rawTree(repo: string, entries: [mode: string, name: string, oid: string][]): string {
  const body = Buffer.concat(entries.map(([mode, name, oid]) => Buffer.concat([Buffer.from(`${mode} ${name}\0`), Buffer.from(oid, 'hex')])));
  return gitInput(repo, body, 'hash-object', '-t', 'tree', '-w', '--stdin', '--literally');
}

/** Commits `tree` on top of main and moves main there. */
function commitTree(repo: string, tree: string): string {
  const sha = git(repo, 'commit-tree', tree, '-p', 'main', '-m', `crafted ${n++}`);
  git(repo, 'update-ref', 'refs/heads/main', sha);
  return sha;
}

const blob = (repo: string, text: Buffer | string): string => gitInput(repo, text, 'hash-object', '-w', '--stdin');

const policyText = (group: string) => `version: 1
connections:
  - { name: db, type: postgres, host: h, database: d, user: u, password: "\${env:DB_PASSWORD}" }
access:
  - { name: team, groups: [${group}], connections: [db] }
`;
const BROKEN = 'version: 1\naccess:\n  - { name: team, connections: [db], mode: sometimes }\n';
const SECRETS = ['${env:DB_PASSWORD}'];
const AUTHOR = { name: 'Demo Author', email: 'demo@example.org' };

function logSink(): { lines: () => Record<string, unknown>[]; log: ReturnType<typeof createLogger> } {
  const out: string[] = [];
  return { lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>), log: createLogger({ level: 'debug', sink: { write: (l: string) => out.push(l) } }) };
}

const env = (path = gitEnv.PATH) => ({ ...gitEnv, PATH: path, DB_PASSWORD: 'pw' });

/** Opens `repo` at `ref` with a backend, in a fresh work directory unless one is given. */
function open(repo: string, backend: 'cli' | 'js' | 'auto', extra: Partial<PolicyRepoOptions> = {}): Promise<PolicyRepo> {
  return PolicyRepo.open({ path: repo, ref: 'main', workDir: join(base, `work${n++}`), env: env(), allowedSecrets: SECRETS, backend, ...extra });
}

/** The commit `ref` resolves to with a backend, or the error. */
async function resolved(repo: string, ref: string, backend: 'cli' | 'js'): Promise<string> {
  try {
    const pr = await open(repo, backend, { ref });
    return pr.commit;
  } catch (err) {
    return (err as Error).message.replace(/^.*: (ref \S+ not found).*$/s, '$1');
  }
}

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'hoop-policy-repo-js-'));
  mkdirSync(join(base, 'home'));
  gitEnv = {
    PATH: process.env.PATH,
    HOME: join(base, 'home'),
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_NAME: 'Policy Author',
    GIT_AUTHOR_EMAIL: 'author@example.org',
    GIT_COMMITTER_NAME: 'Policy Author',
    GIT_COMMITTER_EMAIL: 'author@example.org',
  };
  nodeOnly = join(base, 'node-only-bin');
  mkdirSync(nodeOnly);
  symlinkSync(process.execPath, join(nodeOnly, 'node'));
});

afterAll(() => rmSync(base, { recursive: true, force: true }));

describe.each(['cli', 'js'] as const)('PolicyRepo with the %s backend', (backend) => {
  it('loads a branch, follows new commits, refuses a bad one once (the refusal cache), then takes the fix', async () => {
    const repo = newRepo();
    const first = commit(repo, { 'policy/main.yaml': policyText('dev'), 'README.md': 'x' });
    const { log, lines } = logSink();
    const workDir = join(base, `work${n++}`);
    const pr = await open(repo, backend, { log, workDir });
    expect(pr.backendKind).toBe(backend);
    expect(pr.commit).toBe(first);
    expect(pr.current().access[0]!.groups).toEqual(['dev']);
    expect(await pr.refresh()).toEqual({ changed: false, commit: first, candidate: first });

    const second = commit(repo, { 'policy/main.yaml': policyText('ops') });
    expect(await pr.refresh()).toEqual({ changed: true, commit: second, candidate: second });
    expect(pr.current().access[0]!.groups).toEqual(['ops']);

    const bad = commit(repo, { 'policy/main.yaml': BROKEN });
    const refused = await pr.refresh();
    expect(refused).toMatchObject({ changed: false, commit: second, candidate: bad });
    expect(refused.error).toBe(`commit ${bad.slice(0, 12)} has an invalid policy:\n  policy/main.yaml:3:44: access.0.mode: must be read-only or read-write`);
    expect(await pr.refresh()).toEqual(refused);
    expect(lines().filter((l) => l.event === 'policy.refused')).toHaveLength(1);

    const fixed = commit(repo, { 'policy/main.yaml': policyText('dba') });
    expect(await pr.refresh()).toMatchObject({ changed: true, commit: fixed });
    expect(existsSync(join(workDir, 'mirror.git'))).toBe(backend === 'cli');
    expect(readdirSync(join(workDir, 'trees'))).toEqual([]); // checkouts are gone once loaded
    await pr.stop();
  });

  it('falls back to the last accepted commit when the head is refused at start-up', async () => {
    const repo = newRepo();
    const good = commit(repo, { 'hoop.yaml': policyText('dev') });
    const workDir = join(base, `work${n++}`);
    await (await open(repo, backend, { workDir })).stop();
    commit(repo, { 'hoop.yaml': BROKEN });
    const { log, lines } = logSink();
    const pr = await open(repo, backend, { workDir, log });
    expect(pr.commit).toBe(good);
    expect(pr.lastRefresh()?.error).toContain('has an invalid policy');
    expect(lines().map((l) => l.event)).toEqual(expect.arrayContaining(['policy.refused', 'policy.fallback', 'policy.loaded']));
    await expect(open(repo, backend)).rejects.toMatchObject({ code: ErrorCode.CONFIG_INVALID });
  });

  it('without allowed signers, takes a ref moved back (anyone who may push writes the policy) and warns that history went back (policy.rewound)', async () => {
    const repo = newRepo();
    const first = commit(repo, { 'hoop.yaml': policyText('dev') });
    const second = commit(repo, { 'hoop.yaml': policyText('ops') });
    const { log, lines } = logSink();
    const pr = await open(repo, backend, { log });
    expect(pr.commit).toBe(second);
    git(repo, 'reset', '-q', '--hard', 'HEAD~1');
    expect(await pr.refresh()).toEqual({ changed: true, commit: first, candidate: first });
    expect(lines().filter((l) => l.event === 'policy.rewound')).toEqual([
      expect.objectContaining({ level: 'warn', commit: first, previous: second, message: expect.stringContaining(`does not descend from ${second.slice(0, 12)}, in force`) }),
    ]);
    const third = commit(repo, { 'hoop.yaml': policyText('dba') });
    expect(await pr.refresh()).toMatchObject({ changed: true, commit: third });
    expect(lines().filter((l) => l.event === 'policy.rewound')).toHaveLength(1);
    await pr.stop();
  });

  it('refuses a symlinked policy file and loads a tree with a submodule entry', async () => {
    const repo = newRepo();
    commit(repo, { 'real.yaml': policyText('dev') });
    symlinkSync('real.yaml', join(repo, 'hoop.yaml'));
    const linked = commit(repo, {});
    await expect(open(repo, backend)).rejects.toMatchObject({
      message: expect.stringMatching(new RegExp(`commit ${linked.slice(0, 12)} has an invalid policy:\n  hoop\\.yaml:.*is a symbolic link`)),
    });
    rmSync(join(repo, 'hoop.yaml'));
    writeFileSync(join(repo, 'hoop.yaml'), policyText('ops'));
    git(repo, 'add', '-A');
    git(repo, 'update-index', '--add', '--cacheinfo', `160000,${linked},vendor/sub`);
    git(repo, 'commit', '-q', '-m', 'submodule');
    const pr = await open(repo, backend);
    expect(pr.current().access[0]!.groups).toEqual(['ops']);
  });
});

describe('the JS backend', () => {
  it('resolves branches, tags (annotated, nested), refs/... names and commit ids as the CLI backend does', async () => {
    const repo = newRepo();
    const c1 = commit(repo, { 'hoop.yaml': policyText('dev') });
    const c2 = commit(repo, { 'hoop.yaml': policyText('ops') });
    git(repo, 'branch', 'feature/x', c1);
    git(repo, 'tag', 'v1', c1);
    git(repo, 'tag', '-a', '-m', 'v2', 'v2', c2);
    git(repo, 'tag', '-a', '-m', 'v3', 'v3', 'v2');
    git(repo, 'tag', '-a', '-m', 'a tree', 'treetag', `${c1}^{tree}`);
    git(repo, 'branch', 'both', c1);
    git(repo, 'tag', 'both', c2);
    git(repo, 'update-ref', 'refs/remotes/origin/main', c1);
    git(repo, 'update-ref', 'refs/notes/x', c1);
    const refs = [
      'main',
      'refs/heads/main',
      'heads/main',
      'feature/x',
      'v1',
      'tags/v1',
      'refs/tags/v2',
      'v2',
      'v3',
      'both',
      c1,
      c1.slice(0, 10),
      'treetag',
      'nope',
      'origin/main',
      'refs/remotes/origin/main',
      'notes/x',
    ];
    const expected = [
      c2,
      c2,
      c2,
      c1,
      c1,
      c1,
      c2,
      c2,
      c2,
      c2,
      c1,
      c1,
      'ref treetag not found',
      'ref nope not found',
      'ref origin/main not found',
      'ref refs/remotes/origin/main not found',
      'ref notes/x not found',
    ];
    const cli = await Promise.all(refs.map((r) => resolved(repo, r, 'cli')));
    expect(cli).toEqual(expected);
    const js = await Promise.all(refs.map((r) => resolved(repo, r, 'js')));
    expect(js).toEqual(expected);
    // Packed refs and packed objects too.
    git(repo, 'gc', '-q', '--prune=now');
    expect(existsSync(join(repo, '.git', 'packed-refs'))).toBe(true);
    expect(await Promise.all(refs.map((r) => resolved(repo, r, 'js')))).toEqual(expected);
  });

  it('reads a bare repo (also named without its .git suffix, as git allows) and a file:// URL', async () => {
    const repo = newRepo();
    const c1 = commit(repo, { 'hoop.yaml': policyText('dev') });
    const bare = join(base, `bare${n++}.git`);
    git(base, 'clone', '-q', '--bare', repo, bare);
    expect((await open(bare, 'js')).commit).toBe(c1);
    expect((await open(bare.slice(0, -'.git'.length), 'js')).commit).toBe(c1);
    const url = pathToFileURL(repo).href;
    const pr = await PolicyRepo.open({ url, ref: 'main', workDir: join(base, `work${n++}`), env: env(), allowedSecrets: SECRETS, backend: 'js' });
    expect(pr.commit).toBe(c1);
  });

  it('says which repos need git: linked worktrees, alternates, extensions, a newer format', async () => {
    const repo = newRepo();
    commit(repo, { 'hoop.yaml': policyText('dev') });
    const linked = join(base, `linked${n++}`);
    git(repo, 'worktree', 'add', '-q', '-b', 'other', linked);
    await expect(open(linked, 'js')).rejects.toMatchObject({
      message: expect.stringMatching(/cannot read .*: .*\.git is a file \(a linked worktree or a submodule\); reading it needs the git program/),
    });

    const shared = join(base, `shared${n++}`);
    git(base, 'clone', '-q', '--shared', repo, shared);
    await expect(open(shared, 'js')).rejects.toMatchObject({ message: expect.stringContaining('borrows objects from another repository (objects/info/alternates); reading it needs the git program') });

    const sha256 = join(base, `sha256-${n++}`);
    git(base, 'init', '-q', '--object-format=sha256', sha256);
    await expect(open(sha256, 'js')).rejects.toMatchObject({ message: expect.stringContaining('uses extensions.objectformat; reading it needs the git program') });

    const v2 = newRepo();
    commit(v2, { 'hoop.yaml': policyText('dev') });
    git(v2, 'config', 'core.repositoryformatversion', '2');
    await expect(open(v2, 'js')).rejects.toMatchObject({ message: expect.stringContaining('has core.repositoryformatversion 2; reading it needs the git program') });

    // worktreeConfig changes nothing about reading objects and refs.
    const wt = newRepo();
    const c = commit(wt, { 'hoop.yaml': policyText('dev') });
    git(wt, 'config', 'core.repositoryformatversion', '1');
    git(wt, 'config', 'extensions.worktreeConfig', 'true');
    expect((await open(wt, 'js')).commit).toBe(c);

    await expect(open(join(base, 'missing'), 'js')).rejects.toMatchObject({ message: expect.stringContaining('does not appear to be a git repository') });
  });

  it('refuses a tree with two entries of one name, too many entries or too many bytes', async () => {
    const repo = newRepo();
    const good = commit(repo, { 'hoop.yaml': policyText('dev') });
    const { log } = logSink();
    const pr = await open(repo, 'js', { log });
    const text = blob(repo, policyText('ops'));

    const dup = commitTree(
      repo,
      rawTree(repo, [
        ['100644', 'hoop.yaml', text],
        ['100644', 'hoop.yaml', blob(repo, policyText('everyone'))],
      ]),
    );
    expect((await pr.refresh()).error).toBe(`commit ${dup.slice(0, 12)} cannot be loaded: the tree of the top directory has two entries named "hoop.yaml"`);
    const sub = rawTree(repo, [
      ['100644', 'a.yaml', text],
      ['100644', 'a.yaml', text],
    ]);
    const dupDir = commitTree(
      repo,
      rawTree(repo, [
        ['100644', 'hoop.yaml', text],
        ['40000', 'policy', sub],
      ]),
    );
    expect((await pr.refresh()).error).toBe(`commit ${dupDir.slice(0, 12)} cannot be loaded: the tree of policy/ has two entries named "a.yaml"`);

    const empty = blob(repo, '');
    const wide = rawTree(
      repo,
      Array.from({ length: MAX_CHECKOUT_ENTRIES }, (_, i) => ['100644', `f${String(i).padStart(5, '0')}`, empty] as [string, string, string]),
    );
    const many = commitTree(
      repo,
      rawTree(repo, [
        ['100644', 'hoop.yaml', text],
        ['40000', 'many', wide],
      ]),
    );
    expect((await pr.refresh()).error).toBe(`commit ${many.slice(0, 12)} cannot be loaded: the commit has more than ${MAX_CHECKOUT_ENTRIES} files and directories (the most read without git)`);

    const big = blob(repo, Buffer.alloc(MAX_CHECKOUT_BYTES + 1));
    const large = commitTree(
      repo,
      rawTree(repo, [
        ['100644', 'big.bin', big],
        ['100644', 'hoop.yaml', text],
      ]),
    );
    expect((await pr.refresh()).error).toBe(`commit ${large.slice(0, 12)} cannot be loaded: the commit's files add up to more than 64 MiB (the most read without git; big.bin is past it)`);

    expect(pr.commit).toBe(good);
    const fine = commitTree(repo, rawTree(repo, [['100644', 'hoop.yaml', text]]));
    expect(await pr.refresh()).toMatchObject({ changed: true, commit: fine });
    expect(pr.current().access[0]!.groups).toEqual(['ops']);
  });

  it('shares accepted.json with the CLI backend: either can take over the work directory', async () => {
    const repo = newRepo();
    const good = commit(repo, { 'hoop.yaml': policyText('dev') });
    const workDir = join(base, `work${n++}`);
    await (await open(repo, 'cli', { workDir })).stop();
    commit(repo, { 'hoop.yaml': BROKEN });
    expect((await open(repo, 'js', { workDir })).commit).toBe(good);
    const next = commit(repo, { 'hoop.yaml': policyText('ops') });
    expect((await open(repo, 'js', { workDir })).commit).toBe(next);
    commit(repo, { 'hoop.yaml': BROKEN });
    expect((await open(repo, 'cli', { workDir })).commit).toBe(next);
  });
});

describe('createPolicyRepo and commitPolicyFiles', () => {
  it('make a repo that git fsck --strict accepts and both backends load, and commits that a pull follows', async () => {
    const dir = join(base, `created${n++}`);
    const first = await createPolicyRepo(dir, { 'policy/main.yaml': policyText('dev'), 'docs/notes.md': 'notes\n', 'README.md': '# demo\n' }, AUTHOR, 'Initial policy');
    git(dir, 'fsck', '--strict', '--no-progress');
    expect(git(dir, 'log', '--format=%H|%an <%ae>|%cn <%ce>|%s')).toBe(`${first}|Demo Author <demo@example.org>|Demo Author <demo@example.org>|Initial policy`);
    expect(git(dir, 'symbolic-ref', 'HEAD')).toBe('refs/heads/main');
    expect(git(dir, 'status', '--porcelain')).toBe('');
    expect(git(dir, 'ls-tree', '-r', '--name-only', 'HEAD').split('\n')).toEqual(['README.md', 'docs/notes.md', 'policy/main.yaml']);
    expect(git(dir, 'config', 'core.ignorecase')).toBe('false');

    const cli = await open(dir, 'cli');
    const js = await open(dir, 'js');
    expect([cli.commit, js.commit]).toEqual([first, first]);
    expect(js.current().access[0]!.groups).toEqual(['dev']);

    const second = await commitPolicyFiles(dir, { 'policy/main.yaml': policyText('ops'), 'docs/notes.md': null }, AUTHOR, 'Let ops in');
    git(dir, 'fsck', '--strict', '--no-progress');
    expect(git(dir, 'rev-list', 'HEAD').split('\n')).toEqual([second, first]);
    expect(git(dir, 'status', '--porcelain')).toBe('');
    expect(git(dir, 'ls-tree', '-r', '--name-only', 'HEAD').split('\n')).toEqual(['README.md', 'policy/main.yaml']);
    for (const pr of [cli, js]) {
      expect(await pr.refresh()).toMatchObject({ changed: true, commit: second });
      expect(pr.current().access[0]!.groups).toEqual(['ops']);
    }
  });

  it('refuse a non-empty directory and paths outside the repo', async () => {
    const dir = join(base, `created${n++}`);
    mkdirSync(dir);
    writeFileSync(join(dir, 'x'), '');
    await expect(createPolicyRepo(dir, { 'hoop.yaml': '' }, AUTHOR, 'm')).rejects.toMatchObject({
      code: ErrorCode.USAGE,
      message: `${dir} is not empty; give a new or empty directory for the policy repo`,
    });
    for (const bad of ['../x', '/etc/x', 'a//b', '.git/config', 'a\\b']) {
      await expect(createPolicyRepo(join(base, `created${n++}`), { [bad]: '' }, AUTHOR, 'm')).rejects.toMatchObject({ code: ErrorCode.USAGE });
    }
  });
});

describe('choosing the backend', () => {
  it('uses the git CLI when git runs, and isomorphic-git for a local repo when PATH has no git', async () => {
    const repo = newRepo();
    const c1 = commit(repo, { 'hoop.yaml': policyText('dev') });
    expect((await open(repo, 'auto')).backendKind).toBe('cli');
    const { log, lines } = logSink();
    const pr = await open(repo, 'auto', { env: env(nodeOnly), log });
    expect([pr.backendKind, pr.commit]).toEqual(['js', c1]);
    expect(lines().find((l) => l.event === 'policy.git_missing')).toMatchObject({ level: 'info', message: 'git was not found on PATH: reading the local repo without it (isomorphic-git)' });
    const viaUrl = await PolicyRepo.open({ url: `file://${repo}`, ref: 'main', workDir: join(base, `work${n++}`), env: env(nodeOnly), allowedSecrets: SECRETS });
    expect([viaUrl.backendKind, viaUrl.commit]).toEqual(['js', c1]);
  });

  it('fails at open, saying why, for allowed signers or a remote URL without git, and allowed signers without ssh-keygen', async () => {
    const repo = newRepo();
    commit(repo, { 'hoop.yaml': policyText('dev') });
    const signers = join(base, `allowed_signers${n++}`);
    writeFileSync(signers, '');
    await expect(open(repo, 'auto', { env: env(nodeOnly), allowedSignersFile: signers })).rejects.toMatchObject({
      code: ErrorCode.CONFIG_INVALID,
      message: `allowed signers are set (${signers}), but verifying signed commits needs the git and ssh-keygen programs, and git was not found on PATH`,
      hint: 'install git and OpenSSH (ssh-keygen) on this host; unsigned commits are never accepted while allowed signers are set',
    });
    await expect(PolicyRepo.open({ url: 'https://ci:hunter2@git.example.com/acme/policy.git', ref: 'main', workDir: join(base, `work${n++}`), env: env(nodeOnly) })).rejects.toMatchObject({
      code: ErrorCode.CONFIG_INVALID,
      message: 'fetching https://***@git.example.com/acme/policy.git needs the git program, which was not found on PATH',
    });
    await expect(PolicyRepo.open({ url: 'git@github.com:acme/policy.git', ref: 'main', workDir: join(base, `work${n++}`), env: env(nodeOnly) })).rejects.toMatchObject({
      message: 'fetching git@github.com:acme/policy.git needs the git program, which was not found on PATH',
    });

    // git, but no ssh-keygen.
    const gitOnly = join(base, `git-only-bin${n++}`);
    mkdirSync(gitOnly);
    symlinkSync(execFileSync('which', ['git'], { encoding: 'utf8' }).trim(), join(gitOnly, 'git'));
    await expect(open(repo, 'auto', { env: env(gitOnly), allowedSignersFile: signers })).rejects.toMatchObject({
      code: ErrorCode.CONFIG_INVALID,
      message: `allowed signers are set (${signers}), but verifying signed commits needs the ssh-keygen program, which was not found on PATH`,
    });
    expect((await open(repo, 'auto', { env: env(gitOnly) })).backendKind).toBe('cli');
  });

  it('hoop policy pull works on a host whose PATH has only node', async () => {
    const dir = join(base, `created${n++}`);
    const first = await createPolicyRepo(dir, { 'hoop.yaml': policyText('dev') }, AUTHOR, 'Initial policy');
    const configDir = join(base, `cli-config${n++}`);
    const r = await runCli(['policy', 'pull', '--repo', dir], { PATH: nodeOnly, HOME: join(base, 'home'), HOOP_CONFIG_DIR: configDir }, base);
    expect(r).toMatchObject({ code: 0, stdout: `${first}\n` });
    const workDir = cliPolicyWorkDir(configDir, dir);
    expect(JSON.parse(readFileSync(join(workDir, 'accepted.json'), 'utf8'))).toMatchObject({ commit: first });
    expect(existsSync(join(workDir, 'mirror.git'))).toBe(false);
  });
});
