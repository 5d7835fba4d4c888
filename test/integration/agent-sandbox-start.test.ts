/**
 * A contained command's sandbox, started under the person's busy home: a socket the sandbox was
 * to hide that goes away as it starts (another program ended) is simply not hidden, on a second
 * try, with nothing said; any other failure to start is said once, on the command's stderr.
 * The launch is wrapped so the socket goes at the worst moment: after the mounts were filtered,
 * before bubblewrap mounts over it.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { detectContainment } from '../../src/agent/containment.js';
import { sandboxMounts } from '../../src/agent/sandbox.js';
import { spawnAgent } from '../../src/agent/spawn-agent.js';

// In the real home, which the sandbox mounts read-only (bubblewrap cannot make a vanished place's parents there), as a person's is.
const base = mkdtempSync(join(homedir(), '.hoop-sandbox-start-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

/** All that `stream` says until it ends (a child's pipe Node emptied at its exit said nothing). */
function said(stream: Readable | null): Promise<string> {
  if (!stream || stream.readableEnded) return Promise.resolve('');
  let text = '';
  stream.on('data', (b: Buffer) => (text += b.toString('utf8')));
  return new Promise((r) => stream.on('end', () => r(text)));
}

/** A run's places, with a session's socket in the home, and a launch that runs `before` (a shell line) ahead of the real one, counting its calls. */
async function scene(name: string, before: string) {
  const home = join(base, name, 'home');
  const work = join(base, name, 'work');
  const runDir = join(base, name, 'run');
  for (const d of [join(home, '.app/runtime'), work, runDir]) mkdirSync(d, { recursive: true });
  const bus = createServer();
  await new Promise<void>((r) => bus.listen(join(home, '.app/runtime/bus'), r));
  bus.unref();
  const env = { HOME: home, PATH: process.env.PATH ?? '' };
  const mounts = sandboxMounts({ env, cwd: work, runDir });
  expect(mounts.find((m) => m.path === join(home, '.app/runtime/bus'))?.kind).toBe('hidden');
  const real = detectContainment('bwrap', env);
  if (real.kind !== 'bwrap') throw new Error(`bubblewrap is needed here: ${real.why}`);
  const calls = join(base, name, 'calls');
  const launcher = join(base, name, 'unshare');
  writeFileSync(launcher, `#!/bin/sh\necho >> '${calls}'\n${before}\nexec '${real.unshare}' "$@"\n`, { mode: 0o755 });
  const agent = await spawnAgent({
    file: '/bin/sh',
    args: ['-c', 'echo ran; echo oops >&2'],
    env,
    cwd: work,
    stdio: { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' },
    containment: { ...real, unshare: launcher },
    runDir,
    mounts,
    ports: [],
  });
  const [stdout, stderr, exit] = await Promise.all([said(agent.stdout), said(agent.stderr), agent.exited]);
  return { home, agent, stdout, stderr, exit, calls: readFileSync(calls, 'utf8').split('\n').length - 1 };
}

describe("a contained command's start", () => {
  it('goes on without a socket that went away as the sandbox started, saying nothing of the first try', async () => {
    const s = await scene('gone', `if [ ! -e '${base}/gone/once' ]; then touch '${base}/gone/once'; rm -rf '${base}/gone/home/.app'; fi`);
    expect(s.calls).toBe(2);
    expect(s.agent.started()).toBe(true);
    expect(s.exit).toEqual({ exitCode: 0 });
    expect(s.stdout).toBe('ran\n');
    expect(s.stderr).toBe('oops\n');
    expect(existsSync(join(s.home, '.app'))).toBe(false);
  });

  it('says once why it could not start otherwise, on the stderr the command would have had, and is not tried again', async () => {
    const s = await scene('fails', 'echo "bwrap: no room here" >&2; exit 1');
    expect(s.calls).toBe(1);
    expect(s.agent.started()).toBe(false);
    expect(s.exit).toEqual({ exitCode: 1 });
    expect(s.stdout).toBe('');
    expect(s.stderr).toBe('bwrap: no room here\n');
  });
});
