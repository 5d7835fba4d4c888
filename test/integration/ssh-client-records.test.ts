/**
 * The CLI's own record of SSH sessions, against OpenSSH's sshd with OpenSSH's clients: while
 * `hoop connect bastion` keeps records, the client's SSH ends at the local port (which shows its
 * own host key), the port relays to the gateway over SSH of its own, and writes its record of each
 * session: commands, sftp operations, the gateway's decisions, exit statuses. `hoop sessions
 * verify` checks it against the gateway's recording. With records off, the bytes go through as
 * before and the client meets the gateway's host key.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectSshJson } from '../../src/connect-json.js';
import { startSshd, type Sshd } from '../../src/demo/sshd.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';
import { sshConnectionYaml } from '../harness/sshd.js';

let sshd: Sshd;
let repo: PolicyGitRepo;
let stack: HoopStack;

function run(cmd: string, args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }));
    // A command that exits before reading (ssh -f, -O exit) closes its stdin: that is no error here.
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(input ?? '');
  });
}
const ssh = (info: ConnectSshJson, args: string[], input?: string) => run('ssh', ['-F', info.sshConfig, '-o', 'BatchMode=yes', ...args], input);
const hoop = async (args: string[]) => stack.run([...args, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('alice') });

/** The newest session of `connection` the gateway logged as opened. */
const lastSession = (connection: string): string =>
  stack
    .logs()
    .filter((l) => l.event === 'tunnel.open' && l.connection === connection)
    .at(-1)!.session as string;

interface Verified {
  ok: boolean;
  client: { ok: boolean } | null;
  crossCheck?: { agree: boolean; statements: number; outcomes: number; sftp?: number; differences: string[]; partial?: string };
}
/** `hoop sessions verify ID --json`, once the session ended and the CLI's record is in. */
async function verified(id: string): Promise<Verified> {
  return eventually(
    async () => {
      const r = await hoop(['sessions', 'verify', id, '--json']);
      const v = JSON.parse(r.stdout) as Verified;
      expect(v.crossCheck, `${r.stdout}${r.stderr}`).toBeDefined();
      // Both records whole: the gateway's signed at the session's end, the CLI's uploaded (neither read as cut short).
      expect(v.crossCheck!.partial, r.stdout).toBeUndefined();
      return v;
    },
    { timeout: 60_000, interval: 200 },
  );
}

beforeAll(async () => {
  sshd = await startSshd();
  repo = new PolicyGitRepo('hoop-ssh-records-');
  stack = await startStack({
    policy: () => {
      repo.commit(`version: 1
connections:
${sshConnectionYaml('bastion', sshd)}
${sshConnectionYaml('bastion-ro', sshd)}
access:
  - { name: people, subjects: [alice], connections: [bastion], mode: read-write }
  - { name: readers, subjects: [alice], connections: [bastion-ro], mode: read-only }
ssh:
  rules:
    - { name: no-recursive-rm, match: { patterns: ['\\brm\\s+-[a-zA-Z]*r'] }, action: deny, message: "recursive deletes are not allowed here" }
`);
      return repo.gatewayBlock(['${file:/tmp/*/client_key}']);
    },
  });
});

afterAll(async () => {
  await stack?.close();
  await sshd?.stop();
  repo?.remove();
});

describe("the CLI's own record of SSH sessions", () => {
  it('records commands, refusals and exit statuses as the client got them, and verify finds it agrees with the gateway', async () => {
    const c: RunningConnect = await stack.connect('bastion', await stack.token('alice'));
    const info = c.info as unknown as ConnectSshJson;
    // The client meets the port's own host key, not the gateway's.
    const gatewayKeys = (JSON.parse((await hoop(['connections', '--json'])).stdout) as { connections: Array<{ name: string; hostKeys?: string[] }> }).connections.find((x) => x.name === 'bastion')!
      .hostKeys!;
    const pinned = readFileSync(info.knownHosts, 'utf8').trim().split(/\s+/).slice(1).join(' ');
    expect(gatewayKeys).not.toContain(pinned);

    const ran = await ssh(info, ['bastion', 'echo out; echo err >&2; cat; exit 3'], 'typed\n');
    expect(ran).toMatchObject({ code: 3, stdout: 'out\ntyped\n', stderr: 'err\n' });
    const first = lastSession('bastion');
    const refused = await ssh(info, ['bastion', `rm -rf ${join(sshd.dir, 'keep')}`]);
    expect(refused.code).toBe(126);
    expect(refused.stderr).toContain('recursive deletes are not allowed here');
    const second = lastSession('bastion');
    // sftp: a put, a mkdir, a remove that fails on the target.
    const local = join(stack.dir, 'upload.txt');
    writeFileSync(local, 'hello over sftp\n');
    const batch = join(stack.dir, 'batch');
    writeFileSync(batch, `put ${local} ${sshd.dir}/uploaded.txt\nmkdir ${sshd.dir}/made\n-rm ${sshd.dir}/no-such-file\n`);
    const sftp = await run('sftp', ['-F', info.sshConfig, '-o', 'BatchMode=yes', '-b', batch, 'bastion']);
    expect(sftp.code).toBe(0);
    expect(readFileSync(join(sshd.dir, 'uploaded.txt'), 'utf8')).toBe('hello over sftp\n');
    const third = lastSession('bastion');
    expect(await c.stop()).toBe(0);

    const a = await verified(first);
    expect(a).toMatchObject({ ok: true, client: { ok: true }, crossCheck: { agree: true, statements: 1, outcomes: 2 } });
    const b = await verified(second);
    expect(b).toMatchObject({ ok: true, client: { ok: true }, crossCheck: { agree: true, statements: 1, outcomes: 2 } });
    const d = await verified(third);
    expect(d.crossCheck).toMatchObject({ agree: true, statements: 1 });
    expect(d.crossCheck!.sftp).toBeGreaterThanOrEqual(4); // open, close, mkdir, remove
    expect((await hoop(['sessions', 'verify', third])).stdout).toMatch(/agree on 1 statement\(s\) and 2 outcome\(s\) and \d+ sftp operation\(s\)/);
    // What the text says, for the refused command.
    const text = await hoop(['sessions', 'verify', second]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain("cross-check: the gateway's and the CLI's records agree on 1 statement(s) and 2 outcome(s)");
  });

  it("a read-only sftp session's refused writes are the same operations in both records", async () => {
    const c = await stack.connect('bastion-ro', await stack.token('alice'));
    const info = c.info as unknown as ConnectSshJson;
    mkdirSync(join(sshd.dir, 'ro'), { recursive: true });
    writeFileSync(join(sshd.dir, 'ro', 'readme'), 'read me\n');
    const batch = join(stack.dir, 'batch-ro');
    writeFileSync(batch, `get ${sshd.dir}/ro/readme ${join(stack.dir, 'got')}\n-put ${batch} ${sshd.dir}/ro/nope\n-mkdir ${sshd.dir}/ro/nope-dir\n`);
    const sftp = await run('sftp', ['-F', info.sshConfig, '-o', 'BatchMode=yes', '-b', batch, 'bastion-ro']);
    expect(sftp.code).toBe(0);
    expect(readFileSync(join(stack.dir, 'got'), 'utf8')).toBe('read me\n');
    const id = lastSession('bastion-ro');
    expect(await c.stop()).toBe(0);
    const v = await verified(id);
    expect(v.crossCheck).toMatchObject({ agree: true, differences: [] });
    expect(v.crossCheck!.sftp).toBeGreaterThanOrEqual(4); // the read's open and close, the refused open for write and mkdir
  });

  it('an sftp server started as a command (sftp -s) is read as sftp at both ends, and its records agree', async () => {
    const c = await stack.connect('bastion', await stack.token('alice'));
    const info = c.info as unknown as ConnectSshJson;
    const batch = join(stack.dir, 'batch-s');
    writeFileSync(batch, `put ${batch} ${sshd.dir}/via-s.txt\n`);
    const sftp = await run('sftp', ['-F', info.sshConfig, '-o', 'BatchMode=yes', '-s', '/usr/lib/openssh/sftp-server', '-b', batch, 'bastion']);
    expect(sftp.code).toBe(0);
    expect(readFileSync(join(sshd.dir, 'via-s.txt'), 'utf8')).toBe(readFileSync(batch, 'utf8'));
    const id = lastSession('bastion');
    expect(await c.stop()).toBe(0);
    const v = await verified(id);
    expect(v.crossCheck).toMatchObject({ agree: true, statements: 1, outcomes: 2, differences: [] });
    expect(v.crossCheck!.sftp).toBeGreaterThanOrEqual(2); // the upload's open and close
  });

  it("commands run side by side on one connection (OpenSSH's ControlMaster) agree too", async () => {
    const c = await stack.connect('bastion', await stack.token('alice'));
    const info = c.info as unknown as ConnectSshJson;
    const control = ['-o', `ControlPath=${join(stack.runtime, 'cm-%C')}`];
    const master = await ssh(info, [...control, '-M', '-N', '-f', 'bastion']);
    expect(master.code).toBe(0);
    const id = lastSession('bastion');
    const [slow, fast] = await Promise.all([ssh(info, [...control, 'bastion', 'sleep 0.5; echo slow; exit 4']), ssh(info, [...control, 'bastion', 'echo fast'])]);
    expect(slow).toMatchObject({ code: 4, stdout: 'slow\n' });
    expect(fast).toMatchObject({ code: 0, stdout: 'fast\n' });
    expect((await ssh(info, [...control, '-O', 'exit', 'bastion'])).code).toBe(0);
    expect(await c.stop()).toBe(0);
    expect(lastSession('bastion')).toBe(id); // one connection: one session
    const v = await verified(id);
    expect(v.crossCheck).toMatchObject({ agree: true, statements: 2, outcomes: 4, differences: [] });
  });

  it('with records off, the client meets the gateway and verify says no CLI record was uploaded', async () => {
    const c = await stack.connect('bastion', await stack.token('alice'), [], { HOOP_CLIENT_RECORD: 'off' });
    const info = c.info as unknown as ConnectSshJson;
    const gatewayKeys = (JSON.parse((await hoop(['connections', '--json'])).stdout) as { connections: Array<{ name: string; hostKeys?: string[] }> }).connections.find((x) => x.name === 'bastion')!
      .hostKeys!;
    expect(gatewayKeys).toContain(readFileSync(info.knownHosts, 'utf8').trim().split(/\s+/).slice(1).join(' '));
    expect(await ssh(info, ['bastion', 'echo direct'])).toMatchObject({ code: 0, stdout: 'direct\n' });
    const id = lastSession('bastion');
    expect(await c.stop()).toBe(0);
    await eventually(async () => expect((await hoop(['sessions', 'verify', id])).stdout).toContain('CLI record: none uploaded'), { timeout: 60_000, interval: 200 });
  });
});
