/**
 * Measurement of one MySQL path with the real `mariadb-slap`: point selects by primary key on a
 * sysbench-like table (`SELECT c FROM sbtest1 WHERE id=N`, sysbench's `oltp_point_select` sent as
 * text, as pgbench -S sends its select) at 8 clients (throughput) and at 1 client (latency per
 * query), and new sessions per second (`--detach=1`: a connection, sign-in and query each), with the
 * CPU the path's relay processes spend per query. Also the database every MySQL path reaches.
 *
 * Why `mariadb-slap` and not the `mysql2` driver: it is MariaDB's C client (libmariadb, one thread
 * per client in one process), as pgbench is PostgreSQL's, and costs the shared cores least. Against
 * the bench's MariaDB on 2 cores, 40,000 point selects at 8 clients took 12 µs of client CPU per
 * query with it and 38 µs with `mysql2` (8 connections in one Node process, which then saturated
 * its core: 10,000 queries/s where mariadb-slap made 49,000).
 *
 * `mariadb-slap` runs a number of queries, not a duration: each run is sized from the rate of the
 * run before it on the same path and workload (short probes first), to last about BENCH_SECONDS.
 *
 * Layer: uses ./settings.ts, ./processes.ts, ./relay-cpu.ts and ./measure.ts's types; ./mysql-lane.ts
 * and ./idle.ts run it.
 *
 * @see https://mariadb.com/kb/en/mariadb-slap/
 * @see https://github.com/akopytov/sysbench/blob/master/src/lua/oltp_common.lua
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MariaServer } from '../test/harness/mariadb.js';
import { type Endpoint, type PathFigures, type PathSetup, runGate } from './measure.js';
import { lastLines, runToEnd, tempDir, which } from './processes.js';
import { cpuFigures, formatCpu, formatSyscalls, type RelayPids, type SideUsage, startRelayMeter } from './relay-cpu.js';
import { MYSQL_ROWS, RUNS, type RunName, SECONDS, WARMUP_SECONDS } from './settings.js';

/** The `mariadb-slap` binary (`mysqlslap` on older packages), or undefined. */
export const MARIADB_SLAP = which('mariadb-slap', ['/usr/bin']) ?? which('mysqlslap', ['/usr/bin']);

/** What every MySQL path reaches, once {@link prepareMysqlDatabase} filled it. */
export interface MysqlDatabase {
  /** Rows of `sbtest1` (BENCH_MYSQL_ROWS). */
  rows: number;
  /** Point selects of random ids, one a line, for `mariadb-slap --query`. */
  queryFile: string;
  /** The server's `version()`. */
  version: string;
}

/** Point selects in the query file: each client runs them in turn, from the first. */
const QUERIES_IN_FILE = 10_000;

/**
 * `sbtest1` as sysbench makes it (id, k, c of 119 characters, pad of 59; a key on k) with
 * BENCH_MYSQL_ROWS rows, the table the policy masks a column of (never read), and the query file.
 */
export async function prepareMysqlDatabase(maria: MariaServer, log: (s: string) => void): Promise<MysqlDatabase> {
  log(`creating sbtest1 (${MYSQL_ROWS} rows) ...`);
  // sysbench's c and pad: groups of 11 random digits joined by '-'.
  const digits = (groups: number): string => `CONCAT_WS('-', ${Array.from({ length: groups }, () => "LPAD(FLOOR(RAND() * 99999999999), 11, '0')").join(', ')})`;
  await maria.sql(
    [
      "CREATE TABLE sbtest1 (id int NOT NULL AUTO_INCREMENT PRIMARY KEY, k int NOT NULL DEFAULT 0, c char(120) NOT NULL DEFAULT '', pad char(60) NOT NULL DEFAULT '', KEY k_1 (k))",
      `INSERT INTO sbtest1 (k, c, pad) SELECT FLOOR(1 + RAND() * ${MYSQL_ROWS}), ${digits(10)}, ${digits(5)} FROM seq_1_to_${MYSQL_ROWS}`,
      'CREATE TABLE bench_secrets (id int PRIMARY KEY, ssn char(11))',
      "INSERT INTO bench_secrets VALUES (1, '123-45-6789')",
      'ANALYZE TABLE sbtest1',
      '',
    ].join(';\n'),
    { database: maria.database },
  );
  const queryFile = join(tempDir('hoop-bench-mysql-').dir, 'point-selects.sql');
  const lines = Array.from({ length: QUERIES_IN_FILE }, () => `SELECT c FROM sbtest1 WHERE id=${1 + Math.floor(Math.random() * MYSQL_ROWS)};\n`);
  writeFileSync(queryFile, lines.join(''));
  return { rows: MYSQL_ROWS, queryFile, version: maria.version };
}

/* ------------------------------------------------------------------ mariadb-slap */

/** One `mariadb-slap` run. */
export interface SlapRun {
  /** Queries run, all clients together. */
  queries: number;
  seconds: number;
}

/** What a run makes: how many clients, and whether each query is a session of its own. */
interface SlapWorkload {
  clients: number;
  /** `--detach=1`: every query on a new connection. */
  sessions?: boolean;
}

/** Parses mariadb-slap's report: the seconds of the run, and the queries (clients × queries per client). */
function parseSlap(out: string): SlapRun {
  const seconds = /Average number of seconds to run all queries: ([\d.]+) seconds/.exec(out);
  const clients = /Number of clients running queries: (\d+)/.exec(out);
  const perClient = /Average number of queries per client: (\d+)/.exec(out);
  if (!seconds || !clients || !perClient) throw new Error(`cannot parse mariadb-slap output: ${lastLines(out, 3)}`);
  return { seconds: Number(seconds[1]), queries: Number(clients[1]) * Number(perClient[1]) };
}

/** Runs `queries` point selects (rounded to a multiple of the clients) through `ep` with `mariadb-slap`, without TLS unless `ep` is the gateway's port. */
export async function slap(db: MysqlDatabase, ep: Endpoint, w: SlapWorkload, queries: number): Promise<SlapRun> {
  if (!MARIADB_SLAP) throw new Error('skipped: mariadb-slap not installed (apt-get install mariadb-client)');
  const total = Math.max(w.clients, Math.round(queries / w.clients) * w.clients);
  const args = [
    '--no-defaults',
    `--host=${ep.host}`,
    `--port=${ep.port}`,
    `--user=${ep.user}`,
    `--password=${ep.password}`,
    // Plain TCP to the path's first hop, as pgbench's PGSSLMODE=disable: TLS is the path's business (the gateway's own port takes TLS only, verified).
    ...(ep.sslRootCert ? ['--ssl', `--ssl-ca=${ep.sslRootCert}`, '--ssl-verify-server-cert'] : ['--skip-ssl']),
    `--create-schema=${ep.database}`,
    `--query=${db.queryFile}`,
    '--delimiter=;',
    `--concurrency=${w.clients}`,
    `--number-of-queries=${total}`,
    '--iterations=1',
    ...(w.sessions ? ['--detach=1'] : []),
  ];
  const { stdout } = await runToEnd(MARIADB_SLAP, args, { timeoutMs: (SECONDS * 10 + 120) * 1000 });
  return parseSlap(stdout);
}

/** Runs of one path, sized by the rate each workload last had on it. */
class SizedRuns {
  readonly #rates = new Map<SlapWorkload, number>();

  constructor(
    private readonly db: MysqlDatabase,
    private readonly ep: Endpoint,
  ) {}

  /** Finds `w`'s rate, if not known yet: probes, four times longer each, until one lasts half a second. */
  async probe(w: SlapWorkload): Promise<number> {
    const known = this.#rates.get(w);
    if (known !== undefined) return known;
    for (let n = w.clients * (w.sessions ? 10 : 100); ; n *= 4) {
      const run = await slap(this.db, this.ep, w, n);
      const rate = run.queries / Math.max(run.seconds, 0.001);
      if (run.seconds >= 0.5 || n > 1e7) {
        this.#rates.set(w, rate);
        return rate;
      }
    }
  }

  /**
   * A run of `w` of about `seconds`, metered on `relay`: sized from the rate `w` last had; a run
   * that ended before 70 % of `seconds` (the path ran faster warm) is made again, at most twice.
   */
  async run(w: SlapWorkload, seconds: number, relay?: RelayPids): Promise<{ run: SlapRun; usage: SideUsage[] }> {
    let rate = await this.probe(w);
    for (let attempt = 0; ; attempt++) {
      const meter = startRelayMeter(relay);
      const run = await slap(this.db, this.ep, w, rate * seconds);
      const usage = meter.perUnit(run.queries);
      rate = run.queries / Math.max(run.seconds, 0.001);
      this.#rates.set(w, rate);
      if (run.seconds >= 0.7 * seconds || attempt >= 2) return { run, usage };
    }
  }
}

/* ------------------------------------------------------------------ one path */

const EIGHT: SlapWorkload = { clients: 8 };
const ONE: SlapWorkload = { clients: 1 };
const NEW_SESSIONS: SlapWorkload = { clients: 1, sessions: true };

/** Point selects at 8 clients for `seconds` through `ep`, unmeasured (what a gateway that has run for a while has carried). */
export async function mysqlWarmup(db: MysqlDatabase, ep: Endpoint, seconds: number): Promise<void> {
  await new SizedRuns(db, ep).run(EIGHT, seconds);
}

/**
 * Measures `setup`'s endpoint with the runs of BENCH_RUNS that apply to MySQL (`latency`, `tps`,
 * `sessions`), into `figures` (`tps1`, `tps8`: queries per second; each query is a transaction in
 * autocommit). First, unmeasured, each of those workloads' rates is probed, then BENCH_WARMUP
 * seconds of point selects at 8 clients run; the sessions the probes leave to end are not paid by
 * the measured runs.
 */
export async function measureMysqlPath(db: MysqlDatabase, setup: PathSetup, figures: PathFigures, log: (s: string) => void): Promise<void> {
  const runs = new SizedRuns(db, setup.endpoint);
  const workloads: Array<[RunName, SlapWorkload]> = [
    ['latency', ONE],
    ['tps', EIGHT],
    ['sessions', NEW_SESSIONS],
  ];
  for (const [name, w] of workloads) if (RUNS.has(name)) await runs.probe(w);
  if (WARMUP_SECONDS > 0) await runs.run(EIGHT, WARMUP_SECONDS);
  const ready = runGate(setup);
  if (await ready('latency')) {
    const { run: one, usage } = await runs.run(ONE, SECONDS, setup.relay);
    figures.latencyMs = (one.seconds * 1000) / one.queries;
    figures.tps1 = one.queries / one.seconds;
    log(
      `latency ${figures.latencyMs.toFixed(3)} ms (${figures.tps1.toFixed(0)} queries/s at 1 client, ${one.queries} in ${one.seconds.toFixed(1)} s${usage.length > 0 ? `; CPU per query: ${formatCpu(usage)}` : ''})`,
    );
  }
  if (await ready('tps')) {
    const { run: eight, usage } = await runs.run(EIGHT, SECONDS, setup.relay);
    figures.tps8 = eight.queries / eight.seconds;
    Object.assign(figures, cpuFigures(usage));
    if (usage.length > 0) log(`syscalls per query: ${formatSyscalls(usage)}`);
    log(`${figures.tps8.toFixed(0)} queries/s at 8 clients (${eight.queries} in ${eight.seconds.toFixed(1)} s${usage.length > 0 ? `; CPU per query: ${formatCpu(usage)}` : ''})`);
  }
  if (await ready('sessions')) {
    const { run, usage } = await runs.run(NEW_SESSIONS, Math.max(2, Math.ceil(SECONDS / 2)), setup.relay);
    figures.sessionsPerSecond = run.queries / run.seconds;
    log(`${figures.sessionsPerSecond.toFixed(0)} new sessions/s at 1 client (--detach=1)${usage.length > 0 ? ` (CPU per session: ${formatCpu(usage, { unit: 'ms', digits: 2 })})` : ''}`);
  }
}
