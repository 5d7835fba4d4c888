/**
 * How verifying the CLI's own record of a session weighs on the gateway (a benchmark:
 * `npm run bench:tests`, on a machine doing nothing else): a record that takes a second to verify
 * is verified off the gateway's event loop, so the relay is not stalled meanwhile, and once: a
 * later checkpoint reads only the chunks it adds.
 */
import { createHash, createPrivateKey } from 'node:crypto';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createDeviceKey } from '../../src/auth/device-key.js';
import { putClientRecordFile } from '../../src/api-client/records.js';
import { registerDevice } from '../../src/api-client/identity.js';
import { sshSign } from '../../src/recording/sshsig.js';
import { NO_PREVIOUS } from '../../src/recording/writer.js';
import { connectionYaml } from '../harness/postgres.js';
import { startRepoStack, type HoopStack } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';

let stack: HoopStack;
let token: string;
const endpoint = () => ({ gateway: stack.gateway.url, ca: stack.pki.ca });

beforeAll(async () => {
  stack = await startRepoStack(
    'hoop-record-verify-policy-',
    (pg) => `version: 1
connections:
${connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })}access:
  - { name: people, subjects: [alice], connections: [app], mode: read-write }
`,
  );
  token = await stack.token('alice');
});
afterAll(() => stack?.close());

/** A session of alice's through the gateway, ended; resolves its id. */
async function endedSession(): Promise<string> {
  const raw = await stack.tunnel('app', token);
  await raw.simple('select 3');
  raw.write(Buffer.from([0x58, 0, 0, 0, 4]));
  await raw.closed();
  return eventually(async () => {
    const r = await stack.run(['sessions', 'ls', '--json', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: token });
    const found = (JSON.parse(r.stdout) as { sessions: Array<{ id: string; endedAt?: string }> }).sessions.find((s) => s.endedAt);
    expect(found).toBeDefined();
    return found!.id;
  });
}

it("a record that takes a second to verify is verified off the gateway's event loop, once: the relay is not stalled meanwhile, and a later checkpoint reads only the chunks it adds", async () => {
  const id = await endedSession();
  const pair = createDeviceKey();
  await registerDevice(endpoint(), token, { ...pair, name: 'alice big records' });
  const sign = (manifest: Buffer): Buffer => Buffer.from(sshSign(createPrivateKey(pair.privateKey), 'hoop-recording', manifest));
  const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  const put = (name: string, data: Buffer) => putClientRecordFile(endpoint(), token, 'sessions', id, name, data);
  // A first chunk of 1.5 million short events (58 MB of text, 170 KB gzipped): every line is parsed to verify it.
  const rows = 1_500_000;
  const first = gzipSync(`${JSON.stringify({ t: 'chunk', recording: id, seq: 1, prev: NO_PREVIOUS })}\n${'{"t":"row","values":[1,2,3,4,5,6,7,8]}\n'.repeat(rows)}`, { level: 9 });
  const checkpoint = Buffer.from(`${sha256(first)}  events-000001.jsonl.gz\n`);
  await put('events-000001.jsonl.gz', first);
  await put('checkpoint-000001.SHA256SUMS', checkpoint);

  // The gateway runs in this process: how late its timers fire while it verifies is how long a session's bytes would wait.
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  let started = performance.now();
  const truncated = await put('checkpoint-000001.SHA256SUMS.sig', sign(checkpoint));
  const tookFirst = performance.now() - started;
  delay.disable();
  expect(truncated.record).toMatchObject({ state: 'truncated', chunks: 1, events: rows });
  // On the event loop this stalled it for a second in one piece (1.1 s here); off it, the loop waits no longer than the scheduler makes it (14 ms).
  expect(tookFirst).toBeGreaterThan(300);
  expect(delay.max / 1e6).toBeLessThan(250);

  // The session goes on: a second chunk and the final manifest. Only the new chunk is read (the first cannot have changed: 409).
  const second = gzipSync(`${JSON.stringify({ t: 'chunk', recording: id, seq: 2, prev: sha256(first) })}\n{"t":"end","at":2}\n`);
  const manifest = Buffer.concat([checkpoint, Buffer.from(`${sha256(second)}  events-000002.jsonl.gz\n`)]);
  await put('events-000002.jsonl.gz', second);
  await put('SHA256SUMS', manifest);
  started = performance.now();
  const complete = await put('SHA256SUMS.sig', sign(manifest));
  const tookSecond = performance.now() - started;
  expect(complete.record).toMatchObject({ state: 'complete', chunks: 2, events: rows + 1 });
  expect(tookSecond).toBeLessThan(tookFirst / 4);
});
