/**
 * Starts the command `hoop run` wraps: under bubblewrap when the run is contained
 * (./containment.ts, ./sandbox.ts), else as a plain child. Either way it gets exactly the environment given,
 * the working directory, and this process's own stdio where it can (a TTY stays a TTY); signals
 * for it reach the command itself (bubblewrap does not hand them on).
 *
 * @see https://nodejs.org/api/child_process.html#child_processspawncommand-args-options
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, closeSync, lstatSync, openSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { constants as os } from 'node:os';
import { type Duplex, PassThrough, type Readable } from 'node:stream';
import { ErrorCode, HoopError } from '../errors.js';
import { containedPid, type Containment, SETPRIV_DROP } from './containment.js';
import { openChecked } from './descriptors.js';
import { type Layer, layerLaunch } from './layers.js';
import { bwrapArguments, installRoot, type Mount } from './sandbox.js';
import { agentSeccompFilter } from './seccomp.js';

/** How the command's stdio is wired. */
export interface AgentStdio {
  stdin: 'inherit' | 'pipe' | 'ignore';
  stdout: 'inherit' | 'pipe';
  stderr: 'inherit' | 'pipe';
}

/** How the command ended: its exit code, or the signal that ended it, or why it could not start. */
export interface AgentExit {
  exitCode?: number;
  signal?: NodeJS.Signals;
  error?: Error;
}

/** The running command. */
export interface AgentProcess {
  child: ChildProcess;
  /** The command's output where it is piped (not this process's own). */
  stdout: Readable | null;
  stderr: Readable | null;
  /** Resolves once the command (and under bubblewrap, its sandbox) has ended. */
  exited: Promise<AgentExit>;
  /** Whether the command started (contained: its sandbox's first process said so on the life line before it ended). */
  started(): boolean;
  /** Sends `signal` to the command (inside its sandbox when contained). */
  kill(signal: NodeJS.Signals): void;
}

/** How `child` ends. */
function exitOf(child: ChildProcess): Promise<AgentExit> {
  return new Promise((resolve) => {
    child.once('error', (error) => resolve({ error }));
    child.once('close', (code, signal) => resolve(signal ? { signal } : { exitCode: code ?? 1 }));
  });
}

/**
 * The executable `file` names, looked up on `path` as a shell would (a name with a slash is taken
 * relative to `cwd`).
 * @throws HoopError (exit 127) when there is none, (exit 126) when it cannot be run
 */
export function resolveCommand(file: string, path: string | undefined, cwd: string): string {
  const candidates = file.includes('/')
    ? [isAbsolute(file) ? file : resolve(cwd, file)]
    : (path ?? '')
        .split(delimiter)
        .filter(Boolean)
        .map((d) => join(isAbsolute(d) ? d : resolve(cwd, d), file));
  let found: string | undefined;
  for (const c of candidates) {
    try {
      if (!statSync(c).isFile()) continue;
    } catch {
      continue;
    }
    found ??= c;
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      /* the next one on the path may be runnable */
    }
  }
  if (found) throw new HoopError(ErrorCode.USAGE, `cannot run ${file}: permission denied`, { hint: 'check that it is an executable the current user may run', exitCode: 126 });
  throw new HoopError(ErrorCode.USAGE, `cannot run ${file}: command not found`, { hint: 'check the command name and PATH', exitCode: 127 });
}

/** Whether `path` exists (a dangling link included). */
function present(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The sandbox's first process (./sandbox-init.ts), through its launcher. */
const SANDBOX_INIT = join(installRoot(), 'bin', 'hoop-sandbox.js');

/**
 * The descriptors a contained command's launch passes, by number in the child: 3 to 9 for the
 * mount points of its layers (./layers.ts's script opens them there), then the seccomp program,
 * the life line to the sandbox's first process, the command's stderr, and each source bubblewrap binds.
 */
const SECCOMP_FD = 10;
const LIFELINE_FD = 11;
const STDERR_FD = 12;
const FIRST_SOURCE_FD = 13;

/**
 * The descriptor each of `mounts` is bound from, in the child: a layered directory's mount point
 * (opened by ./layers.ts's script), or a source opened here and checked (./descriptors.ts), added
 * to `sources` in their order from {@link FIRST_SOURCE_FD}.
 */
function openSources(mounts: readonly Mount[], layer: Layer | undefined, empty: string, sources: number[]): Map<Mount, number> {
  const fds = new Map<Mount, number>();
  const dirLayers = layer?.meta.places.flatMap((p, n) => (p.dir ? [n] : [])) ?? [];
  for (const m of mounts) {
    if (m.kind === 'layer' && m.dir) fds.set(m, 3 + dirLayers.indexOf(m.layer!));
    else if (m.kind === 'link' || m.kind === 'private' || (m.kind === 'hidden' && m.dir)) continue;
    else {
      const source = m.kind === 'hidden' ? empty : m.kind === 'replaced' ? m.source! : m.kind === 'layer' ? layer!.upper(m.layer!) : m.path;
      sources.push(openChecked(source, m.kind === 'writable' || m.kind === 'read-only' ? m.id : undefined));
      fds.set(m, FIRST_SOURCE_FD + sources.length - 1);
    }
  }
  return fds;
}

/** How often `hoop run` tells its sandbox it still runs (./sandbox-init.ts freezes it when it stops hearing so). */
const LIFE_MS = 250;

/** How many times a sandbox that failed to start, because a place it was to hide went away meanwhile, is tried again. */
const RETRIES = 3;

/** The options of {@link spawnAgent}. */
interface SpawnOptions {
  file: string;
  args: readonly string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  stdio: AgentStdio;
  containment: Containment;
  runDir: string;
  mounts: readonly Mount[];
  layer?: Layer | undefined;
  ports: ReadonlyArray<{ host: string; port: number; socket: string }>;
}

/**
 * Starts `file` (already resolved) with `args`; contained, under bubblewrap with `mounts`
 * (./sandbox.ts) in a user and mount namespace where `layer`'s overlays are mounted first
 * (./layers.ts), each bound source opened and checked by descriptor (./descriptors.ts), in a
 * network namespace of its own, the run's `ports` served inside by the sandbox's first process,
 * which hears from this process through a life line while it runs. Resolves once the command has
 * started or its sandbox has failed; a sandbox that failed because a socket or file it was to hide
 * went away meanwhile (nothing of the command ran) is started again without it, its failure unsaid.
 */
export async function spawnAgent(o: SpawnOptions): Promise<AgentProcess> {
  if (o.containment.kind === 'none') {
    const child = spawn(o.file, o.args, { env: o.env, cwd: o.cwd, stdio: [o.stdio.stdin, o.stdio.stdout, o.stdio.stderr] });
    return { child, stdout: child.stdout, stderr: child.stderr, exited: exitOf(child), started: () => child.pid !== undefined, kill: (signal) => void child.kill(signal) };
  }
  const empty = join(o.runDir, '.hidden');
  writeFileSync(empty, '', { mode: 0o400, flag: 'wx' });
  const filter = agentSeccompFilter();
  if (filter) writeFileSync(join(o.runDir, '.seccomp'), filter, { mode: 0o400, flag: 'wx' });
  // A hidden file or socket gone since the mounts were worked out has nothing left to hide (bubblewrap could not mount over it).
  const presentMounts = (): Mount[] => o.mounts.filter((m) => m.kind !== 'hidden' || m.dir || present(m.path));
  for (let attempt = 1; ; attempt++) {
    const mounts = presentMounts();
    const again = (): boolean => attempt <= RETRIES && presentMounts().length < mounts.length;
    const sandbox = launchSandbox(o, o.containment, mounts, empty, filter !== undefined, again);
    if ((await sandbox.ready) !== 'again') return sandbox.agent;
  }
}

/**
 * One launch of the sandbox over `mounts`: `ready` resolves once the command started, or the
 * sandbox ended before it did and is to be launched `again` (what it said unsaid) or not (said on
 * the command's stderr, where what the launch says goes once the command started).
 */
function launchSandbox(
  o: SpawnOptions,
  tools: Extract<Containment, { kind: 'bwrap' }>,
  mounts: readonly Mount[],
  empty: string,
  seccompFile: boolean,
  again: () => boolean,
): { agent: AgentProcess; ready: Promise<'started' | 'failed' | 'again'> } {
  let seccomp: number | undefined;
  const sources: number[] = [];
  let child: ChildProcess;
  try {
    if (seccompFile) seccomp = openSync(join(o.runDir, '.seccomp'), 'r');
    const fds = openSources(mounts, o.layer, empty, sources);
    const uid = process.getuid?.() ?? 0;
    const gid = process.getgid?.() ?? 0;
    const bwrap = [
      tools.bwrap,
      ...bwrapArguments(mounts, { cwd: o.cwd, uid, gid, fd: (m) => fds.get(m)!, ...(seccomp !== undefined ? { seccomp: SECCOMP_FD } : {}) }),
      '--',
      process.execPath,
      SANDBOX_INIT,
      JSON.stringify({ ports: o.ports, lifeline: LIFELINE_FD, stderr: STDERR_FD, launch: [tools.setpriv, ...SETPRIV_DROP] }),
      o.file,
      ...o.args,
    ];
    // The launch's own stderr is held here; the command's is the one asked for, at STDERR_FD.
    const stderr = o.stdio.stderr === 'inherit' ? 2 : 'pipe';
    child = spawn(tools.unshare, layerLaunch(o.layer, bwrap), {
      env: o.env,
      cwd: o.cwd,
      stdio: [o.stdio.stdin, o.stdio.stdout, 'pipe', ...Array<'ignore'>(7).fill('ignore'), seccomp ?? 'ignore', 'pipe', stderr, ...sources],
    });
  } finally {
    for (const fd of [...sources, ...(seccomp !== undefined ? [seccomp] : [])]) closeSync(fd);
  }
  const pipes = child.stdio as unknown as Array<Duplex | null>;
  const life = pipes[LIFELINE_FD];
  const launchSaid = pipes[2]!;
  const commandErr = pipes[STDERR_FD] ?? null;
  const held: Buffer[] = [];
  let passing = false;
  let started = false;
  let said = '';
  let ready!: (how: 'started' | 'failed' | 'again') => void;
  const readyP = new Promise<'started' | 'failed' | 'again'>((r) => (ready = r));
  const stderrOut = commandErr ? new PassThrough() : null;
  commandErr?.pipe(stderrOut!, { end: false });
  const sayOn = (b: Buffer): void => void (stderrOut ? stderrOut.write(b) : writeSync(2, b));
  const pass = (): void => {
    passing = true;
    for (const b of held.splice(0)) sayOn(b);
  };
  launchSaid.on('data', (b: Buffer) => (passing ? sayOn(b) : held.push(b)));
  life?.on('error', () => undefined);
  life?.on('data', (d: Buffer) => {
    if (!started) {
      started = true;
      pass();
      ready('started');
    }
    said = `${said}${d.toString('latin1')}`.slice(-64);
  });
  const beat = setInterval(() => life?.write('.'), LIFE_MS);
  beat.unref();
  // Whether to say what the launch said is decided once all of it and the life line are read and its process is gone.
  const closed = (s: Duplex | null | undefined): Promise<unknown> => new Promise((r) => (s && !s.closed ? s.once('close', r) : r(undefined)));
  const decided = Promise.all([new Promise((r) => child.once('exit', r).once('error', r)), closed(launchSaid), closed(life)]).then(() => {
    if (started) return;
    const retry = again();
    if (!retry) pass();
    ready(retry ? 'again' : 'failed');
  });
  const exited = Promise.all([exitOf(child), decided]).then(([exit]) => {
    clearInterval(beat);
    life?.destroy();
    stderrOut?.end();
    // Ended by a signal, as the sandbox's first process said (its own exit code is 128 and the signal's number).
    const signal = /k(SIG[A-Z0-9]+)\n/.exec(said)?.[1] as NodeJS.Signals | undefined;
    return signal && exit.exitCode === 128 + (os.signals[signal] ?? -128) ? { signal } : exit;
  });
  const agent: AgentProcess = {
    child,
    stdout: child.stdout,
    stderr: stderrOut,
    exited,
    started: () => started,
    kill: (signal) => {
      const pid = child.pid === undefined ? undefined : containedPid(child.pid);
      if (pid === undefined) child.kill(signal);
      else {
        try {
          process.kill(pid, signal);
        } catch {
          child.kill(signal);
        }
      }
    },
  };
  return { agent, ready: readyP };
}
