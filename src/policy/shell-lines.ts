/**
 * Shell lines as the login shell reads them, read once per line, and by the gateway never on the
 * event loop: the parser (mvdan-sh, compiled from Go) walks a line at 30-100 microseconds a byte,
 * so even a 511-byte command would hold every session of the process for a tenth of a second, and
 * a 32 KiB one for seconds. {@link readShellLine} reads every line in one worker thread (lines
 * queued, one at a time); {@link shellLineOf} then answers from what was read (the judge, the
 * file-transfer check and the channel all ask of the same command), and reads on the calling
 * thread a line nobody read first (the client side's own checks, tests).
 *
 * @see https://nodejs.org/api/worker_threads.html
 */
import { realClock } from '../clock.js';
import { startWorker, WorkerQueue } from '../worker-thread.js';
import { loginShellGrammar, parseShellLine, type ShellLine } from './shell-line.js';

/** How many lines read are kept for the questions that follow (the latest ones). */
const KEPT = 32;

const read = new Map<string, ShellLine>();

/** The key of a line read in the grammar of `loginShell`. */
const keyOf = (command: string, loginShell: string | undefined): string => `${loginShell ?? ''}\n${command}`;

/** Keeps what `command` was read as, the oldest going past {@link KEPT}. */
function keep(key: string, line: ShellLine): ShellLine {
  read.delete(key);
  read.set(key, line);
  if (read.size > KEPT) read.delete(read.keys().next().value!);
  return line;
}

/** The commands `command` runs as the login shell `loginShell` reads it (`undefined`: unknown), or why hoop cannot tell; read now unless {@link readShellLine} read it. */
export function shellLineOf(command: string, loginShell: string | undefined): ShellLine {
  const key = keyOf(command, loginShell);
  return read.get(key) ?? keep(key, shellLineNow(command, loginShell));
}

/** {@link shellLineOf}, on this thread. */
export function shellLineNow(command: string, loginShell: string | undefined): ShellLine {
  const login = loginShellGrammar(loginShell);
  return 'why' in login ? { certain: false, why: login.why } : parseShellLine(command, login.grammar);
}

/** How much of the worker's CPU time one line may take: the parser takes far longer on some shapes than on others (16,000 `$a` took 20 s), and lines wait their turn behind it. */
export const SHELL_READ_DEADLINE_MS = 10_000;

const reader = new WorkerQueue<{ command: string; loginShell: string | undefined }, { line: ShellLine }>(
  () => startWorker(import.meta.url, 'shell-lines-thread'),
  (why) => ({ line: { certain: false, why: `the gateway's shell reader could not read it (${why})` } }),
  { ms: SHELL_READ_DEADLINE_MS, clock: realClock },
);

/** Reads `command` in the worker so that {@link shellLineOf} answers at once; `owner`'s lines take their turn with other owners' (see {@link WorkerQueue}). */
export async function readShellLine(command: string, loginShell: string | undefined, owner = ''): Promise<ShellLine> {
  const key = keyOf(command, loginShell);
  const known = read.get(key);
  if (known) return known;
  // A login shell hoop does not model makes every line uncertain, unread.
  if ('why' in loginShellGrammar(loginShell)) return keep(key, shellLineNow(command, loginShell));
  return keep(key, (await reader.ask({ command, loginShell }, owner)).line);
}
