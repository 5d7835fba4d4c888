/**
 * What a hostile or careless session costs everyone else, measured on the `hoop connect, recording
 * off` path (id `connect-norec`: `hoop gateway` and `hoop connect` as processes, statements judged,
 * masking on):
 *
 * - the latency of another session's `select 1` while a 100 MB statement is judged (it is
 *   analysed in a worker thread: the relay's event loop must not stall);
 * - the gateway's and `hoop connect`'s resident memory while a 500 MB row passes (a row nothing
 *   masks is streamed, never held);
 * - the cost of the lexing guard: 2000 pipelined simple Queries with a backslash (each waits until
 *   the server answered what came before it) against the same without one.
 *
 * @see docs/benchmark.md (what it measures and how to run it)
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { RawFrontend } from '../test/harness/raw-pg.js';

/** Where the `hoop connect` of the path listens, and the processes to watch. */
export interface LimitsTarget {
  host: string;
  port: number;
  user: string;
  database: string;
  password: string;
  gatewayPid: number;
  connectPid: number;
  psql: string;
}

/** What {@link measureLimits} found. */
export interface LimitsResult {
  idleLatency: { p50: number; max: number };
  judgingLatency: { p50: number; max: number; count: number; judgedMs: number; gatewayRssAfterMb?: number };
  row: { mb: number; gatewayRssMb: { before: number; peak: number }; connectRssMb: { before: number; peak: number }; ms: number };
  lexing: { plainMs: number; backslashMs: number; queries: number };
}

const MB = 1024 * 1024;

/** Resident memory of process `pid`, in MB (1024 × 1024 bytes). */
export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
}

async function client(t: LimitsTarget): Promise<pg.Client> {
  const c = new pg.Client({ host: t.host, port: t.port, user: t.user, database: t.database, password: t.password, ssl: false });
  await c.connect();
  return c;
}

/** Round trips of `select 1` on `c` until `until` says stop; their latencies in ms. */
async function pings(c: pg.Client, until: () => boolean): Promise<number[]> {
  const out: number[] = [];
  while (!until()) {
    const t = performance.now();
    await c.query('select 1');
    out.push(performance.now() - t);
  }
  return out;
}

async function latencyDuringBigStatement(t: LimitsTarget): Promise<Pick<LimitsResult, 'idleLatency' | 'judgingLatency'>> {
  const other = await client(t);
  const big = await client(t);
  try {
    const idleUntil = Date.now() + 2000;
    const idle = await pings(other, () => Date.now() > idleUntil);
    let done = false;
    const started = performance.now();
    const query = big.query(`select length('${'x'.repeat(100 * MB)}') as n`).finally(() => (done = true));
    const during = await pings(other, () => done);
    await query;
    return {
      idleLatency: { p50: percentile(idle, 50), max: Math.max(...idle) },
      judgingLatency: { p50: percentile(during, 50), max: Math.max(...during), count: during.length, judgedMs: performance.now() - started },
    };
  } finally {
    await Promise.all([other.end(), big.end()]);
  }
}

async function memoryDuringBigRow(t: LimitsTarget): Promise<LimitsResult['row']> {
  const mb = 500;
  const before = { gateway: rssMb(t.gatewayPid), connect: rssMb(t.connectPid) };
  const peak = { ...before };
  const sampler = setInterval(() => {
    peak.gateway = Math.max(peak.gateway, rssMb(t.gatewayPid));
    peak.connect = Math.max(peak.connect, rssMb(t.connectPid));
  }, 20);
  const started = performance.now();
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(t.psql, ['-X', '-At', '-o', '/dev/null', '-c', `select repeat('x', ${mb} * 1024 * 1024)`], {
        env: { ...process.env, PGHOST: t.host, PGPORT: String(t.port), PGUSER: t.user, PGDATABASE: t.database, PGPASSWORD: t.password, PGSSLMODE: 'disable' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let err = '';
      child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
      child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`the 500 MB row failed: ${err.trim()}`))));
    });
  } finally {
    clearInterval(sampler);
  }
  return { mb, gatewayRssMb: { before: before.gateway, peak: peak.gateway }, connectRssMb: { before: before.connect, peak: peak.connect }, ms: performance.now() - started };
}

/** Milliseconds to get the answers of `n` simple Queries of `sql`, all written at once. */
async function pipelined(t: LimitsTarget, sql: string, n: number): Promise<number> {
  const f = await RawFrontend.tcp(t.port);
  try {
    await f.startup(t.password, [
      ['user', t.user],
      ['database', t.database],
    ]);
    const body = Buffer.from(`${sql}\0`);
    const one = Buffer.alloc(5 + body.length);
    one[0] = 0x51;
    one.writeInt32BE(4 + body.length, 1);
    body.copy(one, 5);
    const from = f.raw.length;
    const started = performance.now();
    f.write(Buffer.concat(Array<Buffer>(n).fill(one)));
    await f.messagesSince(from, n, 120_000);
    return performance.now() - started;
  } finally {
    f.destroy();
  }
}

/** Runs the three measurements against `t`. */
export async function measureLimits(t: LimitsTarget, log: (s: string) => void): Promise<LimitsResult> {
  const row = await memoryDuringBigRow(t);
  log(`500 MB row: gateway RSS ${row.gatewayRssMb.before.toFixed(0)} -> ${row.gatewayRssMb.peak.toFixed(0)} MB`);
  const latency = await latencyDuringBigStatement(t);
  log(`select 1 while a 100 MB statement is judged: max ${latency.judgingLatency.max.toFixed(1)} ms (idle max ${latency.idleLatency.max.toFixed(1)} ms)`);
  await new Promise((r) => setTimeout(r, 500));
  latency.judgingLatency.gatewayRssAfterMb = rssMb(t.gatewayPid);
  const queries = 2000;
  const plainMs = await pipelined(t, "select 'ab'", queries);
  const backslashMs = await pipelined(t, "select 'a\\b'", queries);
  log(`${queries} pipelined queries: ${plainMs.toFixed(0)} ms plain, ${backslashMs.toFixed(0)} ms with a backslash`);
  return { ...latency, row, lexing: { plainMs, backslashMs, queries } };
}

/** The table of {@link measureLimits}. */
export function formatLimits(r: LimitsResult): string[] {
  const f = (n: number, d = 1): string => n.toFixed(d);
  return [
    'hoop connect, recording off, under a heavy session (gateway and hoop connect as processes):',
    `  select 1 of another session: idle p50 ${f(r.idleLatency.p50, 2)} ms, max ${f(r.idleLatency.max)} ms; while a 100 MB statement is judged (${f(r.judgingLatency.judgedMs / 1000, 1)} s): p50 ${f(r.judgingLatency.p50, 2)} ms, max ${f(r.judgingLatency.max)} ms over ${r.judgingLatency.count} queries; gateway RSS after it ${f(r.judgingLatency.gatewayRssAfterMb ?? Number.NaN, 0)} MB`,
    `  a ${r.row.mb} MB row in ${f(r.row.ms / 1000, 1)} s: gateway RSS ${f(r.row.gatewayRssMb.before, 0)} -> peak ${f(r.row.gatewayRssMb.peak, 0)} MB; hoop connect RSS ${f(r.row.connectRssMb.before, 0)} -> peak ${f(r.row.connectRssMb.peak, 0)} MB`,
    `  ${r.lexing.queries} simple Queries in one write: ${f(r.lexing.plainMs, 0)} ms; with a backslash in each (held until the one before is answered): ${f(r.lexing.backslashMs, 0)} ms`,
  ];
}
