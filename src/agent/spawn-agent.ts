/**
 * Starts the command `hoop run` wraps: under bubblewrap when the run is contained
 * (./containment.ts, ./sandbox.ts, ./sandbox-network.ts), else as a plain child. Either way it gets exactly the environment given,
 * the working directory, and this process's own stdio where it can (a TTY stays a TTY); signals
 * for it reach the command itself (bubblewrap does not hand them on).
 *
 * @see https://nodejs.org/api/child_process.html#child_processspawncommand-args-options
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, closeSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { describeError, ErrorCode, HoopError } from '../errors.js';
import { containedPid, type Containment } from './containment.js';
import { bwrapArguments, installRoot, type Mount } from './sandbox.js';
import { attachNetwork, hostAddresses, type NamespaceNetwork, refuseHostAddresses } from './sandbox-network.js';
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
  /** Resolves once the command (and under bubblewrap, its sandbox) has ended. */
  exited: Promise<AgentExit>;
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

/** Reads bubblewrap's `--info-fd` JSON (`{"child-pid": N}`) from `stream`. */
function childPid(stream: Readable): Promise<number> {
  return new Promise((resolvePid, reject) => {
    let text = '';
    const done = (err?: Error): void => {
      stream.removeAllListeners('data');
      const pid = Number(/"child-pid"\s*:\s*(\d+)/.exec(text)?.[1]);
      if (Number.isInteger(pid) && pid > 0) resolvePid(pid);
      else reject(err ?? new Error('bubblewrap ended before its sandbox started'));
    };
    stream.on('data', (b: Buffer) => {
      text += b.toString('utf8');
      if (/"child-pid"\s*:\s*\d+/.test(text)) done();
    });
    stream.once('end', () => done());
    stream.once('error', (err) => done(err));
  });
}

/** The number of `read` for this host's architecture, as `/proc/<pid>/syscall` shows it. @see https://github.com/torvalds/linux/blob/master/arch/x86/entry/syscalls/syscall_64.tbl */
const READ_CALL: Partial<Record<string, number>> = { x64: 0, arm64: 63 };

/**
 * Resolves once bubblewrap's child `pid` waits on its block descriptor (`fd`): past setting up its
 * namespaces, the loopback among them, which slirp4netns must not configure at the same time.
 * Where this architecture's `read` is not known, once its loopback has its address.
 * @see https://man7.org/linux/man-pages/man5/proc_pid_syscall.5.html
 */
async function sandboxWaiting(pid: number, fd: number): Promise<void> {
  const read = READ_CALL[process.arch];
  const waiting = (): boolean => {
    try {
      if (read === undefined) return readFileSync(`/proc/${pid}/net/fib_trie`, 'utf8').includes('127.0.0.1');
      const [call, first] = readFileSync(`/proc/${pid}/syscall`, 'utf8').trim().split(' ');
      return Number(call) === read && Number(first) === fd;
    } catch {
      return false;
    }
  };
  for (const end = Date.now() + 10_000; !waiting(); ) {
    if (Date.now() > end) throw new Error('bubblewrap did not set its sandbox up within 10 s');
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** The sandbox's first process (./sandbox-init.ts), through its launcher. */
const SANDBOX_INIT = join(installRoot(), 'bin', 'hoop-sandbox.js');

/**
 * Starts `file` (already resolved) with `args`; contained, under bubblewrap with `mounts`
 * (./sandbox.ts) in a network namespace given a way out (./sandbox-network.ts), the run's `ports`
 * served inside by the sandbox's first process, the seccomp program and an empty file to hide
 * files with written into `runDir`. Resolves once the command has started.
 */
export async function spawnAgent(o: {
  file: string;
  args: readonly string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  stdio: AgentStdio;
  containment: Containment;
  runDir: string;
  mounts: readonly Mount[];
  ports: ReadonlyArray<{ host: string; port: number; socket: string }>;
}): Promise<AgentProcess> {
  const stdio = [o.stdio.stdin, o.stdio.stdout, o.stdio.stderr] as const;
  if (o.containment.kind === 'none') {
    const child = spawn(o.file, o.args, { env: o.env, cwd: o.cwd, stdio: [...stdio] });
    return { child, exited: exitOf(child), kill: (signal) => void child.kill(signal) };
  }
  const empty = join(o.runDir, '.hidden');
  writeFileSync(empty, '', { mode: 0o400, flag: 'wx' });
  const filter = agentSeccompFilter();
  let fd: number | undefined;
  if (filter) {
    const file = join(o.runDir, '.seccomp');
    writeFileSync(file, filter, { mode: 0o400, flag: 'wx' });
    fd = openSync(file, 'r');
  }
  let child: ChildProcess;
  try {
    // Descriptors: 3 the seccomp program (a copy made as the child starts), 4 where bubblewrap tells its child's pid, 5 what it waits on before the command starts.
    const args = [
      ...bwrapArguments(o.mounts, { empty, cwd: o.cwd, fds: { ...(fd !== undefined ? { seccomp: 3 } : {}), info: 4, block: 5 } }),
      '--',
      process.execPath,
      SANDBOX_INIT,
      JSON.stringify({ ports: o.ports }),
      o.file,
      ...o.args,
    ];
    child = spawn(o.containment.bwrap, args, { env: o.env, cwd: o.cwd, stdio: [...stdio, fd ?? 'ignore', 'pipe', 'pipe'] });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  const exited = exitOf(child);
  // Both are socket pairs that bubblewrap drops as it goes: what they say after is nothing to us.
  const [info, block] = [child.stdio[4] as Readable, (child.stdio as unknown as Writable[])[5]!];
  for (const s of [info, block]) s.on('error', () => undefined);
  let network: NamespaceNetwork | undefined;
  try {
    const pid = await Promise.race([childPid(info), exited.then((e) => Promise.reject(e.error ?? new Error('bubblewrap ended before its sandbox started')))]);
    await sandboxWaiting(pid, 5);
    network = await attachNetwork(o.containment.slirp4netns, pid);
    refuseHostAddresses(o.containment, pid, hostAddresses());
  } catch (err) {
    network?.close();
    child.kill('SIGKILL');
    throw new HoopError(ErrorCode.USAGE, `hoop run could not give the command a network of its own: ${describeError(err)}`, {
      hint: 'check that slirp4netns works here, or run with --isolation none',
      exitCode: 126,
    });
  }
  info.destroy();
  block.end('go');
  void exited.then(() => network!.close());
  return {
    child,
    exited,
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
}
