/**
 * What the command `hoop run` contains sees of the person's machine (./containment.ts decides
 * whether it is contained at all). Its files, network and working directory stay as they are,
 * except four classes of paths:
 *
 * - **Private** (empty, its own): the places where the person's other processes meet: `/tmp`,
 *   `/var/tmp`, `/dev/shm` and the session's runtime directory (`$XDG_RUNTIME_DIR`,
 *   `/run/user/<uid>`). Their sockets (a tmux or screen server, the D-Bus session bus and the
 *   keychain behind it, `systemd --user`, an SSH agent, Wayland and X11, podman) would let the
 *   command have an unconfined process of the person act for it.
 * - **Hidden** (an empty directory, or an empty file): credentials that act as the person, or
 *   make new ones: hoop's own directories wherever the environment may put them (logins, tokens,
 *   device keys, spools, the passwords of the person's other ports, the demo), the token files
 *   hoop reads (named by the environment or a login, a Kubernetes service account's), libpq's
 *   password and service files, the keyrings' files, the browsers' profiles (the identity
 *   provider's session, with which a login could be made anew), X11 cookies and the container
 *   daemons' sockets.
 * - **Read-only**: code the person runs later, outside the run: the directories on `PATH`,
 *   hoop's own installation, the shells' and the session's startup files, `~/.ssh`, git's and
 *   npm's configuration. (What the command writes in its working directory is its work: a
 *   person reviews it before running it.)
 * - **Shared** (bound back): the working directory and the run's own directory, wherever they
 *   are, and what the person shares (`--share`, the SSH agent with `--ssh-agent`).
 *
 * Mounts apply outer first, so a path inside another is placed after it: a hidden or read-only
 * path inside the working directory stays hidden or read-only, and the working directory inside
 * `/tmp` is bound back into the private `/tmp`. Only paths that exist are mounted (hoop's own
 * directories are made first, so one made during the run is hidden too).
 *
 * @see https://github.com/containers/bubblewrap/blob/main/bwrap.xml
 * @see https://specifications.freedesktop.org/basedir-spec/latest/
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { delimiter, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configDir, stateDir } from '../auth/paths.js';
import { KUBERNETES_TOKEN_FILES } from '../auth/workload.js';

/** How a path appears to the contained command. */
export type MountKind = 'private' | 'hidden' | 'read-only' | 'shared';

/** One path of the sandbox. */
export interface Mount {
  path: string;
  kind: MountKind;
  /** Whether it is a directory (a hidden file gets an empty file, a hidden directory an empty one). */
  dir: boolean;
}

/** What {@link sandboxMounts} is worked out from. */
export interface SandboxInputs {
  /** The person's environment, as `hoop run` received it. */
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** The run's own directory (its ports' passwords and certificates). */
  runDir: string;
  /** Files hoop read this run's credentials from (`--token-file`). */
  credentialFiles?: readonly string[];
  /** The person's own additions: `--hide`, `--read-only`, `--share`. */
  hide?: readonly string[];
  readOnly?: readonly string[];
  share?: readonly string[];
  /** Share the person's SSH agent (`--ssh-agent`): its socket is bound back. */
  sshAgent?: boolean;
}

/** Browsers' profiles, under the home directory: cookies hold the identity provider's session. */
const BROWSER_PROFILES = [
  '.mozilla',
  '.config/google-chrome',
  '.config/google-chrome-beta',
  '.config/chromium',
  '.config/BraveSoftware',
  '.config/microsoft-edge',
  '.config/vivaldi',
  '.config/opera',
  'snap/firefox',
  'snap/chromium',
  '.var/app/org.mozilla.firefox',
  '.var/app/com.google.Chrome',
  '.var/app/org.chromium.Chromium',
];

/** Keyrings' files under the home directory (the secrets a desktop keychain keeps). */
const KEYRING_FILES = ['.local/share/keyrings', '.local/share/kwalletd', '.password-store', '.gnupg'];

/** Files under the home directory that run as the person when a shell or a session starts, or configure what runs. */
const STARTUP_FILES = [
  '.profile',
  '.bashrc',
  '.bash_profile',
  '.bash_login',
  '.bash_logout',
  '.zshenv',
  '.zprofile',
  '.zshrc',
  '.zlogin',
  '.zlogout',
  '.config/fish',
  '.pam_environment',
  '.xprofile',
  '.xsession',
  '.xsessionrc',
  '.xinitrc',
  '.config/autostart',
  '.config/systemd',
  '.config/environment.d',
  '.ssh',
  '.gitconfig',
  '.config/git',
  '.npmrc',
];

/** Container daemons' sockets: whoever may use one runs anything, as anyone. */
const DAEMON_SOCKETS = ['/var/run/docker.sock', '/run/docker.sock', '/run/podman/podman.sock', '/run/containerd/containerd.sock'];

/** hoop's own installation: the package root above `dist/agent/`. */
export function installRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

/** Whether `path` is `dir` or inside it. */
export function within(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith(sep) ? dir : `${dir}${sep}`);
}

const depth = (path: string): number => path.split(sep).filter(Boolean).length;

/** The user's id, or undefined where there is none (Windows). */
const uid = (): number | undefined => (typeof process.getuid === 'function' ? process.getuid() : undefined);

/** hoop's own directories for `env`: every place the CLI could use for its configuration, state and runtime files. */
export function hoopDirectories(env: NodeJS.ProcessEnv, cwd: string): { made: string[]; other: string[] } {
  const home = env.HOME?.trim() || homedir();
  const plain = { HOME: home };
  const made = [configDir(env, cwd), configDir(plain, cwd), stateDir(env), stateDir(plain)];
  const other: string[] = [];
  const id = uid() ?? 'user';
  for (const base of [env.XDG_RUNTIME_DIR, uid() !== undefined ? `/run/user/${id}` : undefined]) if (base && isAbsolute(base)) other.push(join(base, 'hoop'));
  for (const t of new Set([tmpdir(), '/tmp', env.TMPDIR].filter((t): t is string => Boolean(t && isAbsolute(t))))) other.push(join(t, `hoop-${id}`));
  for (const [k, v] of Object.entries(env)) {
    if (!v || !isAbsolute(v) || !k.startsWith('HOOP_')) continue;
    if (k.endsWith('_DIR') || k === 'HOOP_DEMO_REVIEWER') other.push(v);
  }
  return { made: [...new Set(made)], other };
}

/** Token files hoop would read on its own: named by the environment, by a login (a workload's), a Kubernetes service account's. */
function tokenFiles(env: NodeJS.ProcessEnv, cwd: string): string[] {
  const files: string[] = [...KUBERNETES_TOKEN_FILES];
  for (const [k, v] of Object.entries(env)) {
    if (!v) continue;
    if ((k.startsWith('HOOP_') && k.endsWith('_FILE') && k !== 'HOOP_CA_FILE') || k === 'PGPASSFILE' || k === 'PGSERVICEFILE') files.push(resolve(cwd, v));
  }
  // A workload login names where its token is read: every profile's, in every config directory.
  for (const dir of hoopDirectories(env, cwd).made) {
    try {
      const profiles = (JSON.parse(readFileSync(join(dir, 'profiles.json'), 'utf8')) as { profiles?: Record<string, { workload?: { path?: unknown } }> }).profiles ?? {};
      for (const p of Object.values(profiles)) if (typeof p.workload?.path === 'string') files.push(p.workload.path);
    } catch {
      /* no profiles there */
    }
  }
  return files;
}

/** The path of the D-Bus session bus, when it is a file (an abstract socket has none). */
export function sessionBusPath(env: NodeJS.ProcessEnv): string | undefined {
  return /(?:^|;)unix:path=([^,;]+)/.exec(env.DBUS_SESSION_BUS_ADDRESS ?? '')?.[1];
}

function kindOf(path: string): { exists: boolean; dir: boolean } {
  try {
    return { exists: true, dir: statSync(path).isDirectory() };
  } catch {
    return { exists: false, dir: false };
  }
}

/**
 * The sandbox's mounts for a run (see the module documentation): existing paths only, each once
 * (the strongest kind wins: hidden, read-only, shared, private), outer first. Makes hoop's own
 * configuration and state directories (mode 0700) where they are missing, so that they are hidden.
 */
export function sandboxMounts(i: SandboxInputs): Mount[] {
  const home = i.env.HOME?.trim() || homedir();
  const inHome = (rel: string): string => join(home, rel);
  const wanted = new Map<string, MountKind>();
  const rank: Record<MountKind, number> = { private: 0, shared: 1, 'read-only': 2, hidden: 3 };
  const want = (path: string | undefined, kind: MountKind): void => {
    if (!path || !isAbsolute(path)) return;
    const p = resolve(path);
    const had = wanted.get(p);
    if (had === undefined || rank[kind] > rank[had]) wanted.set(p, kind);
  };

  // Private: where the person's processes meet.
  for (const p of ['/tmp', '/var/tmp', '/dev/shm', i.env.XDG_RUNTIME_DIR, uid() !== undefined ? `/run/user/${uid()}` : undefined]) want(p, 'private');

  // Hidden: credentials.
  const dirs = hoopDirectories(i.env, i.cwd);
  for (const d of dirs.made) {
    if (!existsSync(d)) mkdirSync(d, { recursive: true, mode: 0o700 });
    want(d, 'hidden');
  }
  for (const d of dirs.other) want(d, 'hidden');
  for (const f of [...tokenFiles(i.env, i.cwd), ...(i.credentialFiles ?? [])]) want(f, 'hidden');
  for (const f of ['.pgpass', '.pg_service.conf', '.Xauthority', ...KEYRING_FILES, ...BROWSER_PROFILES]) want(inHome(f), 'hidden');
  want(i.env.XAUTHORITY, 'hidden');
  want(sessionBusPath(i.env), 'hidden');
  for (const s of DAEMON_SOCKETS) want(s, 'hidden');
  for (const p of i.hide ?? []) want(resolve(i.cwd, p), 'hidden');

  // Read-only: what runs as the person later. The working directory is the command's to change,
  // unless it is the home directory (or above it), where the person's own startup files live.
  const project = within(home, i.cwd) ? undefined : i.cwd;
  const outsideProject = (p: string): boolean => project === undefined || !within(p, project);
  for (const d of (i.env.PATH ?? '').split(delimiter)) if (isAbsolute(d) && outsideProject(d)) want(d, 'read-only');
  const install = installRoot();
  if (!within(i.cwd, install)) want(install, 'read-only');
  for (const f of STARTUP_FILES) want(inHome(f), 'read-only');
  for (const p of i.readOnly ?? []) want(resolve(i.cwd, p), 'read-only');

  // Shared: the command's own places, and what the person shares.
  want(i.cwd, 'shared');
  want(i.runDir, 'shared');
  for (const p of i.share ?? []) want(resolve(i.cwd, p), 'shared');
  if (i.sshAgent) want(i.env.SSH_AUTH_SOCK, 'shared');

  const mounts: Mount[] = [];
  for (const [path, kind] of wanted) {
    const k = kindOf(path);
    if (!k.exists || (kind === 'private' && !k.dir)) continue;
    mounts.push({ path, kind, dir: k.dir });
  }
  // Outer first; at the same depth, a stable order.
  return mounts.sort((a, b) => depth(a.path) - depth(b.path) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * The bubblewrap arguments that run a command as the person's other processes run, but in mount,
 * PID and IPC namespaces of its own with `mounts` applied (`empty`: an empty file bound over each
 * hidden file) and the seccomp program on file descriptor `seccompFd`. The command follows them,
 * after `--`.
 */
export function bwrapArguments(mounts: readonly Mount[], o: { empty: string; cwd: string; seccompFd?: number }): string[] {
  const args = ['--bind', '/', '/', '--dev-bind', '/dev', '/dev', '--proc', '/proc', '--unshare-pid', '--unshare-ipc', '--die-with-parent'];
  for (const m of mounts) {
    if (m.kind === 'private' || (m.kind === 'hidden' && m.dir)) args.push('--tmpfs', m.path);
    else if (m.kind === 'hidden') args.push('--ro-bind', o.empty, m.path);
    else if (m.kind === 'read-only') args.push('--ro-bind', m.path, m.path);
    else args.push('--bind', m.path, m.path);
  }
  if (o.seccompFd !== undefined) args.push('--seccomp', String(o.seccompFd));
  args.push('--chdir', o.cwd);
  return args;
}
