/**
 * What the command `hoop run` contains sees of the person's machine (./containment.ts decides
 * whether it is contained at all; `--unshare-net` below gives it a network of its own, ./port-bridge.ts its ports). It reads
 * the person's files as they are, and writes only its working directory. Five classes of paths:
 *
 * - **Read-only**: everything, to begin with. Whatever runs as the person later (startup files,
 *   the programs on `PATH` and what they load, hoop itself, other tools' configuration) is out of
 *   the command's reach to change.
 * - **Layered** (a run through the gate, ./gate.ts): the working directory and what the person
 *   shares (`--share`) are each the lower layer of an overlay whose upper layer is the run's own
 *   (./layers.ts): the command reads and writes them as usual, and nothing it writes reaches the
 *   person's tree but through the gate when it ends. A place inside another is the outer one's.
 * - **Writable**: the run's own directory (its ports' sockets and certificates), the directory of
 *   `--socket`, the SSH agent's socket with `--ssh-agent`, and (with `--apply live`) the working
 *   directory and what the person shares. A place that would give the command the person's home
 *   or more is refused.
 * - **Private** (empty, its own, gone at the end): `/tmp`, `/var/tmp`, `/dev/shm`, the session's
 *   runtime directory and the terminal multiplexers' socket directories, where the person's
 *   other processes meet (a tmux or screen server, the session bus and the keychain behind it,
 *   `systemd --user`, an SSH agent, Wayland, X11); and the home's caches (`~/.cache`, `~/.npm`),
 *   so that package managers work without leaving anything for the person's next install.
 * - **Hidden** (an empty directory, or an empty file): credentials that act as the person or make
 *   new ones: hoop's own directories wherever the environment may put them (made first, so that
 *   one made during the run is hidden too), the token files hoop reads, libpq's password and
 *   service files, keyrings, browsers' profiles (the identity provider's session), X11 cookies,
 *   Kerberos' credential cache and the container daemons' sockets.
 * - **Read-only within a writable place**: what the command's work would have run as the person
 *   without being looked at: every repository's controls and what git's configuration runs from
 *   there, and `.hoop.yaml` (the next run's connections), as ./tree-controls.ts finds them; and
 *   `--read-only` paths.
 *
 * Every path is taken as its real path (symbolic links resolved), with its identity (device and
 * inode), and the mounts apply outer first, so a path inside another is placed after it. What is
 * bound is bound by descriptor, checked against that identity (./descriptors.ts).
 *
 * @see https://github.com/containers/bubblewrap/blob/main/bwrap.xml
 * @see https://specifications.freedesktop.org/basedir-spec/latest/
 */
import { closeSync, type Dirent, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, realpathSync, statSync } from 'node:fs';
import { homedir, tmpdir, userInfo } from 'node:os';
import { delimiter, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configDir, stateDir } from '../auth/paths.js';
import { KUBERNETES_TOKEN_FILES } from '../auth/workload.js';
import { ErrorCode, HoopError } from '../errors.js';
import { type TreePlaces, within } from '../tree-file.js';
import { type FileId, fileIdOf, type Pinned, pinPath } from './descriptors.js';
import { layersRoot } from './layers.js';
import type { TreeControls } from './tree-controls.js';

/** How a path appears to the contained command. */
export type MountKind = 'writable' | 'layer' | 'private' | 'hidden' | 'read-only' | 'replaced' | 'link';

/** One path of the sandbox. */
export interface Mount {
  path: string;
  kind: MountKind;
  /** Whether it is a directory (a hidden file gets an empty file, a hidden directory an empty one). */
  dir: boolean;
  /** For `replaced`: the file put there; for `link`: where the symbolic link points. */
  source?: string;
  /** What stood at `path` when the layout was worked out: what a bind of it must still find. */
  id?: FileId;
  /** For `layer`: which of the run's layers it is (./layers.ts), in the order of the places. */
  layer?: number;
}

/** What {@link sandboxMounts} is worked out from. */
export interface SandboxInputs {
  /** The person's environment, as `hoop run` received it. */
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** The run's own directory (its ports' sockets and certificates). */
  runDir: string;
  /** The command's program, resolved: visible wherever it is. */
  programs?: readonly string[];
  /** Files hoop read this run's credentials from (`--token-file`). */
  credentialFiles?: readonly string[];
  /** The person's own additions: `--hide`, `--read-only`, `--share`. */
  hide?: readonly string[];
  readOnly?: readonly string[];
  share?: readonly string[];
  /** Give the command layers of its own over its places (the working directory, `share`) rather than the places themselves (`--apply live`). */
  layered?: boolean;
  /** A directory the run's ports are served in as unix sockets (`--socket`): writable, never layered. */
  sockets?: string;
  /** Share the person's SSH agent (`--ssh-agent`): its socket is bound back. */
  sshAgent?: boolean;
  /** A `hosts` file put over the machine's: its own, and the gateway's name on the sandbox's loopback (./port-bridge.ts). */
  hosts?: string;
  /** What git or hoop would act on in the writable places (./tree-controls.ts). */
  controls?: TreeControls;
}

/** Browsers' profiles, under a home directory: cookies hold the identity provider's session. */
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

/** Credential stores under a home directory: keyrings, libpq's passwords, X11 cookies. */
const HOME_SECRETS = ['.local/share/keyrings', '.local/share/kwalletd', '.password-store', '.gnupg', '.pgpass', '.pg_service.conf', '.Xauthority'];

/** Sockets that hand out the person's credentials or run anything for whoever asks. */
const SYSTEM_SOCKETS = ['/var/run/docker.sock', '/run/docker.sock', '/run/podman/podman.sock', '/run/containerd/containerd.sock', '/run/.heim_org.h5l.kcm-socket', '/var/lib/sss/pipes/kcm/socket'];

/** Terminal multiplexers' socket directories outside /tmp. */
const MULTIPLEXER_DIRS = ['/run/screen', '/var/run/screen'];

/**
 * What runs as the person later, under a home directory: shells' startup files, the session's
 * environment and autostart, user services, tools' configuration that names programs (git, npm,
 * ssh) and the home's own programs. Read-only even where a writable place holds them (a
 * dotfiles repository they link into).
 */
const RUNS_LATER = [
  '.profile',
  '.bashrc',
  '.bash_profile',
  '.bash_login',
  '.bash_logout',
  '.zshrc',
  '.zshenv',
  '.zprofile',
  '.zlogin',
  '.zlogout',
  '.kshrc',
  '.mkshrc',
  '.cshrc',
  '.tcshrc',
  '.inputrc',
  '.pam_environment',
  '.xprofile',
  '.xsessionrc',
  '.xinitrc',
  '.envrc',
  '.gitconfig',
  '.npmrc',
  '.yarnrc',
  '.yarnrc.yml',
  '.ssh',
  '.local/bin',
  'bin',
  '.config/fish',
  '.config/git',
  '.config/systemd',
  '.config/autostart',
  '.config/environment.d',
  '.config/direnv',
];

/** Caches under a home directory that package managers write: the command's own, emptied. */
const HOME_CACHES = ['.cache', '.npm'];

/** hoop's own installation: the package root above `dist/agent/`. */
export function installRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

export { within };

const depth = (path: string): number => path.split(sep).filter(Boolean).length;

/** The user's id, or undefined where there is none (Windows). */
const uid = (): number | undefined => (typeof process.getuid === 'function' ? process.getuid() : undefined);

/** `path` with every symbolic link resolved; undefined when it does not exist. */
function real(path: string | undefined): string | undefined {
  if (!path || !isAbsolute(path)) return undefined;
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

/** The person's home directories: as the environment names it, and as the password database does. */
export function homes(env: NodeJS.ProcessEnv): string[] {
  let own: string | undefined;
  try {
    own = userInfo().homedir;
  } catch {
    own = undefined;
  }
  return [...new Set([env.HOME?.trim() || homedir(), own].filter((h): h is string => Boolean(h && isAbsolute(h))))];
}

/** hoop's own directories for `env`: the ones it makes (configuration, state, named ones) and the others it could use (runtime). */
export function hoopDirectories(env: NodeJS.ProcessEnv, cwd: string): { made: string[]; other: string[] } {
  const made = [configDir(env, cwd), stateDir(env)];
  for (const home of homes(env)) made.push(configDir({ HOME: home }, cwd), stateDir({ HOME: home }));
  for (const [k, v] of Object.entries(env)) if (v && isAbsolute(v) && k.startsWith('HOOP_') && (k.endsWith('_DIR') || k === 'HOOP_DEMO_REVIEWER')) made.push(v);
  const other: string[] = [];
  const id = uid() ?? 'user';
  for (const base of [env.XDG_RUNTIME_DIR, uid() !== undefined ? `/run/user/${id}` : undefined]) if (base && isAbsolute(base)) other.push(join(base, 'hoop'));
  for (const t of [tmpdir(), '/tmp', env.TMPDIR]) if (t && isAbsolute(t)) other.push(join(t, `hoop-${id}`));
  return { made: [...new Set(made)], other: [...new Set(other)] };
}

/** Token files hoop would read on its own: named by the environment, by a login (a workload's), a Kubernetes service account's. */
function tokenFiles(env: NodeJS.ProcessEnv, cwd: string, configDirs: readonly string[]): string[] {
  const files: string[] = [...KUBERNETES_TOKEN_FILES];
  for (const [k, v] of Object.entries(env)) {
    if (!v) continue;
    if ((k.startsWith('HOOP_') && k.endsWith('_FILE') && k !== 'HOOP_CA_FILE') || k === 'PGPASSFILE' || k === 'PGSERVICEFILE') files.push(resolve(cwd, v));
  }
  // A workload login names where its token is read: every profile's, in every config directory.
  for (const dir of configDirs) {
    try {
      const profiles = (JSON.parse(readFileSync(join(dir, 'profiles.json'), 'utf8')) as { profiles?: Record<string, { workload?: { path?: unknown } }> }).profiles ?? {};
      for (const p of Object.values(profiles)) if (typeof p.workload?.path === 'string') files.push(p.workload.path);
    } catch {
      /* no profiles there */
    }
  }
  return files;
}

/** Where a file the person names in working tree `cwd` is judged (../tree-file.ts): never in hoop's directories or token files. */
export function treePlaces(env: NodeJS.ProcessEnv, cwd: string): TreePlaces {
  const dirs = hoopDirectories(env, cwd);
  return { tree: resolve(cwd), private: [...dirs.made, ...dirs.other, ...tokenFiles(env, cwd, dirs.made)] };
}

/** The path of the D-Bus session bus, when it is a file (an abstract socket has none). */
export function sessionBusPath(env: NodeJS.ProcessEnv): string | undefined {
  return /(?:^|;)unix:path=([^,;]+)/.exec(env.DBUS_SESSION_BUS_ADDRESS ?? '')?.[1];
}

/** Whether `path` is a directory; undefined when it is gone (the home changes while a run's mounts are worked out). */
function isDirectory(path: string): boolean | undefined {
  try {
    return statSync(path).isDirectory();
  } catch {
    return undefined;
  }
}

/** Entries not looked into for sockets: large trees no socket lives in. */
const NOT_LOOKED_INTO = new Set(['node_modules', '.git', '.cargo', '.rustup', '.m2', '.gradle', 'Trash']);

/**
 * Unix sockets under `dir` (a read-only mount still lets a process connect to one: an SSH
 * control master, a tmux server started with `-S`, Docker Desktop's), to `maxDepth` levels and at
 * most `budget` entries, skipping `skip` and trees no socket lives in.
 */
export function socketsUnder(dir: string, skip: readonly string[], maxDepth = 5, budget = 50_000): string[] {
  const found: string[] = [];
  const skipped = skip.filter((s) => within(s, dir) && s !== dir);
  const walk = (d: string, level: number): void => {
    let entries: Dirent[];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (--budget < 0) return;
      const path = join(d, e.name);
      if (e.isSocket()) found.push(path);
      else if (e.isDirectory() && level < maxDepth && !NOT_LOOKED_INTO.has(e.name) && !skipped.some((s) => within(path, s))) walk(path, level + 1);
    }
  };
  walk(dir, 1);
  return found;
}

/** Private keys in an SSH directory (the files that begin as one): reusable anywhere the person's key is trusted. */
export function privateKeysIn(sshDir: string): string[] {
  const keys: string[] = [];
  let entries: Dirent[];
  try {
    entries = readdirSync(sshDir, { withFileTypes: true });
  } catch {
    return keys;
  }
  for (const e of entries) {
    if (!e.isFile()) continue;
    const path = join(sshDir, e.name);
    let head = '';
    try {
      const fd = openSync(path, 'r');
      try {
        const b = Buffer.alloc(64);
        head = b.subarray(0, readSync(fd, b, 0, 64, 0)).toString('latin1');
      } finally {
        closeSync(fd);
      }
    } catch {
      continue;
    }
    if (/^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|^PuTTY-User-Key-File/.test(head)) keys.push(path);
  }
  return keys;
}

/** The symbolic links directly in `dir`, as `link` mounts. */
function linksIn(dir: string): Mount[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isSymbolicLink())
      .map((e) => ({ path: join(dir, e.name), kind: 'link' as const, dir: false, source: readlinkSync(join(dir, e.name)) }));
  } catch {
    return [];
  }
}

/**
 * Why the command may not write `place` (the working directory or a shared path), or undefined:
 * the person's home or a directory above it (their startup files), a private area itself (its
 * meeting places), or a hidden path.
 */
function placeProblem(place: string, homeDirs: readonly string[], privates: readonly string[], hidden: readonly string[], runsLater: readonly string[]): string | undefined {
  const home = homeDirs.find((h) => within(h, place));
  if (home) return `it holds your home directory ${home}, whose startup files and tools run as you later`;
  if (privates.includes(place)) return `${place} is where your other processes meet (their sockets); the command gets one of its own`;
  const secret = hidden.find((h) => within(place, h));
  if (secret) return `it is inside ${secret}, which holds credentials`;
  const later = runsLater.find((l) => within(place, l));
  if (later) return `it is ${later === place ? '' : 'inside '}${later}, which runs as you later (a startup file, a program directory on PATH or a tool's configuration)`;
  return undefined;
}

/** Why a place cannot be layered: it holds where its layer is kept (an overlay's layers may not overlap). */
function layerProblem(place: string, env: NodeJS.ProcessEnv): string | undefined {
  const store = layersRoot(env);
  const inside = within(real(store) ?? store, place) || within(real(dirname(store)) ?? dirname(store), place);
  return inside ? `it holds hoop's own ${dirname(store)}, where the run keeps what the command writes (share a directory inside it instead, or run with --apply live)` : undefined;
}

/**
 * The sandbox's mounts for a run (see the module documentation): real paths of existing files
 * only, each once (the strongest kind wins), outer first. Makes hoop's own configuration and
 * state directories (mode 0700) where they are missing, so that they are hidden.
 * @throws HoopError USAGE when the working directory or a shared path may not be written
 */
export function sandboxMounts(i: SandboxInputs): Mount[] {
  const homeDirs = homes(i.env).map((h) => real(h) ?? h);
  const wanted = new Map<string, MountKind>();
  const rank: Record<MountKind, number> = { writable: 0, layer: 0, private: 1, 'read-only': 2, replaced: 3, link: 3, hidden: 4 };
  // What the command may write is opened once, and known by that from then on: what is judged is what is bound.
  const pins = new Map<string, Pinned>();
  const pin = (path: string | undefined): string | undefined => {
    const found = pinPath(real(path) ?? '');
    if (found) pins.set(found.path, found);
    return found?.path;
  };
  const want = (path: string | undefined, kind: MountKind): void => {
    const p = path !== undefined && pins.has(path) ? path : kind === 'writable' || kind === 'layer' ? pin(path) : real(path);
    if (p === undefined) return;
    const had = wanted.get(p);
    if (had === undefined || rank[kind] > rank[had]) wanted.set(p, kind);
  };

  // Private: where the person's processes meet, and the caches package managers write.
  const privates = [
    '/tmp',
    '/var/tmp',
    '/dev/shm',
    i.env.XDG_RUNTIME_DIR,
    uid() !== undefined ? `/run/user/${uid()}` : undefined,
    '/run',
    ...MULTIPLEXER_DIRS,
    i.env.TMUX_TMPDIR,
    i.env.SCREENDIR,
    ...homeDirs.flatMap((h) => HOME_CACHES.map((c) => join(h, c))),
  ]
    .map(real)
    .filter((p): p is string => p !== undefined && isDirectory(p) === true);
  for (const p of privates) want(p, 'private');

  // Hidden: credentials.
  const dirs = hoopDirectories(i.env, i.cwd);
  for (const d of dirs.made) {
    if (!existsSync(d)) mkdirSync(d, { recursive: true, mode: 0o700 });
    want(d, 'hidden');
  }
  for (const d of dirs.other) want(d, 'hidden');
  for (const f of [...tokenFiles(i.env, i.cwd, dirs.made), ...(i.credentialFiles ?? [])]) want(f, 'hidden');
  for (const h of homeDirs) for (const f of [...HOME_SECRETS, ...BROWSER_PROFILES]) want(join(h, f), 'hidden');
  want(i.env.XAUTHORITY, 'hidden');
  want(sessionBusPath(i.env), 'hidden');
  for (const s of SYSTEM_SOCKETS) want(s, 'hidden');
  for (const p of i.hide ?? []) want(resolve(i.cwd, p), 'hidden');
  for (const h of homeDirs) for (const key of privateKeysIn(join(h, '.ssh'))) want(key, 'hidden');
  const hidden = [...wanted].filter(([, k]) => k === 'hidden').map(([p]) => p);
  // Sockets in the home, which a read-only mount leaves open to connect to.
  for (const h of homeDirs) for (const socket of socketsUnder(h, [...hidden, ...privates])) want(socket, 'hidden');
  // What runs as the person later: read-only wherever it really is.
  const runsLater = [...homeDirs.flatMap((h) => RUNS_LATER.map((f) => join(h, f))), ...(i.env.PATH ?? '').split(delimiter).filter((d) => isAbsolute(d))]
    .map(real)
    .filter((p): p is string => p !== undefined);

  // Layered (or with --apply live, writable): the command's own places, and what the person shares; the directory of --socket, writable.
  const checked = (place: string): string => {
    const p = pin(place);
    if (p === undefined) throw new HoopError(ErrorCode.USAGE, `hoop run cannot share ${place}: it does not exist`);
    const problem = placeProblem(p, homeDirs, privates, hidden, runsLater) ?? (i.layered ? layerProblem(p, i.env) : undefined);
    if (problem) {
      throw new HoopError(ErrorCode.USAGE, `hoop run cannot let the command write ${place}: ${problem}`, { hint: 'run it in a project directory, and share only what the command must change' });
    }
    for (const later of runsLater) if (within(later, p)) want(later, 'read-only');
    return p;
  };
  const places = [i.cwd, ...(i.share ?? []).map((p) => resolve(i.cwd, p))].map(checked);
  // Layered, a place inside another is that one's (one overlay, one gate).
  for (const p of places) if (!i.layered || !places.some((other) => other !== p && within(p, other))) want(p, i.layered ? 'layer' : 'writable');
  if (i.sockets) want(checked(resolve(i.cwd, i.sockets)), 'writable');
  // What git or hoop would act on in them (./tree-controls.ts): read-only; each git directory a mount point of its own.
  for (const d of i.controls?.gitDirs ?? []) {
    const p = pin(d);
    if (p !== undefined && !places.some((place) => within(p, place)))
      throw new HoopError(ErrorCode.CONFIG_INVALID, `hoop run did not start the command: ${d} changed while the run began (it is not in ${places.join(', ')} now)`);
    want(p, 'writable');
  }
  for (const c of i.controls?.readOnly ?? []) want(c, 'read-only');
  // What the sandbox runs (hoop's own first process, Node, the command, the programs on PATH) stays
  // visible, read-only, where a private area would hide it (a checkout or a tool under /tmp), but
  // inside a place of the command's, which shows it already (hoop run in a checkout of hoop under /tmp).
  const programs = [installRoot(), dirname(dirname(real(process.execPath) ?? process.execPath)), ...(i.programs ?? []), ...(i.env.PATH ?? '').split(delimiter).filter((d) => isAbsolute(d))];
  for (const program of programs.map(real)) if (program && privates.some((p) => within(program, p)) && !places.some((place) => within(program, place))) want(program, 'read-only');
  want(i.runDir, 'writable');
  if (i.sshAgent) want(i.env.SSH_AUTH_SOCK, 'writable');
  for (const p of i.readOnly ?? []) want(resolve(i.cwd, p), 'read-only');

  const mounts: Mount[] = [];
  let layers = 0;
  for (const [path, kind] of wanted) {
    const bound = kind === 'writable' || kind === 'layer' || kind === 'read-only';
    const pinned = pins.get(path);
    const id = bound ? { id: pinned?.id ?? fileIdOf(path) } : {};
    const dir = pinned?.dir ?? isDirectory(path);
    // A file or socket to hide that went away since it was found (another program ended) has nothing left to hide.
    if (dir === undefined && kind === 'hidden') continue;
    mounts.push({ path, kind, dir: dir ?? statSync(path).isDirectory(), ...id, ...(kind === 'layer' ? { layer: layers++ } : {}) });
  }
  // A private /run keeps the symbolic links at its top (NixOS's /run/current-system holds its programs).
  if (wanted.get('/run') === 'private') for (const link of linksIn('/run')) mounts.push(link);
  const hosts = real('/etc/hosts');
  if (i.hosts && hosts) mounts.push({ path: hosts, kind: 'replaced', dir: false, source: i.hosts });
  // Outer first; at the same depth, a stable order.
  return mounts.sort((a, b) => depth(a.path) - depth(b.path) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * What every contained command runs in: the person's files read-only, a `/dev` of its own (no
 * other terminal of the person's), its own `/proc`, and user, PID, IPC and network namespaces,
 * with no capability left (root included: bubblewrap keeps root's unless told), ended with
 * `hoop run`. The command's launcher is the PID namespace's first process (`--as-pid-1`), which no
 * process of the run can stop or kill, and the only one with a capability (`CAP_SETPCAP`, in the
 * run's own user namespace, which it uses for nothing): the command starts without it for good
 * (./containment.ts's `SETPRIV_DROP`), so the kernel lets no process of the run trace the
 * launcher, reach its memory or take its descriptors. A user namespace the command makes inside has capabilities of its own, but over
 * mounts it inherited locked: none can be undone (user_namespaces(7), "Restrictions on mount
 * namespaces").
 * @see https://man7.org/linux/man-pages/man7/user_namespaces.7.html
 */
export const BWRAP_NAMESPACES: readonly string[] = [
  '--ro-bind',
  '/',
  '/',
  '--dev',
  '/dev',
  '--proc',
  '/proc',
  '--unshare-user',
  '--cap-drop',
  'ALL',
  '--cap-add',
  'CAP_SETPCAP',
  '--unshare-pid',
  '--as-pid-1',
  '--unshare-ipc',
  '--unshare-net',
  '--die-with-parent',
];

/**
 * The bubblewrap arguments that run a command read-only over the person's files, in mount, PID,
 * IPC and network namespaces of its own, as the person's `uid` and `gid`, with `mounts` applied:
 * each mount with a source (a place, a file put over another, the empty file over a hidden one)
 * bound by the descriptor `fd` gives it in the child (./descriptors.ts); `seccomp` is the
 * descriptor of the seccomp program. The command follows them, after `--`.
 */
export function bwrapArguments(mounts: readonly Mount[], o: { cwd: string; uid: number; gid: number; fd: (m: Mount) => number; seccomp?: number }): string[] {
  const args = [...BWRAP_NAMESPACES, '--uid', String(o.uid), '--gid', String(o.gid)];
  for (const m of mounts) {
    if (m.kind === 'link') args.push('--symlink', m.source!, m.path);
    else if (m.kind === 'private' || (m.kind === 'hidden' && m.dir)) args.push('--tmpfs', m.path);
    else if (m.kind === 'writable' || m.kind === 'layer') args.push('--bind-fd', String(o.fd(m)), m.path);
    else args.push('--ro-bind-fd', String(o.fd(m)), m.path);
  }
  if (o.seccomp !== undefined) args.push('--seccomp', String(o.seccomp));
  args.push('--chdir', o.cwd);
  return args;
}
