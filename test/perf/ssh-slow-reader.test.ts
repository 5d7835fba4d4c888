/**
 * What a client that stops reading costs (npm run bench:tests): an SSH command writes 400 MB
 * through hoop connect and the gateway (both in this process) while the ssh client's reader is
 * stalled; their memory must stay within SSH's windows and the sockets' buffers.
 * test/integration/ssh.test.ts checks that the target is held back; this, what holding it costs.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSshd, type Sshd } from '../../src/demo/sshd.js';
import type { ConnectSshJson } from '../../src/connect-json.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { eventually, quietFor } from '../harness/wait.js';
import { sshConnectionYaml } from '../harness/sshd.js';

let sshd: Sshd;
let stack: HoopStack;
let connect: RunningConnect;

beforeAll(async () => {
  sshd = await startSshd();
  const repo = new PolicyGitRepo('hoop-perf-ssh-');
  stack = await startStack({
    policy: () => {
      repo.commit(`version: 1
connections:
${sshConnectionYaml('bastion', sshd)}
access:
  - { name: people, subjects: [alice], connections: [bastion], mode: read-write }
`);
      return repo.gatewayBlock(['${file:/tmp/*/client_key}']);
    },
  });
  connect = await stack.connect('bastion', await stack.token('alice'));
});

afterAll(async () => {
  await connect?.stop().catch(() => undefined);
  await stack?.close();
  await sshd?.stop();
});

describe('a client that stops reading', () => {
  it('holds back an endless output: memory stays bounded, the rest still arrives', async () => {
    const { sshConfig } = connect.info as unknown as ConnectSshJson;
    const child = spawn('ssh', ['-F', sshConfig, '-o', 'BatchMode=yes', 'bastion', 'head -c 400000000 /dev/zero'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout = child.stdout!;
    let got = 0;
    stdout.on('data', (b: Buffer) => (got += b.length));
    await eventually(() => expect(got).toBeGreaterThan(4 * 1024 * 1024), { timeout: 60_000 });
    stdout.pause();
    // Lets the bytes already on their way land in the windows and buffers before the measure starts.
    await quietFor(500);
    const before = process.memoryUsage();
    // The window under test: the reader is stalled for 3 s, and the buffers must not grow in it.
    await quietFor(3000);
    const after = process.memoryUsage();
    expect(after.arrayBuffers + after.external - (before.arrayBuffers + before.external)).toBeLessThan(32 * 1024 * 1024);
    stdout.resume();
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(0);
    expect(got).toBe(400_000_000);
  });
});
