/**
 * The benchmark's settings, read once from the environment (every variable is described in
 * ./pg-path.ts), and its command line (`--json FILE`, `--json -`).
 *
 * This module imports nothing of the benchmark's: every other module may read it.
 */
import { isAbsolute, resolve } from 'node:path';

/** A wrong setting or argument: reported by its message alone, without a stack. */
export class BenchUsageError extends Error {}

/** `value` as a positive integer, or `fallback` when it is unset or not one. */
export function positiveInt(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : fallback;
}

/** `value` as a count where `0` means none, or `fallback` when it is unset or not one. */
function countOrNone(value: string | undefined, fallback: number): number {
  return value === '0' ? 0 : positiveInt(value, fallback);
}

/** Seconds of each pgbench run (BENCH_SECONDS). */
export const SECONDS = positiveInt(process.env.BENCH_SECONDS, 10);
/** pgbench's scale factor (BENCH_SCALE): 100,000 accounts per unit. */
export const SCALE = positiveInt(process.env.BENCH_SCALE, 10);
/** Seconds of each workload run through a path before it is measured (BENCH_WARMUP; 0: none). */
export const WARMUP_SECONDS = countOrNone(process.env.BENCH_WARMUP, 2);
/** Rows of the table COPY reads (BENCH_COPY_ROWS). */
export const COPY_ROWS = positiveInt(process.env.BENCH_COPY_ROWS, 1_000_000);
/** COPY runs per path, the median reported (BENCH_COPY_RUNS). */
export const COPY_RUNS = positiveInt(process.env.BENCH_COPY_RUNS, 3);
/** Rows of the MySQL lane's sysbench-like table, `sbtest1` (BENCH_MYSQL_ROWS). */
export const MYSQL_ROWS = positiveInt(process.env.BENCH_MYSQL_ROWS, 10_000);
/** Idle sessions held open through one `hoop connect` for the memory figure (BENCH_IDLE; 0 skips it). */
export const IDLE_SESSIONS = countOrNone(process.env.BENCH_IDLE, 1000);
/** What the idle sessions' gateway has on (BENCH_IDLE_MODE): `all`, `policy` (no recording) or `plain`. */
export const IDLE_MODE = parseIdleMode(process.env.BENCH_IDLE_MODE);
/** Seconds of pgbench through the idle measurement's gateway before it is measured (BENCH_IDLE_WARMUP; 0: none). */
export const IDLE_WARMUP_SECONDS = countOrNone(process.env.BENCH_IDLE_WARMUP, 3);
/** Whether the measurements under a heavy session run (BENCH_LIMITS=0 skips them). */
export const LIMITS = process.env.BENCH_LIMITS !== '0';
/** Whether the agent runs' part runs (BENCH_AGENT=0 skips it). */
export const AGENT = process.env.BENCH_AGENT !== '0';
/** Runbook runs against ordinary sessions (./runbooks.ts). */
export const RUNBOOKS = process.env.BENCH_RUNBOOKS !== '0';
/** Whether the MCP tool-call part runs (BENCH_MCP=0 skips it). */
export const MCP = process.env.BENCH_MCP !== '0';
/** Whether the HTTP lane's part runs (BENCH_HTTP=0 skips it). */
export const HTTP = process.env.BENCH_HTTP !== '0';
/** Whether the `scp` part runs (BENCH_SCP=0 skips it). */
export const SCP = process.env.BENCH_SCP !== '0';
/** Megabytes of the file `scp` copies (BENCH_SCP_MB). */
export const SCP_MB = positiveInt(process.env.BENCH_SCP_MB, 100);
/** `scp` runs per row, the median reported (BENCH_SCP_RUNS). */
export const SCP_RUNS = positiveInt(process.env.BENCH_SCP_RUNS, 3);
/** The recorded paths' `recording.checkpointSeconds` (BENCH_CHECKPOINT_SECONDS; unset: the gateway's default). */
export const CHECKPOINT_SECONDS = process.env.BENCH_CHECKPOINT_SECONDS ? Number(process.env.BENCH_CHECKPOINT_SECONDS) : undefined;
/** Node flags for the hoop processes alone (BENCH_HOOP_NODE_ARGS, e.g. `--cpu-prof --cpu-prof-dir=DIR`). */
export const HOOP_NODE_ARGS = process.env.BENCH_HOOP_NODE_ARGS?.split(/\s+/).filter(Boolean) ?? [];

/** Every run a path can get, in the order they are made. */
export const ALL_RUNS = ['latency', 'tps', 'prepared', 'tpcb', 'update', 'sessions', 'copy'] as const;
/** One of {@link ALL_RUNS}. */
export type RunName = (typeof ALL_RUNS)[number];
/** The runs made per path (BENCH_RUNS, a comma list; default all). */
export const RUNS: ReadonlySet<RunName> = parseRuns(process.env.BENCH_RUNS);

function parseRuns(value: string | undefined): Set<RunName> {
  if (!value) return new Set(ALL_RUNS);
  const runs = new Set<RunName>();
  for (const run of value.split(',').map((r) => r.trim())) {
    if (!(ALL_RUNS as readonly string[]).includes(run)) throw new BenchUsageError(`BENCH_RUNS: unknown run ${run} (known: ${ALL_RUNS.join(', ')})`);
    runs.add(run as RunName);
  }
  return runs;
}

function parseIdleMode(value: string | undefined): 'all' | 'policy' | 'plain' {
  if (value === undefined || value === '' || value === 'all') return 'all';
  if (value === 'policy' || value === 'plain') return value;
  throw new BenchUsageError(`BENCH_IDLE_MODE: unknown mode ${value} (known: all, policy, plain)`);
}

/** What the command line asks for. */
export interface BenchArgs {
  /** Where to write the figures as JSON: a file's path, `-` for stdout, or undefined for none. */
  json?: string;
}

/**
 * Parses the benchmark's arguments (`npm run bench -- --json FILE`): `--json FILE` writes the
 * figures to FILE (relative to the directory npm was run in), `--json -` to stdout (the human
 * report then goes to stderr).
 */
export function parseArgs(argv: string[]): BenchArgs {
  const args: BenchArgs = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--json' || arg.startsWith('--json=')) {
      const value = arg === '--json' ? argv[++i] : arg.slice('--json='.length);
      if (!value) throw new BenchUsageError('--json needs a file name, or - for stdout');
      // npm runs scripts in the package's directory; INIT_CWD is where it was run.
      args.json = value === '-' || isAbsolute(value) ? value : resolve(process.env.INIT_CWD ?? process.cwd(), value);
    } else {
      throw new BenchUsageError(`unknown argument ${arg} (usage: npm run bench [-- --json FILE|-])`);
    }
  }
  return args;
}
