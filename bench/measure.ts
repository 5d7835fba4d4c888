/**
 * Measurement of one path with the real `pgbench` and `psql`: select-only latency at 1 client,
 * select-only TPS at 8 clients (simple protocol and `-M prepared`), writes at 8 clients (pgbench's
 * TPC-B-like script, and one UPDATE per transaction in autocommit), new sessions per second
 * (`pgbench -C`), COPY-out throughput, and the CPU the path's relay processes spend per transaction.
 * Also the database every path reaches: pgbench's tables and the COPY table.
 *
 * Layer: uses ./settings.ts, ./processes.ts and ./relay-cpu.ts; the path set-ups of every lane build on the
 * types defined here.
 *
 * @see https://www.postgresql.org/docs/15/pgbench.html
 * @see https://www.postgresql.org/docs/15/sql-copy.html
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { countStdoutBytes, lastLines, runToEnd, tempDir } from './processes.js';
import { cpuFigures, formatCpu, formatSyscalls, type RelayPids, startRelayMeter } from './relay-cpu.js';
import { COPY_ROWS, COPY_RUNS, RUNS, type RunName, SCALE, SECONDS, WARMUP_SECONDS } from './settings.js';

export type { RelayPids };

/** Where a client connects to reach the database. */
export interface Endpoint {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** TLS to the endpoint, verified with this CA (a direct connection to the gateway). */
  sslRootCert?: string;
}

/** A path made ready to measure: where clients connect, and what to stop when done with it. */
export interface PathSetup {
  endpoint: Endpoint;
  close: () => Promise<void>;
  /** The hoop processes, for the measurements under a heavy session. */
  pids?: { gateway: number; connect: number };
  relay?: RelayPids;
  /** Resolves once what the last run left to do in the background is done (the CLI's records uploaded). */
  settle?: () => Promise<void>;
}

/** What was measured on one path; a run not made (BENCH_RUNS) or not reached (an error) is left out. */
export interface PathFigures {
  /** Mean latency of the select-only script at 1 client, in ms. */
  latencyMs?: number;
  /** TPS of the same run. */
  tps1?: number;
  /** Select-only TPS at 8 clients, simple protocol. */
  tps8?: number;
  /** TPS at 8 clients over the extended protocol with prepared statements (`-M prepared`). */
  tps8Prepared?: number;
  /** Write TPS at 8 clients: pgbench's TPC-B-like script (three UPDATEs, a SELECT, an INSERT in BEGIN ... END). */
  tpcb8?: number;
  /** Write TPS at 8 clients: one UPDATE per transaction, in autocommit. */
  update8?: number;
  /** COPY-out throughput (median of the runs), in MB/s (10^6 bytes). */
  copyMBps?: number;
  /** New sessions per second at 1 client (`pgbench -C`: a connection, sign-in and query each). */
  sessionsPerSecond?: number;
  /** CPU (user + system, all threads and children) of the relay's server side per transaction of the c=8 run, in µs. */
  serverCpuUsPerTxn?: number;
  /** The same for the relay's client side, when it has one. */
  clientCpuUsPerTxn?: number;
  /** Why the path failed or was skipped. */
  error?: string;
}

/** The environment of `psql` and `pgbench` reaching `ep`: the PG* variables, and nothing of the caller's. */
export function clientEnv(ep: Endpoint): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  return {
    ...env,
    PGHOST: ep.host,
    PGPORT: String(ep.port),
    PGUSER: ep.user,
    PGPASSWORD: ep.password,
    PGDATABASE: ep.database,
    ...(ep.sslRootCert ? { PGSSLMODE: 'verify-full', PGSSLROOTCERT: ep.sslRootCert } : { PGSSLMODE: 'disable' }),
    PGCONNECT_TIMEOUT: '15',
    PGAPPNAME: 'hoop-bench',
  };
}

/* ------------------------------------------------------------------ the database */

/** Where the database is and what it holds, once {@link prepareDatabase} filled it. */
export interface BenchDatabase {
  /** The PostgreSQL binaries' directory (pgbench). */
  bin: string;
  psql: string;
  /** Bytes of `COPY copybench TO STDOUT` (text format). */
  copyBytes: number;
}

/** pgbench's tables at BENCH_SCALE and the COPY table (BENCH_COPY_ROWS rows of ~100 bytes; one row when COPY is not run, or `withCopy` is false: no PostgreSQL path runs). */
export async function prepareDatabase(bin: string, psql: string, direct: Endpoint, log: (s: string) => void, withCopy = true): Promise<BenchDatabase> {
  log(`pgbench -i -s ${SCALE} ...`);
  await runToEnd(join(bin, 'pgbench'), ['-i', '-q', '-s', String(SCALE), direct.database], { env: clientEnv(direct), timeoutMs: 600_000 });
  const rows = withCopy && RUNS.has('copy') ? COPY_ROWS : 1;
  log(`creating copybench (${rows} rows) ...`);
  const create = `create table copybench as select g, repeat('x', 92) as pad from generate_series(1, ${rows}) g`;
  await runToEnd(psql, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', create, '-c', 'vacuum analyze copybench'], { env: clientEnv(direct), timeoutMs: 600_000 });
  const copyBytes = await countStdoutBytes(psql, ['-X', '-q', '-c', 'COPY copybench TO STDOUT'], clientEnv(direct));
  const relSize = (await runToEnd(psql, ['-X', '-A', '-t', '-c', "select pg_size_pretty(pg_total_relation_size('copybench'))"], { env: clientEnv(direct) })).stdout.trim();
  log(`copybench: ${(copyBytes / 1e6).toFixed(1)} MB as COPY text, ${relSize} on disk`);
  return { bin, psql, copyBytes };
}

/* ------------------------------------------------------------------ pgbench and psql */

interface PgbenchRun {
  latencyMs: number;
  tps: number;
  transactions: number;
}

function parsePgbench(out: string): PgbenchRun {
  const processed = /number of transactions actually processed: (\d+)/.exec(out);
  if (processed?.[1] === '0') throw new Error(`no transaction finished in the run (its connections took it all?): ${lastLines(out, 3)}`);
  const lat = /latency average = ([\d.]+) ms/.exec(out);
  const tps = /tps = ([\d.]+) \((?:without initial connection time|excluding connections establishing)\)/.exec(out) ?? /tps = ([\d.]+)/.exec(out);
  if (!lat || !tps) throw new Error(`cannot parse pgbench output: ${lastLines(out, 3)}`);
  const failed = /number of failed transactions: (\d+)/.exec(out);
  if (failed && Number(failed[1]) > 0) throw new Error(`pgbench reported ${failed[1]} failed transactions`);
  return { latencyMs: Number(lat[1]), tps: Number(tps[1]), transactions: Number(processed?.[1] ?? 0) };
}

/** Runs pgbench with `args` against `ep`'s database. */
export async function pgbench(bin: string, ep: Endpoint, args: string[]): Promise<PgbenchRun> {
  return parsePgbench(await pgbenchOutput(bin, ep, args));
}

/** What pgbench with `args` against `ep`'s database prints (unread: a warm-up's count is not measured, and on a loaded machine its connections may take all its seconds). */
export async function pgbenchOutput(bin: string, ep: Endpoint, args: string[]): Promise<string> {
  return (await runToEnd(join(bin, 'pgbench'), [...args, ep.database], { env: clientEnv(ep), timeoutMs: (SECONDS + 60) * 1000 })).stdout;
}

let updateScriptFile: string | undefined;

/** A pgbench script of one UPDATE of one account, in autocommit (no BEGIN); written once. */
function updateScript(): string {
  if (updateScriptFile) return updateScriptFile;
  updateScriptFile = join(tempDir('hoop-bench-script-').dir, 'update.sql');
  writeFileSync(updateScriptFile, '\\set aid random(1, 100000 * :scale)\n\\set delta random(-5000, 5000)\nUPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;\n');
  return updateScriptFile;
}

/** Milliseconds of one `\copy copybench to /dev/null`. */
async function copyOut(psql: string, ep: Endpoint): Promise<number> {
  const { ms } = await runToEnd(psql, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', '\\copy copybench to /dev/null'], { env: clientEnv(ep), timeoutMs: 600_000 });
  return ms;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/* ------------------------------------------------------------------ one path */

/** Whether a run named in BENCH_RUNS is to be made; before it, `setup.settle` lets what the run before left in the background finish. */
export function runGate(setup: PathSetup): (run: RunName) => Promise<boolean> {
  return async (run) => {
    if (!RUNS.has(run)) return false;
    await setup.settle?.();
    return true;
  };
}

/** pgbench's arguments for the c=8 runs, after the script's. */
function eightClients(seconds: number): string[] {
  return ['-n', '-c', '8', '-j', '2', '-T', String(seconds)];
}

/**
 * Measures `setup`'s endpoint with the runs of BENCH_RUNS, into `figures` (filled as each run ends,
 * so what was measured before a failure is kept). Each workload is first warmed up for
 * BENCH_WARMUP seconds, unmeasured; before each run, `setup.settle` lets what the run before left
 * in the background (records to upload) finish.
 */
export async function measurePath(db: BenchDatabase, setup: PathSetup, figures: PathFigures, log: (s: string) => void): Promise<void> {
  const { bin, psql } = db;
  const ep = setup.endpoint;
  if (WARMUP_SECONDS > 0) {
    // A gateway runs for days: what its first seconds cost (V8 compiling the hot code) is not measured. Each workload a run makes is warmed.
    const workloads: [RunName[], string[]][] = [
      [['latency', 'tps', 'sessions'], ['-S']],
      [['prepared'], ['-S', '-M', 'prepared']],
      [['tpcb'], []],
      [['update'], ['-f', updateScript()]],
    ];
    for (const [runs, args] of workloads) if (runs.some((r) => RUNS.has(r))) await pgbenchOutput(bin, ep, [...args, ...eightClients(WARMUP_SECONDS)]);
    // COPY's path too (a CLI's record tap walks a million messages: its first runs took twice as long as the rest).
    if (RUNS.has('copy')) await copyOut(psql, ep);
  }
  const ready = runGate(setup);
  if (await ready('latency')) {
    const meter = startRelayMeter(setup.relay);
    const one = await pgbench(bin, ep, ['-S', '-n', '-c', '1', '-T', String(SECONDS)]);
    figures.latencyMs = one.latencyMs;
    figures.tps1 = one.tps;
    const cpu = formatCpu(meter.perUnit(one.transactions));
    log(`latency ${one.latencyMs.toFixed(3)} ms (tps ${one.tps.toFixed(0)} at 1 client${cpu ? `; CPU per transaction: ${cpu}` : ''})`);
  }
  if (await ready('tps')) await measureTps8(bin, ep, figures, log, setup.relay);
  if (await ready('prepared')) {
    figures.tps8Prepared = (await pgbench(bin, ep, ['-S', '-M', 'prepared', ...eightClients(SECONDS)])).tps;
    log(`tps ${figures.tps8Prepared.toFixed(0)} at 8 clients, -M prepared`);
  }
  if (await ready('tpcb')) {
    figures.tpcb8 = (await pgbench(bin, ep, eightClients(SECONDS))).tps;
    log(`TPC-B tps ${figures.tpcb8.toFixed(0)} at 8 clients`);
  }
  if (await ready('update')) {
    figures.update8 = (await pgbench(bin, ep, ['-f', updateScript(), ...eightClients(SECONDS)])).tps;
    log(`autocommit UPDATE tps ${figures.update8.toFixed(0)} at 8 clients`);
  }
  if (await ready('sessions')) {
    const meter = startRelayMeter(setup.relay);
    const run = await pgbench(bin, ep, ['-S', '-n', '-C', '-c', '1', '-T', String(Math.max(2, Math.ceil(SECONDS / 2)))]);
    figures.sessionsPerSecond = run.tps;
    const cpu = formatCpu(meter.perUnit(run.transactions), { unit: 'ms', digits: 2 });
    log(`${figures.sessionsPerSecond.toFixed(0)} new sessions/s at 1 client (-C)${cpu ? ` (CPU per session: ${cpu})` : ''}`);
  }
  if (await ready('copy')) {
    const times: number[] = [];
    for (let i = 0; i < COPY_RUNS; i++) {
      if (i > 0) await setup.settle?.();
      times.push(await copyOut(psql, ep));
    }
    figures.copyMBps = db.copyBytes / 1e6 / (median(times) / 1000);
    log(`COPY ${figures.copyMBps.toFixed(1)} MB/s (runs: ${times.map((t) => `${t.toFixed(0)} ms`).join(', ')})`);
  }
}

/** Select-only TPS at 8 clients, with the relay's CPU and system calls per transaction. */
async function measureTps8(bin: string, ep: Endpoint, figures: PathFigures, log: (s: string) => void, relay?: RelayPids): Promise<void> {
  const meter = startRelayMeter(relay);
  const eight = await pgbench(bin, ep, ['-S', ...eightClients(SECONDS)]);
  figures.tps8 = eight.tps;
  const usage = meter.perUnit(eight.transactions);
  Object.assign(figures, cpuFigures(usage));
  if (usage.length > 0) log(`syscalls per transaction: ${formatSyscalls(usage)}`);
  log(`tps ${eight.tps.toFixed(0)} at 8 clients${usage.length > 0 ? ` (CPU per transaction: ${formatCpu(usage)})` : ''}`);
}
