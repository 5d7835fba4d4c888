/**
 * Keeping what would let an agent act as its person out of the agent's reach: whether the command
 * `hoop run` wraps is contained, and the environment it gets. What it sees of the person's files
 * when contained is ./sandbox.ts's to say; where it may connect, ./egress-proxy.ts's.
 *
 * - **Environment** ({@link agentEnvironment}): every `HOOP_*` variable but a few harmless ones,
 *   the CI platforms' token requests (with which a job's identity could be asked for anew) and
 *   libpq's and `DATABASE_URL*` are dropped; contained, so are the addresses of the person's
 *   session services, which it cannot reach (D-Bus, X11, Wayland, tmux, screen, the SSH agent
 *   unless shared, Docker, Kerberos' cache). The run's own are set after.
 * - **Containment** ({@link detectContainment}): on Linux with bubblewrap, for root and for any
 *   user who may make user namespaces: user, mount, PID, IPC and network namespaces of its own
 *   with no capability (root's included), a seccomp filter (./seccomp.ts) that refuses the kernel
 *   keyrings and `TIOCSTI`, and death with `hoop run`. Its network is its own loopback, where the
 *   run's ports, the gateway and the egress proxy are bridged in (./port-bridge.ts): nothing has
 *   to enter its namespaces from outside, so no privilege is needed to set them up.
 * - Where either is missing or cannot make namespaces, the command runs as the person's other
 *   processes do (`isolation: none`): `hoop run` says so, the run records it, and the policy can
 *   refuse such runs (`runs.requireIsolation`, or rules with `isolated: false`).
 *
 * @see https://github.com/containers/bubblewrap/blob/main/bwrap.xml
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { ErrorCode, HoopError } from '../errors.js';
import { layerLaunch } from './layers.js';
import { BWRAP_NAMESPACES } from './sandbox.js';

/** How `hoop run` contains its command: `auto` (bubblewrap where it works, else none, said on stderr), `bwrap` (or fail), `none`. */
export type IsolationMode = 'auto' | 'bwrap' | 'none';

/** The containment a run gets: bubblewrap, started through `unshare` (./layers.ts), its command through `setpriv` ({@link SETPRIV_DROP}), or none and why. */
export type Containment = { kind: 'bwrap'; bwrap: string; unshare: string; setpriv: string } | { kind: 'none'; why: string };

/**
 * `setpriv`'s arguments that start the command with no capability it could ever hold again (the
 * bounding, inheritable and ambient sets emptied, root's included): the sandbox's first process
 * keeps the one it was given (./sandbox.ts), which the kernel then requires of any process that
 * would trace it, read or write its memory or take its descriptors.
 *
 * @see https://man7.org/linux/man-pages/man1/setpriv.1.html
 * @see https://man7.org/linux/man-pages/man2/ptrace.2.html ("Ptrace access mode checking")
 */
export const SETPRIV_DROP: readonly string[] = ['--bounding-set', '-all', '--inh-caps', '-all', '--ambient-caps', '-all', '--'];

/**
 * A program as the variable `named` says (taken as it is), else the first on `PATH` or in the
 * system's directories (where packages put `bwrap`); undefined when none is.
 */
export function findProgram(name: string, env: NodeJS.ProcessEnv, named?: string): string | undefined {
  if (named?.trim()) return named.trim();
  return [...(env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/sbin', '/usr/bin', '/usr/local/bin', '/sbin', '/bin'].map((d) => join(d, name)).find((f) => existsSync(f));
}

/** `HOOP_*` variables an agent keeps: how loud hoop is, and whether it keeps records. */
const KEPT_HOOP = new Set(['HOOP_LOG_LEVEL', 'HOOP_DEBUG', 'HOOP_CLIENT_RECORD']);

/** CI platforms' variables that ask for a job's identity token (or hold one). */
const CI_TOKEN_PREFIXES = ['ACTIONS_ID_TOKEN_REQUEST_', 'ACTIONS_RUNTIME_TOKEN', 'CIRCLE_OIDC_TOKEN', 'BUILDKITE_AGENT_ACCESS_TOKEN'];

/** Addresses of the person's session services, whose sockets a contained command does not see. */
const SESSION_SERVICES = [
  'DISPLAY',
  'XAUTHORITY',
  'WAYLAND_DISPLAY',
  'WAYLAND_SOCKET',
  'TMUX',
  'TMUX_PANE',
  'TMUX_TMPDIR',
  'STY',
  'SCREENDIR',
  'SSH_AUTH_SOCK',
  'SSH_AGENT_PID',
  'GPG_AGENT_INFO',
  'GNOME_KEYRING_CONTROL',
  'VSCODE_GIT_IPC_HANDLE',
  'DOCKER_HOST',
  'KRB5CCNAME',
  'KITTY_LISTEN_ON',
  'WEZTERM_UNIX_SOCKET',
];

/**
 * Whether an inherited variable stays out of the agent's environment: hoop's own (credentials,
 * their files, the config and demo directories), a CI platform's token request, the keychain's
 * bus, and what could point a client around the gateway (libpq's `PG*`, `DATABASE_URL*`); when
 * `contained` (and the SSH agent is not shared), the session services' addresses too.
 */
export function withheldVariable(name: string, contained = false, sshAgent = false): boolean {
  if (name.startsWith('HOOP_')) return !KEPT_HOOP.has(name);
  if (CI_TOKEN_PREFIXES.some((p) => name.startsWith(p))) return true;
  if (name === 'DBUS_SESSION_BUS_ADDRESS' || name.startsWith('PG') || name.startsWith('DATABASE_URL')) return true;
  if (!contained) return false;
  if (sshAgent && (name === 'SSH_AUTH_SOCK' || name === 'SSH_AGENT_PID')) return false;
  return SESSION_SERVICES.includes(name) || name.startsWith('VSCODE_IPC_HOOK');
}

/** The agent's environment: `inherited` without what {@link withheldVariable} withholds, then `run`'s own variables. */
export function agentEnvironment(inherited: NodeJS.ProcessEnv, run: NodeJS.ProcessEnv, o: { contained?: boolean; sshAgent?: boolean } = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(inherited)) if (!withheldVariable(k, o.contained, o.sshAgent)) env[k] = v;
  return { ...env, ...run };
}

/**
 * The containment `mode` gives on this machine: bubblewrap when it is installed and can make the
 * namespaces (tried once, as the command would be run), else none and why.
 *
 * @throws HoopError USAGE when `mode` is `bwrap` and the command cannot be contained
 */
export function detectContainment(mode: IsolationMode, env: NodeJS.ProcessEnv): Containment {
  if (mode === 'none') return { kind: 'none', why: 'asked for with --isolation none' };
  const fail = (why: string, hint = 'install bubblewrap (apt install bubblewrap), or run with --isolation none'): Containment => {
    if (mode === 'bwrap') throw new HoopError(ErrorCode.USAGE, `hoop run cannot contain the command: ${why}`, { hint });
    return { kind: 'none', why };
  };
  if (process.platform === 'darwin')
    return fail('this is macOS, where hoop run cannot contain a command yet (docs/macos-containment.md says how it will)', 'run it on Linux with bubblewrap, or with --isolation none');
  if (process.platform !== 'linux') return fail(`containment needs Linux namespaces (bubblewrap); this is ${process.platform}`);
  const bwrap = findProgram('bwrap', env, env.HOOP_BWRAP);
  if (!bwrap) return fail('bubblewrap (bwrap) is not installed');
  const unshare = findProgram('unshare', env);
  const setpriv = findProgram('setpriv', env);
  if (!unshare || !setpriv) return fail(`${unshare ? 'setpriv' : 'unshare'} (util-linux) is not installed`, 'install util-linux, or run with --isolation none');
  // By its path: bubblewrap looks a bare name up in this process's PATH, which may hold no cat (a machine with only node on it).
  const cat = findProgram('cat', env) ?? '/bin/cat';
  // As a run starts it (./layers.ts): bubblewrap in a user and mount namespace of the run's own, the command as the person.
  const ids = ['--uid', String(process.getuid?.() ?? 0), '--gid', String(process.getgid?.() ?? 0)];
  const probe = spawnSync(unshare, layerLaunch(undefined, [bwrap, ...BWRAP_NAMESPACES, ...ids, '--', setpriv, ...SETPRIV_DROP, cat, '/proc/self/status']), {
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 5_000,
  });
  if (probe.status !== 0) {
    const said = probe.stderr?.toString('utf8').trim().split('\n')[0];
    return fail(
      `bwrap cannot make the namespaces it needs here${said ? ` (${said})` : ''}`,
      'let users make user namespaces (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu, an AppArmor profile that allows bwrap to), or run with --isolation none',
    );
  }
  // Root's bubblewrap keeps capabilities unless told: a command with any (or one it could get back) could undo its mounts.
  for (const set of ['CapEff', 'CapBnd']) {
    const caps = new RegExp(`^${set}:\\s*([0-9a-f]+)$`, 'm').exec(probe.stdout?.toString('utf8') ?? '')?.[1];
    if (caps === undefined || BigInt(`0x${caps}`) !== 0n) return fail(`bwrap leaves the command capabilities here (${set} ${caps ?? 'unknown'}), with which it could undo its sandbox`);
  }
  return { kind: 'bwrap', bwrap, unshare, setpriv };
}

/**
 * The process a signal for the contained command goes to: bubblewrap's child, the namespace's
 * first process (./sandbox-init.ts, which hands it on), found as `/proc` lists it; undefined
 * while it is not there yet (or after it ended).
 *
 * @see https://man7.org/linux/man-pages/man5/proc_pid_task.5.html (children)
 */
export function containedPid(bwrapPid: number): number | undefined {
  try {
    const first = readFileSync(`/proc/${bwrapPid}/task/${bwrapPid}/children`, 'utf8').trim().split(/\s+/)[0];
    return first ? Number(first) : undefined;
  } catch {
    return undefined;
  }
}
