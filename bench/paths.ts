/**
 * The paths the benchmark measures, in two lanes (PostgreSQL, MySQL): each with a stable short id
 * (what BENCH_PATHS lists), the label its row has in its lane's table, and how it is set up. The
 * order here is the order of the runs and of the tables' rows: for PostgreSQL the baselines first
 * (direct, `ssh -L`, the node relay), then hoop reached directly, then hoop through `hoop connect`,
 * then pgbouncer; for MySQL direct, `ssh -L` and `hoop connect` with everything on.
 *
 * Layer: uses ./relays.ts and ./hoop-paths.ts; ./pg-path.ts, ./mysql-lane.ts and ./report.ts read it.
 */
import type { MariaServer } from '../test/harness/mariadb.js';
import type { PgCluster } from '../test/harness/postgres.js';
import { type HoopOptions, setupHoopConnect, setupHoopDirect, setupMysqlHoopConnect, setupMysqlHoopDirect } from './hoop-paths.js';
import type { Endpoint, PathFigures, PathSetup } from './measure.js';
import { isInterrupted } from './processes.js';
import { setupNodeRelay, setupPgbouncer, setupSshForward } from './relays.js';
import { BenchUsageError } from './settings.js';

/** The database a path reaches: each lane has its own table, baseline and workloads. */
export type Lane = 'postgres' | 'mysql';

/** What a PostgreSQL path's set-up is given: the cluster and the direct endpoint to it. */
export interface PgContext {
  pg: PgCluster;
  direct: Endpoint;
}

/** What a MySQL path's set-up is given: the MariaDB server and the direct endpoint to it. */
export interface MysqlContext {
  maria: MariaServer;
  direct: Endpoint;
}

/** One way of reaching the database; `C` is what its lane gives its set-up. */
export interface BenchPath<C = unknown> {
  /** Stable short id, for BENCH_PATHS and the JSON. */
  id: string;
  /** The row's name in its lane's table. */
  label: string;
  lane: Lane;
  /** Starts what the path needs (a method: a path of either lane is a `BenchPath`). */
  setup(ctx: C): Promise<PathSetup>;
}

/** Everything on: the policy repo (statement rules and masking) and recording. */
const ALL_ON: HoopOptions = { policy: true, recording: true };
const RECORDING_OFF: HoopOptions = { policy: true, recording: false };
const PLAIN: HoopOptions = { policy: false, recording: false };

const direct = (o: HoopOptions) => (ctx: PgContext) => setupHoopDirect(ctx.pg, o);
const connect = (o: HoopOptions) => (ctx: PgContext) => setupHoopConnect(ctx.pg, o);

/** The PostgreSQL paths, in the order they run and are printed. */
export const PG_PATHS: readonly BenchPath<PgContext>[] = [
  { id: 'direct', lane: 'postgres', label: 'direct', setup: async (ctx) => ({ endpoint: ctx.direct, close: async () => {} }) },
  { id: 'ssh', lane: 'postgres', label: 'ssh -L', setup: (ctx) => setupSshForward(ctx.direct) },
  { id: 'relay', lane: 'postgres', label: 'node relay (2 processes)', setup: (ctx) => setupNodeRelay(ctx.pg, ctx.direct, 'two') },
  { id: 'front', lane: 'postgres', label: 'node TLS front (1 process)', setup: (ctx) => setupNodeRelay(ctx.pg, ctx.direct, 'front') },
  { id: 'hoop-direct', lane: 'postgres', label: 'hoop direct, all on', setup: direct(ALL_ON) },
  { id: 'direct-norec', lane: 'postgres', label: 'hoop direct, recording off', setup: direct(RECORDING_OFF) },
  { id: 'direct-plain', lane: 'postgres', label: 'hoop direct, plain', setup: direct(PLAIN) },
  { id: 'direct-2w', lane: 'postgres', label: 'hoop direct, all on, 2 workers', setup: direct({ ...ALL_ON, store: true, workers: 2 }) },
  { id: 'direct-1w-store', lane: 'postgres', label: 'hoop direct, all on + store', setup: direct({ ...ALL_ON, store: true, workers: 1 }) },
  { id: 'connect', lane: 'postgres', label: 'hoop connect, all on', setup: connect(ALL_ON) },
  { id: 'connect-norec', lane: 'postgres', label: 'hoop connect, recording off', setup: connect(RECORDING_OFF) },
  { id: 'connect-plain', lane: 'postgres', label: 'hoop connect, plain', setup: connect(PLAIN) },
  // The guard's row keeps what it always measured: the policy path with the guard, recording off.
  { id: 'connect-guard', lane: 'postgres', label: 'hoop connect, recording off + guard', setup: connect({ ...RECORDING_OFF, guard: true }) },
  { id: 'connect-store', lane: 'postgres', label: 'hoop connect, all on + store', setup: connect({ ...ALL_ON, store: true, workers: 1 }) },
  { id: 'pgbouncer', lane: 'postgres', label: 'pgbouncer', setup: (ctx) => setupPgbouncer(ctx.pg, ctx.direct) },
];

/**
 * The MySQL paths (ids prefixed `mysql-`), in the order they run and are printed: the same three
 * ways as PostgreSQL's main rows, to the bench's MariaDB.
 */
export const MYSQL_PATHS: readonly BenchPath<MysqlContext>[] = [
  { id: 'mysql-direct', lane: 'mysql', label: 'direct', setup: async (ctx) => ({ endpoint: ctx.direct, close: async () => {} }) },
  { id: 'mysql-ssh', lane: 'mysql', label: 'ssh -L', setup: (ctx) => setupSshForward(ctx.direct) },
  { id: 'mysql-hoop-direct', lane: 'mysql', label: 'hoop direct, all on', setup: (ctx) => setupMysqlHoopDirect(ctx.maria, ALL_ON) },
  { id: 'mysql-direct-norec', lane: 'mysql', label: 'hoop direct, recording off', setup: (ctx) => setupMysqlHoopDirect(ctx.maria, RECORDING_OFF) },
  { id: 'mysql-direct-plain', lane: 'mysql', label: 'hoop direct, plain', setup: (ctx) => setupMysqlHoopDirect(ctx.maria, PLAIN) },
  { id: 'mysql-connect', lane: 'mysql', label: 'hoop connect, all on', setup: (ctx) => setupMysqlHoopConnect(ctx.maria, ALL_ON) },
];

/** Every path of both lanes. */
export const ALL_PATHS: readonly BenchPath[] = [...PG_PATHS, ...MYSQL_PATHS];

/** The baseline each lane's ratios divide by. */
export const BASELINE_IDS: Record<Lane, string> = { postgres: 'ssh', mysql: 'mysql-ssh' };
/** The path the measurements under a heavy session (./pg-limits.ts) run on, after its own runs. */
export const LIMITS_PATH_ID = 'connect-norec';
/** Pairs of paths whose c=8 TPS give what recording costs: [all on, recording off]. */
export const RECORDING_PAIRS = { connect: ['connect', 'connect-norec'], direct: ['hoop-direct', 'direct-norec'] } as const;

/** The paths BENCH_PATHS (a comma list of ids) picks, by lane, in the lists' order; all when unset. */
export function selectPaths(value: string | undefined): { postgres: BenchPath<PgContext>[]; mysql: BenchPath<MysqlContext>[] } {
  if (!value) return { postgres: [...PG_PATHS], mysql: [...MYSQL_PATHS] };
  const ids = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = ids.filter((id) => !ALL_PATHS.some((p) => p.id === id));
  if (unknown.length > 0) throw new BenchUsageError(`BENCH_PATHS: unknown path ${unknown.join(', ')} (known: ${ALL_PATHS.map((p) => p.id).join(', ')})`);
  return { postgres: PG_PATHS.filter((p) => ids.includes(p.id)), mysql: MYSQL_PATHS.filter((p) => ids.includes(p.id)) };
}

/** One path's outcome, in the order measured. */
export interface PathOutcome {
  path: BenchPath;
  figures: PathFigures;
}

/**
 * Sets `path` up with `ctx`, measures it into a new outcome of `outcomes` with `measure`, and
 * closes it; `after` runs on the set-up path once measured (the heavy-session measurements). A
 * failure is kept as the outcome's `error`, with what was measured before it.
 */
export async function runPath<C>(
  path: BenchPath<C>,
  ctx: C,
  outcomes: PathOutcome[],
  measure: (setup: PathSetup, figures: PathFigures, log: (s: string) => void) => Promise<void>,
  log: (s: string) => void,
  after?: (setup: PathSetup, log: (s: string) => void) => Promise<void>,
): Promise<void> {
  const figures: PathFigures = {};
  outcomes.push({ path, figures });
  const plog = (s: string): void => log(`[${path.id}] ${s}`);
  let setup: PathSetup | undefined;
  try {
    plog(`setting up ${path.lane === 'mysql' ? 'MySQL ' : ''}${path.label}`);
    setup = await path.setup(ctx);
    await measure(setup, figures, plog);
    await after?.(setup, plog);
  } catch (err) {
    if (isInterrupted()) return;
    figures.error = (err as Error).message;
    plog(`failed: ${figures.error}`);
  } finally {
    await setup?.close().catch(() => undefined);
  }
}
