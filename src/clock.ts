/**
 * The gateway's one clock: what time it is, and timers on that time. Production uses the real
 * one; a test holds it, moving its time and firing its timers when what it checks has begun.
 */

/** The longest delay setTimeout keeps (a longer one fires at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Starts a timer: `fire` after `ms` unless the stop it returns is called first. */
export type Timer = (ms: number, fire: () => void) => () => void;

/** What time it is (milliseconds since the epoch), and timers on it. */
export interface Clock {
  now(): number;
  timer: Timer;
}

/** The real clock; its timers are unref'd (a session's or a credential's timer keeps no process alive). */
export const realClock: Clock = {
  now: () => Date.now(),
  timer: (ms, fire) => {
    const t = setTimeout(fire, Math.min(MAX_TIMER_MS, Math.max(0, ms)));
    t.unref();
    return () => clearTimeout(t);
  },
};

/** Calls `fire` every `ms` on `clock`'s timers until the stop it returns is called. */
export function every(clock: Clock, ms: number, fire: () => void): () => void {
  let stop = (): void => {};
  const arm = (): void => {
    stop = clock.timer(ms, () => {
      arm();
      fire();
    });
  };
  arm();
  return () => stop();
}
