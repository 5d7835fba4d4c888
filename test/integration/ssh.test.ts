/**
 * SSH through hoop against OpenSSH's sshd, with OpenSSH's own clients: `hoop connect bastion`
 * writes an ssh_config (host key pinned, a per-run key) and `ssh -F`, scp, sftp and rsync use it
 * unchanged. The gateway alone holds the key to the target, the policy decides (commands, shells,
 * sftp, forwarding), and every session is recorded: commands, output, exit status, pty sizes.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import ssh2 from 'ssh2';
import { startSshd, type Sshd } from '../../src/demo/sshd.js';
import { newEd25519Key } from '../../src/ssh/common/keys.js';
import { openTunnel } from '../../src/tunnel/transport.js';
import type { ConnectSshJson } from '../../src/connect-json.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml, freePort } from '../harness/postgres.js';
import { HeldClock } from '../harness/held-clock.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';
import { runSaid } from '../harness/hoop-process.js';
import { sshConnectionYaml } from '../harness/sshd.js';

let sshd: Sshd;
let policyRepo: PolicyGitRepo;
let stack: HoopStack;
let info: ConnectSshJson;
const running: RunningConnect[] = [];

/** Runs a command; resolves its exit code and output (never rejects on a non-zero exit). */
function run(cmd: string, args: string[], o: { input?: string | Buffer; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { encoding: 'utf8', timeout: o.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, ...o.env } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
    child.stdin!.on('error', () => undefined); // ssh may exit before reading it all
    if (o.input !== undefined) child.stdin!.end(o.input);
    else child.stdin!.end();
  });
}

const ssh = (args: string[], o: { input?: string; config?: string } = {}) => run('ssh', ['-F', o.config ?? info.sshConfig, '-o', 'BatchMode=yes', ...args], o);

async function connectSsh(name: string, subject = 'alice', groups: string[] = []): Promise<{ c: RunningConnect; info: ConnectSshJson }> {
  const c = await stack.connect(name, await stack.token(subject, groups));
  running.push(c);
  return { c, info: c.info as unknown as ConnectSshJson };
}

function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

/** The events of the gateway's recording of a session (`hoop sessions export --format jsonl`). */
/** The recording of session `sessionId` once it ended (a running session's export holds only what its last checkpoint signed). */
async function recordingOf(sessionId: string): Promise<Array<Record<string, unknown>>> {
  await eventually(
    async () => {
      const r = await stack.run(['sessions', 'ls', '--json', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('alice') });
      const s = (JSON.parse(r.stdout) as { sessions: Array<{ id: string; endedAt?: string }> }).sessions.find((x) => x.id === sessionId);
      expect(s?.endedAt, `session ${sessionId} ended`).toBeDefined();
    },
    { timeout: 60_000, interval: 100 },
  );
  const r = await eventually(
    async () => {
      const r = await stack.run(['sessions', 'export', sessionId, '--format', 'jsonl', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('alice') });
      expect(r.code, `no recording of ${sessionId}: ${r.stderr}`).toBe(0);
      return r;
    },
    { timeout: 60_000, interval: 100 },
  );
  return r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The id of the newest session of `connection` the gateway logged as opened. */
function lastSession(connection: string): string {
  const open = stack.logs().filter((l) => l.event === 'tunnel.open' && l.connection === connection);
  return open[open.length - 1]!.session as string;
}

const bundle = (pgConnection: string, keyFile: string, otherKeyFile: string, pgPort: number): string => `version: 1
connections:
${pgConnection}${sshConnectionYaml('bastion', sshd, { keyFile })}
${sshConnectionYaml('bastion-ro', sshd, { keyFile })}
${sshConnectionYaml('bastion-pinned-wrong', sshd, { keyFile, hostKey: `SHA256:${'A'.repeat(43)}` })}
${sshConnectionYaml('bastion-timed', sshd, { keyFile })}
${sshConnectionYaml('bastion-wrong-key', sshd, { keyFile: otherKeyFile })}
access:
  - { name: people, subjects: [alice, bob], connections: [app, bastion, bastion-pinned-wrong, bastion-wrong-key], mode: read-write }
  - { name: readers, subjects: [alice], connections: [bastion-ro], mode: read-only }
  - { name: timed, subjects: [alice], connections: [bastion-timed], mode: read-write, maxSessionSeconds: 100 }
statements:
  reviewers:
    - { groups: [ops], timeout: 30s }
ssh:
  forwarding: ["127.0.0.1:${pgPort}"]
  env: [LANG, "LC_*", HOOP_ALLOWED]
  rules:
    - { name: no-recursive-rm, match: { patterns: ['\\brm\\s+-[a-zA-Z]*r'] }, action: deny, message: "recursive deletes are not allowed here" }
    - { name: deploys-reviewed, match: { commands: ["*deploy.sh *"] }, action: review, message: "deploys need a second pair of eyes" }
    - { name: no-shell-for-agents, match: { shell: true, subjects: [agent] }, action: deny }
`;

const limits = new HeldClock();

beforeAll(async () => {
  sshd = await startSshd();
  policyRepo = new PolicyGitRepo('hoop-ssh-');
  const otherKey = policyRepo.sshKey('not-authorised');
  stack = await startStack({
    // A session's maximum length is up when a test fires it.
    gateway: { clock: limits },
    policy: ({ pg }) => {
      policyRepo.commit(bundle(connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' }), sshd.clientKeyFile, otherKey, pg.port));
      return policyRepo.gatewayBlock(['${env:APP_*}', '${file:/tmp/*/client_key}', '${file:/tmp/*/not-authorised}']);
    },
  });
  ({ info } = await connectSsh('bastion'));
});

afterAll(async () => {
  for (const c of running) await c.stop().catch(() => undefined);
  await stack?.close();
  await sshd?.stop();
  policyRepo?.remove();
});

describe('hoop connect for an ssh connection', () => {
  it('writes an ssh_config with the host key the client meets pinned and a per-run key only the user can read', () => {
    const config = readFileSync(info.sshConfig, 'utf8');
    expect(config).toContain('Host bastion');
    expect(config).toContain(`Port ${info.port}`);
    expect(config).toContain('StrictHostKeyChecking yes');
    expect(readFileSync(info.knownHosts, 'utf8')).toMatch(/^hoop-bastion ssh-ed25519 AAAA\S+\n$/);
    for (const f of [info.sshConfig, info.knownHosts, info.identityFile]) expect(statSync(f).mode & 0o077).toBe(0);
    expect(info.command).toBe(`ssh -F ${info.sshConfig} bastion`);
  });

  it('keeps one ssh_config per user, at a path that stays put, which includes every running connection: one Include line works run after run', async () => {
    expect(info.sshInclude).toBe(join(stack.runtime, 'hoop', 'ssh_config'));
    expect(statSync(info.sshInclude!).mode & 0o077).toBe(0);
    const userConfig = join(stack.dir, 'user-ssh-config');
    writeFileSync(userConfig, `Include "${info.sshInclude}"\n`);
    expect((await ssh(['bastion', 'echo through-include'], { config: userConfig })).stdout).toBe('through-include\n');
    // A port whose process was killed left its files: the next hoop connect removes them, or ssh would take its dead Host entry first.
    const gone = await run('sh', ['-c', 'echo $$']);
    const dead = join(stack.runtime, 'hoop', 'ssh-a-dead');
    mkdirSync(dead, { mode: 0o700 });
    writeFileSync(join(dead, 'ssh_config'), `# Written by hoop connect bastion-timed (pid ${gone.stdout.trim()}); removed when it stops.\nHost bastion-timed\n  HostName 127.0.0.1\n  Port 1\n`);
    for (const round of [1, 2]) {
      const other = await connectSsh('bastion-timed');
      expect(existsSync(dead)).toBe(false);
      expect(other.info.sshInclude).toBe(info.sshInclude);
      const r = await ssh(['bastion-timed', `echo round-${round}`], { config: userConfig });
      expect(r.stdout, r.stderr).toBe(`round-${round}\n`);
      await other.c.stop();
      running.splice(running.indexOf(other.c), 1);
      // Stopped, its entry is gone with its files; the include line is left as it was.
      const after = await ssh(['-o', 'ConnectTimeout=5', 'bastion-timed', 'echo stale'], { config: userConfig });
      expect(after.code).not.toBe(0);
      expect(after.stdout).toBe('');
    }
    expect((await ssh(['bastion', 'echo still'], { config: userConfig })).stdout).toBe('still\n');
  });

  it('runs a command on the target with ssh: its output, its stderr and its exit status', async () => {
    const r = await ssh(['bastion', 'echo out-42; echo err-line >&2; exit 3']);
    expect(r.stdout).toBe('out-42\n');
    expect(r.stderr).toContain('err-line');
    expect(r.code).toBe(3);
    const events = await recordingOf(lastSession('bastion'));
    expect(events.find((e) => e.t === 'ssh-exec')).toMatchObject({ command: 'echo out-42; echo err-line >&2; exit 3', decision: 'allow' });
    expect(
      events
        .filter((e) => e.t === 'ssh-data' && e.s === 'o')
        .map((e) => e.data)
        .join(''),
    ).toBe('out-42\n');
    expect(events.find((e) => e.t === 'ssh-exit')).toMatchObject({ status: 3 });
  });

  it('passes stdin through, and records what a command read', async () => {
    const r = await ssh(['bastion', 'wc -c; cat >/dev/null'], { input: 'twelve bytes' });
    expect(r.stdout.trim()).toBe('12');
    const events = await recordingOf(lastSession('bastion'));
    expect(
      events
        .filter((e) => e.t === 'ssh-data' && e.s === 'i')
        .map((e) => e.data)
        .join(''),
    ).toBe('twelve bytes');
  });

  it('refuses a command the policy denies, with its message, and it never runs', async () => {
    const victim = join(sshd.dir, 'victim');
    mkdirSync(victim, { recursive: true });
    writeFileSync(join(victim, 'f'), 'x');
    const r = await ssh(['bastion', `rm -rf ${victim}`]);
    expect(r.code).toBe(126);
    expect(r.stderr).toContain('hoop: recursive deletes are not allowed here');
    expect(existsSync(join(victim, 'f'))).toBe(true);
    // The index counts the command as a statement and its refusal, as for SQL: --denied finds the session.
    const id = lastSession('bastion');
    const ls = async (...filter: string[]) =>
      (
        JSON.parse((await stack.run(['sessions', 'ls', '--json', ...filter, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('alice') })).stdout) as {
          sessions: Array<{ id: string; statements: number; refused: number }>;
        }
      ).sessions;
    await eventually(async () => expect((await ls()).find((s) => s.id === id)).toMatchObject({ statements: 1, refused: 1 }), { timeout: 60_000, interval: 100 });
    expect((await ls('--denied')).map((s) => s.id)).toContain(id);
    // show tells it as a shell user would read it: the command, the refusal, how it exited.
    const show = await eventually(
      async () => {
        const r = await stack.run(['sessions', 'show', id, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('alice') });
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toContain('-- session ended');
        return r;
      },
      { timeout: 60_000, interval: 200 },
    );
    expect(show.stdout).toContain(`bastion$ rm -rf ${victim}\n-- refused by the policy (rule "no-recursive-rm")\n`);
    expect(show.stdout).toMatch(/^-- refused: exit 126/m);
  });

  it('sets only the environment variables the policy lists', async () => {
    const r = await run('ssh', ['-F', info.sshConfig, '-o', 'BatchMode=yes', '-o', 'SendEnv=HOOP_ALLOWED HOOP_REFUSED', 'bastion', 'printenv HOOP_ALLOWED; printenv HOOP_REFUSED; echo end'], {
      env: { HOOP_ALLOWED: 'yes', HOOP_REFUSED: 'no' },
    });
    expect(r.stdout).toBe('yes\nend\n');
  });

  it('keeps out a local client without the per-run key', async () => {
    const r = await run('ssh', [
      '-F',
      '/dev/null',
      '-p',
      String(info.port),
      '-i',
      sshd.clientKeyFile,
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      'BatchMode=yes',
      '-o',
      `UserKnownHostsFile=${info.knownHosts}`,
      '-o',
      'HostKeyAlias=hoop-bastion',
      '-o',
      'StrictHostKeyChecking=yes',
      '127.0.0.1',
      'echo in',
    ]);
    expect(r.code).toBe(255);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('Permission denied (publickey)');
  });

  it('refuses a target whose host key is not the pinned one, and says so', async () => {
    const { info: wrong } = await connectSsh('bastion-pinned-wrong');
    const r = await ssh(['bastion-pinned-wrong', 'echo should-not-run'], { config: wrong.sshConfig });
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/hoop: the SSH server of "bastion-pinned-wrong" \(127\.0\.0\.1:\d+\) showed host key SHA256:\S+, which is not one of the keys pinned for it/);
    expect(r.code).not.toBe(0);
  });

  it('ends a session at its maximum length, and says why on the terminal', async () => {
    const { info: timed } = await connectSsh('bastion-timed');
    // Cut once the command started, long before its 20 s were up: it never printed what comes after them.
    const child = spawn('ssh', ['-F', timed.sshConfig, '-o', 'BatchMode=yes', 'bastion-timed', 'echo started; sleep 20; echo never'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    await eventually(() => expect(stdout).toBe('started\n'), { timeout: 60_000 });
    expect(limits.fire(100_000)).toBe(1);
    const r = { code: await exited, stdout, stderr };
    expect(r.stdout).toBe('started\n');
    expect(r.stderr).toContain('hoop: this session reached its maximum length of 100 seconds');
    expect(r.code).not.toBe(0);
  });

  it('cuts the tunnel of a client that never closes its side once the session ended, and closes the session', async () => {
    const key = newEd25519Key('never-closes');
    const sessionId = `never-closes-${randomBytes(6).toString('hex')}`;
    const { channel } = await openTunnel({
      gateway: stack.gateway.url,
      connection: 'bastion-timed',
      token: await stack.token('alice'),
      sessionId,
      clientVersion: 'test',
      ca: stack.pki.ca,
      sshKey: key.public.trim().split(/\s+/).slice(0, 2).join(' '),
    });
    channel.on('error', () => undefined);
    let cut = false;
    channel.on('end', () => (cut = true));
    // ssh2 over a socket that relays bytes but never ends nor destroys the tunnel.
    const sock = new Duplex({ read() {}, write: (chunk: Buffer, _e, cb) => void channel.write(chunk, cb), final: (cb) => cb(), destroy: (_e, cb) => cb(null) });
    channel.on('data', (b: Buffer) => sock.push(b));
    const c = new ssh2.Client().on('error', () => undefined);
    await new Promise<void>((resolve) => c.once('ready', () => resolve()).connect({ sock: sock as never, username: 'x', privateKey: key.private, hostVerifier: () => true }));
    await new Promise<void>((resolve) => c.exec('sleep 60', () => resolve()));
    // The session's maximum length, then at most 5 s for the client to close its side: a client that never closes it is cut all the same.
    expect(limits.fire(100_000)).toBe(1);
    await eventually(() => expect(stack.logs().find((l) => l.event === 'tunnel.close' && l.session === sessionId)).toMatchObject({ reason: 'session-limit' }), { timeout: 60_000, interval: 100 });
    await eventually(() => expect(cut).toBe(true), { timeout: 60_000 });
    c.end();
  });

  // What the gateway and hoop connect hold in memory meanwhile is the benchmark's: test/perf/ssh-slow-reader.test.ts (npm run bench:tests).
  it('holds the target back while the client does not read, and the rest still arrives', async () => {
    // The command on the target writes 64 KiB at a time and counts what it wrote, in a file the test reads.
    const blocks = 1024;
    const progress = join(sshd.dir, 'progress');
    const producer = join(sshd.dir, 'producer.sh');
    writeFileSync(producer, `i=0\nwhile [ $i -lt ${blocks} ]; do head -c 65536 /dev/zero || exit 1; i=$((i+1)); echo $i > ${progress}; done\n`, { mode: 0o755 });
    const child = spawn('ssh', ['-F', info.sshConfig, '-o', 'BatchMode=yes', 'bastion', `sh ${producer}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout = child.stdout!;
    let got = 0;
    stdout.on('data', (b: Buffer) => (got += b.length));
    let err = '';
    child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    await eventually(() => expect(got, err).toBeGreaterThan(4 * 1024 * 1024), { timeout: 60_000 });
    stdout.pause();
    const written = (): number => Number(readFileSync(progress, 'utf8').trim() || 0);
    // Once every window and buffer on the way is full, the target's writes block: its count stands still, far from the end.
    let last = -1;
    const stalled = await eventually(
      async () => {
        const now = written();
        const same = now === last;
        last = now;
        expect(same).toBe(true);
        return now;
      },
      { timeout: 60_000, interval: 500 },
    );
    expect(stalled).toBeLessThan(blocks / 2);
    stdout.resume();
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(0);
    expect(got).toBe(blocks * 65536);
  });

  it("says when the target refuses the gateway's credential", async () => {
    const { info: wrong } = await connectSsh('bastion-wrong-key');
    const r = await ssh(['bastion-wrong-key', 'echo should-not-run'], { config: wrong.sshConfig });
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain("refused the gateway's credential");
    expect(r.code).not.toBe(0);
  });
});

describe('files through hoop: scp, sftp, rsync', () => {
  const MB = 1024 * 1024;
  let big: string;
  let bigSum: string;
  beforeAll(async () => {
    big = join(stack.dir, 'big.bin');
    // 16 MB of random bytes (nothing for ssh's compression to shrink): many times SSH's and the tunnel's windows. Throughput is the benchmark's (npm run bench).
    writeFileSync(big, Buffer.concat(Array.from({ length: 16 }, () => randomBytes(MB))));
    bigSum = await sha256File(big);
  });

  it('copies 16 MB up and back down with scp, byte for byte', async () => {
    const remote = join(sshd.dir, 'up.bin');
    const up = await run('scp', ['-q', '-F', info.sshConfig, '-o', 'BatchMode=yes', big, `bastion:${remote}`], { timeoutMs: 120_000 });
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    expect(await sha256File(remote)).toBe(bigSum);
    const back = join(stack.dir, 'back.bin');
    const down = await run('scp', ['-q', '-F', info.sshConfig, '-o', 'BatchMode=yes', `bastion:${remote}`, back], { timeoutMs: 120_000 });
    expect(down.code).toBe(0);
    expect(await sha256File(back)).toBe(bigSum);
    const events = await recordingOf(lastSession('bastion'));
    expect(events.filter((e) => e.t === 'ssh-sftp').map((e) => ({ op: e.op, path: e.path, mode: e.mode }))).toContainEqual({ op: 'close', path: remote, mode: 'read' });
    expect(events.find((e) => e.t === 'ssh-sftp' && e.op === 'close')).toMatchObject({ read: 16 * MB });
  }, 480_000);

  it('puts and gets with sftp, and a read-only access may only read', async () => {
    const remote = join(sshd.dir, 'sftp.bin');
    const put = await run('sftp', ['-q', '-F', info.sshConfig, '-o', 'BatchMode=yes', '-b', '-', 'bastion'], { input: `put ${big} ${remote}\n`, timeoutMs: 120_000 });
    expect(put.code).toBe(0);
    expect(await sha256File(remote)).toBe(bigSum);
    const { info: ro } = await connectSsh('bastion-ro');
    const back = join(stack.dir, 'sftp-back.bin');
    const get = await run('sftp', ['-q', '-F', ro.sshConfig, '-o', 'BatchMode=yes', '-b', '-', 'bastion-ro'], { input: `get ${remote} ${back}\n`, timeoutMs: 120_000 });
    expect(get.code).toBe(0);
    expect(await sha256File(back)).toBe(bigSum);
    const target = join(sshd.dir, 'must-not-exist.bin');
    const refused = await run('sftp', ['-q', '-F', ro.sshConfig, '-o', 'BatchMode=yes', '-b', '-', 'bastion-ro'], { input: `put ${big} ${target}\n`, timeoutMs: 60_000 });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/Permission denied|read-only/);
    expect(existsSync(target)).toBe(false);
    for (const cmd of [`rm ${remote}`, `mkdir ${join(sshd.dir, 'd')}`, `rename ${remote} ${remote}.2`]) {
      await run('sftp', ['-q', '-F', ro.sshConfig, '-o', 'BatchMode=yes', '-b', '-', 'bastion-ro'], { input: `${cmd}\n` });
    }
    expect(existsSync(remote)).toBe(true);
    expect(existsSync(join(sshd.dir, 'd'))).toBe(false);
    const events = await recordingOf(lastSession('bastion-ro'));
    expect(events.some((e) => e.t === 'ssh-sftp' && e.refused === true)).toBe(true);
    // The refused sftp operation is a refusal of that session in the index.
    const roSession = lastSession('bastion-ro');
    await eventually(
      async () => {
        const listed = JSON.parse(
          (await stack.run(['sessions', 'ls', '--json', '--denied', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('alice') })).stdout,
        ) as {
          sessions: Array<{ id: string; statements: number; refused: number }>;
        };
        expect(listed.sessions.find((x) => x.id === roSession)).toMatchObject({ statements: expect.any(Number), refused: 1 });
      },
      { timeout: 60_000, interval: 100 },
    );
    // replay shows the sftp operations (an sftp session draws no terminal), the refused one marked.
    const replayed = await eventually(
      async () => {
        const r = await stack.run(['sessions', 'replay', roSession, '--no-tty', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('alice') });
        expect(r.code, r.stderr).toBe(0);
        return r.stdout;
      },
      { timeout: 60_000, interval: 200 },
    );
    expect(replayed).toMatch(/^sftp: extended posix-rename@openssh\.com \S+ -> \S+: refused \(read-only\)\r?$/m);

    // The same transfers started as commands: an sftp server by path, legacy scp, rsync.
    const small = join(stack.dir, 'small.txt');
    writeFileSync(small, 'kept out\n');
    const ssh = ['-F', ro.sshConfig, '-o', 'BatchMode=yes'];
    const byPath = await run('sftp', ['-q', ...ssh, '-s', '/usr/lib/openssh/sftp-server', '-b', '-', 'bastion-ro'], { input: `put ${small} ${target}\n` });
    expect(byPath.code).not.toBe(0);
    expect(byPath.stderr).toMatch(/Permission denied|read-only/);
    const legacy = await run('scp', ['-O', '-q', ...ssh, small, `bastion-ro:${target}`]);
    expect(legacy.code).not.toBe(0);
    expect(legacy.stderr).toContain('hoop: file transfers to this connection are read-only: downloads only (ssh.sftp is read-only)');
    const rsync = await run('rsync', ['-e', `ssh ${ssh.join(' ')}`, small, `bastion-ro:${target}`]);
    expect(rsync.code).not.toBe(0);
    expect(rsync.stderr).toContain('hoop: file transfers to this connection are read-only');
    const wrapped = await run('sftp', ['-q', ...ssh, '-s', 'sh -c /usr/lib/openssh/sftp-server', '-b', '-', 'bastion-ro'], { input: `put ${small} ${target}\n` });
    expect(wrapped.code).not.toBe(0);
    // Read-only access runs no command that a rule does not allow: the gateway cannot tell whether it writes.
    const touch = await run('ssh', [...ssh, 'bastion-ro', `touch ${target}`]);
    expect(touch.code).toBe(126);
    expect(touch.stderr).toContain('hoop: read-only access runs only the commands an ssh rule allows, and downloads');
    expect(existsSync(target)).toBe(false);
    const legacyDown = join(stack.dir, 'legacy-back.bin');
    expect((await run('scp', ['-O', '-q', ...ssh, `bastion-ro:${remote}`, legacyDown], { timeoutMs: 120_000 })).code).toBe(0);
    expect(await sha256File(legacyDown)).toBe(bigSum);
  }, 480_000);

  it('syncs a directory with rsync -e, and again with nothing to send', async () => {
    const src = join(stack.dir, 'tree');
    mkdirSync(join(src, 'sub'), { recursive: true });
    for (let i = 0; i < 20; i++) writeFileSync(join(src, i % 2 ? 'sub' : '', `f${i}.txt`), `file ${i}\n`.repeat(i * 100 + 1));
    const dest = join(sshd.dir, 'tree-copy');
    const e = `ssh -F ${info.sshConfig} -o BatchMode=yes`;
    const first = await run('rsync', ['-a', '--stats', '-e', e, `${src}/`, `bastion:${dest}/`]);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/Number of regular files transferred: 20/);
    expect(readFileSync(join(dest, 'sub', 'f19.txt'), 'utf8')).toBe(readFileSync(join(src, 'sub', 'f19.txt'), 'utf8'));
    const again = await run('rsync', ['-a', '--stats', '-e', e, `${src}/`, `bastion:${dest}/`]);
    expect(again.stdout).toMatch(/Number of regular files transferred: 0/);
  });

  it('clones a git repository over ssh with GIT_SSH_COMMAND', async () => {
    const repo = join(sshd.dir, 'repo.git');
    await run('git', ['init', '-q', '--bare', repo]);
    const work = join(stack.dir, 'work');
    await run('git', ['init', '-q', work]);
    writeFileSync(join(work, 'README'), 'through hoop\n');
    await run('git', ['-C', work, 'add', 'README']);
    await run('git', ['-C', work, '-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-qm', 'first']);
    const env = { GIT_SSH_COMMAND: `ssh -F ${info.sshConfig} -o BatchMode=yes` };
    const push = await run('git', ['-C', work, 'push', '-q', `bastion:${repo}`, 'HEAD:refs/heads/main'], { env });
    expect(push.code).toBe(0);
    const clone = await run('git', ['clone', '-q', '-b', 'main', `bastion:${repo}`, join(stack.dir, 'clone')], { env });
    expect(clone.code).toBe(0);
    expect(readFileSync(join(stack.dir, 'clone', 'README'), 'utf8')).toBe('through hoop\n');
  });
});

describe('forwarding, ptys and reviews', () => {
  it('forwards a local port to a target the policy lists, and refuses one it does not', async () => {
    let out = '';
    let sshErr = '';
    // A port free a moment ago may be taken by another test when ssh binds it: then ssh exits (ExitOnForwardFailure), and this tries another.
    for (let attempt = 0; attempt < 3 && !out.includes('ok'); attempt++) {
      const local = await freePort();
      const fwd = spawn('ssh', ['-F', info.sshConfig, '-o', 'BatchMode=yes', '-o', 'ExitOnForwardFailure=yes', '-N', '-L', `127.0.0.1:${local}:127.0.0.1:${stack.pg.port}`, 'bastion'], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      fwd.stderr!.on('data', (b: Buffer) => (sshErr += b.toString()));
      try {
        // Until psql gets through the forward; if ssh exited instead (the port was taken), the next attempt takes another port.
        await eventually(
          async () => {
            if (fwd.exitCode !== null) return;
            out = (
              await run('psql', ['-XAtq', '-h', '127.0.0.1', '-p', String(local), '-U', stack.pg.users.scram.user, '-d', 'app', '-c', "select 'ok'"], {
                env: { PGPASSWORD: stack.pg.users.scram.password, PGCONNECT_TIMEOUT: '3' },
              })
            ).stdout;
            expect(out).toContain('ok');
          },
          { timeout: 60_000, interval: 100 },
        ).catch(() => undefined);
      } finally {
        fwd.kill();
      }
    }
    expect(out.trim(), sshErr).toBe('ok');
    const refused = await run('ssh', ['-F', info.sshConfig, '-o', 'BatchMode=yes', '-W', `127.0.0.1:${sshd.port}`, 'bastion'], { timeoutMs: 15_000 });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/administratively prohibited|open failed/);
    const events = await recordingOf(lastSession('bastion'));
    expect(events.find((e) => e.t === 'ssh-forward')).toMatchObject({ target: `127.0.0.1:${sshd.port}`, allowed: false });
  });

  it("gives a command a pty of the client terminal's size, follows a resize, and records both", async () => {
    // `script` gives ssh a pseudo-terminal; stty sets its size, then changes it 2 s after the command said the first (SIGWINCH);
    // the command waits for the change (a busy machine may take seconds to connect, or to pass the change on).
    const sized = join(tmpdir(), `hoop-ssh-sized-${process.pid}-${Date.now()}`);
    const remote = `stty size; touch ${sized}; until stty size | grep -qx '40 120'; do sleep 0.1; done; stty size; tty >/dev/null && echo is-a-tty`;
    const inner = `stty cols 100 rows 30; (while [ ! -e ${sized} ]; do sleep 0.1; done; sleep 2; stty cols 120 rows 40 </dev/tty) & ssh -tt -F ${info.sshConfig} -o BatchMode=yes bastion "${remote}"`;
    const r = await run('script', ['-qefc', inner, '/dev/null'], { timeoutMs: 30_000 });
    rmSync(sized, { force: true });
    expect(r.stdout, r.stdout + r.stderr).toMatch(/30 100\r?\n(.|\n)*40 120\r?\n(.|\n)*is-a-tty/);
    const events = await recordingOf(lastSession('bastion'));
    expect(events.find((e) => e.t === 'ssh-pty')).toMatchObject({ cols: 100, rows: 30 });
    expect(events.filter((e) => e.t === 'ssh-resize')).toContainEqual(expect.objectContaining({ cols: 120, rows: 40 }));

    // Replayed as the terminal showed it, and exported as asciicast v2, which asciinema 2.2 (Debian's) plays.
    const id = lastSession('bastion');
    const cli = async (argv: string[]) => stack.run([...argv, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('alice') });
    const replay = await cli(['sessions', 'replay', id, '--no-tty']);
    expect(replay.code).toBe(0);
    expect(replay.stdout).toMatch(/30 100\r\n(.|\n)*40 120\r\n(.|\n)*is-a-tty/);
    const cast = await cli(['sessions', 'export', id, '--format', 'asciicast']);
    const [header, ...lines] = cast.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as unknown);
    expect(header).toMatchObject({ version: 2, width: 100, height: 30 });
    const frames = lines as Array<[number, string, string]>;
    expect(frames.map(([time]) => time)).toEqual(frames.map(([time]) => time).sort((a, b) => a - b));
    expect(frames).toContainEqual([expect.any(Number), 'r', '120x40']);
    expect(
      frames
        .filter(([, code]) => code === 'o')
        .map(([, , d]) => d)
        .join(''),
    ).toMatch(/30 100\r\n(.|\n)*40 120/);
    // The asciinema Debian packages (2.2) reads it as it is: its `cat` (which wants a terminal: script gives it one) prints the terminal's output.
    const castFile = join(stack.dir, 'session.cast');
    writeFileSync(castFile, cast.stdout);
    const played = await new Promise<{ code: number | null; out: string; err: string }>((resolve) =>
      execFile('script', ['-qec', `asciinema cat ${castFile}`, '/dev/null'], { env: { ...process.env, ASCIINEMA_CONFIG_HOME: join(stack.dir, 'asciinema') } }, (err, out, errOut) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out, err: errOut }),
      ),
    );
    expect(played, `${played.out}${played.err}`).toMatchObject({ code: 0 });
    expect(played.out).toMatch(/30 100\r+\n[\s\S]*40 120/);
    // v2 has no exit event: the exit status is the last marker.
    expect(frames[frames.length - 1]).toEqual([expect.any(Number), 'm', 'exit 0']);
    // The resize came about 2 s after the output began: the timing is the session's (v2's times count from the start).
    const untilResize = frames.find(([, c, d]) => c === 'r' && d === '120x40')![0];
    expect(untilResize).toBeGreaterThan(1.5);
  });

  it('holds a reviewed command until a reviewer approves it, then runs it', async () => {
    writeFileSync(join(sshd.dir, 'deploy.sh'), '#!/bin/sh\necho deployed "$@" > deployed.txt\necho deployed\n', { mode: 0o755 });
    const pending = ssh(['bastion', `cd ${sshd.dir} && ./deploy.sh v2`]);
    const id = await eventually(
      async () => {
        const ls = await stack.run(['review', 'ls', '--json', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('bob', ['ops']) });
        const pendingId = (JSON.parse(ls.stdout) as { reviews: Array<{ id: string; sql: string; state: string }> }).reviews.find((x) => x.sql.includes('deploy.sh') && x.state === 'pending')?.id;
        expect(pendingId, 'a pending review of the command').toBeDefined();
        return pendingId!;
      },
      { timeout: 60_000, interval: 100 },
    );
    expect(existsSync(join(sshd.dir, 'deployed.txt'))).toBe(false);
    const ok = await stack.run(['review', 'approve', id, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('bob', ['ops']) });
    expect(ok.code).toBe(0);
    const r = await pending;
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('deployed\n');
    expect(r.stderr).toContain(`waits for review ${id}`);
    expect(readFileSync(join(sshd.dir, 'deployed.txt'), 'utf8')).toBe('deployed v2\n');
  });

  it('shows a reviewer a command with terminal escapes as it is, and refuses it when denied', async () => {
    // On a terminal, "to column 1" and "erase line" would leave only "./deploy.sh v2" in view.
    const disguised = `echo pwned > ${sshd.dir}/pwned.txt; ./deploy.sh --denied #\x1b[1G\x1b[2K./deploy.sh v2`;
    const pending = ssh(['bastion', disguised]);
    const id = await eventually(
      async () => {
        const ls = await stack.run(['review', 'ls', '--json', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('bob', ['ops']) });
        const pendingId = (JSON.parse(ls.stdout) as { reviews: Array<{ id: string; sql: string; state: string }> }).reviews.find((x) => x.sql.includes('--denied') && x.state === 'pending')?.id;
        expect(pendingId, 'a pending review of the command').toBeDefined();
        return pendingId!;
      },
      { timeout: 60_000, interval: 100 },
    );
    const asBob = { HOOP_TOKEN: await stack.token('bob', ['ops']) };
    const show = await stack.run(['review', 'show', id, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], asBob);
    expect(show.stdout).toContain(`    echo pwned > ${sshd.dir}/pwned.txt; ./deploy.sh --denied #\\x1b[1G\\x1b[2K./deploy.sh v2\n`);
    const ls = await stack.run(['review', 'ls', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], asBob);
    for (const out of [show.stdout, ls.stdout]) expect(out).not.toMatch(/[\r\x1b]/);
    await stack.run(['review', 'deny', id, '--reason', 'not today', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], asBob);
    const r = await pending;
    expect(r.code).toBe(126);
    expect(r.stderr).toContain('not today');
    expect(existsSync(join(sshd.dir, 'pwned.txt'))).toBe(false);
  });
});

describe('hoop run --connect bastion', () => {
  it('gives the command HOOP_SSH_CONFIG, GIT_SSH_COMMAND and RSYNC_RSH, and its ssh sessions carry the run', async () => {
    const script = join(stack.dir, 'agent.sh');
    writeFileSync(script, '#!/bin/sh\nset -e\nssh -F "$HOOP_SSH_CONFIG" -o BatchMode=yes bastion "echo from-run"\necho "git=$GIT_SSH_COMMAND"\necho "rsync=$RSYNC_RSH"\n', { mode: 0o755 });
    const r = await stack.run(['run', '--connect', 'bastion', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile, '--', script], {
      HOOP_TOKEN: await stack.token('alice'),
      XDG_RUNTIME_DIR: stack.runtime,
    });
    expect(r.stderr).toBe(runSaid(/^hoop: run (run-\S+):/.exec(r.stderr)?.[1] ?? 'no run said'));
    expect(r.code).toBe(0);
    const [out, git, rsync] = r.stdout.trim().split('\n');
    expect(out).toBe('from-run');
    expect(git).toMatch(/^git=ssh -F \S+ssh_config$/);
    expect(rsync).toBe(git!.replace('git=', 'rsync='));
    const open = stack.logs().filter((l) => l.event === 'tunnel.open' && l.connection === 'bastion');
    expect(r.stderr).toBe(runSaid(open[open.length - 1]!.run as string));
  });
});
