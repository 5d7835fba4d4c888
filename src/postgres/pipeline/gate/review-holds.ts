/**
 * The reviews one session waits for, and the windows approvals open. A message a `review` verdict
 * holds (or a write over its row limit, for the write guard) raises a review through the
 * session's reviewer service and waits; the client's CancelRequest or the session's end
 * withdraws it. An approval may open a window in which statements of the approved one's shape
 * (its numbers aside) run without a review.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-CANCELING-REQUESTS
 */
import { realClock } from '../../../clock.js';
import { analyzeSql } from '../../../policy/sql/analyze.js';
import { shapeProven, sqlShape } from '../../../policy/sql/shape.js';
import type { PendingReview, ReviewAsk } from '../../../session/engine.js';

/** Statement shapes an approval's window lets run without a review, per session. */
const MAX_WINDOWS = 100;

/** The statement shapes approvals' windows let run without a review, per session. */
export class ApprovalWindows {
  /** Statement shapes an approval's window lets run -> until when (ms since the epoch). */
  get #windows(): Map<string, number> {
    return (this.#windowsMade ??= new Map());
  }
  #windowsMade: Map<string, number> | undefined;

  /**
   * Lets statements of `sql`'s shape (its numbers aside) run without a review for `ms`: the shape
   * only when the parse tree shows every digit run of `sql` is a numeric constant (so `t1` and
   * `t2` are never one shape), else the exact text.
   */
  open(sql: string, ms: number): void {
    const shape = sqlShape(sql);
    const key = shape && shapeProven(shape.runs, analyzeSql(sql), shape.signs) ? shape.key : sql;
    this.#windows.delete(key);
    this.#windows.set(key, realClock.now() + ms);
    if (this.#windows.size > MAX_WINDOWS) this.#windows.delete(this.#windows.keys().next().value!);
  }

  /** Whether an approval's window lets `sql` run now. */
  has(sql: string): boolean {
    if (this.#windows.size === 0) return false;
    const now = realClock.now();
    const exact = this.#windows.get(sql);
    if (exact !== undefined && exact > now) return true;
    const until = this.#windows.get(sqlShape(sql)?.key ?? sql);
    return until !== undefined && until > now;
  }
}

/** The review one session's next message waits for, raised through its reviewer service. */
export class ReviewHolds {
  readonly #review: ((ask: ReviewAsk) => PendingReview) | undefined;
  /** The review the session's next message waits for. */
  #held: PendingReview | undefined;
  readonly windows = new ApprovalWindows();

  /** `review`: raises a review; without it nothing can be held (a review verdict refuses). */
  constructor(review: ((ask: ReviewAsk) => PendingReview) | undefined) {
    this.#review = review;
  }

  /** Whether reviews can be raised (the session has a reviewer service). */
  get available(): boolean {
    return this.#review !== undefined;
  }

  /** Raises the review of a held message; the caller says when it is decided ({@link decided}). */
  hold(ask: ReviewAsk): PendingReview {
    const pending = this.#review!(ask);
    this.#held = pending;
    return pending;
  }

  /** The held message's review was decided: nothing waits any more. */
  decided(): void {
    this.#held = undefined;
  }

  /** Raises a review for the write guard, held until it is decided. Undefined without a reviewer service. */
  raise(ask: ReviewAsk): PendingReview | undefined {
    if (!this.#review) return undefined;
    const pending = this.#review(ask);
    this.#held = pending;
    void pending.decided.then(() => {
      if (this.#held === pending) this.#held = undefined;
    });
    return pending;
  }

  /** Withdraws the review the session waits for, if any; true when one was. */
  withdraw(why: 'cancel' | 'session-ended'): boolean {
    const held = this.#held;
    if (!held) return false;
    held.withdraw(why);
    return true;
  }
}
