/**
 * Every refusal on the SSH lane reaches OpenSSH's client with its reason, under the demo's own
 * `ssh:` policy (default allow, the no-recursive-rm rule): a refused command on its error output,
 * naming the rule and why; a target that drops the connection as an interactive shell starts (as
 * the demo's sshd did where it could not give the pty to the tty group) on the shell's error
 * output, and in the recording; a target that refuses a terminal gives the shell none, said so; a
 * session the gateway ends with no channel open, a refused forwarding and a refused subsystem in
 * words ssh prints, never an empty disconnect message.
 * Each runs through `hoop connect` with the CLI's record (the port ends SSH) and without it.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { userInfo } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectSshJson } from '../../src/connect-json.js';
import { samplePolicyFiles } from '../../src/demo/sample.js';
import { startSshd, type Sshd } from '../../src/demo/sshd.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { freePort } from '../harness/postgres.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';
import { recordingEvents } from '../harness/exported-events.js';
import { sshConnectionYaml } from '../harness/sshd.js';

/** The demo's `ssh:` section, as `hoop demo` writes it into its policy repo. */
const DEMO_SSH_POLICY = /\nssh:[\s\S]*?(?=\n[^\s#]|$)/.exec(samplePolicyFiles({ port: 1, passwordFile: '/x', ssh: { port: 1, user: 'u', keyFile: '/x', hostKey: 'k' } })['hoop.yaml'])![0];
/** An sshd that drops the connection when a shell starts (commands run), as one that cannot give a pty does. */
const DROPS_SHELLS = 'ForceCommand if [ -n "$SSH_ORIGINAL_COMMAND" ]; then eval "$SSH_ORIGINAL_COMMAND"; else kill -KILL $PPID; fi';
/** What OpenSSH prints for a disconnect message without a description. */
const EMPTY_DISCONNECT = /Received disconnect from \S+ port \d+:\d+:\s*$/m;

let sshd: Sshd;
let dropping: Sshd;
let ttyless: Sshd;
let repo: PolicyGitRepo;
let stack: HoopStack;
const running: RunningConnect[] = [];
const WAYS = [
  ['with the CLI record', {}],
  ['without it', { HOOP_CLIENT_RECORD: 'off' }],
] as const;

type Ran = { code: number | null; stdout: string; stderr: string };

/** OpenSSH's ssh with `args` (stdin closed); resolves its exit code and output. */
function ssh(config: string, args: string[]): Promise<Ran> {
  return new Promise((resolve) => {
    execFile('ssh', ['-F', config, '-o', 'BatchMode=yes', ...args], { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    ).stdin?.end();
  });
}

/** An interactive `ssh -tt` (a pty on the target, no command): what it printed so far, lines to type, and its end. */
function interactive(config: string, host: string): { out: () => string; err: () => string; type: (line: string) => void; exited: Promise<number | null>; child: ChildProcess } {
  const child = spawn('ssh', ['-tt', '-F', config, '-o', 'BatchMode=yes', host], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  child.stdin!.on('error', () => undefined);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { out: () => out, err: () => err, type: (line) => void child.stdin!.write(`${line}\n`), exited, child };
}

/** `hoop connect <name>` as alice (`env`: its environment), its ssh_config. */
async function connect(name: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const c = await stack.connect(name, await stack.token('alice', ['engineers']), [], env);
  running.push(c);
  return (c.info as unknown as ConnectSshJson).sshConfig;
}

/** The events of the newest ended session of `connection`, from the gateway's recording. */
async function lastRecording(connection: string): Promise<Array<Record<string, unknown>>> {
  const opened = stack.logs().filter((l) => l.event === 'tunnel.open' && l.connection === connection);
  return recordingEvents(stack, opened[opened.length - 1]!.session as string);
}

beforeAll(async () => {
  [sshd, dropping, ttyless] = await Promise.all([startSshd(), startSshd({ config: [DROPS_SHELLS] }), startSshd({ config: ['Match all', '  PermitTTY no'] })]);
  const closed = await freePort();
  repo = new PolicyGitRepo('hoop-ssh-refusals-');
  const target = (name: string, s: Sshd, port = s.port) => `${sshConnectionYaml(name, s, { port })}\n`;
  stack = await startStack({
    policy: () => {
      repo.commit(`version: 1
connections:
${target('demo-ssh', sshd)}${target('drops-shells', dropping)}${target('no-terminals', ttyless)}${target('unreachable', sshd, closed)}access:
  - { name: engineers, groups: [engineers], connections: [demo-ssh, drops-shells, no-terminals, unreachable], mode: read-write }
${DEMO_SSH_POLICY}`);
      return repo.gatewayBlock(['${file:/tmp/*/client_key}']);
    },
  });
});

afterAll(async () => {
  for (const c of running) await c.stop().catch(() => undefined);
  await stack?.close();
  await Promise.all([sshd?.stop(), dropping?.stop(), ttyless?.stop()]);
  repo?.remove();
});

describe.each(WAYS)('SSH refusals reach the client, %s', (_way, env) => {
  it("runs what an interactive shell is typed under the demo's policy, and refuses a command naming the rule and why", async () => {
    const config = await connect('demo-ssh', env);
    const shell = interactive(config, 'demo-ssh');
    shell.type('echo hello-$((6 * 7))');
    shell.type('ls -d $HOME');
    await eventually(() => expect(shell.out()).toMatch(/^hello-42\r?$/m), { timeout: 60_000 });
    await eventually(() => expect(shell.out()).toMatch(new RegExp(`^${userInfo().homedir}\\r?$`, 'm')), { timeout: 60_000 });
    shell.type('exit');
    expect(await shell.exited).toBe(0);
    // A command on a terminal (-tt), refused by the demo's rule: its message, the rule and why, and no run.
    const rm = await ssh(config, ['-tt', 'demo-ssh', 'rm -rf /tmp/hoop-refusals-nothing']);
    expect(rm.code).toBe(126);
    expect(rm.stderr).toContain('hoop: recursive deletes are not allowed through hoop (ssh rule "no-recursive-rm" matches this command)');
    // One whose program is built when it runs: the rule that may match, and the word hoop could not know.
    const built = await ssh(config, ['demo-ssh', '$X -rf /tmp/hoop-refusals-nothing']);
    expect(built.code).toBe(126);
    expect(built.stderr).toContain('(ssh rule "no-recursive-rm" may match `$X -rf /tmp/hoop-refusals-nothing`: `$X` is built when it runs, so the gateway cannot tell)');
  });

  it('says why when the target drops the connection as an interactive shell starts, and records it', async () => {
    const config = await connect('drops-shells', env);
    const shell = interactive(config, 'drops-shells');
    expect(await shell.exited).not.toBe(0);
    expect(shell.err()).toMatch(/hoop: the SSH server of "drops-shells" \(127\.0\.0\.1:\d+\) closed the connection \(its log says why\)/);
    expect(shell.err()).not.toMatch(EMPTY_DISCONNECT);
    const events = await lastRecording('drops-shells');
    expect(events.find((e) => e.t === 'ssh-shell')).toMatchObject({ decision: 'allow', pty: true });
    expect(events.find((e) => e.t === 'ssh-end')).toMatchObject({ reason: 'upstream-closed', message: expect.stringContaining('the SSH server of "drops-shells"') });
    expect(
      stack
        .logs()
        .filter((l) => l.event === 'tunnel.close' && l.connection === 'drops-shells')
        .pop(),
    ).toMatchObject({ reason: 'upstream-closed' });
    // Commands still run there: only shells are dropped.
    expect(await ssh(config, ['drops-shells', 'echo still-$((1 + 1))'])).toMatchObject({ code: 0, stdout: 'still-2\n' });
  });

  it('runs an interactive shell without a terminal where the target refuses one, and says so', async () => {
    const config = await connect('no-terminals', env);
    const shell = interactive(config, 'no-terminals');
    shell.type('echo hello-$((6 * 7))');
    await eventually(() => expect(shell.out()).toMatch(/^hello-42$/m), { timeout: 60_000 });
    expect(shell.err()).toContain('hoop: the SSH server of "no-terminals" gave the shell no terminal (it refused the pty); it runs without one');
    shell.type('exit');
    expect(await shell.exited).toBe(0);
  });

  it('ends a session with no channel open saying why in the disconnect message', async () => {
    const config = await connect('unreachable', env);
    // -N: no shell, no command; the gateway cannot reach the target and, no channel asking within 5 s, disconnects.
    const r = await ssh(config, ['-N', 'unreachable']);
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/Received disconnect from \S+ port \d+:11: hoop: the gateway cannot reach the SSH server of "unreachable" \(127\.0\.0\.1:\d+\)/);
    expect(r.stderr).not.toMatch(EMPTY_DISCONNECT);
  });

  it('refuses a forwarding the policy does not list and a subsystem other than sftp, in words ssh prints', async () => {
    const config = await connect('demo-ssh', env);
    const forward = await ssh(config, ['-W', '127.0.0.1:9', 'demo-ssh']);
    expect(forward.code).not.toBe(0);
    expect(forward.stderr).toMatch(/open failed: administratively prohibited: hoop: forwarding to 127\.0\.0\.1:9 is not allowed: it is not in the policy's ssh\.forwarding/);
    const subsystem = await ssh(config, ['-s', 'demo-ssh', 'netconf']);
    expect(subsystem.code).toBe(126);
    expect(subsystem.stderr).toContain('hoop: the subsystem "netconf" is not allowed through hoop: only sftp is');
  });
});
