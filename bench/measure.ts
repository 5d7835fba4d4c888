/**
 * Measurement of one path with the real `pgbench` and `psql`: select-only latency at 1 client,
 * select-only TPS at 8 clients (simple protocol and `-M prepared`), writes at 8 clients (pgbench's
 * TPC-B-like script, and one UPDATE per transaction in autocommit), new sessions per second
 * (`pgbench -C`), COPY-out throughput, and the CPU the path's relay processes spend per transaction.
 * Also the database every path reaches: pgbench's tables and the COPY table.
 *
 * Layer: uses ./settings.ts and ./processes.ts; the path set-ups build on the types defined here.
 *
 * @see https://www.postgresql.org/docs/15/pgbench.html
 * @see https://www.postgresql.org/docs/15/sql-copy.html
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { countStdoutBytes, lastLines, runToEnd, tempDir } from './processes.js';
import { COPY_ROWS, COPY_RUNS, RUNS, type RunName, SCALE, SECONDS, WARMUP_SECONDS } from './settings.js';

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

/** The processes (each with its children) that relay a path's traffic, whose CPU per transaction is reported. */
export interface RelayPids {
  /** The server side: the gateway, sshd, the node relay's server. */
  server: number;
  /** The client side: `hoop connect`, ssh, the node relay's client; none when clients reach the server side themselves. */
  client?: number;
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

/** pgbench's tables at BENCH_SCALE and the COPY table (BENCH_COPY_ROWS rows of ~100 bytes; one row when COPY is not run). */
export async function prepareDatabase(bin: string, psql: string, direct: Endpoint, log: (s: string) => void): Promise<BenchDatabase> {
  log(`pgbench -i -s ${SCALE} ...`);
  await runToEnd(join(bin, 'pgbench'), ['-i', '-q', '-s', String(SCALE), direct.database], { env: clientEnv(direct), timeoutMs: 600_000 });
  const rows = RUNS.has('copy') ? COPY_ROWS : 1;
  log(`creating copybench (${rows} rows) ...`);
  const create = `create table copybench as select g, repeat('x', 92) as pad from generate_series(1, ${rows}) g`;
  await runToEnd(psql, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', create, '-c', 'vacuum analyze copybench'], { env: clientEnv(direct), timeoutMs: 600_000 });
  const copyBytes = await countStdoutBytes(psql, ['-X', '-q', '-c', 'COPY copybench TO STDOUT'], clientEnv(direct));
  const relSize = (await runToEnd(psql, ['-X', '-A', '-t', '-c', "select pg_size_pretty(pg_total_relation_size('copybench'))"], { env: clientEnv(direct) })).stdout.trim();
  log(`copybench: ${(copyBytes / 1e6).toFixed(1)} MB as COPY text, ${relSize} on disk`);
  return { bin, psql, copyBytes };
}

/* ------------------------------------------------------------------ CPU and system calls */

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** Fields of /proc/<pid>/stat from field 3 on (after the command name). @see https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined; // it ended
  }
}

/**
 * CPU seconds (user + system, all threads) used by process `pid` and the descendants it has now
 * (sshd serves each connection in a child of the listener): fields 14 and 15 (utime, stime), in
 * clock ticks. Compare two readings taken while the same processes live.
 */
function cpuSeconds(pid: number): number {
  const parent = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const f = statFields(Number(entry));
    if (f) parent.set(Number(entry), Number(f[1]));
  }
  const inTree = (p: number): boolean => {
    for (let at: number | undefined = p; at !== undefined && at > 1; at = parent.get(at)) if (at === pid) return true;
    return false;
  };
  let ticks = 0;
  for (const p of parent.keys()) {
    if (!inTree(p)) continue;
    const f = statFields(p);
    if (f) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / CLOCK_TICKS;
}

/** Read and write system calls of process `pid` (all threads): syscr and syscw of /proc/<pid>/io. */
function syscalls(pid: number): { r: number; w: number } {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    return { r: Number(/syscr: (\d+)/.exec(io)?.[1] ?? 0), w: Number(/syscw: (\d+)/.exec(io)?.[1] ?? 0) };
  } catch {
    return { r: 0, w: 0 };
  }
}

/* ------------------------------------------------------------------ pgbench and psql */

interface PgbenchRun {
  latencyMs: number;
  tps: number;
  transactions: number;
}

function parsePgbench(out: string): PgbenchRun {
  const lat = /latency average = ([\d.]+) ms/.exec(out);
  const tps = /tps = ([\d.]+) \((?:without initial connection time|excluding connections establishing)\)/.exec(out) ?? /tps = ([\d.]+)/.exec(out);
  if (!lat || !tps) throw new Error(`cannot parse pgbench output: ${lastLines(out, 3)}`);
  const failed = /number of failed transactions: (\d+)/.exec(out);
  if (failed && Number(failed[1]) > 0) throw new Error(`pgbench reported ${failed[1]} failed transactions`);
  const transactions = /number of transactions actually processed: (\d+)/.exec(out);
  return { latencyMs: Number(lat[1]), tps: Number(tps[1]), transactions: Number(transactions?.[1] ?? 0) };
}

/** Runs pgbench with `args` against `ep`'s database. */
export async function pgbench(bin: string, ep: Endpoint, args: string[]): Promise<PgbenchRun> {
  const { stdout } = await runToEnd(join(bin, 'pgbench'), [...args, ep.database], { env: clientEnv(ep), timeoutMs: (SECONDS + 60) * 1000 });
  return parsePgbench(stdout);
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
    // A gateway runs for days: what its first seconds cost (V8 compiling the hot code) is not measured.
    for (const args of [['-S'], ['-S', '-M', 'prepared'], [], ['-f', updateScript()]]) await pgbench(bin, ep, [...args, ...eightClients(WARMUP_SECONDS)]);
  }
  const ready = async (run: RunName): Promise<boolean> => {
    if (!RUNS.has(run)) return false;
    await setup.settle?.();
    return true;
  };
  if (await ready('latency')) {
    const sides = relaySides(setup.relay);
    const before = sides.map(([, pid]) => cpuSeconds(pid));
    const one = await pgbench(bin, ep, ['-S', '-n', '-c', '1', '-T', String(SECONDS)]);
    figures.latencyMs = one.latencyMs;
    figures.tps1 = one.tps;
    const cpu = one.transactions > 0 ? sides.map(([side, pid], i) => `${side} side ${(((cpuSeconds(pid) - before[i]!) * 1e6) / one.transactions).toFixed(1)} µs`) : [];
    log(`latency ${one.latencyMs.toFixed(3)} ms (tps ${one.tps.toFixed(0)} at 1 client${cpu.length > 0 ? `; CPU per transaction: ${cpu.join(', ')}` : ''})`);
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
    const sides = relaySides(setup.relay);
    const before = sides.map(([, pid]) => cpuSeconds(pid));
    const run = await pgbench(bin, ep, ['-S', '-n', '-C', '-c', '1', '-T', String(Math.max(2, Math.ceil(SECONDS / 2)))]);
    figures.sessionsPerSecond = run.tps;
    const notes = run.transactions > 0 ? sides.map(([side, pid], i) => `${side} side ${(((cpuSeconds(pid) - before[i]!) * 1e3) / run.transactions).toFixed(2)} ms`) : [];
    log(`${figures.sessionsPerSecond.toFixed(0)} new sessions/s at 1 client (-C)${notes.length > 0 ? ` (CPU per session: ${notes.join(', ')})` : ''}`);
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

/** The relay's processes by side: the server side, then the client side where it has one. */
function relaySides(relay: RelayPids | undefined): Array<['server' | 'client', number]> {
  if (!relay) return [];
  return relay.client === undefined
    ? [['server', relay.server]]
    : [
        ['server', relay.server],
        ['client', relay.client],
      ];
}

/** Select-only TPS at 8 clients, with the relay's CPU and system calls per transaction. */
async function measureTps8(bin: string, ep: Endpoint, figures: PathFigures, log: (s: string) => void, relay?: RelayPids): Promise<void> {
  const sides = relaySides(relay);
  const before = sides.map(([, pid]) => ({ cpu: cpuSeconds(pid), io: syscalls(pid) }));
  const eight = await pgbench(bin, ep, ['-S', ...eightClients(SECONDS)]);
  figures.tps8 = eight.tps;
  const notes: string[] = [];
  if (eight.transactions > 0) {
    const per = (n: number): string => (n / eight.transactions).toFixed(2);
    const calls: string[] = [];
    sides.forEach(([side, pid], i) => {
      const cpuUs = ((cpuSeconds(pid) - before[i]!.cpu) * 1e6) / eight.transactions;
      if (side === 'server') figures.serverCpuUsPerTxn = cpuUs;
      else figures.clientCpuUsPerTxn = cpuUs;
      notes.push(`${side} side ${cpuUs.toFixed(1)} µs`);
      const io = syscalls(pid);
      calls.push(`${side} side ${per(io.r - before[i]!.io.r)} reads ${per(io.w - before[i]!.io.w)} writes`);
    });
    if (calls.length > 0) log(`syscalls per transaction: ${calls.join('; ')}`);
  }
  log(`tps ${eight.tps.toFixed(0)} at 8 clients${notes.length > 0 ? ` (CPU per transaction: ${notes.join(', ')})` : ''}`);
}
