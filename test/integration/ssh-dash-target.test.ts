/**
 * A target whose login shell is dash (Debian's /bin/sh; Alpine's ash reads the same POSIX
 * grammar), behind OpenSSH's sshd: `ssh host <line>` runs `dash -c <line>` there. A line bash reads
 * as one `echo` but dash runs as `echo` then `id` really runs `id` when sent straight to sshd;
 * through hoop, under an allow list of `echo` and `cat`, it is refused and `id` never runs. Allow
 * globs match one path segment each: `cat /…/ok/*` reads the files in ok/, never `..` out of it.
 * Needs root: it makes the OS user whose shell is dash.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectSshJson } from '../../src/commands/connect.js';
import { startSshd, type Sshd } from '../../src/demo/sshd.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';

const root = process.getuid?.() === 0;
const USER = 'hoop-dash';
let sshd: Sshd;
let repo: PolicyGitRepo;
let stack: HoopStack;
let connect: RunningConnect;
let info: ConnectSshJson;
const files = mkdtempSync(join(tmpdir(), 'hoop-dash-'));
const controls = mkdtempSync(join(tmpdir(), 'hoop-dash-mux-'));

type Ran = { code: number | null; stdout: string; stderr: string };

function run(file: string, args: string[]): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(file, args, { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr })).stdin?.end();
  });
}

/** `line` through hoop connect's ssh config. */
const viaHoop = (line: string): Promise<Ran> =>
  run('ssh', ['-F', info.sshConfig, '-o', 'BatchMode=yes', '-o', 'ControlMaster=auto', '-o', `ControlPath=${join(controls, 'c')}`, '-o', 'ControlPersist=60', 'dash', line]);

/** `line` straight to sshd as the dash user, with the gateway's key: what the target's shell does with it. */
const straight = (line: string): Promise<Ran> =>
  run('ssh', ['-i', sshd.clientKeyFile, '-p', String(sshd.port), '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', `${USER}@127.0.0.1`, line]);

describe.skipIf(!root)('an ssh target whose login shell is dash', () => {
  beforeAll(async () => {
    if (spawnOk('id', [USER])) execFileSync('usermod', ['-s', '/bin/dash', USER]);
    else execFileSync('useradd', ['--system', '--no-create-home', '--home-dir', '/tmp', '--shell', '/bin/dash', USER]);
    // No password, and not locked ('!'): sshd without PAM lets no locked account in, even by key.
    execFileSync('usermod', ['-p', '*', USER]);
    // The dash user reads its authorised key from a file it may read (sshd's own directory is root's alone).
    const keys = join(files, 'keys');
    mkdirSync(keys, { mode: 0o755 });
    chmodSync(files, 0o755);
    sshd = await startSshd({ config: [`Match User ${USER}`, `  AuthorizedKeysFile ${join(keys, 'authorized_keys')}`] });
    copyFileSync(`${sshd.clientKeyFile}.pub`, join(keys, 'authorized_keys'));
    chmodSync(join(keys, 'authorized_keys'), 0o644);
    mkdirSync(join(files, 'ok'), { mode: 0o755 });
    writeFileSync(join(files, 'ok', 'note'), 'readable\n', { mode: 0o644 });
    writeFileSync(join(files, 'secret'), 'not for you\n', { mode: 0o644 });
    repo = new PolicyGitRepo('hoop-dash-');
    stack = await startStack({
      policy: () => {
        repo.commit(`version: 1
connections:
  - { name: dash, type: ssh, host: 127.0.0.1, port: ${sshd.port}, user: ${USER}, privateKey: "\${file:${sshd.clientKeyFile}}", hostKeys: ["${sshd.hostKey}"] }
access:
  - { name: people, subjects: [alice], connections: [dash], mode: read-write }
ssh:
  default: deny
  rules:
    - { name: reads, match: { commands: ["echo **", "cat ${files}/ok/*"] }, action: allow }
`);
        return repo.gatewayBlock(['${file:/tmp/*/client_key}']);
      },
    });
    connect = await stack.connect('dash', await stack.token('alice'));
    info = connect.info as unknown as ConnectSshJson;
  }, 120_000);

  afterAll(async () => {
    if (info) await run('ssh', ['-F', info.sshConfig, '-o', `ControlPath=${join(controls, 'c')}`, '-O', 'exit', 'dash']);
    await connect?.stop().catch(() => undefined);
    await stack?.close();
    await sshd?.stop();
    repo?.remove();
    rmSync(files, { recursive: true, force: true });
    rmSync(controls, { recursive: true, force: true });
  });

  it('refuses a line dash would run otherwise than bash reads it (one echo to bash, echo and id to dash); id never runs', async () => {
    const line = "echo $'a\\';id;#'";
    // Straight to the target, dash runs id.
    const target = await straight(line);
    expect(target.stdout).toMatch(/uid=\d+\(hoop-dash\)/);
    const through = await viaHoop(line);
    expect(through.code).toBe(126);
    expect(through.stderr).toContain('bash and a POSIX sh (dash, ash) would run it differently');
    expect(through.stdout).not.toContain('uid=');
    // What both read alike runs, in dash.
    expect(await viaHoop("echo 'one; two' && echo three")).toMatchObject({ code: 0, stdout: 'one; two\nthree\n' });
  }, 60_000);

  it('matches an allow glob one path segment at a time: the files in ok/, never .. out of it', async () => {
    expect(await viaHoop(`cat ${files}/ok/note`)).toMatchObject({ code: 0, stdout: 'readable\n' });
    for (const line of [`cat ${files}/ok/../secret`, `cat ${files}/ok/.?/secret`, `cat ${files}/ok/*/../../secret`, `cat ${files}/ok/note ${files}/secret`]) {
      const r = await viaHoop(line);
      expect(r.code, line).toBe(126);
      expect(r.stdout, line).not.toContain('not for you');
    }
    // Straight to the target, dash expands .? to .. and reads the secret: the glob would have let it out.
    expect((await straight(`cat ${files}/ok/.?/secret`)).stdout).toBe('not for you\n');
  }, 60_000);
});

function spawnOk(file: string, args: string[]): boolean {
  try {
    execFileSync(file, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
