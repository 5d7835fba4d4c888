/**
 * Reviews and access requests in the PostgreSQL store, shared by every replica (`hoop.reviews`):
 * each review as it now stands, at a version. A change is saved only if the stored version is
 * still the one it started from, so two replicas deciding at once never both win; the saving
 * statement also sends `NOTIFY hoop_reviews '<id> <version>'`, delivered at commit, which wakes
 * the replica holding the statement (it settles it: the statement runs, or is refused) and brings
 * every replica's list up to date.
 *
 * A review is held by the replica that raised it (`holder`): its timer expires it, and it claims an
 * approval (`ranAt`, saved at the next version) before its statement runs. When a replica dies, the
 * take-over (../replicas/replica.ts) expires the statements it held (their sessions died with it:
 * pending, or approved but never claimed) and hands its detached reviews and access requests, which outlive sessions,
 * to no one: any replica expires them once overdue.
 *
 * @see https://www.postgresql.org/docs/current/sql-notify.html
 * @see docs/internals.md (§3.6, §4.4)
 */
import { realClock } from '../../clock.js';
import type pg from 'pg';
import { reviewSettingsSchema, type ReviewSettings } from '../../policy/schema.js';
import { reviewSchema } from '../../policy/review-record.js';
import { storedRow } from '../../stored-record.js';
import { replicaLives, type StoreReplica } from '../replicas/replica.js';
import { HttpError } from '../http/http-error.js';
import type { Review, ReviewStore, StoredReview } from './reviews.js';
import { NOW_ISO, storeError } from '../store/store-postgres.js';

const CHANNEL = 'hoop_reviews';
/** Reviews read at start and on catching up: the newest this many. */
const MAX_LOADED = 10_000;
const UPDATE = 'with x as (update hoop.reviews set state = $2, version = $3, review = $4, expires_at = $5, updated_at = now() where id = $1 and version = $3 - 1';
/** An approval of a held statement is saved only while the replica holding it lives: it holds its life line and has beaten lately (or it is this one). */
const WHILE_HOLDER_LIVES = ` and (holder is null or holder = $6 or (${replicaLives('holder')} and exists (select 1 from hoop.replicas p where p.id = holder and p.stopped_at is null and p.seen_at > now() - make_interval(secs => $7))))`;
const NOTIFY = ` returning id, version) select pg_notify('${CHANNEL}', id || ' ' || version) from x`;

/** Whether saving `r` lets a statement a replica holds run: an approval of a held statement whose client waits. */
const runsHeld = (r: Review): boolean => r.state === 'approved' && r.kind === 'statement' && !r.detached;

/** An overdue review's holder has this long to expire it itself before any replica does. */
const OVERDUE_GRACE_SECONDS = 5;

/** A row of `hoop.reviews`: its jsonb columns as the store holds them, read with their schemas ({@link stored}). */
interface Row {
  id: string;
  review: unknown;
  version: number;
  settings: unknown;
}

/** A row's review, read with its schema: a row this gateway cannot read fails the read (STORE_UNAVAILABLE) rather than be acted on. */
function stored(r: Row): StoredReview {
  const what = `review ${r.id}`;
  const review = storedRow(reviewSchema, r.review, what);
  const settings = r.settings === null ? undefined : storedRow(reviewSettingsSchema, r.settings, `${what} (its settings)`);
  return { review, version: r.version, ...(settings ? { settings } : {}) };
}

/**
 * Closes pending reviews matched by `where` (over `hoop.reviews`, with `$1` free for the caller)
 * as expired `because`, telling every replica; resolves each as `<id> <version>`.
 */
async function expire(client: pg.PoolClient | pg.Pool, where: string, values: unknown[], because: string, state = `state = 'pending'`): Promise<string[]> {
  const r = await client.query<{ change: string }>(
    `with x as (
       update hoop.reviews set state = 'expired', version = version + 1, updated_at = now(),
         review = review || jsonb_build_object('state', 'expired', 'decidedAt', ${NOW_ISO}, 'closedBecause', $${values.length + 1}::text)
       where ${state} and ${where}
       returning id, version)
     select id || ' ' || version as change, pg_notify('${CHANNEL}', id || ' ' || version) from x`,
    [...values, because],
  );
  return r.rows.map((row) => row.change);
}

/** See the module documentation. */
export class PostgresReviewStore implements ReviewStore {
  readonly shared = true;
  readonly #replica: StoreReplica;
  readonly #changes: Array<(id: string, version: number) => void> = [];
  /** Changes this replica's own sweeps saved (`<id> <version>`), which it tells of as its own. */
  readonly #swept = new Set<string>();

  constructor(replica: StoreReplica) {
    this.#replica = replica;
    replica.on(CHANNEL, (payload) => {
      const [id, version] = payload.split(' ');
      if (id && Number(version) > 0) for (const fn of this.#changes) fn(id, Number(version));
    });
    replica.onTakeOver((client, dead) => this.#takeOver(client, dead));
    // Notifications sent while this replica was not listening are lost: what changed lately is read again.
    replica.onCatchUp(async () => {
      const rows = await this.#query<{ id: string; version: number }>("select id, version from hoop.reviews where updated_at > now() - interval '1 hour' or state = 'pending' order by updated_at", []);
      for (const r of rows) for (const fn of this.#changes) fn(r.id, r.version);
    });
    replica.onBeat(() => this.#expireOverdue());
  }

  /** Expires pending reviews past their time whose holder did not (it died, or none holds them). */
  async #expireOverdue(): Promise<void> {
    this.#sweep(await this.#run((pool) => expire(pool, `expires_at < now() - make_interval(secs => $1)`, [OVERDUE_GRACE_SECONDS], 'not decided in time'), 'expire overdue reviews'));
  }

  /** The take-over step for reviews of a dead replica (see the module documentation). */
  async #takeOver(client: pg.PoolClient, dead: string): Promise<void> {
    this.#sweep(
      await expire(
        client,
        `holder = $1 and review->>'kind' = 'statement' and not coalesce((review->>'detached')::boolean, false)`,
        [dead],
        'the gateway replica holding its statement stopped; the statement did not run',
      ),
    );
    // Approved, but never claimed to run by the dead holder (it died as the approval came): nothing ran it.
    this.#sweep(
      await expire(
        client,
        `holder = $1 and review->>'kind' = 'statement' and not coalesce((review->>'detached')::boolean, false) and review->>'ranAt' is null`,
        [dead],
        'the gateway replica holding its statement stopped as it was approved, before it ran it; the statement did not run',
        `state = 'approved'`,
      ),
    );
    await client.query(`update hoop.reviews set holder = null where holder = $1 and state = 'pending'`, [dead]);
  }

  #sweep(changes: string[]): void {
    if (this.#swept.size > 10_000) this.#swept.clear(); // changes never read back (a take-over rolled back)
    for (const c of changes) this.#swept.add(c);
  }

  sweptHere(id: string, version: number): boolean {
    return this.#swept.delete(`${id} ${version}`);
  }

  async load(): Promise<StoredReview[]> {
    const rows = await this.#query<Row>('select id, review, version, settings from (select * from hoop.reviews order by updated_at desc limit $1) r order by updated_at', [MAX_LOADED]);
    return rows.map(stored);
  }

  async save(r: Review, version: number, settings?: ReviewSettings): Promise<boolean> {
    const values = [r.id, r.state, version, r, r.expiresAt];
    const res =
      version === 1
        ? await this.#run(
            (pool) =>
              pool.query(
                `with x as (insert into hoop.reviews (id, state, version, holder, expires_at, settings, review) values ($1, $2, $3, $6, $5, $7, $4)
                 on conflict (id) do nothing returning id, version)
                 select pg_notify('${CHANNEL}', id || ' ' || version) from x`,
                [...values, this.#replica.id, settings ?? null],
              ),
            'keep the review',
          )
        : await this.#update(r, values);
    return res.rowCount === 1;
  }

  /**
   * Saves a change of a review; an approval of a held statement only while its holder lives. One
   * that finds the holder silent but not yet taken over waits for it (a heartbeat at a time, up to
   * twice the dead-after time): it is saved once the holder beats again, and refused once it is
   * taken over (its statement expired, as it never ran).
   */
  async #update(r: Review, values: unknown[]): Promise<pg.QueryResult> {
    if (!runsHeld(r)) return this.#run((pool) => pool.query(`${UPDATE}${NOTIFY}`, values), 'keep the review');
    const until = realClock.now() + 2 * this.#replica.deadAfterMs;
    for (;;) {
      const res = await this.#run((pool) => pool.query(`${UPDATE}${WHILE_HOLDER_LIVES}${NOTIFY}`, [...values, this.#replica.id, this.#replica.liveWithinMs / 1000]), 'keep the review');
      if (res.rowCount === 1 || realClock.now() > until || !(await this.#holderSilent(r.id, values[2] as number))) return res;
    }
  }

  /**
   * Whether review `id` (still one before `version`) waits on a holder that is silent but not taken
   * over; then waits half a live time. @throws HttpError 409 when its holder is gone (its life line
   * dropped): its statement died with it and will never run.
   */
  async #holderSilent(id: string, version: number): Promise<boolean> {
    const [row] = await this.#query<{ waiting: boolean; gone: boolean }>(
      `select r.version = $2 - 1 and r.state = 'pending' and p.stopped_at is null as waiting, not ${replicaLives('r.holder')} as gone
       from hoop.reviews r join hoop.replicas p on p.id = r.holder where r.id = $1`,
      [id, version],
    );
    if (row?.waiting && row.gone)
      throw new HttpError(409, `review ${id}: the gateway process holding its statement is gone, and its session with it; the statement will not run`, {
        hint: 'the client reconnects and sends it again, to be reviewed again',
      });
    if (!row?.waiting) return false;
    await new Promise((resolve) => setTimeout(resolve, this.#replica.liveWithinMs / 2));
    return true;
  }

  async get(id: string): Promise<StoredReview | undefined> {
    const [row] = await this.#query<Row>('select id, review, version, settings from hoop.reviews where id = $1', [id]);
    return row ? stored(row) : undefined;
  }

  onChange(fn: (id: string, version: number) => void): void {
    this.#changes.push(fn);
  }

  async flushed(): Promise<void> {
    /* every save is awaited by the registry */
  }

  async #query<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<R[]> {
    return (await this.#run((pool) => pool.query<R>(text, values), 'read the reviews')).rows;
  }

  async #run<T>(fn: (pool: pg.Pool) => Promise<T>, doing: string): Promise<T> {
    try {
      return await fn(this.#replica.pool);
    } catch (err) {
      throw storeError(err, doing);
    }
  }
}
