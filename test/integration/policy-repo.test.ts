/**
 * The config repo with real git and ssh-keygen: load a ref (branch or tag), pull new commits,
 * refuse invalid ones and keep the old policy, accept only commits signed by allowed keys, fall
 * back to the last accepted commit at start-up.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../harness/run-cli.js';
import { ErrorCode, HoopError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { PolicyRepo, cliPolicyWorkDir, displayRemote } from '../../src/policy/repo.js';
import type { Policy } from '../../src/policy/schema.js';

let base: string;
let gitEnv: NodeJS.ProcessEnv;
let n = 0;

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd, env: gitEnv, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** A fresh repo on branch main. */
function newRepo(): string {
  const dir = join(base, `repo${n++}`);
  mkdirSync(dir);
  git(dir, 'init', '-q', '-b', 'main');
  return dir;
}

/** Writes files and commits them; `key` signs the commit with that SSH key. Returns the commit id. */
function commit(repo: string, files: Record<string, string>, key?: string): string {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(repo, path, '..'), { recursive: true });
    writeFileSync(join(repo, path), text);
  }
  git(repo, 'add', '-A');
  const sign = key ? ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${key}`] : [];
  git(repo, ...sign, 'commit', '-q', '--allow-empty', ...(key ? ['-S'] : []), '-m', `change ${n++}`);
  return git(repo, 'rev-parse', 'HEAD');
}

const policyText = (group: string) => `version: 1
connections:
  - { name: db, type: postgres, host: h, database: d, user: u, password: "\${env:DB_PASSWORD}" }
access:
  - { name: team, groups: [${group}], connections: [db] }
`;
const BROKEN = 'version: 1\naccess:\n  - { name: team, connections: [db], mode: sometimes }\n';

function logSink(): { lines: () => Record<string, unknown>[]; log: ReturnType<typeof createLogger> } {
  const out: string[] = [];
  return { lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>), log: createLogger({ level: 'debug', sink: { write: (l: string) => out.push(l) } }) };
}

let keyA: string;
let keyB: string;
let signers: string;

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'hoop-policy-repo-'));
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
  keyA = join(base, 'key-a');
  keyB = join(base, 'key-b');
  for (const k of [keyA, keyB]) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', k, '-f', k]);
  signers = join(base, 'allowed_signers');
  writeFileSync(signers, `author@example.org namespaces="git" ${readFileSync(`${keyA}.pub`, 'utf8').trim()}\n`);
});

afterAll(() => rmSync(base, { recursive: true, force: true }));

const env = () => ({ ...gitEnv, DB_PASSWORD: 'pw' });
/** The gateway's `policy.allowedSecrets` for {@link policyText}. */
const SECRETS = ['${env:DB_PASSWORD}'];

describe('PolicyRepo', () => {
  it('loads a branch, pulls new commits, refuses an invalid one and keeps the old policy', async () => {
    const repo = newRepo();
    const first = commit(repo, { 'hoop.yaml': policyText('dev') });
    const { log, lines } = logSink();
    const pr = await PolicyRepo.open({ path: repo, ref: 'main', workDir: join(base, `work${n++}`), log, env: env(), allowedSecrets: SECRETS });
    expect(pr.commit).toBe(first);
    expect(pr.current().commit).toBe(first);
    expect(pr.current().access[0]!.groups).toEqual(['dev']);
    expect(await pr.refresh()).toEqual({ changed: false, commit: first, candidate: first });

    const changes: [Policy, Policy | undefined][] = [];
    pr.on('change', (p: Policy, prev: Policy | undefined) => changes.push([p, prev]));
    const second = commit(repo, { 'hoop.yaml': policyText('ops') });
    expect(await pr.refresh()).toEqual({ changed: true, commit: second, candidate: second });
    expect(pr.current().access[0]!.groups).toEqual(['ops']);
    expect(changes.map(([p, prev]) => [p.commit, prev?.commit])).toEqual([[second, first]]);

    const bad = commit(repo, { 'hoop.yaml': BROKEN });
    const refused = await pr.refresh();
    expect(refused).toMatchObject({ changed: false, commit: second, candidate: bad });
    expect(refused.error).toContain('hoop.yaml:3:44: access.0.mode: must be read-only or read-write');
    expect(pr.commit).toBe(second);
    const refusals = lines().filter((l) => l.event === 'policy.refused');
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatchObject({ level: 'warn', commit: bad, kept: second, errors: [expect.stringContaining('access.0.mode')] });
    await pr.refresh();
    expect(lines().filter((l) => l.event === 'policy.refused')).toHaveLength(1);

    const fixed = commit(repo, { 'hoop.yaml': policyText('dba') });
    expect(await pr.refresh()).toMatchObject({ changed: true, commit: fixed });
    expect(pr.current().access[0]!.groups).toEqual(['dba']);
    await pr.stop();
  });

  it('accepts, for the gateway, a commit whose connection secret does not resolve, that connection unavailable saying why (and the CLI never resolves)', async () => {
    const repo = newRepo();
    const first = commit(repo, { 'hoop.yaml': policyText('dev') });
    const gateway = await PolicyRepo.open({ path: repo, ref: 'main', workDir: join(base, `work${n++}`), env: gitEnv, allowedSecrets: SECRETS });
    expect(gateway.commit).toBe(first);
    expect(gateway.current().connections[0]!.unavailable).toEqual([
      expect.stringMatching(/^hoop\.yaml:\d+:\d+: connections\.0\.password: secret reference does not resolve: environment variable DB_PASSWORD is not set$/),
    ]);
    await gateway.stop();
    const cli = await PolicyRepo.open({ path: repo, ref: 'main', workDir: join(base, `work${n++}`), env: gitEnv, checkSecrets: false });
    expect((cli.current().connections[0] as { password?: unknown }).password).toEqual({ kind: 'env', name: 'DB_PASSWORD' });
  });

  it('refuses, for the gateway, a secret reference outside allowedSecrets (none by default), and checks the entries', async () => {
    const repo = newRepo();
    const first = commit(repo, { 'hoop.yaml': policyText('dev') });
    const refusal = `hoop.yaml:3:74: connections.0.password: \${env:DB_PASSWORD} is not allowed by the gateway's policy.allowedSecrets; add "\${env:DB_PASSWORD}" (or a glob) there`;
    for (const allowedSecrets of [undefined, [], ['${env:DB_PASSWORD_*}', '${file:/run/secrets/*}']]) {
      await expect(PolicyRepo.open({ path: repo, ref: 'main', workDir: join(base, `work${n++}`), env: env(), ...(allowedSecrets ? { allowedSecrets } : {}) })).rejects.toMatchObject({
        code: ErrorCode.CONFIG_INVALID,
        message: `no acceptable policy at main of ${repo}: commit ${first.slice(0, 12)} has an invalid policy:\n  ${refusal}`,
      });
    }
    const glob = await PolicyRepo.open({ path: repo, ref: 'main', workDir: join(base, `work${n++}`), env: env(), allowedSecrets: ['${env:DB_*}'] });
    expect(glob.commit).toBe(first);
    await glob.stop();
    await expect(PolicyRepo.open({ path: repo, ref: 'main', workDir: join(base, `work${n++}`), env: env(), allowedSecrets: ['${env:*}', '${file:../x}'] })).rejects.toMatchObject({
      code: ErrorCode.USAGE,
      message: expect.stringMatching(/^allowed secrets: "\$\{env:\*\}" would admit every variable.*; "\$\{file:\.\.\/x\}" \$\{file:\.\.\.\} takes an absolute path/),
    });
  });

  it('follows a tag given as the ref, over a file:// URL', async () => {
    const repo = newRepo();
    const v1 = commit(repo, { 'policy/main.yaml': policyText('dev') });
    git(repo, 'tag', 'v1');
    commit(repo, { 'policy/main.yaml': policyText('ops') });
    const pr = await PolicyRepo.open({ url: `file://${repo}`, ref: 'v1', workDir: join(base, `work${n++}`), env: env(), allowedSecrets: SECRETS });
    expect(pr.commit).toBe(v1);
    expect(pr.current().access[0]!.groups).toEqual(['dev']);
    const head = git(repo, 'rev-parse', 'HEAD');
    git(repo, 'tag', '-f', 'v1', head);
    expect(await pr.refresh()).toMatchObject({ changed: true, commit: head });
    expect(pr.current().access[0]!.groups).toEqual(['ops']);
  });

  it('pulls on the interval once started', async () => {
    const repo = newRepo();
    commit(repo, { 'hoop.yaml': policyText('dev') });
    const pr = await PolicyRepo.open({ path: repo, ref: 'main', workDir: join(base, `work${n++}`), env: env(), allowedSecrets: SECRETS, pullIntervalMs: 50 });
    const changed = new Promise<Policy>((resolve) => pr.once('change', resolve));
    pr.start();
    const next = commit(repo, { 'hoop.yaml': policyText('ops') });
    expect((await changed).commit).toBe(next);
    await pr.stop();
  });

  it('accepts only commits signed by an allowed key', async () => {
    const repo = newRepo();
    const unsigned = commit(repo, { 'hoop.yaml': policyText('dev') });
    const workDir = join(base, `work${n++}`);
    await expect(PolicyRepo.open({ path: repo, ref: 'main', workDir, env: env(), allowedSecrets: SECRETS, allowedSignersFile: signers })).rejects.toMatchObject({
      message: expect.stringContaining(`commit ${unsigned.slice(0, 12)} is not signed`),
    });
    const good = commit(repo, { 'hoop.yaml': policyText('ops') }, keyA);
    const { log, lines } = logSink();
    const pr = await PolicyRepo.open({ path: repo, ref: 'main', workDir, env: env(), allowedSecrets: SECRETS, allowedSignersFile: signers, log });
    expect(pr.commit).toBe(good);

    const other = commit(repo, { 'hoop.yaml': policyText('everyone') }, keyB);
    const r1 = await pr.refresh();
    expect(r1).toMatchObject({ changed: false, commit: good, candidate: other });
    expect(r1.error).toMatch(new RegExp(`commit ${other.slice(0, 12)} is not signed by a key in .*allowed_signers`));

    const plain = commit(repo, { 'hoop.yaml': policyText('everyone') });
    expect((await pr.refresh()).error).toContain(`commit ${plain.slice(0, 12)} is not signed`);
    expect(pr.current().access[0]!.groups).toEqual(['ops']);
    expect(
      lines()
        .filter((l) => l.event === 'policy.refused')
        .map((l) => l.commit),
    ).toEqual([other, plain]);

    // An OpenPGP signature is refused before git could hand it to gpg and its keyring.
    const raw = git(repo, 'cat-file', 'commit', 'HEAD');
    const fake = raw.replace(/\n\n/, '\ngpgsig -----BEGIN PGP SIGNATURE-----\n \n -----END PGP SIGNATURE-----\n\n');
    const pgp = execFileSync('git', ['hash-object', '-t', 'commit', '-w', '--stdin'], { cwd: repo, env: gitEnv, input: `${fake}\n`, encoding: 'utf8' }).trim();
    git(repo, 'update-ref', 'refs/heads/main', pgp);
    expect((await pr.refresh()).error).toContain(`commit ${pgp.slice(0, 12)} is not signed with an SSH key`);

    const next = commit(repo, { 'hoop.yaml': policyText('dba') }, keyA);
    expect(await pr.refresh()).toMatchObject({ changed: true, commit: next });
  });

  it('with allowed signers, only moves forward: a signed commit that does not descend from the one in force is refused and logged, at a pull and at start; a forward one is taken (the sixteenth attack)', async () => {
    const repo = newRepo();
    const broad = commit(repo, { 'hoop.yaml': policyText('everyone') }, keyA);
    const revoked = commit(repo, { 'hoop.yaml': policyText('dba') }, keyA);
    const workDir = join(base, `work${n++}`);
    const { log, lines } = logSink();
    const pr = await PolicyRepo.open({ path: repo, ref: 'main', workDir, env: env(), allowedSecrets: SECRETS, allowedSignersFile: signers, log });
    expect(pr.commit).toBe(revoked);
    // Whoever can move the ref, with no key, points it back at the earlier signed commit.
    git(repo, 'reset', '-q', '--hard', 'HEAD~1');
    const back = `commit ${broad.slice(0, 12)} does not descend from ${revoked.slice(0, 12)}, in force; a rollback is a new signed commit that reverts`;
    expect(await pr.refresh()).toEqual({ changed: false, commit: revoked, candidate: broad, error: back });
    expect(pr.current().access[0]!.groups).toEqual(['dba']);
    expect(lines().filter((l) => l.event === 'policy.refused')).toEqual([expect.objectContaining({ level: 'warn', commit: broad, kept: revoked, errors: [back] })]);
    await pr.stop();
    // A restart keeps the commit last accepted (accepted.json) as the mark.
    const again = await PolicyRepo.open({ path: repo, ref: 'main', workDir, env: env(), allowedSecrets: SECRETS, allowedSignersFile: signers });
    expect(again.commit).toBe(revoked);
    expect(again.lastRefresh()?.error).toBe(`commit ${broad.slice(0, 12)} does not descend from ${revoked.slice(0, 12)}, the last accepted; a rollback is a new signed commit that reverts`);
    // A deliberate rollback is a new signed commit on top of the one in force.
    git(repo, 'reset', '-q', '--hard', revoked);
    const reverted = commit(repo, { 'hoop.yaml': policyText('everyone') }, keyA);
    expect(await again.refresh()).toMatchObject({ changed: true, commit: reverted });
    expect(again.current().access[0]!.groups).toEqual(['everyone']);
    await again.stop();
  });

  it('never shows a password given in the repo URL', async () => {
    expect(displayRemote('https://ci:ghp_secret@git.example.com/acme/policy.git')).toBe('https://***@git.example.com/acme/policy.git');
    expect(displayRemote('fatal: unable to access https://u:p@h/x/: 404')).toBe('fatal: unable to access https://***@h/x/: 404');
    // A token as the user name (GitHub takes it so), and a password holding an @: nothing of either shows.
    expect(displayRemote('https://ghp_S3CR3T@github.com/acme/policy.git')).toBe('https://***@github.com/acme/policy.git');
    expect(displayRemote('https://ci:p@ss@git.example.com/x.git, then ssh://git@host/y')).toBe('https://***@git.example.com/x.git, then ssh://***@host/y');
    const { log, lines } = logSink();
    const err = await PolicyRepo.open({ url: 'http://user:hunter2@127.0.0.1:1/policy.git', ref: 'main', workDir: join(base, `work${n++}`), env: gitEnv, log }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(HoopError);
    expect((err as Error).message).toContain('cannot fetch http://***@127.0.0.1:1/policy.git');
    expect((err as Error).message).not.toContain('hunter2');
    expect(JSON.stringify(lines())).not.toContain('hunter2');
  });

  it('falls back to the last accepted commit when the head is refused at start-up', async () => {
    const repo = newRepo();
    const good = commit(repo, { 'hoop.yaml': policyText('dev') });
    const workDir = join(base, `work${n++}`);
    await (await PolicyRepo.open({ path: repo, ref: 'main', workDir, env: env(), allowedSecrets: SECRETS })).stop();
    commit(repo, { 'hoop.yaml': BROKEN });
    const { log, lines } = logSink();
    const pr = await PolicyRepo.open({ path: repo, ref: 'main', workDir, env: env(), allowedSecrets: SECRETS, log });
    expect(pr.commit).toBe(good);
    expect(lines().map((l) => l.event)).toEqual(expect.arrayContaining(['policy.refused', 'policy.fallback', 'policy.loaded']));
    // A fresh work directory has nothing to fall back to.
    await expect(PolicyRepo.open({ path: repo, ref: 'main', workDir: join(base, `work${n++}`), env: env(), allowedSecrets: SECRETS })).rejects.toBeInstanceOf(HoopError);
  });

  it('refuses bad options: no repo, both, an option-like ref, an unknown ref', async () => {
    const repo = newRepo();
    commit(repo, { 'hoop.yaml': policyText('dev') });
    const workDir = join(base, `work${n++}`);
    await expect(PolicyRepo.open({ ref: 'main', workDir })).rejects.toMatchObject({ code: ErrorCode.USAGE });
    await expect(PolicyRepo.open({ path: repo, url: repo, ref: 'main', workDir })).rejects.toMatchObject({ code: ErrorCode.USAGE });
    await expect(PolicyRepo.open({ path: repo, ref: '--upload-pack=x', workDir })).rejects.toMatchObject({ code: ErrorCode.USAGE });
    await expect(PolicyRepo.open({ url: '--upload-pack=touch /tmp/x', ref: 'main', workDir })).rejects.toMatchObject({ code: ErrorCode.USAGE });
    await expect(PolicyRepo.open({ path: repo, ref: 'nope', workDir, env: env(), allowedSecrets: SECRETS })).rejects.toMatchObject({ message: expect.stringContaining('ref nope not found') });
  });
});

describe('hoop policy pull / show --repo', () => {
  async function run(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
    const r = await runCli(args, { ...gitEnv, HOOP_CONFIG_DIR: join(base, 'cli-config'), ...extraEnv }, base);
    return { code: r.code, out: r.stdout, err: r.stderr };
  }

  it('pulls into $HOOP_CONFIG_DIR/policy/<hash>, prints the commit, and applies the signature rules', async () => {
    const repo = newRepo();
    const first = commit(repo, { 'hoop.yaml': policyText('dev') }, keyA);
    const pulled = await run(['policy', 'pull', '--repo', repo, '--allowed-signers', signers]);
    expect(pulled).toMatchObject({ code: 0, out: `${first}\n` });
    const state = JSON.parse(readFileSync(join(cliPolicyWorkDir(join(base, 'cli-config'), repo), 'accepted.json'), 'utf8')) as { commit: string };
    expect(state.commit).toBe(first);

    const unsigned = commit(repo, { 'hoop.yaml': policyText('ops') });
    const kept = await run(['policy', 'pull'], { HOOP_POLICY_REPO: repo, HOOP_POLICY_ALLOWED_SIGNERS: signers });
    expect(kept.code).toBe(0);
    expect(kept.out).toBe(`${first}\n`);
    expect(kept.err).toContain(`commit ${unsigned.slice(0, 12)} is not signed`);

    const withoutSigners = await run(['policy', 'pull', '--repo', repo, '--ref', 'main']);
    expect(withoutSigners.out).toBe(`${unsigned}\n`);

    const shown = await run(['policy', 'show', '--repo', repo, '--ref', 'main']);
    expect(shown.code).toBe(0);
    expect(shown.out).toContain(`policy  commit ${unsigned} (${repo})`);
    // Without a ref, a local checkout is read as it is being edited.
    const tree = await run(['policy', 'show', '--repo', repo]);
    expect(tree.out).toContain(`policy  working tree (${repo})`);

    expect((await run(['policy', 'pull'])).code).toBe(64);
  });
});
