/**
 * The world a command sees: its streams, environment, working directory and a stop signal.
 *
 * `bin/hoop.js` passes the real process; tests pass their own, so every command can run
 * in-process. Nothing under `src/` touches `process.stdout`, `process.env` or `process.exit`
 * directly.
 */
import type { Readable, Writable } from 'node:stream';

/** Streams, environment and cancellation for one CLI invocation. */
export interface CliIo {
  stdin?: Readable;
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Aborted on SIGINT/SIGTERM: long-running commands stop cleanly and return. */
  signal: AbortSignal;
}

/** Resolves when `signal` aborts (immediately if it already has). */
export function whenAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}
