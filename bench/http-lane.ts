/**
 * An HTTP API's requests, as a client with keep-alive connections makes them (Node's http agent,
 * BENCH_HTTP_CONCURRENCY at once, default 8): straight to the API (which wants a bearer token), through
 * the floor of a Node gateway (./http-floor.mjs: Node's HTTP server and client, nothing else), `ssh -L`, and through `hoop connect`'s local port to a gateway that adds the token, judges each
 * request by an `http` policy, masks each answer (a JSON list with emails and card numbers) and
 * records the session. BENCH_HTTP_REQUESTS requests each (default 5000), after BENCH_HTTP_WARMUP
 * (default 3000: a gateway's code is compiled while it serves its first thousands, which would
 * otherwise be charged to whichever path ran first):
 * requests/s, p50 and p99, and each path's requests/s against `ssh -L`'s. BENCH_HTTP=0 skips it.
 *
 * Layer: uses ./processes.ts, ./relays.ts (`ssh -L`) and ./hoop-paths.ts (the gateway, `hoop
 * connect`); ./pg-path.ts runs it.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { benchPolicyRepo, startBenchConnect, startBenchGateway } from './hoop-paths.js';
import { HTTP_BENCH_RULES } from './http-policy.js';
import { startProcess, tempDir, waitFor } from './processes.js';
import { type RelayPids, startRelayMeter } from './relay-cpu.js';
import { setupNodeRelay, setupSshForward } from './relays.js';

const REQUESTS = Number(process.env.BENCH_HTTP_REQUESTS ?? 5000);
const CONCURRENCY = Number(process.env.BENCH_HTTP_CONCURRENCY ?? 8);
const WARMUP = Number(process.env.BENCH_HTTP_WARMUP ?? 3000);
const TOKEN = 'bench-token-7d2f9a1c4e6b8d0f';

/** One path's figures. */
export interface HttpRow {
  label: string;
  rps: number;
  p50: number;
  p99: number;
  /** CPU of the relay's processes per request, in µs: its server side (the gateway, sshd) and client side (`hoop connect`, ssh). */
  serverCpuUs?: number;
  clientCpuUs?: number;
}

/** The bench's policy: an http connection to the API with its token, rules that judge every request (none matches), masking detectors. */
function httpPolicy(port: number): string {
  return `version: 1
connections:
  - name: api
    type: http
    url: http://127.0.0.1:${port}
    plainHttp: true
    credential: { bearer: "\${env:BENCH_API_TOKEN}" }
access:
  - { name: bench, subjects: ["*"], connections: [api], mode: read-write, maxSessions: 100 }
${HTTP_BENCH_RULES}`;
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

/** `n` GETs of `url` (with `headers`; an https one verified with `ca`), `CONCURRENCY` at once on keep-alive connections: their latencies and the time they took. */
async function load(url: string, n: number, headers: Record<string, string>, ca?: Buffer): Promise<{ times: number[]; seconds: number }> {
  const agent = ca ? new HttpsAgent({ keepAlive: true, maxSockets: CONCURRENCY, ca }) : new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const send = ca ? httpsRequest : request;
  const times: number[] = [];
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < n) {
        next++;
        const t = process.hrtime.bigint();
        await new Promise<void>((resolve, reject) => {
          const r = send(url, { agent, headers }, (res) => {
            if (res.statusCode !== 200) reject(new Error(`${url}: HTTP ${res.statusCode}`));
            res.resume();
            res.on('end', () => resolve());
          });
          r.on('error', reject);
          r.end();
        });
        times.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  agent.destroy();
  return { times, seconds };
}

/** Measures `url`: a warm-up, then `REQUESTS` requests, and what the `relay`'s processes spent on them. */
async function measure(label: string, url: string, headers: Record<string, string>, ca?: Buffer, relay?: RelayPids): Promise<HttpRow> {
  await load(url, WARMUP, headers, ca);
  const meter = startRelayMeter(relay);
  const { times, seconds } = await load(url, REQUESTS, headers, ca);
  const used = meter.perUnit(REQUESTS);
  const sorted = times.sort((a, b) => a - b);
  const cpu = (side: string): number | undefined => used.find((u) => u.side === side)?.cpuUs;
  const [serverCpuUs, clientCpuUs] = [cpu('server'), cpu('client')];
  return {
    label,
    rps: REQUESTS / seconds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    ...(serverCpuUs !== undefined ? { serverCpuUs } : {}),
    ...(clientCpuUs !== undefined ? { clientCpuUs } : {}),
  };
}

/** The port a bench server printed as its first line. */
function firstLinePort(server: ReturnType<typeof startProcess>): Promise<number> {
  return waitFor(10_000, () => {
    const first = server.stdout().split('\n')[0];
    return first && server.stdout().includes('\n') ? Number(first) : undefined;
  });
}

/** Measures the paths. */
export async function measureHttp(log: (s: string) => void): Promise<HttpRow[]> {
  const api = startProcess(process.execPath, [join(import.meta.dirname, 'http-api.mjs')], { name: 'http api', env: { ...process.env, BENCH_API_TOKEN: TOKEN } });
  try {
    const port = await firstLinePort(api);
    const auth = { authorization: `Bearer ${TOKEN}` };
    const rows = [await measure('plain HTTP', `http://127.0.0.1:${port}/customers`, auth)];
    log(`[http] plain: ${rows[0]!.rps.toFixed(0)} requests/s`);
    const floor = startProcess(process.execPath, [join(import.meta.dirname, 'http-floor.mjs')], { name: 'http floor', env: { ...process.env, BENCH_API_TOKEN: TOKEN, BENCH_API_PORT: String(port) } });
    try {
      const floorPort = await firstLinePort(floor);
      rows.push(await measure("node HTTP proxy (Node's server and client, nothing else)", `http://127.0.0.1:${floorPort}/customers`, {}, undefined, { server: floor.child.pid! }));
      log(`[http] node proxy: ${rows.at(-1)!.rps.toFixed(0)} requests/s`);
    } finally {
      await floor.stop();
    }
    const endpoint = { host: '127.0.0.1', port, user: '', password: '', database: '' };
    for (const [label, shape] of [
      ['node TLS relay, bytes only (the floor of direct)', 'tls'],
      ['node relay, two processes, bytes only (the floor of connect)', 'two'],
    ] as const) {
      const relay = await setupNodeRelay({ port }, endpoint, shape);
      try {
        const ca = relay.endpoint.sslRootCert ? readFileSync(relay.endpoint.sslRootCert) : undefined;
        rows.push(await measure(label, `${ca ? 'https' : 'http'}://127.0.0.1:${relay.endpoint.port}/customers`, auth, ca, relay.relay));
        log(`[http] ${label}: ${rows.at(-1)!.rps.toFixed(0)} requests/s`);
      } finally {
        await relay.close();
      }
    }
    const ssh = await setupSshForward(endpoint);
    try {
      rows.push(await measure('ssh -L', `http://127.0.0.1:${ssh.endpoint.port}/customers`, auth, undefined, ssh.relay));
      log(`[http] ssh -L: ${rows.at(-1)!.rps.toFixed(0)} requests/s`);
    } finally {
      await ssh.close();
    }
    const { dir } = tempDir('hoop-bench-http-');
    const repo = benchPolicyRepo(dir, httpPolicy(port));
    const gw = await startBenchGateway(
      ['recording: { enabled: true }', 'policy:', `  repo: ${JSON.stringify(repo)}`, '  ref: main', '  allowedSecrets: ["${env:BENCH_API_TOKEN}"]', '  pullIntervalSeconds: 3600'],
      {
        BENCH_API_TOKEN: TOKEN,
      },
    );
    try {
      const connect = await startBenchConnect<{ url: string }>(gw, 'api');
      try {
        rows.push(await measure('hoop connect, policy + masking + recording', `${connect.info.url}/customers`, {}, undefined, { server: gw.pid, client: connect.pid }));
        log(`[http] hoop connect: ${rows.at(-1)!.rps.toFixed(0)} requests/s`);
      } finally {
        await connect.stop();
      }
      const { mintDirect } = await import('../src/api-client/direct.js');
      const ca = readFileSync(gw.caFile);
      const minted = await mintDirect({ gateway: gw.url, ca }, gw.token, 'api', { seconds: 3600 });
      rows.push(await measure('hoop direct, policy + masking + recording', `${gw.url}${minted.httpPath}/customers`, {}, ca, { server: gw.pid }));
      log(`[http] hoop direct: ${rows.at(-1)!.rps.toFixed(0)} requests/s`);
    } finally {
      await gw.stop();
    }
    return rows;
  } finally {
    await api.stop();
  }
}

/** The HTTP table, in markdown: each path's requests/s (and against `ssh -L`'s), p50 and p99, and its relay's CPU per request (server side + client side). */
export function formatHttp(rows: HttpRow[]): string[] {
  const ssh = rows.find((r) => r.label === 'ssh -L');
  const cpu = (r: HttpRow): string => (r.serverCpuUs === undefined ? '' : `${r.serverCpuUs.toFixed(0)}${r.clientCpuUs === undefined ? '' : ` + ${r.clientCpuUs.toFixed(0)}`} µs`);
  return [
    `| HTTP GET (a 1.2 KB JSON answer), ${REQUESTS} requests, ${CONCURRENCY} at once | requests/s | vs ssh -L | p50 | p99 | relay CPU/request |`,
    '|---|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.label} | ${r.rps.toFixed(0)} | ${ssh ? `${(r.rps / ssh.rps).toFixed(2)}×` : ''} | ${r.p50.toFixed(3)} ms | ${r.p99.toFixed(3)} ms | ${cpu(r)} |`),
    '',
  ];
}
