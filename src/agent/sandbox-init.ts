/**
 * The first process of a contained run, inside its sandbox and network namespace
 * (./sandbox.ts): it serves the run's ports on the namespace's own loopback (each TCP
 * connection is handed to the unix socket `hoop run` listens on for that port in the run's
 * directory, ./port-bridge.ts), then starts the command with this process's stdio and
 * environment, hands it every signal it receives, and ends as the command ended (its exit code,
 * or the same signal). Its PID namespace ends with it, and every process of the run with it
 * (one that left the command's session or process group too).
 *
 * It hears from `hoop run` on a life line (a descriptor `hoop run` writes to every 250 ms): while
 * it hears nothing for {@link FREEZE_AFTER_MS} (`hoop run` stopped: Ctrl-Z, SIGSTOP), every other
 * process of the run is stopped, and continued once it hears again; when the line closes
 * (`hoop run` is gone), every one is killed.
 *
 * Started by `hoop run` only, as `bin/hoop-sandbox.js <spec JSON> <command> [args...]`, the spec
 * being `{ ports: [{ host, port, socket }], lifeline?: fd }`.
 *
 * @see https://nodejs.org/api/net.html
 * @see https://man7.org/linux/man-pages/man7/pid_namespaces.7.html
 */
import { spawn } from 'node:child_process';
import { connect, createServer, type Server, Socket } from 'node:net';
import { constants } from 'node:os';

interface Spec {
  ports: Array<{ host: string; port: number; socket: string }>;
  lifeline?: number;
}

/** How long the run goes on without word from its `hoop run` before it is stopped. */
export const FREEZE_AFTER_MS = 1_000;

/** Every process of this PID namespace but its first and this one (kill(2) with -1). */
const EVERY_OTHER = -1;

/**
 * Keeps the run in step with its `hoop run` over the life line `fd` (see the module
 * documentation); `started` is said on it once the command runs.
 */
function followLifeline(fd: number): { started(): void } {
  const line = new Socket({ fd, readable: true, writable: true });
  let heard = Date.now();
  let frozen = false;
  const signal = (s: NodeJS.Signals): void => {
    try {
      process.kill(EVERY_OTHER, s);
    } catch {
      /* no other process left */
    }
  };
  line.on('data', () => {
    heard = Date.now();
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
    if (!frozen && Date.now() - heard > FREEZE_AFTER_MS) {
      frozen = true;
      signal('SIGSTOP');
    }
  }, 100).unref();
  return { started: () => void line.write('r') };
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
  let life: { started(): void } | undefined;
  try {
    const spec = JSON.parse(specText) as Spec;
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
  child = spawn(file, args, { stdio: 'inherit' });
  life?.started();
  for (const signal of early.splice(0)) child.kill(signal);
  return new Promise((resolve) => {
    child.on('error', (err) => {
      process.stderr.write(`hoop: cannot run ${file}: ${err.message}\n`);
      resolve((err as NodeJS.ErrnoException).code === 'ENOENT' ? 127 : 126);
    });
    child.on('exit', (code, signal) => {
      if (!signal) return resolve(code ?? 1);
      // Ended by a signal: ends the same way, so that hoop run sees what the command did.
      for (const s of HANDED_ON) process.removeAllListeners(s);
      process.kill(process.pid, signal);
      resolve(128 + (constants.signals[signal] ?? 0)); // a signal whose default does not end a process: as a shell says it
    });
  });
}
