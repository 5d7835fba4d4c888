/**
 * Agents' runs in the PostgreSQL store, shared by every replica (`hoop.runs`): a run begun on one
 * replica is verified, kept alive and ended on any. Deadlines are read with the database's clock,
 * so replicas agree on them. A run's end sends `NOTIFY hoop_runs '<id>'` in the same statement,
 * which ends its sessions on every replica; each replica also sweeps the open runs past their
 * deadlines (whichever gets there first ends each once).
 *
 * @see https://www.postgresql.org/docs/current/sql-notify.html
 */
import type pg from 'pg';
import type { StoreReplica } from '../replicas/replica.js';
import { runRecordSchema, tooManyRuns, type FreshOwner, type RunEnd, type RunRecord, type RunStore } from './runs.js';
import { storedRow } from '../../stored-record.js';
import { storeError, type Migration } from '../store/store-postgres.js';

/** The runs' steps of the store's schema. */
export const RUNS_MIGRATIONS: readonly Migration[] = [
  {
    version: 5,
    name: "agents' runs",
    // A run's secrets are kept as their SHA-256 alone; the open ones are swept by their deadlines.
    sql: `
      create table hoop.runs (
        id                   text primary key,
        token_hash           text not null unique,
        control_hash         text not null unique,
        issuer               text not null,
        subject              text not null,
        run                  jsonb not null,
        created_at           timestamptz not null,
        expires_at           timestamptz not null,
        heartbeat_at         timestamptz not null,
        heartbeat_timeout_ms integer not null,
        owner_expires_at     timestamptz not null,
        ended_at             timestamptz,
        end_reason           text
      );
      create index runs_open on hoop.runs (issuer, subject) where ended_at is null;
      create index runs_ended on hoop.runs (ended_at);`,
  },
];

const CHANNEL = 'hoop_runs';
const COLUMNS = `id, run, token_hash, control_hash,
  to_char(created_at at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as created_at,
  to_char(expires_at at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as expires_at,
  to_char(heartbeat_at at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as heartbeat_at,
  heartbeat_timeout_ms,
  to_char(owner_expires_at at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as owner_expires_at,
  to_char(ended_at at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as ended_at, end_reason`;

/** A row of `hoop.runs`: the run's jsonb as the store holds it, and its columns. */
interface Row {
  id: string;
  run: unknown;
  token_hash: string;
  control_hash: string;
  created_at: string;
  expires_at: string;
  heartbeat_at: string;
  heartbeat_timeout_ms: number;
  owner_expires_at: string;
  ended_at: string | null;
  end_reason: string | null;
}

/** A row's run, read with its schema: a row this gateway cannot read fails the read (STORE_UNAVAILABLE) rather than be acted on. */
function record(r: Row): RunRecord {
  const run = {
    ...(typeof r.run === 'object' ? r.run : {}),
    tokenHash: r.token_hash,
    controlHash: r.control_hash,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    heartbeatAt: r.heartbeat_at,
    heartbeatTimeoutMs: r.heartbeat_timeout_ms,
    ownerExpiresAt: r.owner_expires_at,
    ...(r.ended_at !== null ? { endedAt: r.ended_at } : {}),
    ...(r.end_reason !== null ? { endReason: r.end_reason } : {}),
  };
  return storedRow(runRecordSchema, run, `run ${r.id}`);
}

/** Whether a row's run is open, by the database's clock. */
const OPEN = `ended_at is null and expires_at > now() and owner_expires_at > now() and heartbeat_at + heartbeat_timeout_ms * interval '1 millisecond' > now()`;

/** See the module documentation. */
export class PostgresRunStore implements RunStore {
  readonly #replica: StoreReplica;
  readonly #ended: Array<(id: string) => void> = [];

  constructor(replica: StoreReplica) {
    this.#replica = replica;
    replica.on(CHANNEL, (id) => {
      for (const fn of this.#ended) fn(id);
    });
  }

  async create(run: RunRecord, maxOpen: number): Promise<void> {
    const { tokenHash, controlHash, createdAt, expiresAt, heartbeatAt, heartbeatTimeoutMs, ownerExpiresAt, endedAt: _e, endReason: _r, ...rest } = run;
    // One person's runs begin one at a time (an advisory lock on them), so the limit holds across replicas.
    const client = await this.#run((pool) => pool.connect(), 'begin the run');
    try {
      await client.query('begin');
      await client.query(`select pg_advisory_xact_lock(hashtext('hoop-runs ' || $1 || ' ' || $2))`, [run.owner.issuer, run.owner.subject]);
      const open = await client.query<{ n: number }>(`select count(*)::int as n from hoop.runs where issuer = $1 and subject = $2 and ${OPEN}`, [run.owner.issuer, run.owner.subject]);
      if ((open.rows[0]?.n ?? 0) >= maxOpen) {
        await client.query('rollback');
        throw tooManyRuns(run.owner.subject, maxOpen);
      }
      await client.query(
        `insert into hoop.runs (id, token_hash, control_hash, issuer, subject, run, created_at, expires_at, heartbeat_at, heartbeat_timeout_ms, owner_expires_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        [run.id, tokenHash, controlHash, run.owner.issuer, run.owner.subject, rest, createdAt, expiresAt, heartbeatAt, heartbeatTimeoutMs, ownerExpiresAt],
      );
      await client.query('commit');
    } catch (err) {
      await client.query('rollback').catch(() => undefined);
      throw storeError(err, 'begin the run');
    } finally {
      client.release();
    }
  }

  async find(kind: 'run' | 'control', hash: string): Promise<RunRecord | undefined> {
    return this.#one(`select ${COLUMNS} from hoop.runs where ${kind === 'run' ? 'token_hash' : 'control_hash'} = $1`, [hash], 'verify the run credential');
  }

  async get(id: string): Promise<RunRecord | undefined> {
    return this.#one(`select ${COLUMNS} from hoop.runs where id = $1`, [id], 'read the run');
  }

  async heartbeat(id: string, fresh?: FreshOwner): Promise<RunRecord | undefined> {
    if (!fresh) return this.#one(`update hoop.runs set heartbeat_at = now() where id = $1 and ${OPEN} returning ${COLUMNS}`, [id], 'keep the run alive');
    return this.#one(
      // The groups as narrowedOwner() says, in the same update: the run's groups that the fresh credential still names.
      `update hoop.runs set heartbeat_at = now(), owner_expires_at = $3,
         run = jsonb_set(run, '{owner}', $2::jsonb || jsonb_build_object('groups',
           (select coalesce(jsonb_agg(g), '[]'::jsonb) from jsonb_array_elements(run->'owner'->'groups') g where $2::jsonb->'groups' @> jsonb_build_array(g))))
       where id = $1 and ${OPEN} returning ${COLUMNS}`,
      [id, fresh.owner, fresh.expiresAt],
      'keep the run alive',
    );
  }

  async end(id: string, reason: RunEnd): Promise<RunRecord | undefined> {
    return this.#one(
      `with x as (update hoop.runs set ended_at = now(), end_reason = $2 where id = $1 and ended_at is null returning *)
       select ${COLUMNS}, pg_notify('${CHANNEL}', id) from x`,
      [id, reason],
      'end the run',
    );
  }

  async sweep(): Promise<RunRecord[]> {
    const r = await this.#run(
      (pool) =>
        pool.query<Row>(
          `with x as (
             update hoop.runs set ended_at = now(), end_reason = case when expires_at <= now() then 'expired' when owner_expires_at <= now() then 'person-expired' else 'heartbeat-lost' end
             where ended_at is null and not (${OPEN})
             returning *)
           select ${COLUMNS}, pg_notify('${CHANNEL}', id) from x`,
        ),
      'end overdue runs',
    );
    return r.rows.map(record);
  }

  onEnded(fn: (id: string) => void): void {
    this.#ended.push(fn);
  }

  async close(): Promise<void> {
    /* the replica's pool is closed with the replica */
  }

  async #one(text: string, values: unknown[], doing: string): Promise<RunRecord | undefined> {
    const r = await this.#run((pool) => pool.query<Row>(text, values), doing);
    return r.rows[0] ? record(r.rows[0]) : undefined;
  }

  async #run<T>(fn: (pool: pg.Pool) => Promise<T>, doing: string): Promise<T> {
    try {
      return await fn(this.#replica.pool);
    } catch (err) {
      throw storeError(err, doing);
    }
  }
}
