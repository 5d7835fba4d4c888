/**
 * The audit stream's `url` destination on the PostgreSQL store (`hoop.audit_events`,
 * `hoop.audit_cursors`): every replica appends its events, one replica at a time delivers them.
 *
 * - Append: one transaction per batch, under a transaction-scoped advisory lock, so sequence
 *   numbers are handed out in commit order: what a deliverer sees is always a prefix of the
 *   stream, and no event committed late is skipped by a cursor already past it.
 * - Deliver: the deliverer locks the cursor row (`for update skip locked`: a replica that finds it
 *   locked leaves the delivery to the one holding it), sends the lines after it, then moves the
 *   cursor and deletes what was delivered in the same transaction. A replica that dies mid-send
 *   leaves the cursor where it was, and the next deliverer sends the batch again: at least once,
 *   as the audit stream promises.
 *
 * @see https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS
 * @see https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE
 */
import type pg from 'pg';
import type { AuditLedger } from './audit.js';
import { storeError, withTransaction } from '../store/store-postgres.js';

/** The advisory lock key appends take ("audit" in ASCII, within 32 bits). */
const APPEND_LOCK = 0x61756474;
/** The cursor of the `url` destination (its row is made by the migration). */
const SINK = 'url';

/** Events appended and not yet delivered (for `hoop gateway status`). */
export async function auditBacklog(pool: pg.Pool): Promise<number> {
  try {
    const r = await pool.query<{ n: string }>('select count(*) as n from hoop.audit_events e, hoop.audit_cursors c where c.sink = $1 and e.seq > c.seq', [SINK]);
    return Number(r.rows[0]?.n ?? 0);
  } catch (err) {
    throw storeError(err, 'count the audit events waiting');
  }
}

/** See the module documentation. */
export class PostgresAuditLedger implements AuditLedger {
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  async append(lines: string[]): Promise<void> {
    await withTransaction(this.#pool, 'keep audit events', async (client) => {
      await client.query('select pg_advisory_xact_lock($1)', [APPEND_LOCK]);
      await client.query('insert into hoop.audit_events (line) select line from unnest($1::text[]) with ordinality as t(line, n) order by n', [lines]);
    });
  }

  async deliver(max: number, send: (body: string) => Promise<void>): Promise<number> {
    /** The SIEM's own failure, told as it is (the store's says it was the store). */
    let refused: { err: unknown } | undefined;
    try {
      return await withTransaction(this.#pool, 'deliver audit events', async (client) => {
        const cursor = await client.query<{ seq: string }>('select seq from hoop.audit_cursors where sink = $1 for update skip locked', [SINK]);
        if (cursor.rowCount === 0) return 0; // another replica delivers
        const rows = await client.query<{ seq: string; line: string }>('select seq, line from hoop.audit_events where seq > $1 order by seq limit $2', [cursor.rows[0]!.seq, max]);
        if (rows.rowCount === 0) return 0;
        try {
          await send(`${rows.rows.map((r) => r.line).join('\n')}\n`);
        } catch (err) {
          refused = { err };
          throw err;
        }
        const last = rows.rows.at(-1)!.seq;
        await client.query('update hoop.audit_cursors set seq = $2 where sink = $1', [SINK, last]);
        await client.query('delete from hoop.audit_events where seq <= $1', [last]);
        return rows.rowCount ?? 0;
      });
    } catch (err) {
      throw refused ? refused.err : err;
    }
  }
}
