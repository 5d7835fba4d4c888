/**
 * Waiting in tests, said for what it is.
 *
 * - `eventually` waits for a condition: it polls an assertion until it passes, so a test waits as long
 *   as the system needs and no longer, and fails with the assertion's own message when it never holds.
 * - `quietFor` lets a window pass on purpose, for a test that then asserts something did NOT happen in it.
 * - `pace` lets time pass on purpose where time is what is under test: a slow client, a deadline, an expiry.
 *
 * A fixed sleep that stands for a condition ("the server is up by now", "the log line is there by now")
 * is neither: poll the condition.
 */
import { vi } from 'vitest';

export interface EventuallyOptions {
  /**
   * How long the condition may take before the test fails (ms); 60 s unless told. A deadline, not a
   * measure of speed: generous enough for a machine busy with other work (the functional suite asserts no speed).
   */
  timeout?: number;
  /** How often to check (ms); 50 ms unless told. */
  interval?: number;
}

/**
 * Calls `check` until it neither throws nor rejects, and returns what it returned. Put the `expect`s the
 * following code relies on inside it; a check that returns false does not count as failing, throw instead.
 */
export function eventually<T>(check: () => T | Promise<T>, { timeout = 60_000, interval = 50 }: EventuallyOptions = {}): Promise<T> {
  return vi.waitFor(check, { timeout, interval });
}

/** Lets `ms` pass on purpose: the caller asserts afterwards that nothing (an answer, a byte, a close) came in that window. */
export function quietFor(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Lets `ms` pass on purpose because elapsed time is the input under test (a deadline, an expiry, a slow peer). */
export function pace(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Checks `found` every `interval` ms (20 unless told) until it gives a value, or `timeout` ms (60 s unless told)
 * passed, then undefined: a poll for harness code that says its own failure (`found` may throw to stop at once).
 */
export async function poll<T>(found: () => T | undefined | Promise<T | undefined>, { timeout = 60_000, interval = 20 }: EventuallyOptions = {}): Promise<T | undefined> {
  const deadline = performance.now() + timeout;
  for (;;) {
    const value = await found();
    if (value !== undefined) return value;
    if (performance.now() > deadline) return undefined;
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}
