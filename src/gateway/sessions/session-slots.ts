/**
 * How many sessions each identity, and each PostgreSQL connection, has open through the gateway,
 * bounded: one person's (or one agent's) sessions left idle cannot take every upstream slot from
 * everyone else, nor can a few people each under their own bound (the connection's
 * `maxSessions`). The identity's bound is the policy's (`maxSessions` of the access rules that
 * admit the session: the loosest), else 32 (policy/access.ts); the refusal says whose and how
 * many, and reaches a PostgreSQL client as SQLSTATE 53300 (too_many_connections), as the
 * server's own limit does. With the PostgreSQL store every replica and worker counts into the
 * same places (./session-slots-postgres.ts), so adding replicas does not multiply a bound.
 *
 * @see https://www.postgresql.org/docs/current/errcodes-appendix.html (53300)
 */
import { randomUUID } from 'node:crypto';
import { ErrorCode, HoopError } from '../../errors.js';

export { DEFAULT_MAX_SESSIONS_PER_IDENTITY } from '../../policy/access.js';

/** Who counts as one: the same subject from the same issuer. */
interface Counted {
  subject: string;
  issuer: string;
  /** An agent's run counts on its own: it never takes its person's places. */
  run?: { id: string };
}

/** A session counted until it is released (once). */
export interface CountedSession {
  release(): void;
}

/** A bound: at most `max` places under `key`. */
export interface SlotBound {
  key: string;
  max: number;
}

/** Where places are counted: this process's memory, or a store every replica shares. */
export interface SlotCounter {
  /** Takes a place for `slot` under every bound, or none: then resolves the index of the first bound that is full. */
  take(slot: string, bounds: readonly SlotBound[]): Promise<number | undefined>;
  /** Gives back `slot`'s places. */
  release(slot: string): void;
  /** Sends what was given back and not yet sent (the gateway is stopping). */
  flush?(): Promise<void>;
}

/** Places counted in this process alone (the file store: one process). */
export class MemorySlots implements SlotCounter {
  readonly #open = new Map<string, number>();
  readonly #held = new Map<string, readonly string[]>();

  async take(slot: string, bounds: readonly SlotBound[]): Promise<number | undefined> {
    const full = bounds.findIndex((b) => (this.#open.get(b.key) ?? 0) >= b.max);
    if (full >= 0) return full;
    for (const b of bounds) this.#open.set(b.key, (this.#open.get(b.key) ?? 0) + 1);
    this.#held.set(
      slot,
      bounds.map((b) => b.key),
    );
    return undefined;
  }

  release(slot: string): void {
    for (const key of this.#held.get(slot) ?? []) {
      const left = (this.#open.get(key) ?? 1) - 1;
      if (left > 0) this.#open.set(key, left);
      else this.#open.delete(key);
    }
    this.#held.delete(slot);
  }
}

/** See the module documentation. */
export class SessionSlots {
  constructor(private readonly counter: SlotCounter = new MemorySlots()) {}

  /**
   * Counts one more session of `who` (at most `max`) and, when given, on `connection` whoever's;
   * or says why not.
   * @throws HoopError STORE_UNAVAILABLE when the shared store cannot count
   */
  async take(who: Counted, max: number, connection?: { name: string; max: number }): Promise<CountedSession | HoopError> {
    const whose = who.run ? `run ${who.run.id} of ${who.subject}` : who.subject;
    const bounds: SlotBound[] = [{ key: `identity ${who.issuer} ${who.subject} ${who.run?.id ?? ''}`, max }];
    if (connection) bounds.push({ key: `connection ${connection.name}`, max: connection.max });
    const slot = randomUUID();
    const full = await this.counter.take(slot, bounds);
    if (full === 0) {
      return new HoopError(ErrorCode.TOO_MANY_SESSIONS, `${whose} has ${max} sessions open through the gateway, the most the policy allows (${max})`, {
        hint: 'close sessions you no longer use (an idle psql, a pool that keeps connections), or ask for a higher maxSessions on your access rule',
      });
    }
    if (full === 1 && connection) {
      return new HoopError(
        ErrorCode.TOO_MANY_SESSIONS,
        `connection "${connection.name}" has ${connection.max} sessions open through the gateway, the most it allows (${connection.max}), so that the server keeps slots for others`,
        { hint: "close sessions you no longer use, or ask the gateway's operators to raise the connection's maxSessions" },
      );
    }
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.counter.release(slot);
      },
    };
  }

  /** Sends the places given back and not yet sent (the gateway is stopping: every session ended). */
  async flush(): Promise<void> {
    await this.counter.flush?.();
  }
}
