/**
 * The paths the benchmark measures: each with a stable short id (what BENCH_PATHS lists), the
 * label its row has in the table, and how it is set up. The order here is the order of the runs
 * and of the table's rows: the baselines first (direct, `ssh -L`, the node relay), then hoop
 * reached directly, then hoop through `hoop connect`, then pgbouncer.
 *
 * Layer: uses ./relays.ts and ./hoop-paths.ts; ./pg-path.ts and ./report.ts read it.
 */
import type { PgCluster } from '../test/harness/postgres.js';
import { type HoopOptions, setupHoopConnect, setupHoopDirect } from './hoop-paths.js';
import type { Endpoint, PathSetup } from './measure.js';
import { setupNodeRelay, setupPgbouncer, setupSshForward } from './relays.js';
import { BenchUsageError } from './settings.js';

/** What a path's set-up is given: the cluster and the direct endpoint to it. */
interface PathContext {
  pg: PgCluster;
  direct: Endpoint;
}

/** One way of reaching the database. */
export interface BenchPath {
  /** Stable short id, for BENCH_PATHS and the JSON. */
  id: string;
  /** The row's name in the table. */
  label: string;
  setup: (ctx: PathContext) => Promise<PathSetup>;
}

/** Everything on: the policy repo (statement rules and masking) and recording. */
const ALL_ON: HoopOptions = { policy: true, recording: true };
const RECORDING_OFF: HoopOptions = { policy: true, recording: false };
const PLAIN: HoopOptions = { policy: false, recording: false };

const direct = (o: HoopOptions) => (ctx: PathContext) => setupHoopDirect(ctx.pg, o);
const connect = (o: HoopOptions) => (ctx: PathContext) => setupHoopConnect(ctx.pg, o);

/** Every path, in the order they run and are printed. */
export const ALL_PATHS: readonly BenchPath[] = [
  { id: 'direct', label: 'direct', setup: async (ctx) => ({ endpoint: ctx.direct, close: async () => {} }) },
  { id: 'ssh', label: 'ssh -L', setup: (ctx) => setupSshForward(ctx.pg, ctx.direct) },
  { id: 'relay', label: 'node relay (2 processes)', setup: (ctx) => setupNodeRelay(ctx.pg, ctx.direct, 'two') },
  { id: 'front', label: 'node TLS front (1 process)', setup: (ctx) => setupNodeRelay(ctx.pg, ctx.direct, 'front') },
  { id: 'hoop-direct', label: 'hoop direct, all on', setup: direct(ALL_ON) },
  { id: 'direct-norec', label: 'hoop direct, recording off', setup: direct(RECORDING_OFF) },
  { id: 'direct-plain', label: 'hoop direct, plain', setup: direct(PLAIN) },
  { id: 'direct-2w', label: 'hoop direct, all on, 2 workers', setup: direct({ ...ALL_ON, store: true, workers: 2 }) },
  { id: 'direct-1w-store', label: 'hoop direct, all on + store', setup: direct({ ...ALL_ON, store: true, workers: 1 }) },
  { id: 'connect', label: 'hoop connect, all on', setup: connect(ALL_ON) },
  { id: 'connect-norec', label: 'hoop connect, recording off', setup: connect(RECORDING_OFF) },
  { id: 'connect-plain', label: 'hoop connect, plain', setup: connect(PLAIN) },
  // The guard's row keeps what it always measured: the policy path with the guard, recording off.
  { id: 'connect-guard', label: 'hoop connect, recording off + guard', setup: connect({ ...RECORDING_OFF, guard: true }) },
  { id: 'connect-store', label: 'hoop connect, all on + store', setup: connect({ ...ALL_ON, store: true, workers: 1 }) },
  { id: 'pgbouncer', label: 'pgbouncer', setup: (ctx) => setupPgbouncer(ctx.pg, ctx.direct) },
];

/** The baseline the table's ratios divide by. */
export const BASELINE_ID = 'ssh';
/** The path the measurements under a heavy session (./pg-limits.ts) run on, after its own runs. */
export const LIMITS_PATH_ID = 'connect-norec';
/** Pairs of paths whose c=8 TPS give what recording costs: [all on, recording off]. */
export const RECORDING_PAIRS = { connect: ['connect', 'connect-norec'], direct: ['hoop-direct', 'direct-norec'] } as const;

/** The paths BENCH_PATHS (a comma list of ids) picks, in {@link ALL_PATHS}'s order; all when unset. */
export function selectPaths(value: string | undefined): BenchPath[] {
  if (!value) return [...ALL_PATHS];
  const ids = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = ids.filter((id) => !ALL_PATHS.some((p) => p.id === id));
  if (unknown.length > 0) throw new BenchUsageError(`BENCH_PATHS: unknown path ${unknown.join(', ')} (known: ${ALL_PATHS.map((p) => p.id).join(', ')})`);
  return ALL_PATHS.filter((p) => ids.includes(p.id));
}
