/**
 * Session places counted in the PostgreSQL store (`hoop.session_slots`), so that every replica
 * and worker counts into the same bounds: one statement (`hoop.take_session_slots`) takes each
 * bound's advisory lock in order, counts, and takes a place under every bound or none. A place is
 * given back when its session ends (with those given back within 25 ms, in one statement, and
 * all that wait when the gateway stops); a dead replica's are given back by its take-over, and a
 * replica's own from a run before (a give-back the store missed) when it starts.
 *
 * @see ./session-slots.ts
 * @see https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS
 */
import { describeError, ErrorCode, HoopError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { StoreReplica } from '../replicas/replica.js';
import type { SlotBound, SlotCounter } from './session-slots.js';
import { storeError, type Migration } from '../store/store-postgres.js';

/** The session slots' steps of the store's schema. */
export const SESSION_SLOTS_MIGRATIONS: readonly Migration[] = [
  {
    version: 11,
    name: 'sessions counted by every replica together',
    // A place per session under each bound (an identity's, a connection's); taken in one statement, each bound's lock in order.
    sql: `
      create table hoop.session_slots (
        slot    text not null,
        key     text not null,
        replica text not null,
        primary key (key, slot)
      );
      create index session_slots_slot on hoop.session_slots (slot);
      create index session_slots_replica on hoop.session_slots (replica);
      create function hoop.take_session_slots(p_slot text, p_replica text, p_keys text[], p_maxes int[]) returns int language plpgsql as $fn$
      declare
        i int;
        n int;
      begin
        for i in 1 .. coalesce(array_length(p_keys, 1), 0) loop
          perform pg_advisory_xact_lock(hashtext('hoop-slots ' || p_keys[i]));
          select count(*) into n from hoop.session_slots where key = p_keys[i];
          if n >= p_maxes[i] then
            return i;
          end if;
        end loop;
        insert into hoop.session_slots (slot, key, replica) select p_slot, k, p_replica from unnest(p_keys) k;
        return 0;
      end
      $fn$;`,
  },
];

/** How long a place given back waits for others to go with it (a session's place is free again this much later at most). */
const GIVE_BACK_MS = 25;

/** See the module documentation. */
export class PostgresSlots implements SlotCounter {
  readonly #replica: StoreReplica;
  readonly #log: Logger;
  /** Places whose give-back the store did not take yet: sent again when it answers. */
  readonly #unreleased = new Set<string>();
  /** The give-back waiting for others to go with it. */
  #giveBack: NodeJS.Timeout | undefined;
  /** This replica's places from a run before, given back before the first place is taken. */
  #cleared: Promise<void> | undefined;

  constructor(replica: StoreReplica, log: Logger) {
    this.#replica = replica;
    this.#log = log;
    replica.onTakeOver(async (client, dead) => {
      await client.query('delete from hoop.session_slots where replica = $1', [dead]);
    });
    replica.onRecovered(() => {
      for (const slot of [...this.#unreleased]) this.release(slot);
    });
  }

  async take(slot: string, bounds: readonly SlotBound[]): Promise<number | undefined> {
    // While the store does not answer heartbeats, the new session is refused at once (not after the pool's wait).
    if (!this.#replica.reachable) {
      throw new HoopError(ErrorCode.STORE_UNAVAILABLE, 'hoop: the gateway cannot reach its store (PostgreSQL), so it cannot count the sessions open', {
        hint: "try again in a moment, and tell the gateway's operators (`hoop gateway status` says whether the store answers)",
      });
    }
    const pool = this.#replica.pool;
    this.#cleared ??= pool.query('delete from hoop.session_slots where replica = $1', [this.#replica.id]).then(
      () => undefined,
      (err: unknown) => {
        this.#cleared = undefined;
        throw err;
      },
    );
    try {
      await this.#cleared;
      const { rows } = await pool.query<{ full: number }>('select hoop.take_session_slots($1, $2, $3, $4) as full', [slot, this.#replica.id, bounds.map((b) => b.key), bounds.map((b) => b.max)]);
      const full = rows[0]?.full ?? 0;
      return full === 0 ? undefined : full - 1;
    } catch (err) {
      throw storeError(err, 'count the sessions open');
    }
  }

  /** Gives `slot` back with those given back within {@link GIVE_BACK_MS}: one statement for the sessions that end near one another. */
  release(slot: string): void {
    this.#unreleased.add(slot);
    this.#giveBack ??= setTimeout(() => void this.flush(), GIVE_BACK_MS);
  }

  /** Sends what waits, unless the store does not answer heartbeats (then when it does again: a gateway stopping waits for no store). */
  async flush(): Promise<void> {
    clearTimeout(this.#giveBack);
    this.#giveBack = undefined;
    const slots = [...this.#unreleased];
    if (slots.length === 0 || !this.#replica.reachable) return;
    await this.#replica.pool.query('delete from hoop.session_slots where slot = any($1)', [slots]).then(
      () => {
        for (const slot of slots) this.#unreleased.delete(slot);
      },
      (err: unknown) => this.#log.warn('session.slot-unreleased', { error: describeError(err), message: 'given back when the store answers again' }),
    );
  }
}
