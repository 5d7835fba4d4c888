/**
 * Data-path benchmark: what does each way of reaching a database cost? PostgreSQL's lane first,
 * then MySQL's (./mysql-lane.ts).
 *
 * Starts a throwaway PostgreSQL cluster and measures, with the real `pgbench` and `psql`, each path
 * to it (./measure.ts): select-only latency at 1 client, select-only TPS at 8 clients (simple and
 * prepared), writes at 8 clients (pgbench's TPC-B-like script in BEGIN ... END, and one UPDATE per
 * transaction in autocommit), new sessions per second, and COPY-out throughput of a ~100 MB table;
 * then prints one table with each path's ratio to `ssh -L` (./report.ts), and what recording costs.
 * The MySQL lane measures, with the real `mariadb-slap` against a MariaDB server of its own, point
 * selects at 1 and 8 clients and new sessions per second (./mysql-measure.ts), on three paths
 * (direct, `ssh -L`, `hoop connect` with everything on), in a table of its own with ratios to its
 * `ssh -L`. Then what one heavy session does to the others (./pg-limits.ts), the memory of 1,000
 * idle sessions through one `hoop connect`, PostgreSQL's and MySQL's side by side (./idle.ts), and
 * `scp` of 100 MB up and down, straight, through an OpenSSH bastion and through hoop (./scp.ts); the
 * MCP tool call (./mcp.ts); an HTTP API's requests (./http-lane.ts); and what a contained agent's run and its gate cost (./agent-runs.ts).
 *
 * The paths (./paths.ts), by id (BENCH_PATHS) and the label of their row, in the order they run:
 * - `direct` (`direct`): TCP straight to PostgreSQL;
 * - `ssh` (`ssh -L`): an OpenSSH local forward to an sshd of its own;
 * - `relay` (`node relay (2 processes)`): ./node-relay.mjs, one TLS connection per client, nothing
 *   but `pipe()`: the floor of any relay written in Node;
 * - `hoop-direct` (`hoop direct, all on`): the gateway with the policy repo (statement rules that
 *   judge every statement but match none of pgbench's, a masking rule on a table it does not read)
 *   and every session recorded, reached directly with a direct credential (no `hoop connect`);
 * - `direct-norec` (`hoop direct, recording off`), `direct-plain` (`hoop direct, plain`: no policy
 *   repo, no recording);
 * - `direct-2w` (`hoop direct, all on, 2 workers`): all on, the state in a PostgreSQL store,
 *   `workers: 2`; `direct-1w-store` (`hoop direct, all on + store`): the same with `workers: 1`;
 * - `connect` (`hoop connect, all on`), `connect-norec` (`hoop connect, recording off`),
 *   `connect-plain` (`hoop connect, plain`): the same gateways through `hoop connect`;
 * - `connect-guard` (`hoop connect, recording off + guard`): policy and the blast-radius guard on every
 *   write (the access's `maxAffectedRows: 1000`), recording off as it always was;
 * - `connect-store` (`hoop connect, all on + store`): all on, the state in a PostgreSQL store;
 * - `pgbouncer` (`pgbouncer`): pgbouncer in session mode;
 * - MySQL: `mysql-direct` (`direct`), `mysql-ssh` (`ssh -L`) and `mysql-connect` (`hoop connect, all
 *   on`: the same policy, masking and recording as PostgreSQL's `connect`).
 *
 * Before each run of a `hoop connect` path, its spool is waited on until the records of the
 * sessions the run before ended are uploaded: a run pays for its own sessions' records, not for the
 * backlog of the one before (a `-C` run leaves hundreds). Each path is first warmed up with each
 * workload its runs make at 8 clients, unmeasured, as a gateway that has run for a while would be (V8 compiles the
 * hot code in the first seconds: in two rounds each, the policy path's TPS at 8 clients was
 * 4,386–5,507 measured cold and 5,279–6,401 warmed up).
 *
 * Command line: `npm run bench -- --json FILE` also writes the figures as JSON to FILE (see
 * ./report.ts); `--json -` writes them to stdout, and the human report to stderr.
 *
 * Environment: BENCH_SECONDS (pgbench duration per run, default 10), BENCH_SCALE (pgbench scale,
 * default 10), BENCH_WARMUP (seconds of each workload before a path is measured, default 2; 0:
 * none), BENCH_COPY_ROWS (rows of the COPY table, default 1000000), BENCH_COPY_RUNS (COPY runs per
 * path, median reported, default 3), BENCH_PATHS (comma list of path ids, above; default all),
 * BENCH_RUNS (comma list of the runs to make per path: latency, tps, prepared, tpcb, update,
 * sessions, copy; default all: `BENCH_RUNS=tps` with a long BENCH_SECONDS measures the CPU per
 * transaction alone), BENCH_HOOP_NODE_ARGS (node flags for the hoop processes, e.g. `--cpu-prof
 * --cpu-prof-dir=DIR`), BENCH_CHECKPOINT_SECONDS (the recorded paths' `recording.checkpointSeconds`;
 * default: the gateway's), BENCH_LIMITS=0 (skip the measurements under a heavy session, made on
 * `connect-norec` when it runs), BENCH_IDLE (idle sessions for the memory figure, default 1000; 0
 * skips it), BENCH_IDLE_MODE (`all`, the default; `policy`: no recording; `plain`: neither),
 * BENCH_IDLE_WARMUP (seconds of pgbench or mariadb-slap before the idle sessions, default 3; 0:
 * none; MySQL's idle sessions are measured when a MySQL path runs), BENCH_MYSQL_ROWS (rows of the
 * MySQL lane's sbtest1, default 10000), BENCH_SCP=0
 * (skip scp), BENCH_SCP_MB (the file scp copies, default 100), BENCH_SCP_RUNS (scp runs per row,
 * median reported, default 3). ./settings.ts reads them.
 *
 * Run with `npm run bench` (./pg-path.mjs loads this file). Everything started here is stopped on
 * exit, on error and on Ctrl-C (./processes.ts).
 *
 * @see https://www.postgresql.org/docs/15/pgbench.html
 * @see https://www.pgbouncer.org/config.html
 * @see https://man.openbsd.org/sshd_config
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPgCluster } from '../test/harness/postgres.js';
import { formatIdle, formatIdleComparison, measureIdleSessions } from './idle.js';
import { type BenchDatabase, type Endpoint, measurePath, type PathSetup, prepareDatabase } from './measure.js';
import { formatMcp, measureMcp } from './mcp.js';
import { formatHttp, measureHttp } from './http-lane.js';
import { runMysqlLane } from './mysql-lane.js';
import { LIMITS_PATH_ID, type PgContext, runPath, selectPaths } from './paths.js';
import { formatLimits, measureLimits } from './pg-limits.js';
import { cleanupAll, isInterrupted, onCleanup, trapExitSignals } from './processes.js';
import { type BenchReport, formatMysqlTable, formatScp, formatTable, machineInfo, reportJson } from './report.js';
import { measureScp } from './scp.js';
import { AGENT, BenchUsageError, HTTP, IDLE_SESSIONS, LIMITS, MCP, parseArgs, RUNBOOKS, SCP } from './settings.js';
import { formatAgentRuns, measureAgentRuns } from './agent-runs.js';
import { formatRunbooks, measureRunbooks } from './runbooks.js';

const log = (s: string): void => void process.stderr.write(`bench: ${s}\n`);

/** The heavy-session measurements, on the path they belong to (after its own runs). */
function limitsAfter(report: BenchReport, ctx: { db: BenchDatabase }): (setup: PathSetup, log: (s: string) => void) => Promise<void> {
  return async (setup, log) => {
    if (!setup.pids || !LIMITS) return;
    report.limits = await measureLimits({ ...setup.endpoint, gatewayPid: setup.pids.gateway, connectPid: setup.pids.connect, psql: ctx.db.psql }, log);
  };
}

/** Whether the direct row of a lane failed (a row skipped for want of tools is not a failure). */
function directFailed(report: BenchReport): boolean {
  return report.outcomes.some((o) => (o.path.id === 'direct' || o.path.id === 'mysql-direct') && o.figures.error !== undefined && !o.figures.error.startsWith('skipped:'));
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const paths = selectPaths(process.env.BENCH_PATHS);
  // With `--json -`, stdout is the JSON's: the human report goes to stderr.
  const print = (lines: string[]): void => void (args.json === '-' ? process.stderr : process.stdout).write(`${lines.join('\n')}\n`);
  const t0 = Date.now();
  const pg = await startPgCluster({ config: { max_connections: String(IDLE_SESSIONS + 100) } });
  onCleanup('postgres cluster', () => pg.stop());
  const psql = existsSync(join(pg.bin, 'psql')) ? join(pg.bin, 'psql') : 'psql';
  const direct: Endpoint = { host: '127.0.0.1', port: pg.port, user: pg.users.scram.user, password: pg.users.scram.password, database: pg.database };
  log(`postgres up on 127.0.0.1:${pg.port} in ${Date.now() - t0} ms`);
  const db = await prepareDatabase(pg.bin, psql, direct, log, paths.postgres.length > 0);
  const ctx: PgContext & { db: BenchDatabase } = { pg, direct, db };

  const report: BenchReport = { machine: machineInfo(pg.bin), db, outcomes: [] };
  for (const path of paths.postgres) {
    if (isInterrupted()) return 130;
    await runPath(path, ctx, report.outcomes, (setup, figures, plog) => measurePath(db, setup, figures, plog), log, path.id === LIMITS_PATH_ID ? limitsAfter(report, ctx) : undefined);
  }
  if (isInterrupted()) return 130;
  await runMysqlLane(paths.mysql, report, log);
  if (isInterrupted()) return 130;
  print(formatTable(report));
  if (report.limits) print([...formatLimits(report.limits), '']);
  const mysqlTable = formatMysqlTable(report);
  if (mysqlTable.length > 0) print(mysqlTable);
  if (IDLE_SESSIONS > 0) {
    try {
      report.idle = await measureIdleSessions(pg, IDLE_SESSIONS, log);
    } catch (err) {
      log(`[idle] skipped: ${(err as Error).message}`);
    }
    const comparison = formatIdleComparison(report.idle, report.mysqlIdle);
    const lines = [report.idle, report.mysqlIdle].flatMap((r) => (r ? [formatIdle(r)] : []));
    if (lines.length > 0) print([...lines, ...(comparison ? [comparison] : []), '']);
  }
  if (SCP) {
    try {
      report.scp = await measureScp(log);
      print(formatScp(report.scp));
    } catch (err) {
      log(`[scp] skipped: ${(err as Error).message}`);
    }
  }
  if (MCP) {
    try {
      report.mcp = await measureMcp(log);
      print(formatMcp(report.mcp));
    } catch (err) {
      log(`[mcp] skipped: ${(err as Error).message}`);
    }
  }
  if (HTTP) {
    try {
      report.http = await measureHttp(log);
      print(formatHttp(report.http));
    } catch (err) {
      log(`[http] skipped: ${(err as Error).message}`);
    }
  }
  if (AGENT) {
    try {
      report.agent = await measureAgentRuns(log);
      print(formatAgentRuns(report.agent));
    } catch (err) {
      log(`[agent] skipped: ${(err as Error).message}`);
    }
  }
  if (RUNBOOKS) {
    try {
      report.runbooks = await measureRunbooks(pg, log);
      print(formatRunbooks(report.runbooks));
    } catch (err) {
      log(`[runbooks] skipped: ${(err as Error).message}`);
    }
  }
  if (isInterrupted()) return 130;
  if (args.json) {
    const json = `${JSON.stringify(reportJson(report), null, 2)}\n`;
    if (args.json === '-') process.stdout.write(json);
    else {
      writeFileSync(args.json, json);
      log(`figures written to ${args.json}`);
    }
  }
  return directFailed(report) ? 1 : 0;
}

trapExitSignals();
let exitCode = 1;
try {
  exitCode = await main();
} catch (err) {
  process.stderr.write(`bench: ${err instanceof BenchUsageError ? err.message : ((err as Error).stack ?? String(err))}\n`);
} finally {
  await cleanupAll();
}
process.exit(exitCode);
