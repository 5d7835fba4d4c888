/**
 * Throughput through hoop connect and the gateway (npm run bench:tests): pgbench select-only with
 * 4 clients. test/integration/pg-path.test.ts checks that pgbench runs through hoop; this, how fast.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgbench } from '../harness/clients.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';

let stack: HoopStack;
let app: RunningConnect;

beforeAll(async () => {
  stack = await startStack();
  app = await stack.connect('app', await stack.token('alice'));
});

afterAll(async () => {
  await app?.stop();
  await stack?.close();
});

describe('pgbench through hoop connect', () => {
  it('runs select-only with 4 clients at more than 100 transactions a second', async () => {
    const init = await pgbench(app.info, ['-i', '-s', '1', '-q']);
    expect(init.code, init.stderr).toBe(0);
    const run = await pgbench(app.info, ['-S', '-n', '-c', '4', '-j', '2', '-T', '3']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/number of failed transactions: 0/);
    const tps = Number(/tps = ([\d.]+)/.exec(run.stdout)?.[1]);
    process.stdout.write(`pgbench -S through hoop: ${tps.toFixed(0)} tps\n`);
    expect(tps).toBeGreaterThan(100);
  });
});
