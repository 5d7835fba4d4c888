/**
 * The benchmark's MySQL lane, briefly (npm run bench:tests): mariadb-slap's point selects at 8 and
 * 1 clients and new sessions through `hoop connect` with everything on (policy, masking,
 * recording), as bench/mysql-measure.ts makes them, at more than 100 queries a second.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupMysqlHoopConnect } from '../../bench/hoop-paths.js';
import type { PathSetup } from '../../bench/measure.js';
import { MARIADB_SLAP, type MysqlDatabase, prepareMysqlDatabase, slap } from '../../bench/mysql-measure.js';
import { cleanupAll } from '../../bench/processes.js';
import { mariaDbInstalled, type MariaServer, startMariaDb } from '../harness/mariadb.js';

const runnable = mariaDbInstalled() && MARIADB_SLAP !== undefined;

let maria: MariaServer;
let db: MysqlDatabase;
let path: PathSetup;

beforeAll(async () => {
  if (!runnable) return;
  maria = await startMariaDb();
  db = await prepareMysqlDatabase(maria, () => {});
  path = await setupMysqlHoopConnect(maria, { policy: true, recording: true });
});

afterAll(async () => {
  await path?.close();
  await maria?.stop();
  await cleanupAll();
});

describe.skipIf(!runnable)('the MySQL lane through hoop connect, all on', () => {
  it('runs point selects at 8 and 1 clients at more than 100 queries a second', async () => {
    const eight = await slap(db, path.endpoint, { clients: 8 }, 4000);
    const one = await slap(db, path.endpoint, { clients: 1 }, 1000);
    expect(eight.queries).toBe(4000);
    process.stdout.write(`mariadb-slap through hoop: ${(eight.queries / eight.seconds).toFixed(0)} queries/s at 8 clients, ${((one.seconds * 1000) / one.queries).toFixed(3)} ms at 1\n`);
    expect(eight.queries / eight.seconds).toBeGreaterThan(100);
    expect(one.queries / one.seconds).toBeGreaterThan(100);
  });

  it('opens a session per query with --detach=1', async () => {
    const run = await slap(db, path.endpoint, { clients: 1, sessions: true }, 20);
    expect(run.queries).toBe(20);
    process.stdout.write(`mariadb-slap through hoop: ${(run.queries / run.seconds).toFixed(0)} new sessions/s\n`);
  });
});
