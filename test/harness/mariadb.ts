/**
 * Ephemeral, real MariaDB servers for tests: `mariadb-install-db` into a temporary directory,
 * `mariadbd` on a free port of 127.0.0.1 with TLS (a test CA's certificate) and durability off,
 * then the test users and the `app` database. As root the server runs as the `mysql` OS user.
 *
 * A server never outlives the process that started it: `stop()` is idempotent, an `exit` handler
 * kills every live server, and the process's watchdog (./watchdog.ts) kills it if the process dies outright.
 *
 * @see https://mariadb.com/kb/en/mariadb-install-db/
 * @see https://mariadb.com/kb/en/mariadbd-options/
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestPki, type TestPki } from './certs.js';
import { freePort } from './postgres.js';
import { poll } from './wait.js';
import { onDeath, shellWord } from './watchdog.js';

/** A MariaDB account and its password. */
export interface MariaUser {
  user: string;
  password: string;
}

/** A running throwaway server. */
export interface MariaServer {
  host: '127.0.0.1';
  port: number;
  /** The server's unix socket (root signs in over it without a password). */
  socket: string;
  version: string;
  /** The CA that issued the server's certificate (for clients that verify it). */
  caFile: string;
  /** `root` with a password, over TCP too. */
  root: MariaUser;
  /**
   * `native`: mysql_native_password, owns `app`; `tlsOnly`: the same plugin, `REQUIRE SSL`;
   * `reader`: SELECT on `app` only.
   */
  users: { native: MariaUser; tlsOnly: MariaUser; reader: MariaUser };
  /** `app`, with `items(id int primary key, name text)` holding (1, 'one'), (2, 'two'). */
  database: string;
  /** Runs the real `mariadb` client (batch mode, tab-separated, no headers) over the socket as the OS user that installed the server (an administrator); resolves stdout. */
  sql(statements: string, options?: { database?: string }): Promise<string>;
  /** Kills the server and removes its files. Idempotent. */
  stop(): Promise<void>;
}

const isRoot = process.getuid?.() === 0;
const MARIADBD = ['/usr/sbin/mariadbd', '/usr/sbin/mysqld'].find((p) => existsSync(p));

/** Whether a MariaDB server can be started here (the `mariadb-server` package). */
export function mariaDbInstalled(): boolean {
  return MARIADBD !== undefined && existsSync('/usr/bin/mariadb-install-db') && existsSync('/usr/bin/mariadb');
}

/** uid/gid of the `mysql` OS user. */
function mysqlOsUser(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('mysql:'));
  if (!line) throw new Error('running as root but there is no `mysql` OS user to run MariaDB as (install mariadb-server)');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** Runs `cmd` (as `mysql` when root); rejects with its stderr. */
function run(cmd: string, args: string[], input?: string): Promise<string> {
  const [file, argv] = isRoot ? ['runuser', ['-u', 'mysql', '--', cmd, ...args]] : [cmd, args];
  return new Promise((resolve, reject) => {
    const child = execFile(file, argv, { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
    // A client that exits before reading its input (no server yet) breaks the pipe: its exit reports that, not an unhandled EPIPE.
    child.stdin?.on('error', () => {});
    if (input !== undefined) child.stdin?.end(input);
  });
}

const live = new Set<ChildProcess>();
/** Kills the server's whole process group: as root `runuser` stands in front of mariadbd, and a signal to it alone leaves the server running. */
const killGroup = (c: ChildProcess): void => {
  try {
    if (c.pid) process.kill(-c.pid, 'SIGKILL');
  } catch {
    /* gone already */
  }
};
process.on('exit', () => {
  for (const c of live) killGroup(c);
});

const password = (): string => randomBytes(12).toString('base64url');

/** A policy's connection entry for the `app` database on the MariaDB at `port` as the `app` user (its password from `${env:MARIA_PASSWORD}`). */
export function mariaConnectionYaml(port: number, name = 'shop', tls = '{ mode: require }'): string {
  return `  - { name: ${name}, type: mysql, host: 127.0.0.1, port: ${port}, database: app, user: app, password: "\${env:MARIA_PASSWORD}", tls: ${tls} }`;
}

/** Starts a MariaDB server with the test users and the `app` database; `maxConnections` (default 500) for more sessions at once (and files open for them). */
export async function startMariaDb(options: { maxConnections?: number } = {}): Promise<MariaServer> {
  if (!MARIADBD) throw new Error('MariaDB is not installed (apt-get install mariadb-server mariadb-client)');
  const root = mkdtempSync(join(process.env.HOOP_MARIA_ROOT ?? (existsSync('/dev/shm') ? '/dev/shm' : tmpdir()), 'hoop-maria-'));
  const dataDir = join(root, 'data');
  const socket = join(root, 'sock');
  const owner = isRoot ? mysqlOsUser() : undefined;
  let pki: TestPki | undefined;
  let child: ChildProcess | undefined;
  let forget: (() => void) | undefined;
  const stop = async (): Promise<void> => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      killGroup(child);
      await exited;
    }
    if (child) live.delete(child);
    rmSync(root, { recursive: true, force: true });
    forget?.();
    await pki?.cleanup();
  };
  try {
    // A temp directory of its own: servers bootstrapping at once in the shared /tmp removed each other's temporary tables.
    const tmp = join(root, 'tmp');
    mkdirSync(dataDir);
    mkdirSync(tmp);
    if (owner) for (const dir of [root, dataDir, tmp]) chownSync(dir, owner.uid, owner.gid);
    pki = await createTestPki();
    const leaf = await pki.issue('mariadb', ['IP:127.0.0.1', 'DNS:localhost']);
    if (owner) chownSync(leaf.keyFile, owner.uid, owner.gid);
    await run('/usr/bin/mariadb-install-db', ['--no-defaults', `--datadir=${dataDir}`, `--tmpdir=${tmp}`, '--auth-root-authentication-method=socket', '--skip-test-db', '--skip-name-resolve']);
    const port = await freePort();
    const args = [
      '--no-defaults',
      `--datadir=${dataDir}`,
      `--socket=${socket}`,
      `--tmpdir=${tmp}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      `--pid-file=${join(root, 'pid')}`,
      '--skip-name-resolve',
      '--skip-log-bin',
      '--innodb-buffer-pool-size=32M',
      '--innodb-flush-log-at-trx-commit=0',
      '--innodb-doublewrite=0',
      `--ssl-cert=${leaf.certFile}`,
      `--ssl-key=${leaf.keyFile}`,
      `--ssl-ca=${pki.caFile}`,
      `--max-connections=${options.maxConnections ?? 500}`,
      '--max-allowed-packet=64M',
    ];
    // Each connection holds a file (its socket); as `mysql`, the server starts with PAM's soft limit (often 1024).
    const files = options.maxConnections ? ['prlimit', `--nofile=${2 * options.maxConnections + 1000}:`] : [];
    const [file, argv] = isRoot ? ['runuser', ['-u', 'mysql', '--', ...files, MARIADBD, ...args]] : [MARIADBD, args];
    const started = spawn(file, argv, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    child = started;
    live.add(started);
    // Gone with this process however it goes (./watchdog.ts): the server's process group killed, its files removed.
    forget = onDeath(`${started.pid ? `kill -9 -${started.pid}; ` : ''}rm -rf ${shellWord(root)}`);
    let log = '';
    started.stderr?.setEncoding('utf8').on('data', (s: string) => {
      log = (log + s).slice(-4000);
    });
    const sql = (statements: string, o: { database?: string } = {}): Promise<string> =>
      run('/usr/bin/mariadb', ['--no-defaults', `--socket=${socket}`, '--batch', '--skip-column-names', ...(o.database ? [o.database] : [])], statements);
    const answered = await poll(
      async () => {
        if (started.exitCode !== null) throw new Error(`mariadbd exited (${started.exitCode}): ${log}`);
        return sql('SELECT 1').then(
          () => true,
          () => undefined,
        );
      },
      { interval: 50 },
    );
    if (!answered) throw new Error(`mariadbd did not answer in 30 s: ${log}`);
    const users = { native: { user: 'app', password: password() }, tlsOnly: { user: 'tls_only', password: password() }, reader: { user: 'reader', password: password() } };
    const rootUser = { user: 'root', password: password() };
    await sql(
      [
        `CREATE USER root@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('${rootUser.password}')`,
        `GRANT ALL ON *.* TO root@'127.0.0.1' WITH GRANT OPTION`,
        'CREATE DATABASE app',
        'CREATE TABLE app.items (id int primary key, name text)',
        "INSERT INTO app.items VALUES (1, 'one'), (2, 'two')",
        `CREATE USER app@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('${users.native.password}')`,
        `GRANT ALL ON app.* TO app@'%'`,
        `CREATE USER tls_only@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('${users.tlsOnly.password}') REQUIRE SSL`,
        `GRANT ALL ON app.* TO tls_only@'%'`,
        `CREATE USER reader@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('${users.reader.password}')`,
        `GRANT SELECT ON app.* TO reader@'%'`,
        '',
      ].join(';\n'),
    );
    const version = (await sql('SELECT version()')).trim();
    return { host: '127.0.0.1', port, socket, version, caFile: pki.caFile, root: rootUser, users, database: 'app', sql, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
