/**
 * The memory of idle sessions: BENCH_IDLE clients signed in through one `hoop connect` and left
 * idle, with everything on (policy, masking, recording; BENCH_IDLE_MODE=policy or =plain for
 * less); the growth of the gateway's and `hoop connect`'s resident memory, per session. The same
 * measurement for each lane: PostgreSQL's sessions (the `pg` driver, pgbench's traffic first) and
 * MySQL's (the `mysql2` driver, mariadb-slap's traffic first), printed side by side. What the
 * first session loads (the SQL parser, the recording thread) and what any traffic touches once (a
 * gateway that has run for a while has carried BENCH_IDLE_WARMUP seconds of traffic: V8's young
 * generation) is reported on its own, not counted against the sessions.
 *
 * Layer: uses ./hoop-paths.ts, ./measure.ts, ./mysql-measure.ts, ./pg-limits.ts (RSS), ./processes.ts;
 * ./pg-path.ts and ./mysql-lane.ts run it.
 */
import type { MariaServer } from '../test/harness/mariadb.js';
import type { PgCluster } from '../test/harness/postgres.js';
import { type HoopOptions, setupHoopConnect, setupMysqlHoopConnect } from './hoop-paths.js';
import { type Endpoint, type PathSetup, pgbenchOutput } from './measure.js';
import { type MysqlDatabase, mysqlWarmup } from './mysql-measure.js';
import type { Lane } from './paths.js';
import { rssMb } from './pg-limits.js';
import { sleep } from './processes.js';
import { IDLE_MODE, IDLE_WARMUP_SECONDS } from './settings.js';

/** What {@link measureIdleSessions} found. */
export interface IdleResult {
  lane: Lane;
  sessions: number;
  /** BENCH_IDLE_MODE: `all` (policy, masking, recording), `policy` (no recording), `plain` (neither). */
  mode: 'all' | 'policy' | 'plain';
  warmupSeconds: number;
  /** Resident memory grown per idle session, in KiB. */
  gatewayKiBPerSession: number;
  connectKiBPerSession: number;
  /** Resident memory the first session and the warm-up traffic added, once, in MB. */
  firstLoadMB: { gateway: number; connect: number };
}

/** A signed-in client of a lane's driver. */
interface IdleClient {
  query: () => Promise<unknown>;
  end: () => Promise<unknown>;
}

/** How one lane holds idle sessions: its `hoop connect` path, its driver's clients, its warm-up traffic. */
interface IdleLane {
  lane: Lane;
  setup: (o: HoopOptions) => Promise<PathSetup>;
  /** A client of `ep`, signed in. */
  open: (ep: Endpoint) => Promise<IdleClient>;
  warmup: (ep: Endpoint, seconds: number) => Promise<void>;
}

/** The idle measurement of PostgreSQL sessions (see the module documentation). */
export async function measureIdleSessions(pg: PgCluster, n: number, log: (s: string) => void): Promise<IdleResult> {
  const { default: pgDriver } = await import('pg');
  return measureIdle(
    {
      lane: 'postgres',
      setup: (o) => setupHoopConnect(pg, o),
      open: async (ep) => {
        const c = new pgDriver.Client({ host: ep.host, port: ep.port, user: ep.user, password: ep.password, database: ep.database, ssl: false });
        await c.connect();
        return { query: () => c.query('select 1'), end: () => c.end() };
      },
      warmup: async (ep, seconds) => void (await pgbenchOutput(pg.bin, ep, ['-S', '-n', '-c', '8', '-j', '2', '-T', String(seconds)])),
    },
    n,
    log,
  );
}

/** The idle measurement of MySQL sessions, through the bench's MariaDB (see the module documentation). */
export async function measureMysqlIdleSessions(maria: MariaServer, db: MysqlDatabase, n: number, log: (s: string) => void): Promise<IdleResult> {
  const { createConnection } = await import('mysql2/promise');
  return measureIdle(
    {
      lane: 'mysql',
      setup: (o) => setupMysqlHoopConnect(maria, o),
      open: async (ep) => {
        const c = await createConnection({ host: ep.host, port: ep.port, user: ep.user, password: ep.password, database: ep.database });
        return { query: () => c.query('select 1'), end: () => c.end() };
      },
      warmup: (ep, seconds) => mysqlWarmup(db, ep, seconds),
    },
    n,
    log,
  );
}

/** Opens `n` idle sessions of `lane` through one `hoop connect`; see the module documentation. */
async function measureIdle(lane: IdleLane, n: number, log: (s: string) => void): Promise<IdleResult> {
  const setup = await lane.setup({ policy: IDLE_MODE !== 'plain', recording: IDLE_MODE === 'all' });
  const clients: IdleClient[] = [];
  try {
    const { gateway, connect } = setup.pids!;
    const rss = (): { gateway: number; connect: number } => ({ gateway: rssMb(gateway), connect: rssMb(connect) });
    const settle = (): Promise<void> => sleep(1000);
    const ep = setup.endpoint;
    await settle();
    const atStart = rss();
    // One session first: what the first one loads (the SQL parser, the recording thread) is paid once, not per session.
    const first = await lane.open(ep);
    await first.query();
    await first.end();
    // Then traffic, as a gateway that has run for a while has carried: what any traffic touches once
    // (V8's young generation, two semi-spaces of up to 16 MiB each) is not counted against the sessions.
    if (IDLE_WARMUP_SECONDS > 0) await lane.warmup(ep, IDLE_WARMUP_SECONDS);
    await settle();
    const before = rss();
    for (let i = 0; i < n; i += 50) clients.push(...(await Promise.all(Array.from({ length: Math.min(50, n - i) }, () => lane.open(ep)))));
    await Promise.all(clients.slice(0, 10).map((c) => c.query()));
    await settle();
    const after = rss();
    const result: IdleResult = {
      lane: lane.lane,
      sessions: n,
      mode: IDLE_MODE,
      warmupSeconds: IDLE_WARMUP_SECONDS,
      gatewayKiBPerSession: ((after.gateway - before.gateway) * 1024) / n,
      connectKiBPerSession: ((after.connect - before.connect) * 1024) / n,
      firstLoadMB: { gateway: before.gateway - atStart.gateway, connect: before.connect - atStart.connect },
    };
    log(`[idle] ${formatIdle(result)}`);
    return result;
  } finally {
    await Promise.allSettled(clients.map((c) => c.end()));
    await setup.close();
  }
}

/** {@link IdleResult} as one line of the report. */
export function formatIdle(r: IdleResult): string {
  const what = r.mode === 'all' ? 'policy, masking, recording on' : r.mode === 'plain' ? 'no policy, no recording' : 'policy and masking on, no recording';
  const kib = (x: number): string => x.toFixed(0);
  const mb = (x: number): string => x.toFixed(0);
  const traffic = r.lane === 'mysql' ? 'mariadb-slap' : 'pgbench';
  return `idle ${r.lane === 'mysql' ? 'MySQL' : 'PostgreSQL'} sessions: ${r.sessions} signed in through one hoop connect (${what}): gateway +${kib(r.gatewayKiBPerSession)} KiB RSS per session, hoop connect +${kib(r.connectKiBPerSession)} KiB; the first session${r.warmupSeconds > 0 ? ` and ${r.warmupSeconds} s of ${traffic}` : ''} load +${mb(r.firstLoadMB.gateway)} MB into the gateway, +${mb(r.firstLoadMB.connect)} MB into hoop connect, once`;
}

/** The MySQL sessions' memory against PostgreSQL's, when both were measured: one line of the report. */
export function formatIdleComparison(pg: IdleResult | undefined, mysql: IdleResult | undefined): string | undefined {
  if (!pg || !mysql) return undefined;
  const ratio = (a: number, b: number): string => (b > 0 ? `x${(a / b).toFixed(2)}` : 'n/a');
  return `idle MySQL session vs PostgreSQL's: gateway ${ratio(mysql.gatewayKiBPerSession, pg.gatewayKiBPerSession)}, hoop connect ${ratio(mysql.connectKiBPerSession, pg.connectKiBPerSession)} (above x1: a MySQL session costs more)`;
}
