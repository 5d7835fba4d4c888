/**
 * The first process of a contained run, inside its sandbox and network namespace
 * (./sandbox.ts): it serves the run's ports on the namespace's own loopback (each TCP
 * connection is handed to the unix socket `hoop run` listens on for that port in the run's
 * directory, ./port-bridge.ts), then starts the command with this process's stdio and
 * environment, hands it every signal it receives, and ends as the command ended (its exit code,
 * or, ended by a signal, 128 and its number, as bubblewrap says it). It is its PID namespace's
 * first process (bubblewrap's `--as-pid-1`): no process of the run can stop or kill it (the
 * kernel delivers a process 1 only the signals it handles, and never SIGSTOP or SIGKILL from its
 * own namespace), and the namespace ends with it, every process of the run with it (one that
 * left the command's session or process group too). A process orphaned inside stays a zombie
 * until then (Node reaps only its own children).
 *
 * It hears from `hoop run` on a life line (a descriptor `hoop run` writes to every 250 ms, on which
 * it says that the command started, and which signal ended it, if one did): while
 * it hears nothing for {@link FREEZE_AFTER_MS} (`hoop run` stopped: Ctrl-Z, SIGSTOP), every other
 * process of the run is stopped, and continued once it hears again; when the line closes
 * (`hoop run` is gone), every one is killed.
 *
 * Started by `hoop run` only, as `bin/hoop-sandbox.js <spec JSON> <command> [args...]`, the spec
 * being `{ ports: [{ host, port, socket }], lifeline?: fd, launch?: [program, ...args] }`.
 *
 * @see https://nodejs.org/api/net.html
 * @see https://man7.org/linux/man-pages/man7/pid_namespaces.7.html
 */
import { realClock } from '../clock.js';
import { spawn } from 'node:child_process';
import { writeSync } from 'node:fs';
import { connect, createServer, type Server, Socket } from 'node:net';
import { constants } from 'node:os';

interface Spec {
  ports: Array<{ host: string; port: number; socket: string }>;
  lifeline?: number;
  /** What the command is started through (`setpriv` dropping every capability for good), before its own name. */
  launch?: string[];
  /** The descriptor the command's stderr is (this process's own stderr is its launch's, which `hoop run` holds until the command starts). */
  stderr?: number;
}

/** How long the run goes on without word from its `hoop run` before it is stopped. */
export const FREEZE_AFTER_MS = 1_000;

/** How long the end waits to be said on the life line. */
const SAY_WITHIN_MS = 2_000;

/** Every process of this PID namespace but its first and this one (kill(2) with -1). */
const EVERY_OTHER = -1;

/** What the sandbox's first process says to `hoop run` on the life line. */
interface Life {
  /** The command runs (`r`): resolves once it is written. */
  started(): Promise<void>;
  /** The command was ended by `signal` (`k<signal>\n`), which its exit code alone cannot say: resolves once it is written. */
  killed(signal: NodeJS.Signals): Promise<void>;
}

/**
 * Keeps the run in step with its `hoop run` over the life line `fd` (see the module
 * documentation), and says on it how the command started and ended.
 */
function followLifeline(fd: number): Life {
  const line = new Socket({ fd, readable: true, writable: true });
  let heard = realClock.now();
  let frozen = false;
  const signal = (s: NodeJS.Signals): void => {
    try {
      process.kill(EVERY_OTHER, s);
    } catch {
      /* no other process left */
    }
  };
  line.on('data', () => {
    heard = realClock.now();
    if (frozen) {
      frozen = false;
      signal('SIGCONT');
    }
  });
  // The command is among those killed: this process then ends as it did.
  const gone = (): void => signal('SIGKILL');
  line.on('end', gone);
  line.on('error', gone);
  setInterval(() => {
    if (!frozen && realClock.now() - heard > FREEZE_AFTER_MS) {
      frozen = true;
      signal('SIGSTOP');
    }
  }, 100).unref();
  return {
    started: () => new Promise((resolve) => line.write('r', () => resolve())),
    killed: (s) => new Promise((resolve) => line.write(`k${s}\n`, () => resolve())),
  };
}

/** The signals handed on to the command. */
const HANDED_ON: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH', 'SIGCONT', 'SIGTSTP'];

/** Listens on `host`:`port` and pipes each connection to the unix socket `socket`. */
function forward(host: string, port: number, socket: string): Promise<Server> {
  const server = createServer({ noDelay: true }, (client) => {
    const upstream = connect(socket);
    client.pipe(upstream).on('error', () => client.destroy());
    upstream.pipe(client).on('error', () => upstream.destroy());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => resolve(server));
  });
}

/** Runs the sandbox's first process with `argv` (see the module documentation); resolves the exit code to end with. */
export async function runInSandbox(argv: string[]): Promise<number> {
  const [specText, file, ...args] = argv;
  if (specText === undefined || file === undefined) {
    process.stderr.write('hoop: hoop-sandbox is started by hoop run, with a spec and a command\n');
    return 2;
  }
  let servers: Server[];
  let life: Life | undefined;
  let launch: string[] = [];
  let stderr: number | 'inherit' = 'inherit';
  try {
    const spec = JSON.parse(specText) as Spec;
    launch = spec.launch ?? [];
    stderr = spec.stderr ?? 'inherit';
    if (spec.lifeline !== undefined) life = followLifeline(spec.lifeline);
    servers = await Promise.all(spec.ports.map((p) => forward(p.host, p.port, p.socket)));
  } catch (err) {
    process.stderr.write(`hoop: the run's sandbox could not start: ${err instanceof Error ? err.message : String(err)}\n`);
    return 126;
  }
  for (const s of servers) s.unref();
  // The signals are the command's before it starts: a command can run (and be signalled, by hoop run
  // that saw it write) before spawn() returns here, and a signal this process did not take would end it.
  let child: ReturnType<typeof spawn> | undefined;
  const early: NodeJS.Signals[] = [];
  for (const signal of HANDED_ON)
    process.on(signal, () => {
      if (child) child.kill(signal);
      else early.push(signal);
    });
  const stdio = ['inherit', 'inherit', stderr] as const;
  child = launch.length > 0 ? spawn(launch[0]!, [...launch.slice(1), file, ...args], { stdio: [...stdio] }) : spawn(file, args, { stdio: [...stdio] });
  // Said before this process ends, however soon the command does (an exit would drop what is not written yet).
  const started = life?.started() ?? Promise.resolve();
  for (const signal of early.splice(0)) child.kill(signal);
  return new Promise((resolve) => {
    child.on('error', (err) => {
      writeSync(stderr === 'inherit' ? 2 : stderr, `hoop: cannot run ${file}: ${err.message}\n`);
      resolve((err as NodeJS.ErrnoException).code === 'ENOENT' ? 127 : 126);
    });
    // Ended by a signal: as a shell and bubblewrap say it (process 1 cannot end by a signal of its own), and said on the life line.
    child.on('exit', (code, signal) => {
      const said = signal ? started.then(() => life?.killed(signal)) : started;
      // A life line that takes no more (hoop run is gone) does not keep the run from ending.
      const bound = new Promise((r) => setTimeout(r, SAY_WITHIN_MS));
      void Promise.race([said, bound]).finally(() => resolve(signal ? 128 + (constants.signals[signal] ?? 0) : (code ?? 1)));
    });
  });
}
