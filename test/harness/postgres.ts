/**
 * Ephemeral, real PostgreSQL clusters for tests and benchmarks.
 *
 * {@link startPgCluster} copies an `initdb` of the server's binaries (made once per machine) into a
 * temporary directory, writes a `pg_hba.conf` that
 * gives each test user its own password method over TCP on 127.0.0.1, starts the server on a free
 * port with durability turned off for speed, and creates the `app` database. PostgreSQL refuses to
 * run as root, so when this process is root the server binaries run as the `postgres` OS user.
 *
 * A cluster never outlives the process that started it: `stop()` is idempotent, an `exit` handler
 * stops every live cluster synchronously, and the process's watchdog (./watchdog.ts) stops it if the
 * process is killed outright (SIGKILL, OOM).
 *
 * @see https://www.postgresql.org/docs/15/app-initdb.html
 * @see https://www.postgresql.org/docs/15/auth-pg-hba-conf.html
 * @see https://www.postgresql.org/docs/15/auth-password.html
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  accessSync,
  appendFileSync,
  chmodSync,
  chownSync,
  constants,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statfsSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch } from './launcher.js';
import { onDeath, shellWord } from './watchdog.js';

/** A login role and its password. */
export interface PgUser {
  user: string;
  password: string;
}

/** A running throwaway cluster. */
export interface PgCluster {
  host: '127.0.0.1';
  port: number;
  /** Directory of the server's unix socket (`unix_socket_directories`). */
  socketDir: string;
  dataDir: string;
  /** Directory of the server binaries (initdb, pg_ctl, postgres, pgbench, psql). */
  bin: string;
  /** Password-authenticated (scram-sha-256) superuser. */
  superuser: PgUser;
  /**
   * One user per password method over TCP: `scram` (scram-sha-256, owns `app`), `md5` (password
   * stored as an md5 hash, `md5` method), `cleartext` (`password` method), `tlsOnly`
   * (`hostnossl ... reject`, `hostssl ... scram-sha-256`).
   */
  users: { scram: PgUser; md5: PgUser; cleartext: PgUser; tlsOnly: PgUser };
  /** `app`, owned by the scram user, with `items(id int primary key, name text)` readable by all. */
  database: string;
  ssl: boolean;
  /** A `postgresql://` URI for `user` (default database `app`). @see https://www.postgresql.org/docs/15/libpq-connect.html#LIBPQ-CONNSTRING */
  url(user: PgUser, options?: { database?: string; sslmode?: string }): string;
  /** Runs the real `psql -X -A -t -v ON_ERROR_STOP=1` over TCP; resolves stdout, rejects with stderr. */
  psql(sql: string, options?: { user?: PgUser; database?: string }): Promise<string>;
  /** Fast shutdown, then removes the data directory. Idempotent. */
  stop(): Promise<void>;
  /** Stops the server (fast shutdown: sessions are cut) and keeps its data, to {@link start} it again on the same port. */
  halt(): Promise<void>;
  /** Starts the server {@link halt} stopped. */
  start(): Promise<void>;
}

/** Options of {@link startPgCluster}. */
export interface StartPgClusterOptions {
  /** Turn on TLS with this certificate and key (PEM files); `caFile` becomes `ssl_ca_file`. */
  ssl?: { certFile: string; keyFile: string; caFile?: string };
  /** Extra `postgresql.conf` settings. */
  config?: Record<string, string>;
}

const isRoot = process.getuid?.() === 0;

/**
 * The directory of the newest installed PostgreSQL server binaries: `$HOOP_PG_BIN`, else the
 * newest `/usr/lib/postgresql/<major>/bin`, else `pg_config --bindir`.
 * @see https://www.postgresql.org/docs/15/app-pgconfig.html
 */
export function pgBinDir(): string {
  const fromEnv = process.env.HOOP_PG_BIN;
  if (fromEnv && existsSync(join(fromEnv, 'pg_ctl'))) return fromEnv;
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const majors = readdirSync(root)
      .filter((d) => /^\d+(\.\d+)?$/.test(d) && existsSync(join(root, d, 'bin', 'pg_ctl')))
      .sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a));
    if (majors[0]) return join(root, majors[0], 'bin');
  }
  try {
    const dir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    if (dir && existsSync(join(dir, 'pg_ctl'))) return dir;
  } catch {
    /* fall through */
  }
  throw new Error('PostgreSQL server binaries not found (looked in $HOOP_PG_BIN, /usr/lib/postgresql/*/bin, pg_config --bindir); install the postgresql package');
}

/** uid/gid of the `postgres` OS user, from /etc/passwd. */
function postgresOsUser(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root but there is no `postgres` OS user to run the server as');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** The lowest port the kernel hands out by itself (to `bind(0)` and `connect`): ports below it are only ever taken by name. */
const EPHEMERAL_LOW = (() => {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
})();

/** Whether `port` (0: any) can be listened on at 127.0.0.1; resolves the port bound, or undefined. */
function tryListen(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      const bound = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(bound));
    });
  });
}

/**
 * A free TCP port on 127.0.0.1, for a server a test starts after: picked at random below the
 * kernel's ephemeral range, so that no other process's outgoing connection or `listen(0)` is
 * given it in the meantime (a port from `listen(0)` was, now and then, under parallel tests).
 */
export async function freePort(): Promise<number> {
  const low = Math.min(EPHEMERAL_LOW, 65536) - 1;
  const from = Math.max(10_000, low - 20_000);
  for (let i = 0; i < 50 && low > from; i++) {
    const bound = await tryListen(from + Math.floor(Math.random() * (low - from)));
    if (bound !== undefined) return bound;
  }
  const any = await tryListen(0);
  if (any === undefined) throw new Error('no free port on 127.0.0.1');
  return any;
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `file args`, as the postgres OS user when `asPostgres` and we are root. */
async function run(file: string, args: string[], opts: { asPostgres?: boolean; input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<RunResult> {
  const [cmd, argv] = opts.asPostgres && isRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
  const done = await launch({ file: cmd as string, args: argv as string[], env: opts.env ?? process.env, cwd: opts.cwd ?? tmpdir(), input: opts.input ?? '' });
  if (done.error && !done.error.killed) throw new Error(`${file}: ${done.error.message}`);
  return done;
}

function sqlLiteral(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

function sqlIdent(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

function confValue(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

function newPassword(): string {
  return randomBytes(18).toString('base64url');
}

/** Environment for libpq clients without inherited PG* settings that would change their behaviour. */
function cleanPgEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  return { ...env, PGCONNECT_TIMEOUT: '10', ...extra };
}

interface LiveCluster {
  dataDir: string;
  root: string;
  pgCtl: string;
}

const live = new Set<LiveCluster>();
let exitHookInstalled = false;

/** Synchronous last-resort stop of every live cluster when the process exits. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of live) {
      try {
        const [cmd, argv] = isRoot ? ['runuser', ['-u', 'postgres', '--', c.pgCtl]] : [c.pgCtl, []];
        execFileSync(cmd as string, [...(argv as string[]), 'stop', '-D', c.dataDir, '-m', 'immediate', '-w', '-s'], { stdio: 'ignore', cwd: tmpdir(), timeout: 10_000 });
      } catch {
        /* already stopped */
      }
      try {
        rmSync(c.root, { recursive: true, force: true });
      } catch {
        /* best effort */
      }
    }
    live.clear();
  });
}

/** Stops the cluster and removes its files if this process dies without running its exit handlers (./watchdog.ts). */
function startWatchdog(c: LiveCluster): () => void {
  const stop = [...(isRoot ? ['runuser', '-u', 'postgres', '--'] : []), c.pgCtl, 'stop', '-D', c.dataDir, '-m', 'immediate', '-s'].map(shellWord).join(' ');
  return onDeath(`${stop}; rm -rf ${shellWord(c.root)}`);
}

/**
 * Where clusters keep their files: a memory file system (`/dev/shm`) when there is one with room,
 * else the temp directory. A cluster is a thousand small files: on a journaled disk, copying the
 * initdb for each one cost more CPU (0.6 s) than starting and stopping the server.
 */
const clusterRoot = ((): string => {
  try {
    accessSync('/dev/shm', constants.W_OK);
    const fs = statfsSync('/dev/shm');
    if (fs.type === 0x01021994 && fs.bavail * fs.bsize > 2 * 1024 ** 3) return '/dev/shm';
  } catch {
    /* none here */
  }
  return tmpdir();
})();

/** The initialized data directories made so far, by binary directory (one initdb per machine and server version). */
const templates = new Map<string, Promise<string>>();

/**
 * A data directory as `initdb` leaves it for these binaries, made once per machine (kept in
 * {@link clusterRoot}, named by the binaries and the user) and copied for each cluster. Made under a
 * temporary name and renamed into place, so a concurrent test process never sees half of one.
 * @see https://www.postgresql.org/docs/15/app-initdb.html
 */
function initializedTemplate(bin: string, owner: { uid: number; gid: number } | undefined): Promise<string> {
  let made = templates.get(bin);
  if (!made) {
    made = (async () => {
      const tag = createHash('sha256').update(bin).digest('hex').slice(0, 12);
      const dir = join(clusterRoot, `hoop-pg-initdb-${tag}-${process.getuid?.() ?? 'user'}`);
      if (existsSync(join(dir, 'PG_VERSION'))) return dir;
      const scratch = mkdtempSync(join(clusterRoot, 'hoop-pg-initdb-'));
      if (owner) chownSync(scratch, owner.uid, owner.gid);
      try {
        const init = await run(
          join(bin, 'initdb'),
          ['-D', join(scratch, 'data'), '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'],
          {
            asPostgres: true,
            cwd: scratch,
            env: cleanPgEnv({}),
          },
        );
        if (init.code !== 0) throw new Error(`initdb failed (exit ${init.code}): ${init.stderr.trim() || init.stdout.trim()}`);
        try {
          renameSync(join(scratch, 'data'), dir);
        } catch (err) {
          // Another test process made it first: theirs is as good.
          if (!existsSync(join(dir, 'PG_VERSION'))) throw err;
        }
        return dir;
      } finally {
        rmSync(scratch, { recursive: true, force: true });
      }
    })();
    made.catch(() => templates.delete(bin));
    templates.set(bin, made);
  }
  return made;
}

const bindFailure = /could not bind|Address already in use|could not create any TCP\/IP sockets|could not create listen socket/i;

/**
 * Starts a throwaway PostgreSQL cluster on 127.0.0.1 and a free port, with four password users and
 * an `app` database. Takes about one second.
 * @see https://www.postgresql.org/docs/15/app-pg-ctl.html
 * @see https://www.postgresql.org/docs/15/ssl-tcp.html
 */
export async function startPgCluster(options: StartPgClusterOptions = {}): Promise<PgCluster> {
  const bin = pgBinDir();
  const pgCtl = join(bin, 'pg_ctl');
  const psqlBin = existsSync(join(bin, 'psql')) ? join(bin, 'psql') : 'psql';
  const owner = isRoot ? postgresOsUser() : undefined;

  const root = mkdtempSync(join(clusterRoot, 'hoop-pg-'));
  const dataDir = join(root, 'data');
  const socketDir = join(root, 'sock');
  const logFile = join(root, 'postgres.log');
  mkdirSync(socketDir, { mode: 0o700 });
  if (owner) {
    chownSync(root, owner.uid, owner.gid);
    chownSync(socketDir, owner.uid, owner.gid);
  }
  const entry: LiveCluster = { dataDir, root, pgCtl };
  let forget: (() => void) | undefined;
  const cleanupFailedStart = async (): Promise<void> => {
    await run(pgCtl, ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-s'], { asPostgres: true, cwd: root }).catch(() => undefined);
    live.delete(entry);
    rmSync(root, { recursive: true, force: true });
    forget?.();
  };

  try {
    // A copy of the machine's initdb of these binaries (a tenth of the time, and of the CPU, of initdb).
    const copy = await run('cp', ['-a', await initializedTemplate(bin, owner), dataDir], { asPostgres: true, cwd: root });
    if (copy.code !== 0) throw new Error(`copying the initialized cluster failed (exit ${copy.code}): ${copy.stderr.trim()}`);

    const superuser: PgUser = { user: 'postgres', password: newPassword() };
    const users = {
      scram: { user: 'app_scram', password: newPassword() },
      md5: { user: 'app_md5', password: newPassword() },
      cleartext: { user: 'app_cleartext', password: newPassword() },
      tlsOnly: { user: 'app_tls_only', password: newPassword() },
    };
    const database = 'app';

    writeFileSync(
      join(dataDir, 'pg_hba.conf'),
      [
        '# TYPE     DATABASE  USER                 ADDRESS        METHOD',
        'local      all       postgres                            trust',
        `hostnossl  all       ${users.tlsOnly.user}  127.0.0.1/32   reject`,
        `hostssl    all       ${users.tlsOnly.user}  127.0.0.1/32   scram-sha-256`,
        `host       all       ${users.md5.user}      127.0.0.1/32   md5`,
        `host       all       ${users.cleartext.user} 127.0.0.1/32   password`,
        'host       all       all                  127.0.0.1/32   scram-sha-256',
        '',
      ].join('\n'),
    );

    const settings: Record<string, string> = {
      listen_addresses: '127.0.0.1',
      unix_socket_directories: socketDir,
      fsync: 'off',
      full_page_writes: 'off',
      synchronous_commit: 'off',
      password_encryption: 'scram-sha-256',
      logging_collector: 'off',
      log_min_messages: 'warning',
    };
    if (options.ssl) {
      const certDst = join(dataDir, 'server.crt');
      const keyDst = join(dataDir, 'server.key');
      copyFileSync(options.ssl.certFile, certDst);
      copyFileSync(options.ssl.keyFile, keyDst);
      chmodSync(keyDst, 0o600);
      if (owner) {
        chownSync(certDst, owner.uid, owner.gid);
        chownSync(keyDst, owner.uid, owner.gid);
      }
      settings.ssl = 'on';
      settings.ssl_cert_file = certDst;
      settings.ssl_key_file = keyDst;
      if (options.ssl.caFile) {
        const caDst = join(dataDir, 'root.crt');
        copyFileSync(options.ssl.caFile, caDst);
        if (owner) chownSync(caDst, owner.uid, owner.gid);
        settings.ssl_ca_file = caDst;
      }
    }
    Object.assign(settings, options.config ?? {});
    appendFileSync(
      join(dataDir, 'postgresql.conf'),
      ['', '# hoop test harness', ...Object.entries(settings).map(([k, v]) => `${k} = ${confValue(v)}`), "include_if_exists = 'hoop-port.conf'", ''].join('\n'),
    );

    live.add(entry);
    installExitHook();
    forget = startWatchdog(entry);

    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      const portConf = join(dataDir, 'hoop-port.conf');
      writeFileSync(portConf, `port = ${port}\n`);
      if (owner) chownSync(portConf, owner.uid, owner.gid);
      const start = await run(pgCtl, ['start', '-D', dataDir, '-l', logFile, '-w', '-t', '30', '-s'], { asPostgres: true, cwd: root, env: cleanPgEnv({}) });
      if (start.code === 0) break;
      const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
      if (attempt < 5 && bindFailure.test(log)) {
        await run(pgCtl, ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-s'], { asPostgres: true, cwd: root }).catch(() => undefined);
        writeFileSync(logFile, '');
        continue;
      }
      throw new Error(`PostgreSQL did not start (exit ${start.code}): ${start.stderr.trim()}\n${log.split('\n').slice(-20).join('\n')}`);
    }

    const setup = [
      `ALTER ROLE postgres PASSWORD ${sqlLiteral(superuser.password)};`,
      `CREATE ROLE ${sqlIdent(users.scram.user)} LOGIN PASSWORD ${sqlLiteral(users.scram.password)};`,
      `CREATE ROLE ${sqlIdent(users.cleartext.user)} LOGIN PASSWORD ${sqlLiteral(users.cleartext.password)};`,
      `CREATE ROLE ${sqlIdent(users.tlsOnly.user)} LOGIN PASSWORD ${sqlLiteral(users.tlsOnly.password)};`,
      `SET password_encryption = 'md5';`,
      `CREATE ROLE ${sqlIdent(users.md5.user)} LOGIN PASSWORD ${sqlLiteral(users.md5.password)};`,
      `RESET password_encryption;`,
      `CREATE DATABASE ${sqlIdent(database)} OWNER ${sqlIdent(users.scram.user)};`,
      `\\connect ${database}`,
      `SET ROLE ${sqlIdent(users.scram.user)};`,
      `CREATE TABLE items (id int PRIMARY KEY, name text);`,
      `INSERT INTO items VALUES (1, 'apple'), (2, 'banana'), (3, 'cherry');`,
      `GRANT SELECT ON items TO PUBLIC;`,
      '',
    ].join('\n');
    const res = await run(psqlBin, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', socketDir, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-f', '-'], {
      asPostgres: true,
      cwd: root,
      input: setup,
      env: cleanPgEnv({}),
    });
    if (res.code !== 0) throw new Error(`cluster setup failed: ${res.stderr.trim()}`);

    const ssl = Boolean(options.ssl);
    let stopping: Promise<void> | undefined;

    const cluster: PgCluster = {
      host: '127.0.0.1',
      port,
      socketDir,
      dataDir,
      bin,
      superuser,
      users,
      database,
      ssl,
      url(user, opts = {}) {
        const db = opts.database ?? database;
        const query = opts.sslmode ? `?sslmode=${encodeURIComponent(opts.sslmode)}` : '';
        return `postgresql://${encodeURIComponent(user.user)}:${encodeURIComponent(user.password)}@127.0.0.1:${port}/${encodeURIComponent(db)}${query}`;
      },
      async psql(sql, opts = {}) {
        const user = opts.user ?? superuser;
        const r = await run(psqlBin, ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(port), '-U', user.user, '-d', opts.database ?? database, '-f', '-'], {
          input: sql,
          env: cleanPgEnv({ PGPASSWORD: user.password, PGSSLMODE: 'prefer' }),
          cwd: root,
        });
        if (r.code !== 0) throw new Error(r.stderr.trim() || `psql exited with ${r.code}`);
        return r.stdout;
      },
      async halt() {
        const r = await run(pgCtl, ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '30', '-s'], { asPostgres: true, cwd: root });
        if (r.code !== 0) throw new Error(`pg_ctl stop failed: ${r.stderr.trim()}`);
      },
      async start() {
        const r = await run(pgCtl, ['start', '-D', dataDir, '-l', logFile, '-w', '-t', '30', '-s'], { asPostgres: true, cwd: root, env: cleanPgEnv({}) });
        if (r.code !== 0) throw new Error(`pg_ctl start failed: ${r.stderr.trim()}`);
      },
      stop() {
        stopping ??= (async () => {
          await run(pgCtl, ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '30', '-s'], { asPostgres: true, cwd: root }).catch(() => undefined);
          live.delete(entry);
          rmSync(root, { recursive: true, force: true });
          forget?.();
        })();
        return stopping;
      },
    };
    return cluster;
  } catch (err) {
    await cleanupFailedStart();
    throw err;
  }
}

/**
 * One entry of a `connections:` list, in a gateway config or a policy bundle, for database
 * `app` of `pg` on loopback without TLS; `password` is the secret reference as YAML text,
 * `extra` more lines of the entry (e.g. `allow: { subjects: [alice] }`).
 */
export function connectionYaml(pg: PgCluster, c: { name: string; user?: string; password: string; database?: string; extra?: string[] }): string {
  const lines = [
    `- name: ${c.name}`,
    '  type: postgres',
    '  host: 127.0.0.1',
    `  port: ${pg.port}`,
    `  database: ${c.database ?? 'app'}`,
    `  user: ${c.user ?? pg.users.scram.user}`,
    `  password: ${c.password}`,
    '  tls: { mode: disable }',
    ...(c.extra ?? []).map((l) => `  ${l}`),
  ];
  return lines.map((l) => `  ${l}\n`).join('');
}
