/**
 * How far the gateway's durable, signed record of a session lags what its client received (a
 * benchmark: `npm run bench:tests`, on a machine doing nothing else). A gateway killed with
 * SIGKILL keeps what its last signed checkpoint covers; so for each statement of a busy session
 * this measures the time from the client's answer to the first signed checkpoint whose chunks
 * hold that answer, with the default `recording.checkpointSeconds` (1). The bound docs/recordings.md
 * states: about a second (a chunk is cut each second, a checkpoint signed with it).
 *
 * @see docs/recording-format.md
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { connectionYaml } from '../harness/postgres.js';
import { startRepoStack, type HoopStack } from '../harness/stack.js';
import { pace } from '../harness/wait.js';

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
}, 120_000);
afterAll(() => stack?.close());

/** The text of the chunks the newest signed checkpoint (or final manifest) of the session in `dir` covers. */
function signedText(dir: string): string {
  const files = readdirSync(dir);
  const manifests = files.filter((f) => /^checkpoint-\d{6}\.SHA256SUMS$/.test(f) && files.includes(`${f}.sig`)).sort();
  const newest = files.includes('SHA256SUMS.sig') ? 'SHA256SUMS' : manifests.at(-1);
  if (!newest) return '';
  return readFileSync(join(dir, newest), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => gunzipSync(readFileSync(join(dir, line.split('  ')[1]!))).toString('utf8'))
    .join('');
}

it('a statement the client received is under a signed checkpoint within about a second', async () => {
  const t = await stack.tunnel('app', await stack.token('alice'));
  const recordings = join(stack.dir, 'hoop-data', 'recordings');
  const lags: number[] = [];
  for (let i = 0; i < 12; i++) {
    await t.simple(`select 'marker-${i}' as m`);
    const answered = performance.now();
    const [session] = readdirSync(recordings);
    const dir = join(recordings, session!);
    // Polled tightly: the lag is what is measured.
    for (;;) {
      let text = '';
      try {
        text = signedText(dir);
      } catch {
        /* a manifest being replaced: read again */
      }
      if (text.includes(`"marker-${i}"`)) break;
      if (performance.now() - answered > 10_000) throw new Error(`statement ${i} was not under a signed checkpoint after 10 s`);
      await pace(10);
    }
    lags.push(performance.now() - answered);
    await pace(150 + ((i * 97) % 400)); // statements at uneven times within the second
  }
  lags.sort((a, b) => a - b);
  const median = lags[Math.floor(lags.length / 2)]!;
  const max = lags.at(-1)!;
  console.log(`answer -> signed checkpoint: median ${median.toFixed(0)} ms, max ${max.toFixed(0)} ms over ${lags.length} statements`);
  expect(max).toBeLessThan(1500);
  t.stream.end();
}, 60_000);
