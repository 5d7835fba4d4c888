/**
 * PostgreSQL data-path benchmark: what does each way of reaching a database cost?
 *
 * Starts a throwaway PostgreSQL cluster and measures, with the real `pgbench` and `psql`, four
 * paths to it: direct TCP, the hoop gateway (`hoop gateway` + `hoop connect`), the same gateway
 * with a policy repo (`hoop+policy`: statement rules that judge every statement but match none of
 * pgbench's, and a masking rule on a table pgbench does not read, so the masking code path is
 * present), the same with every session recorded (`hoop+policy+recording`: the gateway's recorder
 * writing each statement and up to 1000 rows per result, signed chunks on disk; the other hoop
 * paths run with `recording: { enabled: false }`), the same again with the gateway's state in a
 * PostgreSQL store of its own (`hoop+store`: sessions index and recordings sent there), the policy path with the blast-radius guard on
 * every write (`hoop+policy+guard`: the access's `maxAffectedRows: 1000`), the floor of a Node
 * relay (`node relay`: ./node-relay.mjs, two processes, one TLS connection per client, nothing but
 * `pipe()`), an OpenSSH local forward (`ssh -L`) and pgbouncer in session mode. For each: select-only latency at 1 client,
 * select-only TPS at 8 clients, writes at 8 clients (pgbench's TPC-B-like script, in BEGIN ...
 * END, and one UPDATE per transaction in autocommit), and COPY-out throughput of a ~100 MB
 * table; then prints one table with each path's ratio to direct. Then `scp` of 100 MB up and
 * down to an sshd of its own: direct, through hoop, and through hoop with the session recorded.
 * Before that, the memory of idle sessions: 1,000 `pg` clients signed in through one `hoop connect`
 * with policy, masking and recording on, and the gateway's and the CLI's RSS growth per session,
 * from a gateway that has first carried a few seconds of pgbench (what any traffic touches once, such
 * as V8's young generation, is not counted against the sessions).
 *
 * Before each run of a hoop path, `hoop connect`'s spool is waited on until the records of the
 * sessions the run before ended are uploaded: a run pays for its own sessions' records, not for the
 * backlog of the one before (a `-C` run leaves hundreds). Each path is first warmed up: BENCH_WARMUP
 * seconds (default 2; 0: none) of each workload at 8 clients, unmeasured, as a gateway that has run for a while would be (V8 compiles the hot code in
 * the first seconds: in two rounds each, hoop+policy's TPS at 8 clients was 4,386–5,507 measured
 * cold and 5,279–6,401 warmed up).
 *
 * Environment: BENCH_SECONDS (pgbench duration per run, default 10), BENCH_SCALE (pgbench scale,
 * default 10), BENCH_COPY_ROWS (rows of the COPY table, default 1000000), BENCH_COPY_RUNS (COPY
 * runs per path, median reported, default 3), BENCH_PATHS (comma list, default all),
 * BENCH_HOOP_NODE_ARGS (node flags for the hoop processes, e.g. `--cpu-prof --cpu-prof-dir=DIR`),
 * BENCH_LIMITS=0 (skip the measurements under a heavy session, see ./pg-limits.ts), BENCH_SCP=0
 * (skip scp), BENCH_SCP_RUNS (scp runs per path, median reported, default 3), BENCH_SCP_MB (the file
 * scp copies, default 100), BENCH_IDLE (idle sessions for the memory figure, default 1000; 0 skips
 * it), BENCH_IDLE_MODE (`all`, the default; `policy`: no recording; `plain`: neither),
 * BENCH_IDLE_WARMUP (seconds of pgbench before the idle sessions, default 3; 0: none),
 * BENCH_CHECKPOINT_SECONDS (the recorded paths' `recording.checkpointSeconds`; default: the gateway's, 1),
 * BENCH_RUNS (comma list of the runs to make per path: latency, tps, prepared, tpcb, update, sessions,
 * copy; default all: `BENCH_RUNS=tps` with a long BENCH_SECONDS measures the CPU per transaction alone).
 *
 * Run with `npm run bench`. Everything started here is stopped on exit, on error and on Ctrl-C.
 *
 * @see https://www.postgresql.org/docs/15/pgbench.html
 * @see https://www.postgresql.org/docs/15/sql-copy.html
 * @see https://www.pgbouncer.org/config.html
 * @see https://man.openbsd.org/sshd_config
 */
import { randomBytes } from 'node:crypto';
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { availableParallelism, cpus, tmpdir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort, startPgCluster, type PgCluster } from '../test/harness/postgres.js';
import { formatLimits, measureLimits, rssMb, type LimitsResult } from './pg-limits.js';
import { MAX_DIRECT_SECONDS } from '../src/gateway/direct-credentials.js';

const SECONDS = positiveInt(process.env.BENCH_SECONDS, 10);
const SCALE = positiveInt(process.env.BENCH_SCALE, 10);
/** Seconds of each workload run through a path before it is measured (BENCH_WARMUP=0: none). */
const WARMUP = process.env.BENCH_WARMUP === '0' ? 0 : positiveInt(process.env.BENCH_WARMUP, 2);
const COPY_ROWS = positiveInt(process.env.BENCH_COPY_ROWS, 1_000_000);
const COPY_RUNS = positiveInt(process.env.BENCH_COPY_RUNS, 3);
/** Idle sessions held open through one `hoop connect` for the memory figure (BENCH_IDLE=0 skips it). */
const IDLE_SESSIONS = process.env.BENCH_IDLE === '0' ? 0 : positiveInt(process.env.BENCH_IDLE, 1000);
/** Seconds of pgbench through the idle measurement's gateway before it is measured (BENCH_IDLE_WARMUP=0: none). */
const IDLE_WARMUP = process.env.BENCH_IDLE_WARMUP === '0' ? 0 : positiveInt(process.env.BENCH_IDLE_WARMUP, 3);
const ALL_RUNS = ['latency', 'tps', 'prepared', 'tpcb', 'update', 'sessions', 'copy'] as const;
/** The runs made per path (BENCH_RUNS; default all). */
const RUNS = new Set<string>(process.env.BENCH_RUNS ? process.env.BENCH_RUNS.split(',').map((r) => r.trim()) : ALL_RUNS);
for (const r of RUNS) if (!(ALL_RUNS as readonly string[]).includes(r)) throw new Error(`BENCH_RUNS: unknown run ${r} (known: ${ALL_RUNS.join(', ')})`);
const ALL_PATHS = [
  'direct',
  'hoop',
  'hoop+policy',
  'hoop+policy+recording',
  'hoop direct',
  'hoop direct plain',
  'hoop direct policy',
  'hoop direct 1w store',
  'hoop direct 2w store',
  'hoop+store',
  'hoop+policy+guard',
  'node relay',
  'ssh -L',
  'pgbouncer',
] as const;
type PathName = (typeof ALL_PATHS)[number];
const PATHS: PathName[] = process.env.BENCH_PATHS
  ? ALL_PATHS.filter((p) =>
      process.env
        .BENCH_PATHS!.split(',')
        .map((s) => s.trim())
        .includes(p),
    )
  : [...ALL_PATHS];

const isRoot = process.getuid?.() === 0;
const repoRoot = resolve(import.meta.dirname, '..');

function positiveInt(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : fallback;
}

/* ------------------------------------------------------------------ cleanup */

const cleanups: Array<{ name: string; fn: () => Promise<void> | void }> = [];
const children = new Set<ChildProcess>();
let cleaning: Promise<void> | undefined;

function onCleanup(name: string, fn: () => Promise<void> | void): () => Promise<void> {
  const entry = { name, fn };
  cleanups.push(entry);
  return async () => {
    const i = cleanups.indexOf(entry);
    if (i >= 0) {
      cleanups.splice(i, 1);
      await entry.fn();
    }
  };
}

function cleanupAll(): Promise<void> {
  cleaning ??= (async () => {
    while (cleanups.length > 0) {
      const { name, fn } = cleanups.pop()!;
      try {
        await fn();
      } catch (err) {
        process.stderr.write(`bench: cleanup of ${name} failed: ${(err as Error).message}\n`);
      }
    }
  })();
  return cleaning;
}

process.on('exit', () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write(`\nbench: ${signal}, cleaning up...\n`);
    for (const child of children) child.kill('SIGTERM');
    void cleanupAll().finally(() => process.exit(130));
  });
}

/* ------------------------------------------------------------------ processes */

interface Spawned {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
  stop: () => Promise<void>;
}

/** Starts a long-running helper process, tracked for cleanup. */
function start(file: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; name: string }): Spawned {
  const child = spawn(file, args, { env: opts.env ?? process.env, cwd: opts.cwd ?? repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out = (out + s).slice(-65536)));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err = (err + s).slice(-65536)));
  const exited = new Promise<number | null>((res) => {
    child.once('error', (e) => {
      err += `\n${e.message}`;
      res(-1);
    });
    child.once('exit', (code, signal) => res(code ?? (signal ? 128 : null)));
  });
  void exited.then(() => children.delete(child));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };
  onCleanup(opts.name, stop);
  return { child, stdout: () => out, stderr: () => err, exited, stop };
}

/** Runs a command to completion; rejects with its stderr tail on a non-zero exit. */
function runToEnd(file: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<{ stdout: string; stderr: string; ms: number }> {
  return new Promise((res, rej) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(file, args, { env: opts.env ?? process.env, cwd: tmpdir(), stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (out = (out + s).slice(-1 << 20)));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (err = (err + s).slice(-65536)));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.once('error', (e) => {
      children.delete(child);
      rej(e);
    });
    child.once('close', (code, signal) => {
      children.delete(child);
      if (timer) clearTimeout(timer);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code === 0) res({ stdout: out, stderr: err, ms });
      else rej(new Error(`${file.split('/').pop()} ${signal ? `killed by ${signal}` : `exited ${code}`}: ${lastLines(err || out, 3)}`));
    });
  });
}

function lastLines(s: string, n: number): string {
  return s.trim().split('\n').slice(-n).join(' | ');
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
async function waitForPort(port: number, timeoutMs: number, alive: () => boolean = () => true): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((res) => {
      const s = netConnect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        res(true);
      });
      s.once('error', () => res(false));
    });
    if (ok) return;
    if (!alive()) throw new Error('process exited before listening');
    if (Date.now() > deadline) throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function which(cmd: string, extra: string[] = []): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':'), ...extra]) {
    if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return undefined;
}

function versionOf(file: string | undefined, args: string[]): string {
  if (!file) return 'missing';
  const r = spawnSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim().split('\n')[0] || '?';
}

/* ------------------------------------------------------------------ measurement */

/** Where a client connects to reach the database. */
interface Endpoint {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** TLS to the endpoint, verified with this CA (a direct connection to the gateway). */
  sslRootCert?: string;
}

interface Result {
  latencyMs?: number;
  tps1?: number;
  tps8?: number;
  /** TPS at 8 clients over the extended protocol with prepared statements (`-M prepared`). */
  tps8Prepared?: number;
  /** Write TPS at 8 clients: pgbench's TPC-B-like script (three UPDATEs, a SELECT, an INSERT in BEGIN ... END). */
  tpcb8?: number;
  /** Write TPS at 8 clients: one UPDATE per transaction, in autocommit. */
  update8?: number;
  copyMBps?: number;
  /** New sessions per second at 1 client (`pgbench -C`: a connection, sign-in and query each). */
  connects?: number;
  /** CPU time (user + system, all threads) the gateway and `hoop connect` spent per transaction of the c=8 run, in µs. */
  /** CPU per transaction of the c=8 run: the relay's server side (the gateway, sshd) and client side (hoop connect, ssh). */
  serverCpuUs?: number;
  clientCpuUs?: number;
  error?: string;
}

function clientEnv(ep: Endpoint): NodeJS.ProcessEnv {
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
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

function parsePgbench(out: string): { latencyMs: number; tps: number; transactions: number } {
  const lat = /latency average = ([\d.]+) ms/.exec(out);
  const tps = /tps = ([\d.]+) \((?:without initial connection time|excluding connections establishing)\)/.exec(out) ?? /tps = ([\d.]+)/.exec(out);
  if (!lat || !tps) throw new Error(`cannot parse pgbench output: ${lastLines(out, 3)}`);
  const failed = /number of failed transactions: (\d+)/.exec(out);
  if (failed && Number(failed[1]) > 0) throw new Error(`pgbench reported ${failed[1]} failed transactions`);
  const transactions = /number of transactions actually processed: (\d+)/.exec(out);
  return { latencyMs: Number(lat[1]), tps: Number(tps[1]), transactions: Number(transactions?.[1] ?? 0) };
}

async function pgbench(bin: string, ep: Endpoint, args: string[]): Promise<{ latencyMs: number; tps: number; transactions: number }> {
  const { stdout } = await runToEnd(join(bin, 'pgbench'), [...args, ep.database], { env: clientEnv(ep), timeoutMs: (SECONDS + 60) * 1000 });
  return parsePgbench(stdout);
}

/** A pgbench script of one UPDATE of one account, in autocommit (no BEGIN). */
function updateScript(): string {
  const file = join(tempDir('hoop-bench-script-').dir, 'update.sql');
  writeFileSync(file, '\\set aid random(1, 100000 * :scale)\n\\set delta random(-5000, 5000)\nUPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;\n');
  return file;
}

async function copyOut(psql: string, ep: Endpoint): Promise<number> {
  const { ms } = await runToEnd(psql, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', '\\copy copybench to /dev/null'], { env: clientEnv(ep), timeoutMs: 600_000 });
  return ms;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function measure(bin: string, psql: string, ep: Endpoint, copyBytes: number, log: (s: string) => void, relay?: PathSetup['relay'], settle?: () => Promise<void>): Promise<Result> {
  const r: Result = {};
  if (WARMUP > 0) {
    // A gateway runs for days: what its first seconds cost (V8 compiling the hot code) is not measured.
    for (const args of [['-S'], ['-S', '-M', 'prepared'], [], ['-f', updateScript()]]) await pgbench(bin, ep, [...args, '-n', '-c', '8', '-j', '2', '-T', String(WARMUP)]);
  }
  // Each run measures its own sessions: what the run before left in the background (records to upload) is done first.
  const ready = async (run: string): Promise<boolean> => {
    if (!RUNS.has(run)) return false;
    await settle?.();
    return true;
  };
  if (await ready('latency')) {
    const one = await pgbench(bin, ep, ['-S', '-n', '-c', '1', '-T', String(SECONDS)]);
    r.latencyMs = one.latencyMs;
    r.tps1 = one.tps;
    log(`latency ${one.latencyMs.toFixed(3)} ms (tps ${one.tps.toFixed(0)} at 1 client)`);
  }
  if (await ready('tps')) await measureTps8(bin, ep, r, log, relay);
  if (await ready('prepared')) {
    const prepared = await pgbench(bin, ep, ['-S', '-n', '-M', 'prepared', '-c', '8', '-j', '2', '-T', String(SECONDS)]);
    r.tps8Prepared = prepared.tps;
    log(`tps ${prepared.tps.toFixed(0)} at 8 clients, -M prepared`);
  }
  if (await ready('tpcb')) {
    const tpcb = await pgbench(bin, ep, ['-n', '-c', '8', '-j', '2', '-T', String(SECONDS)]);
    r.tpcb8 = tpcb.tps;
    log(`TPC-B tps ${tpcb.tps.toFixed(0)} at 8 clients`);
  }
  if (await ready('update')) {
    const update = await pgbench(bin, ep, ['-n', '-f', updateScript(), '-c', '8', '-j', '2', '-T', String(SECONDS)]);
    r.update8 = update.tps;
    log(`autocommit UPDATE tps ${update.tps.toFixed(0)} at 8 clients`);
  }
  if (await ready('sessions')) {
    const connects = await pgbench(bin, ep, ['-S', '-n', '-C', '-c', '1', '-T', String(Math.max(2, Math.ceil(SECONDS / 2)))]);
    r.connects = connects.tps;
    log(`${connects.tps.toFixed(0)} new sessions/s at 1 client (-C)`);
  }
  if (await ready('copy')) {
    const times: number[] = [];
    for (let i = 0; i < COPY_RUNS; i++) {
      if (i > 0) await settle?.();
      times.push(await copyOut(psql, ep));
    }
    r.copyMBps = copyBytes / 1e6 / (median(times) / 1000);
    log(`COPY ${r.copyMBps.toFixed(1)} MB/s (runs: ${times.map((t) => `${t.toFixed(0)} ms`).join(', ')})`);
  }
  return r;
}

/** Select-only TPS at 8 clients, with the relay's CPU and syscalls per transaction. */
async function measureTps8(bin: string, ep: Endpoint, r: Result, log: (s: string) => void, relay?: PathSetup['relay']): Promise<void> {
  const cpuBefore = relay && { server: cpuSeconds(relay.server), client: cpuSeconds(relay.client) };
  const ioBefore = relay && { server: syscalls(relay.server), client: syscalls(relay.client) };
  const eight = await pgbench(bin, ep, ['-S', '-n', '-c', '8', '-j', '2', '-T', String(SECONDS)]);
  r.tps8 = eight.tps;
  if (relay && cpuBefore && ioBefore && eight.transactions > 0) {
    r.serverCpuUs = ((cpuSeconds(relay.server) - cpuBefore.server) * 1e6) / eight.transactions;
    r.clientCpuUs = ((cpuSeconds(relay.client) - cpuBefore.client) * 1e6) / eight.transactions;
    const s = syscalls(relay.server);
    const c = syscalls(relay.client);
    const per = (n: number): string => (n / eight.transactions).toFixed(2);
    log(
      `syscalls per transaction: server side ${per(s.r - ioBefore.server.r)} reads ${per(s.w - ioBefore.server.w)} writes; client side ${per(c.r - ioBefore.client.r)} reads ${per(c.w - ioBefore.client.w)} writes`,
    );
  }
  log(
    `tps ${eight.tps.toFixed(0)} at 8 clients${r.serverCpuUs !== undefined ? ` (CPU per transaction: server side ${r.serverCpuUs.toFixed(1)} µs, client side ${r.clientCpuUs!.toFixed(1)} µs)` : ''}`,
  );
}

/* ------------------------------------------------------------------ paths */

/** An endpoint plus what to stop when done with it. */
interface PathSetup {
  endpoint: Endpoint;
  close: () => Promise<void>;
  /** The hoop processes, for the measurements under a heavy session. */
  pids?: { gateway: number; connect: number };
  /** The relay's two processes (trees), whose CPU per transaction is reported. */
  relay?: { server: number; client: number };
  /** Resolves once what the last run left to do in the background is done (the CLI's records uploaded). */
  settle?: () => Promise<void>;
}

function tempDir(prefix: string, forPostgres = false): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (forPostgres && isRoot) {
    const { uid, gid } = postgresIds();
    chownSync(dir, uid, gid);
  }
  const remove = (): void => rmSync(dir, { recursive: true, force: true });
  onCleanup(`temp dir ${dir}`, remove);
  return { dir, remove };
}

function postgresIds(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('no postgres OS user');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

async function setupSsh(pg: PgCluster, ep: Endpoint): Promise<PathSetup> {
  const ssh = which('ssh');
  if (!ssh) throw new Error('skipped: ssh not installed (apt-get install openssh-client)');
  const { findSshd, startSshd } = await import('../src/demo/sshd.js');
  if (!findSshd()) throw new Error('skipped: sshd/ssh-keygen not installed (apt-get install openssh-server)');
  const sshd = await startSshd();

  const localPort = await freePort();
  const tunnel = start(
    ssh,
    [
      '-N',
      '-F',
      '/dev/null',
      '-i',
      sshd.clientKeyFile,
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      'BatchMode=yes',
      '-o',
      'UserKnownHostsFile=/dev/null',
      '-o',
      'GlobalKnownHostsFile=/dev/null',
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      'ExitOnForwardFailure=yes',
      '-o',
      'LogLevel=ERROR',
      '-p',
      String(sshd.port),
      '-L',
      `127.0.0.1:${localPort}:127.0.0.1:${pg.port}`,
      `${userInfo().username}@127.0.0.1`,
    ],
    { name: 'ssh -L' },
  );
  await waitForPort(localPort, 15_000, () => tunnel.child.exitCode === null).catch((e: Error) => {
    throw new Error(`ssh -L did not come up: ${e.message}: ${lastLines(tunnel.stderr(), 3)}`);
  });
  return {
    endpoint: { ...ep, port: localPort },
    relay: { server: sshd.pid, client: tunnel.child.pid! },
    close: async () => {
      await tunnel.stop();
      await sshd.stop();
    },
  };
}

/** The floor of a Node relay: ./node-relay.mjs as a TLS server in front of PostgreSQL and a client that listens locally. */
async function setupNodeRelay(pg: PgCluster, ep: Endpoint): Promise<PathSetup> {
  const { createTestPki } = await import('../test/harness/certs.js');
  const pki = await createTestPki();
  onCleanup('node relay PKI', () => pki.cleanup());
  const leaf = await pki.issue('relay', ['IP:127.0.0.1', 'DNS:localhost']);
  const script = join(repoRoot, 'bench', 'node-relay.mjs');
  const [serverPort, localPort] = [await freePort(), await freePort()];
  const server = start(process.execPath, [script, 'server', String(serverPort), String(pg.port), leaf.certFile, leaf.keyFile], { name: 'node relay server' });
  const client = start(process.execPath, [script, 'client', String(localPort), String(serverPort), pki.caFile], { name: 'node relay client' });
  for (const [port, p] of [
    [serverPort, server],
    [localPort, client],
  ] as const) {
    await waitForPort(port, 15_000, () => p.child.exitCode === null).catch((e: Error) => {
      throw new Error(`the node relay did not come up: ${e.message}: ${lastLines(p.stderr(), 3)}`);
    });
  }
  return {
    endpoint: { ...ep, port: localPort },
    relay: { server: server.child.pid!, client: client.child.pid! },
    close: async () => {
      await client.stop();
      await server.stop();
    },
  };
}

async function setupPgbouncer(pg: PgCluster, ep: Endpoint): Promise<PathSetup> {
  const bouncer = which('pgbouncer', ['/usr/sbin']);
  if (!bouncer) throw new Error('skipped: pgbouncer not installed (apt-get install pgbouncer)');
  const { dir } = tempDir('hoop-bench-pgbouncer-', true);
  const port = await freePort();
  const quote = (s: string): string => `"${s.replace(/"/g, '""')}"`;
  const authFile = join(dir, 'userlist.txt');
  writeFileSync(authFile, `${quote(ep.user)} ${quote(ep.password)}\n`, { mode: 0o600 });
  const ini = [
    '[databases]',
    `${ep.database} = host=127.0.0.1 port=${pg.port} dbname=${ep.database}`,
    '',
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = scram-sha-256',
    `auth_file = ${authFile}`,
    'pool_mode = session',
    'max_client_conn = 100',
    'default_pool_size = 20',
    'ignore_startup_parameters = extra_float_digits',
    'server_tls_sslmode = disable',
    'client_tls_sslmode = disable',
    'log_connections = 0',
    'log_disconnections = 0',
    'log_pooler_errors = 1',
    'stats_period = 3600',
    '',
  ].join('\n');
  const iniFile = join(dir, 'pgbouncer.ini');
  writeFileSync(iniFile, ini, { mode: 0o600 });
  if (isRoot) {
    const { uid, gid } = postgresIds();
    chownSync(authFile, uid, gid);
    chownSync(iniFile, uid, gid);
  }
  const [file, args] = isRoot ? ['runuser', ['-u', 'postgres', '--', bouncer, iniFile]] : [bouncer, [iniFile]];
  const daemon = start(file as string, args as string[], { name: 'pgbouncer', cwd: dir });
  await waitForPort(port, 10_000, () => daemon.child.exitCode === null).catch((e: Error) => {
    throw new Error(`pgbouncer did not start: ${e.message}: ${lastLines(daemon.stderr(), 3)}`);
  });
  return { endpoint: { ...ep, port }, close: () => daemon.stop() };
}

/**
 * A policy bundle for the `hoop+policy` path: read-write access for every identity, statement
 * rules (one deny among them) that match none of pgbench's or COPY's statements, and a masking
 * rule on a table the benchmark does not read.
 */
function benchPolicy(pg: PgCluster, guard = false): string {
  return `version: 1
connections:
  - name: bench
    type: postgres
    host: 127.0.0.1
    port: ${pg.port}
    database: ${pg.database}
    user: ${pg.users.scram.user}
    password: \${env:BENCH_PG_PASSWORD}
    tls: { mode: disable }
    pool: { idle: 8, idleSeconds: 60 }
access:
  - { name: bench, subjects: ["*"], connections: [bench], mode: read-write, maxSessions: 5000${guard ? ', maxAffectedRows: 1000' : ''} }
statements:
  unparseable: deny
  rules:
    - { name: no-drop, match: { kinds: [drop] }, action: deny, message: DROP is not allowed }
    - { name: truncate-review, match: { kinds: [truncate] }, action: review, message: TRUNCATE needs a reviewer }
    - { name: no-unbounded-writes, match: { kinds: [update, delete], missingWhere: true }, action: deny }
    - { name: no-file-reads, match: { functions: [pg_read_file, pg_read_binary_file, lo_import] }, action: deny }
    - { name: no-secrets, match: { tables: [public.bench_secrets] }, action: deny }
masking:
  columns:
    - { table: public.bench_secrets, column: ssn, strategy: redact }
`;
}

/** Commits `text` as hoop.yaml of a new git repo in `dir`; returns the repo's path. */
function benchPolicyRepo(dir: string, text: string): string {
  const repo = join(dir, 'policy-repo');
  mkdirSync(repo);
  const env = {
    PATH: process.env.PATH,
    HOME: dir,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_NAME: 'hoop bench',
    GIT_AUTHOR_EMAIL: 'bench@example.invalid',
    GIT_COMMITTER_NAME: 'hoop bench',
    GIT_COMMITTER_EMAIL: 'bench@example.invalid',
  };
  const git = (...args: string[]): void => void execFileSync('git', args, { cwd: repo, env, stdio: ['ignore', 'pipe', 'pipe'] });
  git('init', '-q', '-b', 'main');
  writeFileSync(join(repo, 'hoop.yaml'), text);
  git('add', '-A');
  git('commit', '-q', '-m', 'bench policy');
  return repo;
}

/** A hoop gateway started for the bench (TLS on, its own CA and OpenID provider), with `config` lines after its listen/tls/issuers. */
async function startBenchGateway(
  config: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ url: string; caFile: string; token: string; dir: string; pid: number; hoopBin: string; stop: () => Promise<void> }> {
  const hoopBin = join(repoRoot, 'bin', 'hoop.js');
  if (!existsSync(join(repoRoot, 'dist', 'cli.js'))) throw new Error('dist/cli.js missing: run `npm run build` first');
  const { createTestPki } = await import('../test/harness/certs.js');
  const { startOidc } = await import('../test/harness/oidc.js');

  const pki = await createTestPki();
  onCleanup('test PKI', () => pki.cleanup());
  const leaf = await pki.issue('gateway', ['IP:127.0.0.1', 'DNS:localhost']);
  const oidc = await startOidc({ audience: 'hoop-bench' });
  onCleanup('oidc provider', async () => {
    await oidc.close();
  });
  const { dir } = tempDir('hoop-bench-gateway-');
  const configFile = join(dir, 'gateway.yaml');
  writeFileSync(
    configFile,
    [
      'listen: 127.0.0.1:0',
      `tls: { cert: ${JSON.stringify(leaf.certFile)}, key: ${JSON.stringify(leaf.keyFile)} }`,
      `issuers: [{ issuer: ${JSON.stringify(oidc.issuer)}, audience: hoop-bench }]`,
      `dataDir: ${JSON.stringify(join(dir, 'data'))}`,
      ...config,
      '',
    ].join('\n'),
  );
  const gateway = start(process.execPath, [...hoopNodeArgs(), hoopBin, 'gateway', '--config', configFile], {
    name: 'hoop gateway',
    env: { ...process.env, ...env, HOOP_LOG_LEVEL: process.env.HOOP_LOG_LEVEL ?? 'info' },
  });
  const url = await waitFor(20_000, () => {
    for (const line of gateway.stderr().split('\n')) {
      if (!line.includes('gateway.listening')) continue;
      try {
        const ev = JSON.parse(line) as { event?: string; url?: string };
        if (ev.event === 'gateway.listening' && ev.url) return ev.url;
      } catch {
        /* partial line */
      }
    }
    if (gateway.child.exitCode !== null) throw new Error(`gateway exited ${gateway.child.exitCode}: ${lastLines(gateway.stderr(), 3)}`);
    return undefined;
  }).catch((e: Error) => {
    throw new Error(`gateway did not start: ${e.message}`);
  });
  const token = await oidc.token({ subject: 'bench', groups: [] });
  return { url, caFile: pki.caFile, token, dir, pid: gateway.child.pid!, hoopBin, stop: () => gateway.stop() };
}

/** `hoop connect <name> --json` against a bench gateway; resolves its JSON line. */
async function startBenchConnect<T>(
  gw: { url: string; caFile: string; token: string; hoopBin: string },
  name: string,
  env: NodeJS.ProcessEnv = {},
): Promise<{ info: T; pid: number; configDir: string; stop: () => Promise<void> }> {
  const configDir = tempDir('hoop-bench-cli-').dir;
  const client = start(process.execPath, [...hoopNodeArgs(), gw.hoopBin, 'connect', name, '--gateway', gw.url, '--ca-file', gw.caFile, '--json'], {
    name: 'hoop connect',
    // A config directory of its own: the records it keeps of its sessions go to a spool of the bench's, not the user's.
    env: { ...process.env, HOOP_TOKEN: gw.token, HOOP_CONFIG_DIR: configDir, ...env },
  });
  const info = await waitFor(20_000, () => {
    const first = client.stdout().split('\n')[0];
    if (first && client.stdout().includes('\n')) return JSON.parse(first) as T;
    if (client.child.exitCode !== null) throw new Error(`hoop connect exited ${client.child.exitCode}: ${lastLines(client.stderr(), 3)}`);
    return undefined;
  }).catch((e: Error) => {
    throw new Error(`hoop connect did not start: ${e.message}`);
  });
  return { info, pid: client.child.pid!, configDir, stop: () => client.stop() };
}

/**
 * Resolves once `hoop connect`'s spool (`<configDir>/spool`) holds no session record: the records
 * of the sessions a run ended are uploaded (and verified by the gateway) before the next run is
 * measured, which would otherwise pay for them (a `-C` run leaves hundreds).
 */
async function spoolEmptied(configDir: string): Promise<void> {
  const spool = join(configDir, 'spool');
  const pending = (): number => (existsSync(spool) ? readdirSync(spool).filter((d) => d.startsWith('sessions-')).length : 0);
  const until = Date.now() + 120_000;
  while (pending() > 0 && Date.now() < until) await sleep(200);
}

async function setupHoop(pg: PgCluster, withPolicy = false, recording = false, guard = false, storeUrl?: string): Promise<PathSetup> {
  const { dir } = tempDir('hoop-bench-policy-');
  const gw = await startBenchGateway(
    [
      ...(storeUrl ? ['store: { kind: postgres, url: "${env:BENCH_STORE_URL}" }'] : []),
      // The heavy-session measurements send a 100 MB statement (pg-limits.ts).
      'postgres: { maxStatementBytes: 128MiB }',
      `recording: { enabled: ${recording}${process.env.BENCH_CHECKPOINT_SECONDS ? `, checkpointSeconds: ${Number(process.env.BENCH_CHECKPOINT_SECONDS)}` : ''} }`,
      ...(withPolicy
        ? ['policy:', `  repo: ${JSON.stringify(benchPolicyRepo(dir, benchPolicy(pg, guard)))}`, '  ref: main', '  allowedSecrets: ["${env:BENCH_PG_PASSWORD}"]', '  pullIntervalSeconds: 3600']
        : [
            'connections:',
            `  - { name: bench, type: postgres, host: 127.0.0.1, port: ${pg.port}, database: ${pg.database}, user: ${pg.users.scram.user}, password: "\${env:BENCH_PG_PASSWORD}", tls: { mode: disable }, allow: { subjects: ["*"], maxSessions: 5000 } }`,
          ]),
    ],
    { BENCH_PG_PASSWORD: pg.users.scram.password, ...(storeUrl ? { BENCH_STORE_URL: storeUrl } : {}) },
  );
  const client = await startBenchConnect<{ host: string; port: number; user: string; database: string; password: string }>(gw, 'bench');
  const { info } = client;
  return {
    endpoint: { host: info.host, port: info.port, user: info.user, password: info.password, database: info.database },
    close: async () => {
      await client.stop();
      await gw.stop();
    },
    pids: { gateway: gw.pid, connect: client.pid },
    relay: { server: gw.pid, client: client.pid },
    settle: () => spoolEmptied(client.configDir),
  };
}

/** The gateway with policy, masking and recording on, reached directly: a direct credential minted for the bench's token, TLS to the gateway's port. */
async function setupHoopDirect(pg: PgCluster, withPolicy = true, recording = true, o: { store?: string; workers?: number } = {}): Promise<PathSetup> {
  const { dir } = tempDir('hoop-bench-policy-');
  const gw = await startBenchGateway(
    [
      ...(o.store ? ['store: { kind: postgres, url: "${env:BENCH_STORE_URL}" }'] : []),
      ...(o.workers ? [`workers: ${o.workers}`] : []),
      'postgres: { maxStatementBytes: 128MiB }',
      `recording: { enabled: ${recording} }`,
      ...(withPolicy
        ? ['policy:', `  repo: ${JSON.stringify(benchPolicyRepo(dir, benchPolicy(pg)))}`, '  ref: main', '  allowedSecrets: ["${env:BENCH_PG_PASSWORD}"]', '  pullIntervalSeconds: 3600']
        : [
            'connections:',
            `  - { name: bench, type: postgres, host: 127.0.0.1, port: ${pg.port}, database: ${pg.database}, user: ${pg.users.scram.user}, password: "\${env:BENCH_PG_PASSWORD}", tls: { mode: disable }, allow: { subjects: ["*"], maxSessions: 5000 } }`,
          ]),
    ],
    { BENCH_PG_PASSWORD: pg.users.scram.password, ...(o.store ? { BENCH_STORE_URL: o.store } : {}) },
  );
  const { mintDirect } = await import('../src/auth/gateway-client.js');
  const minted = await mintDirect({ gateway: gw.url, ca: readFileSync(gw.caFile) }, gw.token, 'bench', { seconds: MAX_DIRECT_SECONDS });
  const url = new URL(gw.url);
  return {
    endpoint: { host: url.hostname, port: Number(url.port), user: minted.user, password: minted.password, database: minted.database, sslRootCert: gw.caFile },
    close: () => gw.stop(),
    relay: { server: gw.pid, client: 0 },
  };
}

/**
 * `scp` of BENCH_SCP_MB (default 100) MB of random bytes up and down, to an sshd of its own: direct,
 * through hoop, and through hoop with the session recorded, with and without the CLI's own record;
 * the median of BENCH_SCP_RUNS (default 3) runs each.
 */
async function measureScp(log: (s: string) => void): Promise<string[]> {
  const { startSshd } = await import('../src/demo/sshd.js');
  const sshd = await startSshd();
  onCleanup('sshd', () => sshd.stop());
  const { dir } = tempDir('hoop-bench-scp-');
  const file = join(dir, 'payload.bin');
  const mb = positiveInt(process.env.BENCH_SCP_MB, 100);
  writeFileSync(file, Buffer.concat(Array.from({ length: mb }, () => randomBytes(1024 * 1024))));
  const runs = Number(process.env.BENCH_SCP_RUNS ?? 3);
  const time = async (args: string[]): Promise<number> => {
    const t = process.hrtime.bigint();
    await runToEnd('scp', ['-q', '-o', 'BatchMode=yes', ...args], { timeoutMs: 600_000 });
    return Number(process.hrtime.bigint() - t) / 1e9;
  };
  const median = (xs: number[]): number => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  const rows: string[] = [];
  const measureOne = async (name: string, up: (remote: string) => string[], down: (remote: string, local: string) => string[]): Promise<void> => {
    const ups: number[] = [];
    const downs: number[] = [];
    for (let i = 0; i < runs; i++) {
      const remote = join(sshd.dir, `payload-${i}.bin`);
      ups.push(await time(up(remote)));
      downs.push(await time(down(remote, join(dir, `back-${i}.bin`))));
    }
    rows.push(`| ${name} | ${(mb / median(ups)).toFixed(0)} MB/s | ${(mb / median(downs)).toFixed(0)} MB/s |`);
    log(`[scp] ${rows[rows.length - 1]}`);
  };
  const direct = [
    '-F',
    '/dev/null',
    '-i',
    sshd.clientKeyFile,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'LogLevel=ERROR',
    '-P',
    String(sshd.port),
  ];
  await measureOne(
    'direct',
    (r) => [...direct, file, `127.0.0.1:${r}`],
    (r, l) => [...direct, `127.0.0.1:${r}`, l],
  );
  for (const recording of [false, true]) {
    const gw = await startBenchGateway([
      `recording: { enabled: ${recording} }`,
      'connections:',
      `  - { name: bastion, type: ssh, host: 127.0.0.1, port: ${sshd.port}, user: ${sshd.user}, privateKey: "\${file:${sshd.clientKeyFile}}", hostKeys: [${JSON.stringify(sshd.hostKey)}], allow: { subjects: ["*"] } }`,
    ]);
    try {
      // Recorded, the CLI keeps its own record too (it ends SSH at its port); HOOP_CLIENT_RECORD=off shows what that costs.
      for (const cliRecord of recording ? [true, false] : [false]) {
        const client = await startBenchConnect<{ sshConfig: string }>(gw, 'bastion', cliRecord ? {} : { HOOP_CLIENT_RECORD: 'off' });
        try {
          const cfg = ['-F', client.info.sshConfig];
          await measureOne(
            recording ? `hoop+recording${cliRecord ? ' (+ CLI record)' : ', HOOP_CLIENT_RECORD=off'}` : 'hoop',
            (r) => [...cfg, file, `bastion:${r}`],
            (r, l) => [...cfg, `bastion:${r}`, l],
          );
        } finally {
          await client.stop();
        }
      }
    } finally {
      await gw.stop();
    }
  }
  return [`| scp ${mb} MB | up | down |`, '|---|---:|---:|', ...rows];
}

/**
 * Memory per idle session with everything on (policy, masking, recording; BENCH_IDLE_MODE=plain
 * or =policy for less): `n` clients (the `pg` driver) signed in through one `hoop connect` and left
 * idle; the growth of the gateway's and `hoop connect`'s resident memory, divided by `n`, after a
 * first session has loaded what is loaded once (the SQL parser, the recording thread), which is
 * reported on its own.
 */
async function measureIdleSessions(pg: PgCluster, n: number, log: (s: string) => void): Promise<string> {
  const { default: pgDriver } = await import('pg');
  const mode = process.env.BENCH_IDLE_MODE ?? 'all';
  const setup = await setupHoop(pg, mode !== 'plain', mode === 'all');
  const clients: InstanceType<typeof pgDriver.Client>[] = [];
  try {
    const { gateway, connect } = setup.pids!;
    const settle = (): Promise<void> => sleep(1000);
    const ep = setup.endpoint;
    const client = (): InstanceType<typeof pgDriver.Client> => new pgDriver.Client({ host: ep.host, port: ep.port, user: ep.user, password: ep.password, database: ep.database, ssl: false });
    await settle();
    const start = { gateway: rssMb(gateway), connect: rssMb(connect) };
    // One session first: what the first one loads (the SQL parser, the recording thread) is paid once, not per session.
    const first = client();
    await first.connect();
    await first.query('select 1');
    await first.end();
    // Then traffic, as a gateway that has run for a while has carried: what any traffic touches once
    // (V8's young generation, two semi-spaces of up to 16 MiB each) is not counted against the sessions.
    if (IDLE_WARMUP > 0) await pgbench(pg.bin, ep, ['-S', '-n', '-c', '8', '-j', '2', '-T', String(IDLE_WARMUP)]);
    await settle();
    const before = { gateway: rssMb(gateway), connect: rssMb(connect) };
    for (let i = 0; i < n; i += 50) {
      const batch = Array.from({ length: Math.min(50, n - i) }, client);
      await Promise.all(batch.map((c) => c.connect()));
      clients.push(...batch);
    }
    await Promise.all(clients.slice(0, 10).map((c) => c.query('select 1')));
    await settle();
    const kib = (mb: number): string => ((mb * 1024) / n).toFixed(0);
    const what = mode === 'all' ? 'policy, masking, recording on' : mode === 'plain' ? 'no policy, no recording' : 'policy and masking on, no recording';
    const mb = (x: number): string => x.toFixed(0);
    const line = `idle sessions: ${n} signed in through one hoop connect (${what}): gateway +${kib(rssMb(gateway) - before.gateway)} KiB RSS per session, hoop connect +${kib(rssMb(connect) - before.connect)} KiB; the first session${IDLE_WARMUP > 0 ? ` and ${IDLE_WARMUP} s of pgbench` : ''} load +${mb(before.gateway - start.gateway)} MB into the gateway, +${mb(before.connect - start.connect)} MB into hoop connect, once`;
    log(`[idle] ${line}`);
    return line;
  } finally {
    await Promise.allSettled(clients.map((c) => c.end()));
    await setup.close();
  }
}

/** Node flags for the hoop processes alone, from BENCH_HOOP_NODE_ARGS (e.g. `--cpu-prof`). */
function hoopNodeArgs(): string[] {
  return process.env.BENCH_HOOP_NODE_ARGS?.split(/\s+/).filter(Boolean) ?? [];
}

async function waitFor<T>(timeoutMs: number, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/* ------------------------------------------------------------------ report */

function fmt(n: number | undefined, digits: number): string {
  return n === undefined ? '-' : n.toFixed(digits);
}

function ratio(v: number | undefined, base: number | undefined): string {
  return v === undefined || base === undefined || base === 0 ? '' : `x${(v / base).toFixed(2)}`;
}

function printTable(results: Map<PathName, Result>, machine: string[]): void {
  const base = results.get('direct');
  const header = [
    'path',
    'latency c=1 (ms)',
    'vs direct',
    'TPS c=8',
    'vs direct',
    'TPS c=8 prepared',
    'vs direct',
    'TPC-B c=8',
    'vs direct',
    'UPDATE c=8',
    'vs direct',
    'COPY out (MB/s)',
    'vs direct',
    'sessions/s',
    'relay CPU µs/txn',
  ];
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const [name, r] of results) {
    if (r.error && r.latencyMs === undefined) {
      rows.push([name, 'failed', ...header.slice(2).map(() => '')]);
      notes.push(`${name}: ${r.error}`);
      continue;
    }
    rows.push([
      name,
      fmt(r.latencyMs, 3),
      name === 'direct' ? '' : ratio(r.latencyMs, base?.latencyMs),
      fmt(r.tps8, 0),
      name === 'direct' ? '' : ratio(r.tps8, base?.tps8),
      fmt(r.tps8Prepared, 0),
      name === 'direct' ? '' : ratio(r.tps8Prepared, base?.tps8Prepared),
      fmt(r.tpcb8, 0),
      name === 'direct' ? '' : ratio(r.tpcb8, base?.tpcb8),
      fmt(r.update8, 0),
      name === 'direct' ? '' : ratio(r.update8, base?.update8),
      fmt(r.copyMBps, 1),
      name === 'direct' ? '' : ratio(r.copyMBps, base?.copyMBps),
      fmt(r.connects, 0),
      r.serverCpuUs === undefined ? '' : `${fmt(r.serverCpuUs, 1)} + ${fmt(r.clientCpuUs, 1)}`,
    ]);
    if (r.error) notes.push(`${name}: ${r.error}`);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const out = [
    '',
    ...machine,
    '',
    line(header),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.map(line),
    '',
    'latency: pgbench -S -n -c 1; TPS: pgbench -S -n -c 8 -j 2 (prepared: -M prepared); TPC-B: pgbench -n -c 8 -j 2 (writes in BEGIN ... END); UPDATE: one UPDATE per transaction in autocommit, -c 8 -j 2; COPY: median of psql \\copy to /dev/null; sessions/s: pgbench -S -n -C -c 1 (a new connection, sign-in and query each).',
    'Ratios: path / direct (latency: higher is slower; TPS and MB/s: lower is slower).',
    'relay CPU: user + system time (all threads and child processes) per transaction of the c=8 run, server side + client side: the gateway + hoop connect, or sshd + ssh.',
    ...(notes.length ? ['', ...notes.map((n) => `note: ${n}`)] : []),
    '',
  ];
  process.stdout.write(out.join('\n'));
}

/* ------------------------------------------------------------------ main */

async function main(): Promise<number> {
  const log = (s: string): void => void process.stderr.write(`bench: ${s}\n`);
  const t0 = Date.now();
  const pg = await startPgCluster({ config: { max_connections: String(IDLE_SESSIONS + 100) } });
  onCleanup('postgres cluster', () => pg.stop());
  const psql = existsSync(join(pg.bin, 'psql')) ? join(pg.bin, 'psql') : 'psql';
  const direct: Endpoint = { host: '127.0.0.1', port: pg.port, user: pg.users.scram.user, password: pg.users.scram.password, database: pg.database };
  log(`postgres up on 127.0.0.1:${pg.port} in ${Date.now() - t0} ms`);

  log(`pgbench -i -s ${SCALE} ...`);
  await runToEnd(join(pg.bin, 'pgbench'), ['-i', '-q', '-s', String(SCALE), direct.database], { env: clientEnv(direct), timeoutMs: 600_000 });
  log(`creating copybench (${RUNS.has('copy') ? COPY_ROWS : 1} rows) ...`);
  await runToEnd(
    psql,
    [
      '-X',
      '-q',
      '-v',
      'ON_ERROR_STOP=1',
      '-c',
      `create table copybench as select g, repeat('x', 92) as pad from generate_series(1, ${RUNS.has('copy') ? COPY_ROWS : 1}) g`,
      '-c',
      'vacuum analyze copybench',
    ],
    { env: clientEnv(direct), timeoutMs: 600_000 },
  );
  const copyBytes = await countCopyBytes(psql, direct);
  const relSize = (await runToEnd(psql, ['-X', '-A', '-t', '-c', "select pg_size_pretty(pg_total_relation_size('copybench'))"], { env: clientEnv(direct) })).stdout.trim();
  log(`copybench: ${(copyBytes / 1e6).toFixed(1)} MB as COPY text, ${relSize} on disk`);

  const machine = [
    `machine: ${availableParallelism()} CPUs (nproc), ${cpus()[0]?.model.trim() ?? 'unknown CPU'}; node ${process.version}`,
    `postgres: ${versionOf(join(pg.bin, 'postgres'), ['--version'])}; pgbench scale ${SCALE}; ${SECONDS} s per pgbench run; COPY ${(copyBytes / 1e6).toFixed(1)} MB x ${COPY_RUNS}`,
    `ssh: ${versionOf(which('ssh'), ['-V'])}; pgbouncer: ${versionOf(which('pgbouncer', ['/usr/sbin']), ['--version'])}`,
  ];

  const results = new Map<PathName, Result>();
  let limits: LimitsResult | undefined;
  for (const path of PATHS) {
    if (interrupted) return 130;
    const plog = (s: string): void => log(`[${path}] ${s}`);
    let setup: PathSetup | undefined;
    try {
      plog('setting up');
      if (path === 'direct') setup = { endpoint: direct, close: async () => {} };
      else if (path === 'ssh -L') setup = await setupSsh(pg, direct);
      else if (path === 'pgbouncer') setup = await setupPgbouncer(pg, direct);
      else if (path === 'node relay') setup = await setupNodeRelay(pg, direct);
      else if (path === 'hoop+store') {
        // The store on a cluster of its own, as it would be on a server of its own.
        const store = await startPgCluster();
        onCleanup('store', () => store.stop());
        await store.psql('create database hoop_store');
        setup = await setupHoop(pg, true, true, false, store.url(store.superuser, { database: 'hoop_store' }));
      } else if (path === 'hoop direct') setup = await setupHoopDirect(pg);
      else if (path === 'hoop direct plain') setup = await setupHoopDirect(pg, false, false);
      else if (path === 'hoop direct policy') setup = await setupHoopDirect(pg, true, false);
      else if (path === 'hoop direct 1w store' || path === 'hoop direct 2w store') {
        const store = await startPgCluster();
        onCleanup('store', () => store.stop());
        await store.psql('create database hoop_store');
        setup = await setupHoopDirect(pg, true, true, { store: store.url(store.superuser, { database: 'hoop_store' }), workers: path === 'hoop direct 2w store' ? 2 : 1 });
      } else setup = await setupHoop(pg, path !== 'hoop', path === 'hoop+policy+recording', path === 'hoop+policy+guard');
      results.set(path, await measure(pg.bin, psql, setup.endpoint, copyBytes, plog, setup.relay, setup.settle));
      if (path === 'hoop+policy' && setup.pids && process.env.BENCH_LIMITS !== '0') {
        limits = await measureLimits({ ...setup.endpoint, gatewayPid: setup.pids.gateway, connectPid: setup.pids.connect, psql }, plog);
      }
    } catch (err) {
      if (interrupted) return 130;
      const message = (err as Error).message;
      plog(`failed: ${message}`);
      results.set(path, { error: message });
    } finally {
      await setup?.close().catch(() => undefined);
    }
  }
  if (interrupted) return 130;
  printTable(results, machine);
  if (limits) process.stdout.write(`${formatLimits(limits).join('\n')}\n\n`);
  if (IDLE_SESSIONS > 0) {
    try {
      process.stdout.write(`${await measureIdleSessions(pg, IDLE_SESSIONS, log)}\n\n`);
    } catch (err) {
      log(`[idle] skipped: ${(err as Error).message}`);
    }
  }
  if (process.env.BENCH_SCP !== '0') {
    try {
      process.stdout.write(`${(await measureScp(log)).join('\n')}\n\n`);
    } catch (err) {
      log(`[scp] skipped: ${(err as Error).message}`);
    }
  }
  return results.get('direct')?.error ? 1 : 0;
}

/** Bytes of `COPY copybench TO STDOUT` (text format), counted once on the direct path. */
function countCopyBytes(psql: string, ep: Endpoint): Promise<number> {
  return new Promise((res, rej) => {
    const child = spawn(psql, ['-X', '-q', '-c', 'COPY copybench TO STDOUT'], { env: clientEnv(ep), stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let bytes = 0;
    let err = '';
    child.stdout.on('data', (b: Buffer) => (bytes += b.length));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    child.once('error', rej);
    child.once('close', (code) => {
      children.delete(child);
      if (code === 0) res(bytes);
      else rej(new Error(`COPY failed: ${lastLines(err, 3)}`));
    });
  });
}

let exitCode = 1;
try {
  exitCode = await main();
} catch (err) {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
} finally {
  await cleanupAll();
}
process.exit(exitCode);
