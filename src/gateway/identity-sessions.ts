/**
 * How many sessions each identity, and each PostgreSQL connection, has open on this gateway,
 * bounded: one person's (or one agent's) sessions left idle cannot take every upstream slot from
 * everyone else, nor can a few people each under their own bound (the connection's `maxSessions`). The bound is
 * the policy's (`maxSessions` of the access rules that admit the session: the loosest), else
 * 32 (policy/access.ts); the refusal says whose and how many, and reaches a
 * PostgreSQL client as SQLSTATE 53300 (too_many_connections), as the server's own limit does.
 *
 * @see https://www.postgresql.org/docs/current/errcodes-appendix.html (53300)
 */
import { ErrorCode, HoopError } from '../errors.js';

export { DEFAULT_MAX_SESSIONS_PER_IDENTITY } from '../policy/access.js';

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

/** See the module documentation. */
export class IdentitySessions {
  readonly #open = new Map<string, number>();

  /** Counts one more session of `who`, or says why not when `who` has `max` open already. */
  take(who: Counted, max: number): CountedSession | HoopError {
    const whose = who.run ? `run ${who.run.id} of ${who.subject}` : who.subject;
    return this.#take(
      `${who.issuer}\n${who.subject}\n${who.run?.id ?? ''}`,
      max,
      (open) =>
        new HoopError(ErrorCode.TOO_MANY_SESSIONS, `${whose} has ${open} sessions open on this gateway, the most the policy allows (${max})`, {
          hint: 'close sessions you no longer use (an idle psql, a pool that keeps connections), or ask for a higher maxSessions on your access rule',
        }),
    );
  }

  /** Counts one more session on connection `name`, whoever's, or says why not when it has `max` open already. */
  takeConnection(name: string, max: number): CountedSession | HoopError {
    return this.#take(
      `connection\n${name}`,
      max,
      (open) =>
        new HoopError(ErrorCode.TOO_MANY_SESSIONS, `connection "${name}" has ${open} sessions open through this gateway, the most it allows (${max}), so that the server keeps slots for others`, {
          hint: "close sessions you no longer use, or ask the gateway's operators to raise the connection's maxSessions",
        }),
    );
  }

  #take(key: string, max: number, refusal: (open: number) => HoopError): CountedSession | HoopError {
    const open = this.#open.get(key) ?? 0;
    if (open >= max) return refusal(open);
    this.#open.set(key, open + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        const left = (this.#open.get(key) ?? 1) - 1;
        if (left > 0) this.#open.set(key, left);
        else this.#open.delete(key);
      },
    };
  }
}
