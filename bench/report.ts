/**
 * The report: the machine, one table per lane (PostgreSQL's, MySQL's) of every path's figures with
 * each one's ratio to its lane's `ssh -L`, what recording costs, the heavy-session and idle-session
 * figures, the scp table; and the same figures as one JSON document (`npm run bench -- --json
 * FILE`). Only formatting here: nothing is measured or started.
 *
 * Layer: reads the results of ./measure.ts, ./mysql-measure.ts, ./idle.ts, ./scp.ts and
 * ./pg-limits.ts and the path list of ./paths.ts; ./pg-path.ts writes what it returns.
 */
import { availableParallelism, cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import type { IdleResult } from './idle.js';
import type { BenchDatabase, PathFigures } from './measure.js';
import { MARIADB_SLAP, type MysqlDatabase } from './mysql-measure.js';
import { BASELINE_IDS, type Lane, type PathOutcome, RECORDING_PAIRS } from './paths.js';
import type { LimitsResult } from './pg-limits.js';
import { versionOf, which } from './processes.js';
import type { McpRow } from './mcp.js';
import type { HttpRow } from './http-lane.js';
import type { AgentRow } from './agent-runs.js';
import type { RunbookRow } from './runbooks.js';
import { SCP_BASTION_LABEL, type ScpRow } from './scp.js';
import * as settings from './settings.js';

/** The machine and the programs the figures come from. */
export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryGB: number;
  node: string;
  postgres: string;
  ssh: string;
  pgbouncer: string;
  mariadb: string;
  mariadbSlap: string;
}

/** Everything a run produced, for the table and the JSON. */
export interface BenchReport {
  machine: MachineInfo;
  db: BenchDatabase;
  /** Both lanes' paths' outcomes. */
  outcomes: PathOutcome[];
  /** The MySQL lane's database, when it ran. */
  mysql?: MysqlDatabase;
  limits?: LimitsResult;
  idle?: IdleResult;
  /** The idle MySQL sessions, beside PostgreSQL's `idle`. */
  mysqlIdle?: IdleResult;
  scp?: ScpRow[];
  /** The MCP tool call's latencies (./mcp.ts). */
  mcp?: McpRow[];
  /** The HTTP lane's requests/s and latencies (./http-lane.ts). */
  http?: HttpRow[];
  /** A contained run's cost, and the gate's (./agent-runs.ts). */
  agent?: AgentRow[];
  /** A runbook's run against an ordinary session (./runbooks.ts). */
  runbooks?: RunbookRow[];
}

/** The figures a ratio to the baseline is given for, in the table's order. */
const COMPARED = ['latencyMs', 'tps8', 'tps8Prepared', 'tpcb8', 'update8', 'copyMBps', 'sessionsPerSecond'] as const;
type Compared = (typeof COMPARED)[number];
/** The key of each compared figure in the JSON's `vsSsh`. */
const RATIO_KEYS: Record<Compared, string> = {
  latencyMs: 'latency',
  tps8: 'tps8',
  tps8Prepared: 'tps8Prepared',
  tpcb8: 'tpcb8',
  update8: 'update8',
  copyMBps: 'copyMBps',
  sessionsPerSecond: 'sessionsPerSecond',
};

/** The machine, PostgreSQL's binaries at `pgBin`, and the versions of ssh, pgbouncer, MariaDB and mariadb-slap. */
export function machineInfo(pgBin: string): MachineInfo {
  return {
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown CPU',
    memoryGB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    postgres: versionOf(join(pgBin, 'postgres'), ['--version']),
    ssh: versionOf(which('ssh'), ['-V']),
    pgbouncer: versionOf(which('pgbouncer', ['/usr/sbin']), ['--version']),
    mariadb: versionOf(which('mariadbd', ['/usr/sbin']), ['--version']),
    mariadbSlap: versionOf(MARIADB_SLAP, ['--version']),
  };
}

/** The figures of `lane`'s baseline, when its row ran without failing. */
function baseline(outcomes: PathOutcome[], lane: Lane): PathFigures | undefined {
  const base = outcomes.find((o) => o.path.id === BASELINE_IDS[lane])?.figures;
  return base && !base.error ? base : undefined;
}

/** The outcomes of `lane`'s paths. */
function ofLane(outcomes: PathOutcome[], lane: Lane): PathOutcome[] {
  return outcomes.filter((o) => o.path.lane === lane);
}

function ratioOf(v: number | undefined, base: number | undefined): number | undefined {
  return v === undefined || base === undefined || base === 0 ? undefined : v / base;
}

/** 1 − TPS(all on) / TPS(recording off) of the c=8 select-only run, per pair of {@link RECORDING_PAIRS} that both ran. */
export function recordingCost(outcomes: PathOutcome[]): { connect?: number; direct?: number } {
  const tps = (id: string): number | undefined => outcomes.find((o) => o.path.id === id)?.figures.tps8;
  const cost = ([on, off]: readonly [string, string]): number | undefined => {
    const [a, b] = [tps(on), tps(off)];
    return a === undefined || b === undefined || b === 0 ? undefined : 1 - a / b;
  };
  return { connect: cost(RECORDING_PAIRS.connect), direct: cost(RECORDING_PAIRS.direct) };
}

/* ------------------------------------------------------------------ the human report */

function fixed(n: number | undefined, digits: number): string {
  return n === undefined ? '-' : n.toFixed(digits);
}

/** The table's rows: one per path of `lane`, a ratio column after each of `columns`. */
function tableRows(outcomes: PathOutcome[], lane: Lane, columns: readonly Compared[], width: number): { rows: string[][]; notes: string[] } {
  const base = baseline(outcomes, lane);
  const rows: string[][] = [];
  const notes: string[] = [];
  const digits: Record<Compared, number> = { latencyMs: 3, tps8: 0, tps8Prepared: 0, tpcb8: 0, update8: 0, copyMBps: 1, sessionsPerSecond: 0 };
  for (const { path, figures: f } of ofLane(outcomes, lane)) {
    if (f.error) notes.push(`${path.label}: ${f.error}`);
    if (f.error && columns.every((k) => f[k] === undefined)) {
      rows.push([path.label, 'failed', ...Array<string>(width - 2).fill('')]);
      continue;
    }
    const cells = [path.label];
    for (const key of columns) {
      const r = path.id === BASELINE_IDS[lane] ? undefined : ratioOf(f[key], base?.[key]);
      cells.push(fixed(f[key], digits[key]), r === undefined ? '' : `x${r.toFixed(2)}`);
    }
    const cpu = f.serverCpuUsPerTxn === undefined ? '' : `${fixed(f.serverCpuUsPerTxn, 1)} + ${fixed(f.clientCpuUsPerTxn, 1)}`;
    rows.push([...cells, cpu]);
  }
  return { rows, notes };
}

/** `header` and `rows` as aligned text lines (the label left, the figures right), with notes after. */
function alignedTable(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
}

/** The recording-cost line, or undefined when neither pair ran. */
function recordingCostLine(outcomes: PathOutcome[]): string | undefined {
  const cost = recordingCost(outcomes);
  const measured: Array<[string, number]> = [];
  if (cost.connect !== undefined) measured.push(['hoop connect', cost.connect]);
  if (cost.direct !== undefined) measured.push(['hoop direct', cost.direct]);
  if (measured.length === 0) return undefined;
  const said = measured.map(([where, x], i) => `${(x * 100).toFixed(0)}%${i === 0 ? ' of TPS' : ''} on ${where}`);
  return `recording costs ${said.join(', ')} (select-only at 8 clients: 1 - TPS all on / TPS recording off)`;
}

/** The machine lines and the PostgreSQL paths' table (when any ran), with how to read it. */
export function formatTable(report: BenchReport): string[] {
  const { machine: m, db } = report;
  const pgRan = ofLane(report.outcomes, 'postgres').length > 0;
  const machine = [
    '',
    `machine: ${m.cpus} CPUs (nproc), ${m.cpuModel}, ${m.memoryGB} GB; node ${m.node}`,
    pgRan
      ? `postgres: ${m.postgres}; pgbench scale ${settings.SCALE}; ${settings.SECONDS} s per pgbench run; ${settings.RUNS.has('copy') ? `COPY ${(db.copyBytes / 1e6).toFixed(1)} MB x ${settings.COPY_RUNS}` : 'no COPY run'}`
      : `postgres: ${m.postgres}; no PostgreSQL path run`,
    `ssh: ${m.ssh}; pgbouncer: ${m.pgbouncer}`,
    '',
  ];
  if (!pgRan) return machine;
  const header = ['path'];
  const names: Record<Compared, string> = {
    latencyMs: 'latency c=1 (ms)',
    tps8: 'TPS c=8',
    tps8Prepared: 'TPS c=8 prepared',
    tpcb8: 'TPC-B c=8',
    update8: 'UPDATE c=8',
    copyMBps: 'COPY out (MB/s)',
    sessionsPerSecond: 'sessions/s',
  };
  for (const key of COMPARED) header.push(names[key], 'vs ssh -L');
  header.push('relay CPU µs/txn');
  const { rows, notes } = tableRows(report.outcomes, 'postgres', COMPARED, header.length);
  const cost = recordingCostLine(report.outcomes);
  return [
    ...machine,
    ...alignedTable(header, rows),
    '',
    ...(cost ? [cost, ''] : []),
    'latency: pgbench -S -n -c 1, lower is better; TPS: pgbench -S -n -c 8 -j 2 (prepared: -M prepared); TPC-B: pgbench -n -c 8 -j 2 (writes in BEGIN ... END); UPDATE: one UPDATE per transaction in autocommit, -c 8 -j 2; COPY: median of psql \\copy to /dev/null; sessions/s: pgbench -S -n -C -c 1 (a new connection, sign-in and query each). TPS, MB/s and sessions/s: higher is better.',
    `vs ssh -L: the path's figure / ssh -L's (latency: above x1 is slower; the others: below x1 is slower)${baseline(report.outcomes, 'postgres') ? '' : '; blank: ssh -L did not run'}.`,
    'relay CPU: user + system time (all threads and child processes) per transaction of the c=8 run, server side + client side: the gateway + hoop connect (hoop direct: the gateway alone), or sshd + ssh.',
    ...(notes.length ? ['', ...notes.map((n) => `note: ${n}`)] : []),
    '',
  ];
}

/** The figures of the MySQL table, in its order. */
const MYSQL_COMPARED = ['latencyMs', 'tps8', 'sessionsPerSecond'] as const;

/** The MySQL paths' table, with how to read it; nothing when none ran. */
export function formatMysqlTable(report: BenchReport): string[] {
  if (ofLane(report.outcomes, 'mysql').length === 0) return [];
  const names: Record<(typeof MYSQL_COMPARED)[number], string> = { latencyMs: 'latency c=1 (ms)', tps8: 'queries/s c=8', sessionsPerSecond: 'sessions/s' };
  const header = ['MySQL path', ...MYSQL_COMPARED.flatMap((k) => [names[k], 'vs ssh -L']), 'relay CPU µs/query'];
  const { rows, notes } = tableRows(report.outcomes, 'mysql', MYSQL_COMPARED, header.length);
  const { machine: m, mysql } = report;
  return [
    `mariadb: ${m.mariadb}; ${m.mariadbSlap}; sbtest1 of ${mysql?.rows ?? settings.MYSQL_ROWS} rows; about ${settings.SECONDS} s per run`,
    '',
    ...alignedTable(header, rows),
    '',
    'latency: mariadb-slap --concurrency=1, point selects by primary key (SELECT c FROM sbtest1 WHERE id=N), seconds / queries, lower is better; queries/s: the same at --concurrency=8; sessions/s: --concurrency=1 --detach=1 (a new connection, sign-in and query each). Higher is better.',
    `vs ssh -L: the path's figure / the MySQL ssh -L row's${baseline(report.outcomes, 'mysql') ? '' : '; blank: ssh -L did not run'}. relay CPU: per query of the c=8 run, server side + client side (the gateway + hoop connect, or sshd + ssh).`,
    ...(notes.length ? ['', ...notes.map((n) => `note: ${n}`)] : []),
    '',
  ];
}

/** Each scp row's ratio to the OpenSSH bastion's row, when it ran. */
function scpRatios(rows: ScpRow[]): Array<{ up: number; down: number } | undefined> {
  const bastion = rows.find((r) => r.label === SCP_BASTION_LABEL);
  return rows.map((r) => (bastion && r !== bastion ? { up: r.upMBps / bastion.upMBps, down: r.downMBps / bastion.downMBps } : undefined));
}

/** The scp table, in markdown. */
export function formatScp(rows: ScpRow[]): string[] {
  const ratios = scpRatios(rows);
  const x = (n: number | undefined): string => (n === undefined ? '' : `x${n.toFixed(2)}`);
  return [
    `| scp ${settings.SCP_MB} MB | up | down | up vs ssh -J | down vs ssh -J |`,
    '|---|---:|---:|---:|---:|',
    ...rows.map((r, i) => `| ${r.label} | ${r.upMBps.toFixed(0)} MB/s | ${r.downMBps.toFixed(0)} MB/s | ${x(ratios[i]?.up)} | ${x(ratios[i]?.down)} |`),
    '',
  ];
}

/* ------------------------------------------------------------------ JSON */

/** `v`, or null when it was not measured (so every key is in the JSON). */
function orNull<T>(v: T | undefined): T | null {
  return v === undefined ? null : v;
}

/** A row's ratios to its lane's baseline (every compared key; null where not measured), or null for the baseline itself or when it did not run. */
function vsBaseline(outcomes: PathOutcome[], lane: Lane, id: string, f: PathFigures): Record<string, number | null> | null {
  const base = baseline(outcomes, lane);
  if (!base || id === BASELINE_IDS[lane]) return null;
  return Object.fromEntries(COMPARED.map((k) => [RATIO_KEYS[k], orNull(ratioOf(f[k], base[k]))]));
}

/** The report as the JSON document of `--json`; see docs/benchmark.md for its shape. */
export function reportJson(report: BenchReport): unknown {
  const cost = recordingCost(report.outcomes);
  const scpRatio = report.scp ? scpRatios(report.scp) : [];
  return {
    machine: report.machine,
    settings: {
      seconds: settings.SECONDS,
      scale: settings.SCALE,
      warmupSeconds: settings.WARMUP_SECONDS,
      runs: [...settings.RUNS],
      paths: report.outcomes.map((o) => o.path.id),
      copyRows: settings.RUNS.has('copy') && ofLane(report.outcomes, 'postgres').length > 0 ? settings.COPY_ROWS : 1,
      copyMB: report.db.copyBytes / 1e6,
      copyRuns: settings.COPY_RUNS,
      checkpointSeconds: orNull(settings.CHECKPOINT_SECONDS),
      idleSessions: settings.IDLE_SESSIONS,
      idleMode: settings.IDLE_MODE,
      mysqlRows: report.mysql?.rows ?? null,
      scpMB: settings.SCP_MB,
      scpRuns: settings.SCP_RUNS,
    },
    paths: report.outcomes.map(({ path, figures: f }) => ({
      id: path.id,
      lane: path.lane,
      label: path.label,
      latencyMs: orNull(f.latencyMs),
      tps1: orNull(f.tps1),
      tps8: orNull(f.tps8),
      tps8Prepared: orNull(f.tps8Prepared),
      tpcb8: orNull(f.tpcb8),
      update8: orNull(f.update8),
      copyMBps: orNull(f.copyMBps),
      sessionsPerSecond: orNull(f.sessionsPerSecond),
      serverCpuUsPerTxn: orNull(f.serverCpuUsPerTxn),
      clientCpuUsPerTxn: orNull(f.clientCpuUsPerTxn),
      vsSsh: vsBaseline(report.outcomes, path.lane, path.id, f),
      ...(f.error ? { error: f.error } : {}),
    })),
    recordingCost: { connect: orNull(cost.connect), direct: orNull(cost.direct) },
    scp: report.scp?.map((r, i) => ({ ...r, vsBastion: orNull(scpRatio[i]) })) ?? null,
    mcp: report.mcp ?? null,
    http: report.http ?? null,
    agent: report.agent ?? null,
    runbooks: report.runbooks ?? null,
    idle: orNull(report.idle),
    mysqlIdle: orNull(report.mysqlIdle),
    limits: orNull(report.limits),
  };
}
