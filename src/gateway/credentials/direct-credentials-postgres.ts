/**
 * Direct credentials in the PostgreSQL store, shared by every replica (`hoop.direct_credentials`):
 * minted on one replica, a credential signs in on any. Its end (revoked, its run ended) and its
 * renewal send `NOTIFY hoop_direct '<id>'` in the same statement, so its sessions on every replica
 * end or take the new deadline. Deadlines are read with the database's clock.
 *
 * @see ./direct-credentials.ts
 * @see https://www.postgresql.org/docs/current/sql-notify.html
 */
import type pg from 'pg';
import { directRecordSchema, tooManyDirect, type DirectEnd, type DirectRecord, type DirectStore } from './direct-credentials.js';
import { storedRow } from '../../stored-record.js';
import type { StoreReplica } from '../replicas/replica.js';
import type { RunOwner } from '../runs/runs.js';
import { storeError, type Migration } from '../store/store-postgres.js';

/** The direct credentials' steps of the store's schema. */
export const DIRECT_CREDENTIALS_MIGRATIONS: readonly Migration[] = [
  {
    version: 9,
    name: 'direct credentials',
    // A credential's password is kept as its SCRAM verifier alone (in the record); the open ones of a person are counted, a run's ended with it.
    sql: `
      create table hoop.direct_credentials (
        id         text primary key,
        issuer     text not null,
        subject    text not null,
        run_id     text,
        record     jsonb not null,
        expires_at timestamptz not null,
        ended_at   timestamptz,
        end_reason text
      );
      create index direct_credentials_open on hoop.direct_credentials (issuer, subject) where ended_at is null;
      create index direct_credentials_run on hoop.direct_credentials (run_id) where run_id is not null and ended_at is null;
      create index direct_credentials_expires on hoop.direct_credentials (expires_at);`,
  },
];

const CHANNEL = 'hoop_direct';
const UTC = (column: string): string => `to_char(${column} at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as ${column}`;
const COLUMNS = `id, record, ${UTC('expires_at')}, ${UTC('ended_at')}, end_reason`;

/** A row of `hoop.direct_credentials`: the credential's jsonb as the store holds it, and its columns. */
interface Row {
  id: string;
  record: unknown;
  expires_at: string;
  ended_at: string | null;
  end_reason: string | null;
}

/** A row's credential, read with its schema: a row this gateway cannot read fails the read (STORE_UNAVAILABLE) rather than be acted on. */
function record(r: Row): DirectRecord {
  const kept = {
    ...(typeof r.record === 'object' ? r.record : {}),
    expiresAt: r.expires_at,
    ...(r.ended_at !== null ? { endedAt: r.ended_at } : {}),
    ...(r.end_reason !== null ? { endReason: r.end_reason } : {}),
  };
  return storedRow(directRecordSchema, kept, `direct credential ${r.id}`);
}

/** See the module documentation. */
export class PostgresDirectStore implements DirectStore {
  readonly #replica: StoreReplica;
  readonly #changed: Array<(id: string) => void> = [];

  constructor(replica: StoreReplica) {
    this.#replica = replica;
    replica.on(CHANNEL, (id) => {
      for (const fn of this.#changed) fn(id);
    });
  }

  async create(r: DirectRecord, maxOpen: number): Promise<void> {
    const { expiresAt, endedAt: _e, endReason: _r, ...rest } = r;
    // One person's (or run's) credentials are minted one at a time (an advisory lock on them), so the limit holds across replicas.
    const client = await this.#run((pool) => pool.connect(), 'mint the direct credential');
    try {
      await client.query('begin');
      // A run's credentials count against the run, a person's own against the person.
      const scope = r.run ? ['run', r.run.id] : [r.owner.issuer, r.owner.subject];
      await client.query(`select pg_advisory_xact_lock(hashtext('hoop-direct ' || $1 || ' ' || $2))`, scope);
      const open = await client.query<{ n: number }>(
        r.run
          ? 'select count(*)::int as n from hoop.direct_credentials where run_id = $1 and ended_at is null and expires_at > now()'
          : 'select count(*)::int as n from hoop.direct_credentials where issuer = $1 and subject = $2 and run_id is null and ended_at is null and expires_at > now()',
        r.run ? [r.run.id] : [r.owner.issuer, r.owner.subject],
      );
      if ((open.rows[0]?.n ?? 0) >= maxOpen) {
        await client.query('rollback');
        throw tooManyDirect(r, maxOpen);
      }
      await client.query('insert into hoop.direct_credentials (id, issuer, subject, run_id, record, expires_at) values ($1, $2, $3, $4, $5, $6)', [
        r.id,
        r.owner.issuer,
        r.owner.subject,
        r.run?.id ?? null,
        rest,
        expiresAt,
      ]);
      await client.query('commit');
    } catch (err) {
      await client.query('rollback').catch(() => undefined);
      throw storeError(err, 'mint the direct credential');
    } finally {
      client.release();
    }
  }

  async get(id: string): Promise<DirectRecord | undefined> {
    return (await this.#rows(`select ${COLUMNS} from hoop.direct_credentials where id = $1`, [id], 'read the direct credential'))[0];
  }

  async extend(id: string, expiresAt: string, owner: RunOwner): Promise<DirectRecord | undefined> {
    const [done] = await this.#rows(
      `with x as (update hoop.direct_credentials set expires_at = $2, record = jsonb_set(record, '{owner}', $3)
         where id = $1 and ended_at is null and expires_at > now() returning *)
       select ${COLUMNS}, pg_notify('${CHANNEL}', id) from x`,
      [id, expiresAt, owner],
      'renew the direct credential',
    );
    return done;
  }

  async end(id: string, reason: DirectEnd): Promise<DirectRecord | undefined> {
    const [done] = await this.#rows(
      `with x as (update hoop.direct_credentials set ended_at = now(), end_reason = $2 where id = $1 and ended_at is null returning *)
       select ${COLUMNS}, pg_notify('${CHANNEL}', id) from x`,
      [id, reason],
      'revoke the direct credential',
    );
    return done;
  }

  endRun(runId: string): Promise<DirectRecord[]> {
    return this.#rows(
      `with x as (update hoop.direct_credentials set ended_at = now(), end_reason = 'run-ended' where run_id = $1 and ended_at is null returning *)
       select ${COLUMNS}, pg_notify('${CHANNEL}', id) from x`,
      [runId],
      "end the run's direct credentials",
    );
  }

  onChanged(fn: (id: string) => void): void {
    this.#changed.push(fn);
  }

  async close(): Promise<void> {
    /* the replica's pool is closed with the replica */
  }

  async #rows(text: string, values: unknown[], doing: string): Promise<DirectRecord[]> {
    const r = await this.#run((pool) => pool.query<Row>(text, values), doing);
    return r.rows.map(record);
  }

  async #run<T>(fn: (pool: pg.Pool) => Promise<T>, doing: string): Promise<T> {
    try {
      return await fn(this.#replica.pool);
    } catch (err) {
      throw storeError(err, doing);
    }
  }
}
