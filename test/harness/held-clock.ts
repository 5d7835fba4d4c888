/**
 * A clock a test holds (the gateway's `clock`): its timers (a session's maximum length, a grant's
 * end, a direct credential's expiry) fire when the test says, after what it checks has begun,
 * however busy the machine; its time moves only when the test moves it.
 */
import type { Clock, Timer } from '../../src/clock.js';

export class HeldClock implements Clock {
  readonly #pending = new Set<{ ms: number; due: number; fire: () => void }>();
  #ahead = 0;

  /** The real time, moved on by what {@link advance} added. */
  now(): number {
    return Date.now() + this.#ahead;
  }

  /** Each timer waits here until fired, its time passed, or stopped. */
  readonly timer: Timer = (ms, fire) => {
    const held = { ms, due: this.now() + ms, fire };
    this.#pending.add(held);
    return () => this.#pending.delete(held);
  };

  /** How many timers wait to fire. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Fires every pending timer of `ms` milliseconds (every pending one, without `ms`); how many it fired. */
  fire(ms?: number): number {
    return this.#fireWhere((t) => ms === undefined || t.ms === ms);
  }

  /** Moves time on by `ms` and fires every timer whose time has come; how many it fired. */
  advance(ms: number): number {
    this.#ahead += ms;
    const now = this.now();
    return this.#fireWhere((t) => t.due <= now);
  }

  /**
   * Moves time a second past `instant` and fires what is due: a timer armed for `instant` fires
   * even when the code under test read the time a moment before it armed it (its due is then that
   * moment later than `instant`).
   */
  advancePast(instant: number): number {
    return this.advance(instant - this.now() + 1_000);
  }

  #fireWhere(due: (t: { ms: number; due: number }) => boolean): number {
    const fired = [...this.#pending].filter(due);
    for (const t of fired) {
      this.#pending.delete(t);
      t.fire();
    }
    return fired.length;
  }
}
