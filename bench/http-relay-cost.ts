/**
 * The HTTP lane's own work on a request, in one process and without sockets: the relay reading
 * `GET /customers`, judging it by the bench's `http` policy, answering it from an upstream that
 * hands back the bench's 1.2 KB JSON list at once, masking it (two detectors) and recording it
 * into a stream that keeps nothing. CPU per request, three rounds of BENCH_HTTP_REQUESTS (default
 * 20,000) after 3,000 to warm up; NOMASK=1 and NOREC=1 leave masking or recording out. What
 * `npm run bench`'s hoop rows spend above this is sockets, TLS, Node's HTTP client and the
 * recording thread. Run by ./http-relay-cost.mjs (bundled first: as the gateway's build, without
 * the names a TypeScript loader keeps on every function).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import type { HttpConnection } from '../src/config/connection.js';
import { RequestRates } from '../src/http/pipeline/request-rate.js';
import { HttpRelay } from '../src/http/pipeline/relay.js';
import { HttpJudge } from '../src/policy/http.js';
import { loadPolicyDir } from '../src/policy/load.js';
import { PERSON } from '../src/policy/principal.js';
import type { TunnelSession } from '../src/session/engine.js';
import { HTTP_BENCH_RULES } from './http-policy.js';

const N = Number(process.env.BENCH_HTTP_REQUESTS ?? 20_000);
const MASK = !process.env.NOMASK;
const RECORD = !process.env.NOREC;

const dir = mkdtempSync(join(tmpdir(), 'hoop-relay-cost-'));
writeFileSync(join(dir, 'hoop.yaml'), `version: 1\n${HTTP_BENCH_RULES}`);
const policy = await loadPolicyDir(dir);
rmSync(dir, { recursive: true, force: true });
const judge = new HttpJudge(policy.http!, { subject: 'alice', groups: [], principal: PERSON }, 'api', 'read-write', () => undefined);
// The bench API's answer (./http-api.mjs).
const body = Buffer.from(JSON.stringify(Array.from({ length: 10 }, (_, i) => ({ id: i, name: `Customer ${i}`, email: `c${i}@shop.example`, card: '4111 1111 1111 1111', note: 'x'.repeat(40) }))));
const LAST_CHUNK = '0\r\n\r\n';

let answered: (() => void) | undefined;
const channel = Object.assign(new PassThrough(), { sendControl: () => true, bytesSent: 0 });
channel.write = ((b: Buffer) => {
  if (b.toString('latin1', b.length - LAST_CHUNK.length) === LAST_CHUNK) answered?.();
  return true;
}) as typeof channel.write;
const stream = { record: () => undefined, event: () => undefined };
const session = {
  id: 'bench',
  identity: { issuer: 'https://idp', subject: 'alice' },
  connection: { name: 'api', url: 'http://127.0.0.1:1' },
  channel,
  log: { info: () => undefined, warn: () => undefined },
  lane: { http: judge, prefix: 'direct/u/p' },
  ...(MASK ? { masking: { policy: policy.masking } } : {}),
  ...(RECORD ? { recording: { stream, results: 'masked' } } : {}),
} as unknown as TunnelSession<HttpConnection>;
const relay = new HttpRelay(
  session,
  {
    end: (why) => {
      throw new Error(`the session ended: ${why}`);
    },
    ending: () => false,
  },
  { kind: 'bearer', token: 'bench-token-7d2f9a1c4e6b8d0f' },
  new RequestRates(),
);
const fields: Array<[string, string]> = [
  ['Content-Type', 'application/json'],
  ['Content-Length', String(body.length)],
  ['Date', new Date().toUTCString()],
  ['Connection', 'keep-alive'],
];
relay.opened({ base: 'http://127.0.0.1:1', send: async () => ({ status: 200, reason: 'OK', fields, body: Readable.from([body]), complete: () => true }) });
const request = Buffer.from('GET /direct/u/p/customers HTTP/1.1\r\nHost: 127.0.0.1:8443\r\nConnection: keep-alive\r\n\r\n');

/** `n` requests, one after another, each answered whole. */
async function run(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const done = new Promise<void>((resolve) => (answered = resolve));
    relay.fromClient(request);
    await done;
  }
}

await run(3000);
for (let round = 1; round <= 3; round++) {
  const used = process.cpuUsage();
  await run(N);
  const { user, system } = process.cpuUsage(used);
  console.log(`round ${round}: ${((user + system) / N).toFixed(1)} µs of CPU a request (masking ${MASK ? 'on' : 'off'}, recording ${RECORD ? 'on' : 'off'})`);
}
