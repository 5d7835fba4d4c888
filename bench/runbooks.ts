/**
 * What a runbook's run costs against an ordinary session doing the same: against a gateway of its
 * own with a policy repo, `hoop runbook run bench-update -p id=N` (a session whose client is the
 * gateway: BEGIN, the bound UPDATE, COMMIT) and `hoop exec bench -c "update … where id = N"` (a
 * tunnel session the CLI opens, signs in to and sends the statement on), each a whole CLI process,
 * BENCH_RUNBOOK_RUNS of each (default 20, after one to warm), median and p90; and the same two
 * asked in this process, without the CLI's start: `POST /v1/runbooks/bench-update/run`.
 * BENCH_RUNBOOKS=0 skips it.
 *
 * Layer: uses ./processes.ts and ./hoop-paths.ts (the gateway); ./pg-path.ts runs it.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { PgCluster } from '../test/harness/postgres.js';
import { PolicyGitRepo } from '../test/harness/policy-git.js';
import { startBenchGateway } from './hoop-paths.js';
import { tempDir } from './processes.js';

const run = promisify(execFile);
const RUNS = Number(process.env.BENCH_RUNBOOK_RUNS ?? 20);

/** One row: its label and what it measured, in ms. */
export interface RunbookRow {
  label: string;
  median: number;
  p90: number;
}

const quantile = (xs: number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

/** Times `once(i)` RUNS times after one to warm; ms each. */
async function timed(once: (i: number) => Promise<void>): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i <= RUNS; i++) {
    const t = process.hrtime.bigint();
    await once(i);
    if (i > 0) times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return times;
}

/** Measures the rows (see the module documentation) on `pg`. */
export async function measureRunbooks(pg: PgCluster, log: (s: string) => void): Promise<RunbookRow[]> {
  await pg.psql('drop table if exists bench_rb; create table bench_rb (id int primary key, n int not null); insert into bench_rb select g, 0 from generate_series(1, 1000) g', {
    user: pg.users.scram,
  });
  const repo = new PolicyGitRepo('hoop-bench-runbooks-');
  mkdirSync(join(repo.dir, 'runbooks'));
  writeFileSync(
    join(repo.dir, 'runbooks', 'bench-update.yaml'),
    `version: 1
description: Count one row
connection: bench
parameters:
  id: { type: integer, min: 1 }
steps:
  - sql: update bench_rb set n = n + 1 where id = $1
    params: [id]
run:
  - { subjects: ["*"] }
maxAffectedRows: 1
`,
  );
  repo.commit(`version: 1
connections:
  - { name: bench, type: postgres, host: 127.0.0.1, port: ${pg.port}, database: ${pg.database}, user: ${pg.users.scram.user}, password: "\${env:BENCH_PG_PASSWORD}", tls: { mode: disable } }
access:
  - { name: everyone, subjects: ["*"], connections: [bench], mode: read-write, maxSessions: 5000 }
`);
  const gw = await startBenchGateway(['recording: { enabled: true }', ...repo.gatewayBlock(['${env:BENCH_PG_PASSWORD}']).trimEnd().split('\n')], {
    BENCH_PG_PASSWORD: pg.users.scram.password,
  });
  const rows: RunbookRow[] = [];
  try {
    const { dir } = tempDir('hoop-bench-rb-');
    const env = { PATH: process.env.PATH, HOME: dir, HOOP_CONFIG_DIR: join(dir, 'cli'), HOOP_TOKEN: gw.token, HOOP_GATEWAY: gw.url, HOOP_CA_FILE: gw.caFile, XDG_RUNTIME_DIR: join(dir, 'xdg') };
    mkdirSync(env.XDG_RUNTIME_DIR, { mode: 0o700 });
    const cli = async (argv: string[]): Promise<void> => {
      await run(process.execPath, [gw.hoopBin, ...argv], { env }).catch((err: { stderr?: string }) => {
        throw new Error(`hoop ${argv.join(' ')} failed: ${err.stderr?.trim() ?? String(err)}`);
      });
    };
    const row = (label: string, times: number[]): void => {
      rows.push({ label, median: quantile(times, 0.5), p90: quantile(times, 0.9) });
      log(`[runbooks] ${label}: median ${quantile(times, 0.5).toFixed(1)} ms`);
    };
    row('hoop exec -c "update … where id = N" (an ordinary session, whole CLI)', await timed((i) => cli(['exec', 'bench', '-c', `update bench_rb set n = n + 1 where id = ${(i % 1000) + 1}`])));
    row('hoop runbook run bench-update -p id=N (whole CLI)', await timed((i) => cli(['runbook', 'run', 'bench-update', '-p', `id=${(i % 1000) + 1}`])));
    const { default: https } = await import('node:https');
    const { readFileSync } = await import('node:fs');
    const ca = readFileSync(gw.caFile);
    const agent = new https.Agent({ keepAlive: true, ca });
    const post = (i: number): Promise<void> =>
      new Promise((resolve, reject) => {
        const body = JSON.stringify({ params: { id: (i % 1000) + 1 } });
        const req = https.request(
          new URL('v1/runbooks/bench-update/run', gw.url),
          { method: 'POST', agent, headers: { Authorization: `Bearer ${gw.token}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } },
          (res) => {
            res.resume();
            res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    row('POST /v1/runbooks/bench-update/run (the run alone, kept-alive HTTPS)', await timed(post));
    agent.destroy();
  } finally {
    await gw.stop();
    repo.remove();
  }
  return rows;
}

/** The rows, in markdown. */
export function formatRunbooks(rows: RunbookRow[]): string[] {
  return ['| runbook runs | median | p90 |', '|---|---:|---:|', ...rows.map((r) => `| ${r.label} | ${r.median.toFixed(1)} ms | ${r.p90.toFixed(1)} ms |`), ''];
}
