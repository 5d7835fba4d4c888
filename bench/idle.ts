/**
 * The memory of idle sessions: BENCH_IDLE `pg` clients signed in through one `hoop connect` and
 * left idle, with everything on (policy, masking, recording; BENCH_IDLE_MODE=policy or =plain for
 * less); the growth of the gateway's and `hoop connect`'s resident memory, per session. What the
 * first session loads (the SQL parser, the recording thread) and what any traffic touches once (a
 * gateway that has run for a while has carried BENCH_IDLE_WARMUP seconds of pgbench: V8's young
 * generation) is reported on its own, not counted against the sessions.
 *
 * Layer: uses ./hoop-paths.ts, ./measure.ts, ./pg-limits.ts (RSS), ./processes.ts; ./pg-path.ts runs it.
 */
import type { PgCluster } from '../test/harness/postgres.js';
import { setupHoopConnect } from './hoop-paths.js';
import { pgbench } from './measure.js';
import { rssMb } from './pg-limits.js';
import { sleep } from './processes.js';
import { IDLE_MODE, IDLE_WARMUP_SECONDS } from './settings.js';

/** What {@link measureIdleSessions} found. */
export interface IdleResult {
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

/** Opens `n` idle sessions through one `hoop connect`; see the module documentation. */
export async function measureIdleSessions(pg: PgCluster, n: number, log: (s: string) => void): Promise<IdleResult> {
  const { default: pgDriver } = await import('pg');
  const setup = await setupHoopConnect(pg, { policy: IDLE_MODE !== 'plain', recording: IDLE_MODE === 'all' });
  const clients: InstanceType<typeof pgDriver.Client>[] = [];
  try {
    const { gateway, connect } = setup.pids!;
    const rss = (): { gateway: number; connect: number } => ({ gateway: rssMb(gateway), connect: rssMb(connect) });
    const settle = (): Promise<void> => sleep(1000);
    const ep = setup.endpoint;
    const newClient = (): InstanceType<typeof pgDriver.Client> => new pgDriver.Client({ host: ep.host, port: ep.port, user: ep.user, password: ep.password, database: ep.database, ssl: false });
    await settle();
    const atStart = rss();
    // One session first: what the first one loads (the SQL parser, the recording thread) is paid once, not per session.
    const first = newClient();
    await first.connect();
    await first.query('select 1');
    await first.end();
    // Then traffic, as a gateway that has run for a while has carried: what any traffic touches once
    // (V8's young generation, two semi-spaces of up to 16 MiB each) is not counted against the sessions.
    if (IDLE_WARMUP_SECONDS > 0) await pgbench(pg.bin, ep, ['-S', '-n', '-c', '8', '-j', '2', '-T', String(IDLE_WARMUP_SECONDS)]);
    await settle();
    const before = rss();
    for (let i = 0; i < n; i += 50) {
      const batch = Array.from({ length: Math.min(50, n - i) }, newClient);
      await Promise.all(batch.map((c) => c.connect()));
      clients.push(...batch);
    }
    await Promise.all(clients.slice(0, 10).map((c) => c.query('select 1')));
    await settle();
    const after = rss();
    const result: IdleResult = {
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
  return `idle sessions: ${r.sessions} signed in through one hoop connect (${what}): gateway +${kib(r.gatewayKiBPerSession)} KiB RSS per session, hoop connect +${kib(r.connectKiBPerSession)} KiB; the first session${r.warmupSeconds > 0 ? ` and ${r.warmupSeconds} s of pgbench` : ''} load +${mb(r.firstLoadMB.gateway)} MB into the gateway, +${mb(r.firstLoadMB.connect)} MB into hoop connect, once`;
}
