/**
 * Keeping what would let an agent act as its person out of the agent's reach: the command
 * `hoop run` wraps sees the person's files, network and working directory as they are, except
 * hoop's own credentials.
 *
 * - **Environment** ({@link agentEnvironment}): every `HOOP_*` variable but a few harmless ones,
 *   the GitHub Actions token request (with which a job's identity could be asked for anew) and
 *   libpq's and `DATABASE_URL*` are dropped; the run's own are set after.
 * - **Files** (on Linux, with bubblewrap): the command runs in mount and PID namespaces of its
 *   own ({@link bwrapArguments}). hoop's configuration, state and runtime directories (logins,
 *   tokens, device keys, spools, other ports' passwords) are empty there, except this run's own
 *   files; the token files hoop read, the keychain's sockets (D-Bus session bus, GNOME keyring)
 *   and the password files of the person's other ports are empty files. It sees no process
 *   outside its namespace (so not the environment or memory of the person's other hoop
 *   processes), and a seccomp filter (./seccomp.ts) refuses the kernel keyrings and `TIOCSTI`.
 *   It dies with `hoop run`.
 * - Where bubblewrap is missing or cannot make namespaces, the command runs as the person's other
 *   processes do (`isolation: none`): `hoop run` says so, the run records it, and the policy can
 *   refuse such runs (`runs.requireIsolation`, or rules with `isolated: false`).
 *
 * @see https://github.com/containers/bubblewrap/blob/main/bwrap.xml
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { configDir, stateDir } from '../auth/paths.js';
import { ErrorCode, HoopError } from '../errors.js';

/** How `hoop run` contains its command: `auto` (bubblewrap where it works, else none, said on stderr), `bwrap` (or fail), `none`. */
export type IsolationMode = 'auto' | 'bwrap' | 'none';

/** The containment a run gets. */
export type Containment = { kind: 'bwrap'; bwrap: string } | { kind: 'none'; why: string };

/** `HOOP_*` variables an agent keeps: how loud hoop is, and whether it keeps records. */
const KEPT_HOOP = new Set(['HOOP_LOG_LEVEL', 'HOOP_DEBUG', 'HOOP_CLIENT_RECORD']);

/**
 * Whether an inherited variable stays out of the agent's environment: hoop's own (credentials,
 * their files, the config and demo directories), a CI platform's token request, the keychain's
 * bus, and what could point a client around the gateway (libpq's `PG*`, `DATABASE_URL*`).
 */
export function withheldVariable(name: string): boolean {
  if (name.startsWith('HOOP_')) return !KEPT_HOOP.has(name);
  return name.startsWith('ACTIONS_ID_TOKEN_REQUEST_') || name === 'DBUS_SESSION_BUS_ADDRESS' || name.startsWith('PG') || name.startsWith('DATABASE_URL');
}

/** The agent's environment: `inherited` without what {@link withheldVariable} withholds, then `run`'s own variables. */
export function agentEnvironment(inherited: NodeJS.ProcessEnv, run: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(inherited)) if (!withheldVariable(k)) env[k] = v;
  return { ...env, ...run };
}

/**
 * What the sandbox hides, from the person's environment `env` and the files hoop read
 * credentials from (`credentialFiles`): directories (made empty) and files (made empty).
 */
export function hiddenPaths(env: NodeJS.ProcessEnv, cwd: string, runtime: string, credentialFiles: readonly string[]): { dirs: string[]; files: string[] } {
  const dirs = new Set<string>([configDir(env, cwd), configDir({ ...env, HOOP_CONFIG_DIR: '' }, cwd), stateDir(env), runtime]);
  const files = new Set<string>(credentialFiles);
  for (const [k, v] of Object.entries(env)) {
    if (!v || !isAbsolute(v)) continue;
    if (k.startsWith('HOOP_') && (k.endsWith('_DIR') || k === 'HOOP_DEMO_REVIEWER')) dirs.add(v);
    else if ((k.startsWith('HOOP_') && k.endsWith('_FILE') && k !== 'HOOP_CA_FILE') || k === 'PGPASSFILE') files.add(v);
  }
  // The keychain: the session bus it is reached through, and the GNOME keyring's own sockets.
  const bus = /(?:^|;)unix:path=([^,;]+)/.exec(env.DBUS_SESSION_BUS_ADDRESS ?? '')?.[1];
  if (bus) files.add(bus);
  if (env.XDG_RUNTIME_DIR && isAbsolute(env.XDG_RUNTIME_DIR)) {
    files.add(join(env.XDG_RUNTIME_DIR, 'bus'));
    dirs.add(join(env.XDG_RUNTIME_DIR, 'keyring'));
  }
  const existing = (p: string, dir: boolean): boolean => {
    try {
      return statSync(p).isDirectory() === dir;
    } catch {
      return false;
    }
  };
  return { dirs: [...dirs].filter((d) => existing(d, true)), files: [...files].filter((f) => existsSync(f) && !existing(f, true)) };
}

/** `bwrap` as `HOOP_BWRAP` names it, else on `PATH`, else where packages install it. */
function findBwrap(env: NodeJS.ProcessEnv): string | undefined {
  const named = env.HOOP_BWRAP?.trim();
  if (named) return named;
  for (const dir of [...(env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/local/bin', '/bin']) {
    const file = join(dir, 'bwrap');
    if (dir && existsSync(file)) return file;
  }
  return undefined;
}

/**
 * The containment `mode` gives on this machine: bubblewrap when it is installed and can make the
 * namespaces (tried once, as the command would be run), else none and why.
 *
 * @throws HoopError USAGE when `mode` is `bwrap` and bubblewrap cannot contain the command
 */
export function detectContainment(mode: IsolationMode, env: NodeJS.ProcessEnv): Containment {
  if (mode === 'none') return { kind: 'none', why: 'asked for with --isolation none' };
  const fail = (why: string): Containment => {
    if (mode === 'bwrap') throw new HoopError(ErrorCode.USAGE, `hoop run cannot contain the command: ${why}`, { hint: 'install bubblewrap (apt install bubblewrap), or run with --isolation none' });
    return { kind: 'none', why };
  };
  if (process.platform !== 'linux') return fail(`containment needs Linux namespaces (bubblewrap); this is ${process.platform}`);
  const bwrap = findBwrap(env);
  if (!bwrap) return fail('bubblewrap (bwrap) is not installed');
  const probe = spawnSync(bwrap, ['--bind', '/', '/', '--dev-bind', '/dev', '/dev', '--proc', '/proc', '--unshare-pid', '--die-with-parent', '--', 'true'], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 5_000 });
  if (probe.status !== 0) {
    const said = probe.stderr?.toString('utf8').trim().split('\n')[0];
    return fail(`bwrap cannot make the namespaces it needs here${said ? ` (${said})` : ''}`);
  }
  return { kind: 'bwrap', bwrap };
}

/**
 * The bubblewrap arguments that run a command as the person's other processes run, but for what
 * {@link hiddenPaths} hides (`empty`: an empty file bound over each hidden file), `keep` (this
 * run's own directory, inside a hidden one) and with the seccomp program on file descriptor
 * `seccompFd`. The command follows them, after `--`.
 */
export function bwrapArguments(o: { hide: { dirs: readonly string[]; files: readonly string[] }; empty: string; keep: readonly string[]; cwd: string; seccompFd?: number }): string[] {
  const args = ['--bind', '/', '/', '--dev-bind', '/dev', '/dev', '--proc', '/proc', '--unshare-pid', '--die-with-parent'];
  // Outer directories first: a hidden one inside another is mounted over the empty one.
  for (const dir of [...o.hide.dirs].sort((a, b) => a.length - b.length)) args.push('--tmpfs', dir);
  for (const file of o.hide.files) args.push('--ro-bind', o.empty, file);
  for (const dir of o.keep) args.push('--bind', dir, dir);
  if (o.seccompFd !== undefined) args.push('--seccomp', String(o.seccompFd));
  args.push('--chdir', o.cwd);
  return args;
}

/**
 * The process a signal for the contained command goes to: bubblewrap's child (the namespace's
 * first process) and its child, the command, found as `/proc` lists them; undefined while they
 * are not there yet (or after they ended).
 *
 * @see https://man7.org/linux/man-pages/man5/proc_pid_task.5.html (children)
 */
export function containedPid(bwrapPid: number): number | undefined {
  const childOf = (pid: number): number | undefined => {
    try {
      const first = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)[0];
      return first ? Number(first) : undefined;
    } catch {
      return undefined;
    }
  };
  const init = childOf(bwrapPid);
  return init === undefined ? undefined : childOf(init);
}
