/**
 * Targets whose login shells are dash (Debian's /bin/sh; Alpine's ash reads the same POSIX
 * grammar) and bash, behind OpenSSH's sshd: `ssh host <line>` runs `<shell> -c <line>` there.
 * Lines that a shell runs as `echo` then `id` where hoop's parser would read one `echo` (bash's
 * `$'…'` on dash, a `#` right after a quote, a carriage return) really run `id` when sent straight
 * to sshd; through hoop, under an allow list of `echo` and `cat`, each is refused and `id` never
 * runs. Allow globs match one path segment each: `cat /…/ok/*` reads the files in ok/, never `..`
 * out of it, not with `.?` (dash) nor a brace of quoted parts (bash).
 * Needs root: it makes the OS users whose shells are dash and bash.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectSshJson } from '../../src/connect-json.js';
import { startSshd, type Sshd } from '../../src/demo/sshd.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { sshConnectionYaml } from '../harness/sshd.js';

const root = process.getuid?.() === 0;
const USER = 'hoop-dash';
const BASH_USER = 'hoop-bash';
const FISH_USER = 'hoop-fish';
let sshd: Sshd;
let repo: PolicyGitRepo;
let stack: HoopStack;
let connect: RunningConnect;
let info: ConnectSshJson;
let bashConnect: RunningConnect;
let bashInfo: ConnectSshJson;
let fishConnect: RunningConnect;
let fishInfo: ConnectSshJson;
const files = mkdtempSync(join(tmpdir(), 'hoop-dash-'));
const controls = mkdtempSync(join(tmpdir(), 'hoop-dash-mux-'));

type Ran = { code: number | null; stdout: string; stderr: string };

function run(file: string, args: string[]): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(file, args, { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr })).stdin?.end();
  });
}

/** `line` through hoop connect's ssh config, to the dash target or the bash one. */
const viaHoop = (line: string, host: 'dash' | 'bash' | 'fish' = 'dash'): Promise<Ran> =>
  run('ssh', [
    '-F',
    { dash: info, bash: bashInfo, fish: fishInfo }[host].sshConfig,
    '-o',
    'BatchMode=yes',
    '-o',
    'ControlMaster=auto',
    '-o',
    `ControlPath=${join(controls, host)}`,
    '-o',
    'ControlPersist=60',
    host,
    line,
  ]);

/** `line` straight to sshd as the target's user, with the gateway's key: what the target's shell does with it. */
const straight = (line: string, user = USER): Promise<Ran> =>
  run('ssh', ['-i', sshd.clientKeyFile, '-p', String(sshd.port), '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', `${user}@127.0.0.1`, line]);

/** An OS user whose login shell is `shell`, with no password and not locked (sshd without PAM lets no locked account in, even by key). */
function shellUser(name: string, shell: string): void {
  if (spawnOk('id', [name])) execFileSync('usermod', ['-s', shell, name]);
  else execFileSync('useradd', ['--system', '--no-create-home', '--home-dir', '/tmp', '--shell', shell, name]);
  execFileSync('usermod', ['-p', '*', name]);
}

describe.skipIf(!root)('an ssh target whose login shell is dash', () => {
  beforeAll(async () => {
    shellUser(USER, '/bin/dash');
    shellUser(BASH_USER, '/bin/bash');
    shellUser(FISH_USER, '/usr/bin/fish');
    // The dash user reads its authorised key from a file it may read (sshd's own directory is root's alone).
    const keys = join(files, 'keys');
    mkdirSync(keys, { mode: 0o755 });
    chmodSync(files, 0o755);
    sshd = await startSshd({ config: [`Match User ${USER},${BASH_USER},${FISH_USER}`, `  AuthorizedKeysFile ${join(keys, 'authorized_keys')}`] });
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
${sshConnectionYaml('dash', sshd, { user: USER })}
${sshConnectionYaml('bash', sshd, { user: BASH_USER })}
${sshConnectionYaml('fish', sshd, { user: FISH_USER })}
access:
  - { name: people, subjects: [alice], connections: [dash, bash, fish], mode: read-write }
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
    bashConnect = await stack.connect('bash', await stack.token('alice'));
    bashInfo = bashConnect.info as unknown as ConnectSshJson;
    fishConnect = await stack.connect('fish', await stack.token('alice'));
    fishInfo = fishConnect.info as unknown as ConnectSshJson;
  });

  afterAll(async () => {
    if (info) await run('ssh', ['-F', info.sshConfig, '-o', `ControlPath=${join(controls, 'dash')}`, '-O', 'exit', 'dash']);
    if (bashInfo) await run('ssh', ['-F', bashInfo.sshConfig, '-o', `ControlPath=${join(controls, 'bash')}`, '-O', 'exit', 'bash']);
    await connect?.stop().catch(() => undefined);
    await bashConnect?.stop().catch(() => undefined);
    if (fishInfo) await run('ssh', ['-F', fishInfo.sshConfig, '-o', `ControlPath=${join(controls, 'fish')}`, '-O', 'exit', 'fish']);
    await fishConnect?.stop().catch(() => undefined);
    await stack?.close();
    await sshd?.stop();
    repo?.remove();
    rmSync(files, { recursive: true, force: true });
    rmSync(controls, { recursive: true, force: true });
  });

  it("refuses a line a target's shell runs otherwise than hoop reads it (bash's $'…' on dash, a # right after a quote, a carriage return); id never runs", async () => {
    const line = "echo $'a\\';id;#'";
    // Straight to the target, dash runs id.
    const target = await straight(line);
    expect(target.stdout).toMatch(/uid=\d+\(hoop-dash\)/);
    const through = await viaHoop(line);
    expect(through.code).toBe(126);
    expect(through.stderr).toContain('bash and a POSIX sh (dash, ash) would run it differently');
    expect(through.stdout).not.toContain('uid=');
    // A # right after a quote and a carriage return are letters to both shells, a comment continues nothing, and a backslash-newline is joined first: each runs id.
    for (const bad of ["echo 'x'#;id", 'echo x\r#;id', 'echo #x\\\nid', 'echo "$\\\n(id)"']) {
      for (const [host, user] of [
        ['dash', USER],
        ['bash', BASH_USER],
      ] as const) {
        expect((await straight(bad, user)).stdout, `${host}: ${JSON.stringify(bad)}`).toMatch(/uid=\d+/);
        const r = await viaHoop(bad, host);
        expect(r.code, `${host}: ${JSON.stringify(bad)}`).toBe(126);
        expect(r.stdout).not.toContain('uid=');
      }
    }
    // What both read alike runs, in dash.
    expect(await viaHoop("echo 'one; two' && echo three")).toMatchObject({ code: 0, stdout: 'one; two\nthree\n' });
  });

  it("learns each target user's login shell at sign-in: a fish user's lines are uncertain (fish's ls is a function of its own), no allow rule admits one", async () => {
    // Straight to the target, fish runs `(id)` as a command substitution where bash would read a syntax error.
    expect((await straight('echo (id)', FISH_USER)).stdout).toMatch(/uid=\d+\(hoop-fish\)/);
    const r = await viaHoop('echo hi', 'fish');
    expect(r.code).toBe(126);
    expect(r.stderr).toContain("the target user's login shell is fish, whose grammar hoop does not model");
    // The same policy runs the same line for the bash and dash users (their shells were learned too).
    expect(await viaHoop('echo hi', 'bash')).toMatchObject({ code: 0, stdout: 'hi\n' });
    expect(await viaHoop('echo hi')).toMatchObject({ code: 0, stdout: 'hi\n' });
  });

  it('matches an allow glob one path segment at a time: the files in ok/, never .. out of it', async () => {
    expect(await viaHoop(`cat ${files}/ok/note`)).toMatchObject({ code: 0, stdout: 'readable\n' });
    for (const line of [`cat ${files}/ok/../secret`, `cat ${files}/ok/.?/secret`, `cat ${files}/ok/*/../../secret`, `cat ${files}/ok/note ${files}/secret`]) {
      const r = await viaHoop(line);
      expect(r.code, line).toBe(126);
      expect(r.stdout, line).not.toContain('not for you');
    }
    // Straight to the target, dash expands .? to .. and reads the secret: the glob would have let it out.
    expect((await straight(`cat ${files}/ok/.?/secret`)).stdout).toBe('not for you\n');
    // bash expands a brace whose parts are quoted: straight, it reads the secret; through hoop, refused.
    const braced = `cat ${files}/ok/{'note',../secret}`;
    expect((await straight(braced, BASH_USER)).stdout).toContain('not for you');
    const r = await viaHoop(braced, 'bash');
    expect(r.code).toBe(126);
    expect(r.stdout).not.toContain('not for you');
  });
});

function spawnOk(file: string, args: string[]): boolean {
  try {
    execFileSync(file, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
