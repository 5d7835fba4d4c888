/**
 * The worker thread of {@link readShellLine} (./shell-lines.ts): reads each line it is handed as its
 * login shell would, and hands back the commands (or why it cannot tell).
 *
 * @see https://nodejs.org/api/worker_threads.html#workerparentport
 */
import { parentPort } from 'node:worker_threads';
import { announceThread } from '../worker-thread.js';
import { shellLineNow } from './shell-lines.js';
import type { ShellLine } from './shell-line.js';

announceThread();

parentPort!.on('message', (m: { command: string; loginShell: string | undefined }) => {
  let line: ShellLine;
  try {
    line = shellLineNow(m.command, m.loginShell);
  } catch (err) {
    line = { certain: false, why: `hoop could not read it (${err instanceof Error ? err.message : String(err)})` };
  }
  parentPort!.postMessage({ line });
});
