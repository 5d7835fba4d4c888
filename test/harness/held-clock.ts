/**
 * Session timers a test fires when it chooses (the gateway's `sessionTimer`): a session's maximum
 * length ends it when the test says, after what it checks has begun, however busy the machine.
 */
import type { SessionTimer } from '../../src/gateway/sessions/admission.js';

export class HeldTimers {
  readonly #pending = new Set<{ ms: number; fire: () => void }>();

  /** The gateway's `sessionTimer`: each timer waits here until fired or stopped. */
  readonly timer: SessionTimer = (ms, fire) => {
    const held = { ms, fire };
    this.#pending.add(held);
    return () => this.#pending.delete(held);
  };

  /** Fires every pending timer of `ms` milliseconds (every pending one, without `ms`); how many it fired. */
  fire(ms?: number): number {
    const due = [...this.#pending].filter((t) => ms === undefined || t.ms === ms);
    for (const t of due) {
      this.#pending.delete(t);
      t.fire();
    }
    return due.length;
  }
}
