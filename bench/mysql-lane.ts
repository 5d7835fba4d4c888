/**
 * The MySQL lane: a MariaDB server of its own (started as the tests start theirs,
 * test/harness/mariadb.ts), the sysbench-like table, then each MySQL path of BENCH_PATHS measured
 * (./mysql-measure.ts) and, with BENCH_IDLE, the memory of idle MySQL sessions through one `hoop
 * connect` (./idle.ts). It runs when BENCH_PATHS picks a MySQL path (all do by default); without
 * MariaDB or mariadb-slap installed its rows say so.
 *
 * Layer: uses ./paths.ts, ./mysql-measure.ts, ./idle.ts, ./processes.ts and ./settings.ts; ./pg-path.ts runs it.
 *
 * @see https://mariadb.com/kb/en/mariadb-slap/
 */
import { mariaDbInstalled, startMariaDb } from '../test/harness/mariadb.js';
import { measureMysqlIdleSessions } from './idle.js';
import { MARIADB_SLAP, measureMysqlPath, prepareMysqlDatabase } from './mysql-measure.js';
import { type BenchPath, type MysqlContext, runPath } from './paths.js';
import { isInterrupted, onCleanup } from './processes.js';
import type { BenchReport } from './report.js';
import { IDLE_SESSIONS } from './settings.js';

/** Why the lane cannot run here, or undefined when it can. */
function missingTools(): string | undefined {
  if (!mariaDbInstalled()) return 'skipped: MariaDB not installed (apt-get install mariadb-server mariadb-client)';
  if (!MARIADB_SLAP) return 'skipped: mariadb-slap not installed (apt-get install mariadb-client)';
  return undefined;
}

/** Measures `paths` (the MySQL paths BENCH_PATHS picked) into `report`, then the idle MySQL sessions; nothing when `paths` is empty. */
export async function runMysqlLane(paths: BenchPath<MysqlContext>[], report: BenchReport, log: (s: string) => void): Promise<void> {
  if (paths.length === 0) return;
  const missing = missingTools();
  if (missing) {
    for (const path of paths) report.outcomes.push({ path, figures: { error: missing } });
    log(`[mysql] ${missing}`);
    return;
  }
  const t0 = Date.now();
  // Room for the idle sessions: through hoop, each is a connection of the server's.
  const maria = await startMariaDb({ maxConnections: IDLE_SESSIONS + 100 });
  const stop = onCleanup('mariadb', () => maria.stop());
  try {
    log(`mariadb up on 127.0.0.1:${maria.port} in ${Date.now() - t0} ms (${maria.version})`);
    const db = await prepareMysqlDatabase(maria, log);
    report.mysql = db;
    const ctx: MysqlContext = { maria, direct: { host: maria.host, port: maria.port, user: maria.users.native.user, password: maria.users.native.password, database: maria.database } };
    for (const path of paths) {
      if (isInterrupted()) return;
      await runPath(path, ctx, report.outcomes, (setup, figures, plog) => measureMysqlPath(db, setup, figures, plog), log);
    }
    if (IDLE_SESSIONS > 0 && !isInterrupted()) {
      try {
        report.mysqlIdle = await measureMysqlIdleSessions(maria, db, IDLE_SESSIONS, log);
      } catch (err) {
        log(`[idle] MySQL skipped: ${(err as Error).message}`);
      }
    }
  } finally {
    await stop();
  }
}
