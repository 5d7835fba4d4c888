/**
 * What an idle session costs a gateway (npm run bench:tests): the resident memory of a gateway in a
 * process of its own, per idle session (TLS, tunnel, upstream link, recording), at 500 sessions.
 * test/integration/replicas.test.ts holds hundreds of sessions over two replicas through a store restart; this, what they weigh.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOOP_BIN } from '../harness/hoop-process.js';
import { freePort } from '../harness/postgres.js';
import type { RawFrontend } from '../harness/raw-pg.js';
import { startStack, type HoopStack } from '../harness/stack.js';
import { eventually, quietFor } from '../harness/wait.js';

const SESSIONS = 500;

let stack: HoopStack;
let gateway: ChildProcess;
let url: string;
let log = '';
const sessions: RawFrontend[] = [];

beforeAll(async () => {
  stack = await startStack({ pgConfig: { max_connections: String(SESSIONS + 100) } });
  // A second gateway on the same configuration, in its own process, so its memory is its own.
  const port = await freePort();
  const file = join(stack.dir, 'gateway-measured.yaml');
  await writeFile(file, (await readFile(stack.configFile, 'utf8')).replace(/^listen: .*$/m, `listen: 127.0.0.1:${port}\ndataDir: ${join(stack.dir, 'measured')}`));
  url = `https://127.0.0.1:${port}`;
  const pg = stack.pg.users;
  gateway = spawn(process.execPath, [HOOP_BIN, 'gateway', '--config', file], {
    env: { PATH: process.env.PATH, APP_PASSWORD: pg.scram.password, MD5_PASSWORD: pg.md5.password, PLAIN_PASSWORD: pg.cleartext.password, WRONG_PASSWORD: 'not-the-password' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  gateway.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  await eventually(
    () => {
      if (gateway.exitCode !== null) throw new Error(`the gateway exited: ${log}`);
      expect(log).toContain('gateway.listening');
    },
    { timeout: 60_000, interval: 100 },
  );
});

afterAll(async () => {
  for (const f of sessions) f.stream.destroy();
  if (gateway && gateway.exitCode === null) gateway.kill('SIGKILL');
  await stack?.close();
});

describe('an idle session', () => {
  it(`costs the gateway less than 512 KiB of resident memory (at ${SESSIONS} sessions)`, async () => {
    const rss = async (): Promise<number> => Number(/VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${gateway.pid}/status`, 'utf8'))![1]) * 1024;
    // 25 sessions an identity: the default policy allows 32 each.
    const tokens = await Promise.all(Array.from({ length: SESSIONS / 25 }, (_, k) => stack.token(`idle-${k}`, ['dba'])));
    const before = await rss();
    for (let i = 0; i < SESSIONS; i += 25) sessions.push(...(await Promise.all(Array.from({ length: 25 }, () => stack.tunnel('app', tokens[i / 25]!, { gateway: url })))));
    // Lets the sessions' first recording chunks and buffers settle before the measure.
    await quietFor(500);
    const perSession = ((await rss()) - before) / sessions.length;
    process.stdout.write(`gateway: ${Math.round(perSession / 1024)} KiB of RSS per idle session at ${sessions.length} sessions\n`);
    expect(perSession).toBeLessThan(512 * 1024);
  });
});
