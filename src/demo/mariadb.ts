/**
 * The demo's MariaDB server, when Debian's `mariadb-server` (or the like) is installed: its data
 * under the demo directory, on 127.0.0.1 only, as the user running the demo (as root, as root:
 * `--user=root`, so the data never leaves the demo directory). The first start makes the `shop`
 * database with the same data as PostgreSQL's and an account for the gateway, whose password is
 * kept in a file only the gateway's configuration refers to.
 *
 * @see https://mariadb.com/kb/en/mariadb-install-db/
 * @see https://mariadb.com/kb/en/mariadbd-options/
 */
import { realClock } from '../clock.js';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { describeError, ErrorCode, HoopError } from '../errors.js';
import { processExists } from '../pid.js';
import { DEMO_DATABASE, DEMO_ROLE, sampleSchemaSql } from './sample.js';

/** The programs the demo runs: the server, its bootstrap and its client. */
const PROGRAMS = { server: ['/usr/sbin/mariadbd', '/usr/sbin/mysqld'], install: ['/usr/bin/mariadb-install-db', '/usr/bin/mysql_install_db'], client: ['/usr/bin/mariadb', '/usr/bin/mysql'] };

/** A server for a demo: a small buffer pool and redo log (the default log alone is 96 MB on disk). */
const SMALL = ['--innodb-buffer-pool-size=32M', '--innodb-log-file-size=8M'];

/** A running demo server. */
export interface DemoMariaDb {
  port: number;
  version: string;
  stop(): Promise<void>;
}

/** The installed server's programs, or undefined when MariaDB's server is not installed. */
export function findMariaDb(): { server: string; install: string; client: string } | undefined {
  const [server, install, client] = [PROGRAMS.server, PROGRAMS.install, PROGRAMS.client].map((c) => c.find((p) => existsSync(p)));
  return server && install && client ? { server, install, client } : undefined;
}

/** Runs `file` with `args` (and `input` on stdin); rejects with what it printed on stderr. */
function run(file: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    // mariadb-install-db is a shell script: the system's tools on PATH, whatever the demo's has.
    const env = { ...process.env, PATH: ['/usr/sbin', '/usr/bin', '/sbin', '/bin', process.env.PATH].filter(Boolean).join(':') };
    const child = execFile(file, args, { encoding: 'utf8', env, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
      err ? reject(new Error(stderr.trim() || err.message)) : resolve(stdout),
    );
    // A client that exits before it reads (the server not up yet) closes its stdin: its exit says why, not EPIPE.
    child.stdin?.on('error', () => undefined);
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Starts the server on 127.0.0.1:`port` with its data in `dir`; the first start makes the shop database and writes the gateway's password to `passwordFile`. */
export async function startDemoMariaDb(o: { dir: string; port: number; passwordFile: string; log: (line: string) => void }): Promise<DemoMariaDb> {
  const programs = findMariaDb();
  if (!programs) throw new HoopError(ErrorCode.USAGE, "MariaDB's server is not installed");
  const data = join(o.dir, 'data');
  const tmp = join(o.dir, 'tmp');
  const socket = join(o.dir, 'mysqld.sock');
  const pidFile = join(o.dir, 'mariadbd.pid');
  const asRoot = process.getuid?.() === 0 ? ['--user=root'] : [];
  const fresh = !existsSync(join(data, 'mysql'));
  await mkdir(tmp, { recursive: true, mode: 0o700 });
  await stopLeftover(pidFile, data, o.log);
  if (fresh) {
    o.log('creating the MariaDB data directory');
    await rm(data, { recursive: true, force: true });
    await run(programs.install, [
      '--no-defaults',
      ...asRoot,
      `--datadir=${data}`,
      `--tmpdir=${tmp}`,
      '--auth-root-authentication-method=socket',
      `--auth-root-socket-user=${userInfo().username}`,
      '--skip-test-db',
      '--skip-name-resolve',
      ...SMALL,
    ]);
  }
  const child = spawn(
    programs.server,
    [
      '--no-defaults',
      ...asRoot,
      `--datadir=${data}`,
      `--socket=${socket}`,
      `--tmpdir=${tmp}`,
      `--port=${o.port}`,
      '--bind-address=127.0.0.1',
      `--pid-file=${pidFile}`,
      '--skip-name-resolve',
      '--skip-log-bin',
      ...SMALL,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let said = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (said = (said + s).slice(-2000)));
  const sql = (statements: string, database?: string): Promise<string> =>
    // As this OS user (the account mariadb-install-db made for it, by unix socket), whatever $USER says.
    run(programs.client, ['--no-defaults', `--socket=${socket}`, `--user=${userInfo().username}`, '--batch', '--skip-column-names', ...(database ? [database] : [])], statements);
  const stop = (): Promise<void> => stopServer(child);
  try {
    await answering(
      child,
      () => sql('SELECT 1'),
      () => said,
    );
    if (fresh) await createShop(sql, o.passwordFile);
    return { port: o.port, version: (await sql('SELECT version()')).trim(), stop };
  } catch (err) {
    await stop();
    throw err instanceof HoopError ? err : new HoopError(ErrorCode.INTERNAL, `MariaDB did not start: ${describeError(err)}`);
  }
}

/** Resolves once the server answers `probe`; rejects when it exits first or takes more than 30 s. */
async function answering(child: ChildProcess, probe: () => Promise<unknown>, said: () => string): Promise<void> {
  const deadline = realClock.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`mariadbd exited (${child.exitCode}): ${said().trim().split('\n').slice(-3).join(' ')}`);
    const failed = await probe().then(
      () => undefined,
      (err: Error) => err,
    );
    if (!failed) return;
    if (realClock.now() > deadline) throw new Error(`mariadbd did not answer in 30 s (${failed.message})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The shop database (the same data as PostgreSQL's) and the gateway's account on it, its password kept in `passwordFile`. */
async function createShop(sql: (s: string, db?: string) => Promise<string>, passwordFile: string): Promise<void> {
  const password = randomBytes(18).toString('base64url');
  await sql(
    [
      `CREATE DATABASE ${DEMO_DATABASE}`,
      `CREATE USER ${DEMO_ROLE}@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('${password}')`,
      `GRANT ALL ON ${DEMO_DATABASE}.* TO ${DEMO_ROLE}@'127.0.0.1'`,
      '',
    ].join(';\n'),
  );
  await sql(sampleSchemaSql('mysql'), DEMO_DATABASE);
  await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
}

/** Stops the server: SIGTERM, which shuts it down cleanly, then SIGKILL after 15 s. */
async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/** Stops a server a killed demo left running on `data` (its pid file names it, its command line names the data). */
async function stopLeftover(pidFile: string, data: string, log: (line: string) => void): Promise<void> {
  const pid = Number(existsSync(pidFile) ? readFileSync(pidFile, 'utf8').trim() : '');
  if (!Number.isInteger(pid) || pid <= 0 || !processExists(pid)) return;
  const command = existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8') : '';
  if (!command.includes(`--datadir=${data}`)) return;
  log(`stopping the MariaDB server (pid ${pid}) an earlier demo left running`);
  process.kill(pid, 'SIGTERM');
  const deadline = realClock.now() + 15_000;
  while (processExists(pid) && realClock.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (processExists(pid)) process.kill(pid, 'SIGKILL');
}
