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
  /** `--no-color` was given: nothing printed is coloured (as with NO_COLOR). */
  noColor?: boolean;
  /** `--jq PATH` was given: a command's JSON is printed as that path selects (ui/output.ts). */
  jq?: string;
  /** Aborted on SIGINT, SIGTERM or SIGHUP: long-running commands stop cleanly and return. */
  signal: AbortSignal;
  /** Resolves once the process that started hoop is gone (for `hoop demo`, whose children must not outlive it); absent in-process. */
  whenOrphaned?: () => Promise<void>;
  /**
   * Takes the process's signals ({@link FORWARDED_SIGNALS}) over, for a command that hands them
   * on to a child of its own (`hoop run`): until the returned function is called they go to
   * `listener`, not to {@link signal}. Absent when there is no process to take them from.
   */
  takeSignals?: (listener: (signal: NodeJS.Signals) => void) => () => void;
}

/** The signals `hoop run` hands on to its command. */
export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

/** Resolves when `signal` aborts (immediately if it already has), keeping the process alive until then: a command waiting here runs until stopped. */
export function whenAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  const alive = setInterval(() => undefined, 2 ** 31 - 1);
  return new Promise((resolve) =>
    signal.addEventListener(
      'abort',
      () => {
        clearInterval(alive);
        resolve();
      },
      { once: true },
    ),
  );
}

/** The CLI's entry (src/cli.ts's `main`), handed to commands that run other commands in-process (`hoop demo`): the exit code. */
export type RunCli = (argv: string[], io: CliIo) => Promise<number>;
