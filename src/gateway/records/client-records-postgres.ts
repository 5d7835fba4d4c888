/**
 * The CLIs' records (./client-records.ts) in the PostgreSQL store, shared by every replica:
 * `hoop.client_records` (each record's state, as JSON) and `hoop.client_record_files` (each of its
 * files, byte for byte as uploaded). Any replica takes any upload of any record, lists their
 * states and serves their files: successive uploads of one record may reach different replicas
 * behind the load balancer.
 *
 * An update of a record runs in one transaction that first takes a transaction-level advisory lock
 * on `hashtext('<kind>/<id>')`, so uploads of one record run one after the other on every replica
 * (a record not stored yet has no row that `select … for update` could lock), and what one upload
 * writes (its file, the record's state, or what a refusal drops) is kept together or not at all.
 *
 * Verifying reads a directory, so under the lock the record's files are copied, as the transaction
 * sees them, to `<dataDir>/client-records-cache/<kind>/<id>/`. That copy is a cache, never the
 * truth: each verification compares the SHA-256 the store keeps of each file (computed once, as
 * the file is stored) with that of the bytes the cache was given, fetches what it lacks or holds
 * otherwise, and drops what the store no longer holds. So a record verified checkpoint by
 * checkpoint costs each verification what came since, not every file hashed again, here or in the
 * database. A replica that never saw the record fetches all of it. A record's cache goes once it
 * is complete or removed (or an update fails), and all of them at start; only this process writes
 * there, and it runs the updates of a record one after the other (./client-records.ts).
 *
 * @see https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS
 * @see https://www.postgresql.org/docs/current/functions-binarystring.html (sha256)
 * @see docs/deployment.md
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import type { RecordKind } from '../../recording/spool.js';
import { clientRecordStateSchema, type ClientRecordState, type ClientRecordStore, type HeldRecord } from './client-records.js';
import { storedRow } from '../../stored-record.js';
import type { StoreReplica } from '../replicas/replica.js';
import { storeError, withTransaction, type Migration } from '../store/store-postgres.js';

/** The CLIs' records' steps of the store's schema (their first tables came with step 3). */
export const CLIENT_RECORDS_MIGRATIONS: readonly Migration[] = [
  {
    version: 4,
    name: "the digest of each file of a CLI's record",
    // Computed once as a file is stored: a verification compares its cache with the digests alone, not every file's bytes hashed again.
    sql: `
      alter table hoop.client_record_files add column digest bytea generated always as (sha256(data)) stored;`,
  },
  {
    version: 14,
    name: "an owner's CLI records by when they were saved",
    // Each upload counts its owner's bytes of the day and not yet verified: read by owner, not by every record held.
    sql: `
      create index client_records_owner on hoop.client_records ((state->>'issuer'), (state->>'subject'), updated_at);`,
  },
];

/** The local copies of records being verified, in the data directory. */
const CACHE_DIR = 'client-records-cache';
/** Files fetched per query when filling the cache (a session's file is at most 4 MiB). */
const FETCH_BATCH = 16;

/** See the module documentation. */
export class PostgresClientRecordStore implements ClientRecordStore {
  readonly #pool: pg.Pool;
  readonly #cache: string;
  /** What each record's cache holds, by its directory: the SHA-256 (hex) of each file as it was written there. */
  readonly #cached = new Map<string, Map<string, string>>();

  private constructor(pool: pg.Pool, cache: string) {
    this.#pool = pool;
    this.#cache = cache;
  }

  /** The records in `replica`'s store, cached for verification under `dataDir` (emptied now). */
  static async open(replica: StoreReplica, dataDir: string): Promise<PostgresClientRecordStore> {
    const cache = join(dataDir, CACHE_DIR);
    await rm(cache, { recursive: true, force: true });
    return new PostgresClientRecordStore(replica.pool, cache);
  }

  async update<T>(kind: RecordKind, id: string, fn: (record: HeldRecord) => Promise<T>): Promise<T> {
    const cache = join(this.#cache, kind, id);
    let dropCache = false;
    try {
      return await withTransaction(this.#pool, "keep a CLI's record", async (client) => {
        await query(client, 'select pg_advisory_xact_lock(hashtext($1))', [`${kind}/${id}`], 'hold the record');
        return fn(this.#held(client, kind, id, cache, () => (dropCache = true)));
      });
    } catch (err) {
      dropCache = true; // it may hold files the store did not keep
      throw err;
    } finally {
      if (dropCache) {
        this.#cached.delete(cache);
        await rm(cache, { recursive: true, force: true });
      }
    }
  }

  /** The record `kind/id` as `client` sees it in its transaction. */
  #held(client: pg.PoolClient, kind: RecordKind, id: string, cache: string, done: () => void): HeldRecord {
    const key = [kind, id];
    return {
      state: async () => {
        const row = (await query<{ state: unknown }>(client, 'select state from hoop.client_records where kind = $1 and id = $2', key, 'read the record')).rows[0];
        return row ? stateOf(kind, id, row.state) : undefined;
      },
      read: async (name) =>
        (await query<{ data: Buffer }>(client, 'select data from hoop.client_record_files where kind = $1 and id = $2 and name = $3', [...key, name], 'read the record')).rows[0]?.data,
      usage: async () => {
        const row = (
          await query<{ files: number; bytes: string }>(
            client,
            'select count(*)::int as files, coalesce(sum(length(data)), 0)::bigint as bytes from hoop.client_record_files where kind = $1 and id = $2',
            key,
            'read the record',
          )
        ).rows[0]!;
        return { files: row.files, bytes: Number(row.bytes) };
      },
      write: async (name, data) => {
        await query(client, 'insert into hoop.client_record_files (kind, id, name, data) values ($1, $2, $3, $4)', [...key, name, data], 'keep the file');
      },
      delete: async (names) => {
        await query(client, 'delete from hoop.client_record_files where kind = $1 and id = $2 and name = any($3::text[])', [...key, names], 'drop the files');
        for (const name of names) {
          this.#cached.get(cache)?.delete(name);
          await rm(join(cache, name), { force: true });
        }
      },
      save: async (state) => {
        await query(
          client,
          'insert into hoop.client_records (kind, id, state) values ($1, $2, $3) on conflict (kind, id) do update set state = excluded.state, updated_at = now()',
          [...key, state],
          'keep the record',
        );
        if (state.state === 'complete') done(); // it takes no more files: nothing more to verify here
      },
      removeAll: async () => {
        await query(client, 'delete from hoop.client_record_files where kind = $1 and id = $2', key, 'drop the record');
        await query(client, 'delete from hoop.client_records where kind = $1 and id = $2', key, 'drop the record');
        done();
      },
      local: () => this.#fill(client, kind, id, cache),
    };
  }

  /** Brings `dir` to the files of the record as `client` sees them (see the module documentation); resolves `dir`. */
  async #fill(client: pg.PoolClient, kind: RecordKind, id: string, dir: string): Promise<string> {
    let held = this.#cached.get(dir);
    if (!held) {
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true, mode: 0o700 });
      this.#cached.set(dir, (held = new Map()));
    }
    const stored = await query<{ name: string; digest: Buffer }>(client, 'select name, digest from hoop.client_record_files where kind = $1 and id = $2', [kind, id], 'read the record');
    const digests = new Map(stored.rows.map((r) => [r.name, r.digest.toString('hex')]));
    for (const name of held.keys()) {
      if (digests.has(name)) continue;
      held.delete(name);
      await rm(join(dir, name), { force: true });
    }
    const missing = [...digests].filter(([name, digest]) => held.get(name) !== digest).map(([name]) => name);
    for (let i = 0; i < missing.length; i += FETCH_BATCH) {
      const r = await query<{ name: string; data: Buffer; digest: Buffer }>(
        client,
        'select name, data, digest from hoop.client_record_files where kind = $1 and id = $2 and name = any($3::text[])',
        [kind, id, missing.slice(i, i + FETCH_BATCH)],
        'read the record',
      );
      for (const row of r.rows) {
        // A write that fails fails the update, which drops the whole cache.
        await writeFile(join(dir, row.name), row.data, { mode: 0o600 });
        held.set(row.name, row.digest.toString('hex'));
      }
    }
    return dir;
  }

  async states(kind: RecordKind, ids: readonly string[]): Promise<Map<string, ClientRecordState>> {
    const r = await query<{ id: string; state: unknown }>(this.#pool, 'select id, state from hoop.client_records where kind = $1 and id = any($2::text[])', [kind, ids], "read the CLIs' records");
    return new Map(r.rows.map((row) => [row.id, stateOf(kind, row.id, row.state)]));
  }

  async files(kind: RecordKind, id: string): Promise<string[]> {
    const r = await query<{ name: string }>(this.#pool, 'select name from hoop.client_record_files where kind = $1 and id = $2 order by name', [kind, id], "read the CLI's record");
    return r.rows.map((row) => row.name);
  }

  async file(kind: RecordKind, id: string, name: string): Promise<Buffer | undefined> {
    const r = await query<{ data: Buffer }>(this.#pool, 'select data from hoop.client_record_files where kind = $1 and id = $2 and name = $3', [kind, id, name], "read the CLI's record");
    return r.rows[0]?.data;
  }

  async unverifiedBytes(owner: { issuer: string; subject: string }): Promise<number> {
    const r = await query<{ bytes: string }>(
      this.#pool,
      "select coalesce(sum((state->>'pending')::bigint), 0)::bigint as bytes from hoop.client_records where state->>'issuer' = $1 and state->>'subject' = $2",
      [owner.issuer, owner.subject],
      "count an identity's records",
    );
    return Number(r.rows[0]?.bytes ?? 0);
  }

  async recentBytes(owner: { issuer: string; subject: string }, since: number): Promise<number> {
    const r = await query<{ bytes: string }>(
      this.#pool,
      "select coalesce(sum((state->>'bytes')::bigint), 0)::bigint as bytes from hoop.client_records where state->>'issuer' = $1 and state->>'subject' = $2 and updated_at >= $3",
      [owner.issuer, owner.subject, new Date(since)],
      "count an identity's records of the day",
    );
    return Number(r.rows[0]?.bytes ?? 0);
  }

  async unverifiedSince(before: Date): Promise<Array<{ kind: RecordKind; id: string }>> {
    const r = await query<{ kind: RecordKind; id: string }>(
      this.#pool,
      "select kind, id from hoop.client_records where state->>'state' in ('uploading', 'refused') and updated_at < $1",
      [before],
      'find the records no signature verified',
    );
    return r.rows;
  }
}

/** The state of record `kind/id` as the store holds it, read with its schema: a row this gateway cannot read fails the read (STORE_UNAVAILABLE) rather than be acted on. */
function stateOf(kind: RecordKind, id: string, state: unknown): ClientRecordState {
  return storedRow(clientRecordStateSchema, state, `CLI's record ${kind}/${id}`);
}

/** Runs one statement; a failure is STORE_UNAVAILABLE, saying what the gateway was `doing` with a CLI's record. */
async function query<R extends pg.QueryResultRow>(on: pg.PoolClient | pg.Pool, text: string, values: unknown[], doing: string): Promise<pg.QueryResult<R>> {
  try {
    return await on.query<R>(text, values);
  } catch (err) {
    throw storeError(err, `${doing} (a CLI's record)`);
  }
}
