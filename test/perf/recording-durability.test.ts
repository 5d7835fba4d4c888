/**
 * How far the gateway's durable, signed record of a session lags what its client received (a
 * benchmark: `npm run bench:tests`, on a machine doing nothing else). A gateway killed with
 * SIGKILL keeps what its journal's last signed commit covers (the restart cuts it from there); so
 * for each statement of a busy session this measures the time from the client's answer to the
 * first commit that holds it, read as the restart reads the journal, with the default
 * `recording.checkpointSeconds` (1). The bound docs/recordings.md states: about two seconds (the
 * data path hands its records on each second, the journal commits each second).
 *
 * @see docs/recording-format.md
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { connectionYaml } from '../harness/postgres.js';
import { startRepoStack, type HoopStack } from '../harness/stack.js';
import { pace } from '../harness/wait.js';
import { recoverJournals } from '../../src/recording/journal-recovery.js';

let stack: HoopStack;

beforeAll(async () => {
  stack = await startRepoStack(
    'hoop-durability-policy-',
    (pg) => `version: 1
connections:
${connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })}access:
  - { name: people, subjects: [alice], connections: [app], mode: read-write }
`,
  );
});
afterAll(() => stack?.close());

/** Whether the journal in `dir` holds `text` under a commit signed by `key`, as a restart would recover it. */
function committed(dir: string, key: KeyObject, text: string): boolean {
  return recoverJournals(dir, [key]).sessions.some((s) => [...s.blocks()].some((b) => b.includes(Buffer.from(text))));
}

it('a statement the client received is under a signed commit of the journal within about two seconds', async () => {
  const t = await stack.tunnel('app', await stack.token('alice'));
  const journal = join(stack.dir, 'hoop-data', 'journal');
  const key = createPrivateKey(readFileSync(join(stack.dir, 'hoop-data', 'keys', 'recording-ed25519.pem'), 'utf8'));
  const lags: number[] = [];
  for (let i = 0; i < 12; i++) {
    await t.simple(`select 'marker-${i}' as m`);
    const answered = performance.now();
    // Polled tightly: the lag is what is measured.
    for (;;) {
      if (committed(journal, key, `'marker-${i}'`)) break;
      if (performance.now() - answered > 10_000) throw new Error(`statement ${i} was not under a signed commit after 10 s`);
      await pace(10);
    }
    lags.push(performance.now() - answered);
    await pace(150 + ((i * 97) % 400)); // statements at uneven times within the second
  }
  lags.sort((a, b) => a - b);
  const median = lags[Math.floor(lags.length / 2)]!;
  const max = lags.at(-1)!;
  console.log(`answer -> signed commit: median ${median.toFixed(0)} ms, max ${max.toFixed(0)} ms over ${lags.length} statements`);
  expect(max).toBeLessThan(2500);
  t.stream.end();
});
