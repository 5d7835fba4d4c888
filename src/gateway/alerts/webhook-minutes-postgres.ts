/**
 * The webhook messages sent per target and minute in the PostgreSQL store, shared by every replica
 * (`hoop.webhook_minutes`): one row per target (a hash of its URL as written: a Slack webhook's URL
 * is its secret) and minute, its count raised by one atomically for each message any replica would
 * send, so that the limit of ../reviews/review-notify.ts holds however many replicas (and workers) send. The
 * messages held back past the limit are claimed for the summary with the row locked: one replica
 * says each held message, once. A minute is the sending replica's clock's; it is summarised 5 s after
 * it ends, so a replica whose clock is behind by more (or one that stops, and claims at once) may
 * leave messages held after that claim to a second summary of the same minute. Rows older than an
 * hour are deleted.
 *
 * @see https://www.postgresql.org/docs/current/sql-insert.html#SQL-ON-CONFLICT
 * @see docs/internals.md (§4.7)
 */
import { realClock } from '../../clock.js';
import type pg from 'pg';
import type { StoreReplica } from '../replicas/replica.js';
import type { WebhookMinutes } from '../reviews/review-notify.js';
import { storeError, type Migration } from '../store/store-postgres.js';

/** The webhook minutes' steps of the store's schema. */
export const WEBHOOK_MINUTES_MIGRATIONS: readonly Migration[] = [
  {
    version: 12,
    name: 'webhook messages per target and minute, counted by every replica together',
    // Per target (a hash of its URL as written) and minute (its start, ms since the epoch): messages counted, and how many of them a summary said.
    sql: `
      create table hoop.webhook_minutes (
        target     text not null,
        minute     bigint not null,
        sent       integer not null,
        summarised integer not null default 0,
        primary key (target, minute)
      );`,
  },
];

/** How long a minute's row is kept. */
const KEEP_MS = 3_600_000;

/** See the module documentation. */
export class PostgresWebhookMinutes implements WebhookMinutes {
  readonly #replica: StoreReplica;

  constructor(replica: StoreReplica, now: () => number = realClock.now) {
    this.#replica = replica;
    replica.onBeat(() =>
      this.#run((pool) => pool.query('delete from hoop.webhook_minutes where minute < $1', [now() - KEEP_MS]), 'forget old webhook counts').then(
        () => undefined,
        () => undefined,
      ),
    );
  }

  async count(target: string, minute: number): Promise<number> {
    const r = await this.#run(
      (pool) =>
        pool.query<{ sent: number }>(
          `insert into hoop.webhook_minutes (target, minute, sent) values ($1, $2, 1)
           on conflict (target, minute) do update set sent = hoop.webhook_minutes.sent + 1 returning sent`,
          [target, minute],
        ),
      'count a webhook message',
    );
    return r.rows[0]!.sent;
  }

  async claimHeld(target: string, minute: number, limit: number): Promise<number> {
    const r = await this.#run(
      (pool) =>
        pool.query<{ held: number }>(
          // The row locked first: a replica claiming at once waits, and then finds nothing more to say.
          `with old as (select summarised from hoop.webhook_minutes where target = $1 and minute = $2 for update)
           update hoop.webhook_minutes w set summarised = w.sent from old
           where w.target = $1 and w.minute = $2 and w.sent > greatest(old.summarised, $3)
           returning w.sent - greatest(old.summarised, $3) as held`,
          [target, minute, limit],
        ),
      'claim the webhook messages held back',
    );
    return r.rows[0]?.held ?? 0;
  }

  async #run<T>(fn: (pool: pg.Pool) => Promise<T>, doing: string): Promise<T> {
    try {
      return await fn(this.#replica.pool);
    } catch (err) {
      throw storeError(err, doing);
    }
  }
}
