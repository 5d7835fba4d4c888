/**
 * Runs an ink element on the terminal until the user quits it or `signal` aborts.
 *
 * @see https://github.com/vadimdemedes/ink#renderapp-options
 */
import { render, type ReactElement } from './ink-vendor.js';

/** Renders `element` on `stdout` (keys from `stdin`; both TTYs) and resolves when it exits or `signal` aborts. */
export async function runInk(element: ReactElement, o: { stdout: NodeJS.WriteStream; stdin: NodeJS.ReadStream; signal: AbortSignal }): Promise<void> {
  const instance = render(element, { stdout: o.stdout, stdin: o.stdin, exitOnCtrlC: true, patchConsole: false });
  const stop = (): void => instance.unmount();
  o.signal.addEventListener('abort', stop, { once: true });
  try {
    await instance.waitUntilExit();
  } finally {
    o.signal.removeEventListener('abort', stop);
  }
}
