/**
 * The gateway judges an ssh command line in the grammar of the target user's login shell, which it
 * asks of the target (`echo $SHELL`). An ask that finds no answer (a busy target, a refused channel)
 * makes the lines judged with it uncertain, and it is forgotten: the next command asks again, so one
 * failed ask never leaves a session whose every line an allow list refuses. Against OpenSSH's sshd,
 * whose ForceCommand fails the first ask and logs each.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectSshJson } from '../../src/connect-json.js';
import { startSshd, type Sshd } from '../../src/demo/sshd.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { sshConnectionYaml } from '../harness/sshd.js';

const dir = mkdtempSync(join(tmpdir(), 'hoop-login-shell-'));
const asks = join(dir, 'asks');
let sshd: Sshd;
let repo: PolicyGitRepo;
let stack: HoopStack;
let connect: RunningConnect;

/** One command through hoop connect's ssh config, over one multiplexed connection; never rejects. */
function ssh(info: ConnectSshJson, command: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const args = ['-F', info.sshConfig, '-o', 'BatchMode=yes', '-o', 'ControlMaster=auto', '-o', `ControlPath=${join(dir, 'mux')}`, '-o', 'ControlPersist=60', 'bastion', command];
  return new Promise((resolve) => {
    execFile('ssh', args, { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr })).stdin?.end();
  });
}

beforeAll(async () => {
  // The target fails the first `echo $SHELL` it is sent (as a busy one may), and logs every one.
  const force = join(dir, 'force.sh');
  writeFileSync(
    force,
    `#!/bin/sh
if [ "$SSH_ORIGINAL_COMMAND" = 'echo $SHELL' ]; then
  echo asked >> '${asks}'
  mkdir '${join(dir, 'failed-once')}' 2>/dev/null && exit 1
fi
exec "$SHELL" -c "$SSH_ORIGINAL_COMMAND"
`,
  );
  chmodSync(force, 0o755);
  chmodSync(dir, 0o755);
  sshd = await startSshd({ config: [`ForceCommand ${force}`] });
  repo = new PolicyGitRepo('hoop-login-shell-policy-');
  stack = await startStack({
    policy: () => {
      repo.commit(`version: 1
connections:
${sshConnectionYaml('bastion', sshd)}
access:
  - { name: people, subjects: [alice], connections: [bastion], mode: read-write }
ssh:
  default: deny
  rules:
    - { name: echoes, match: { subjects: [alice], commands: ["echo **"] }, action: allow }
`);
      return repo.gatewayBlock(['${file:/tmp/*/client_key}']);
    },
  });
  connect = await stack.connect('bastion', await stack.token('alice'));
});

afterAll(async () => {
  const info = connect?.info as unknown as ConnectSshJson | undefined;
  if (info) await new Promise((r) => execFile('ssh', ['-F', info.sshConfig, '-o', `ControlPath=${join(dir, 'mux')}`, '-O', 'exit', 'bastion'], () => r(undefined)));
  await connect?.stop().catch(() => undefined);
  await stack?.close();
  await sshd?.stop();
  repo?.remove();
  rmSync(dir, { recursive: true, force: true });
});

describe("the target user's login shell", () => {
  it('is asked again after an ask that found none: the line judged without it is refused saying why, the next runs, and a known shell is not asked for again', async () => {
    const info = connect.info as unknown as ConnectSshJson;
    const first = await ssh(info, 'echo one');
    expect(first.code, first.stderr).toBe(126);
    expect(first.stderr).toContain("the gateway does not know the target user's login shell");
    const second = await ssh(info, 'echo two');
    expect(second, second.stderr).toMatchObject({ code: 0, stdout: 'two\n' });
    expect(await ssh(info, 'echo three')).toMatchObject({ code: 0, stdout: 'three\n' });
    // One failed ask at sign-in, one that found the shell, none after: the session is the multiplexed one throughout.
    expect(readFileSync(asks, 'utf8')).toBe('asked\nasked\n');
  });
});
