/**
 * The gateway's state in PostgreSQL, shared by every replica (`store: { kind: postgres }`): the
 * same {@link GatewayStore} interface as the files in the data directory, on a proven engine
 * rather than any replication of hoop's own.
 *
 * Everything lives in the schema `hoop`. Its shape is versioned: the schema's steps (src/gateway/migrations.ts) run in order at
 * start (and with `hoop gateway migrate`), each once, recorded in `hoop.migrations`, all in one
 * transaction that first takes a transaction-level advisory lock, so replicas starting at once
 * apply them one after the other and never twice. A database whose schema is newer than this
 * gateway knows is refused (an older replica must not write into a newer shape).
 *
 * Concurrency across replicas is PostgreSQL's: a device registration runs in a transaction holding
 * an advisory lock on its owner, so the per-identity limits hold however many replicas register
 * at once.
 *
 * @see https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING (the URL)
 * @see docs/internals.md (§5)
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { ErrorCode, HoopError, describeError } from '../../errors.js';
import { checkDeviceLimit, type Device, type DeviceOwner, type GatewayStore, type NewDevice } from './store.js';

/**
 * What another role could write in the schema `hoop` (as StrictModes checks a data directory:
 * ../../config/trusted-paths.ts): a table it does not own, a grant of a writing privilege (on a
 * table or a column) to another role or to PUBLIC, the schema another's or others' to create in, a
 * role that is a member of the store's (and so acts as it) or of pg_write_all_data. The store
 * holds what the gateway trusts (the recording keys it publishes, reviews, sessions): only its own
 * role writes it, and a superuser, as root may write a data directory.
 */
const OTHER_WRITERS_SQL = `
  select format('%s: %s', c.relname, case when c.relowner <> r.oid then 'it is owned by ' || pg_catalog.pg_get_userbyid(c.relowner)
    else pg_catalog.string_agg(distinct coalesce(g.rolname, 'PUBLIC') || ' may ' || lower(p.privilege_type), ', ') end) as problem
  from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace join pg_catalog.pg_roles r on r.rolname = current_user
  left join lateral pg_catalog.aclexplode(coalesce(c.relacl, pg_catalog.acldefault('r', c.relowner))) p
    on p.grantee <> c.relowner and p.privilege_type in ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'TRIGGER')
  left join pg_catalog.pg_roles g on g.oid = p.grantee
  where n.nspname = 'hoop' and c.relkind in ('r', 'p') and (c.relowner <> r.oid or p.grantee is not null)
  group by c.relname, c.relowner, r.oid
  union all
  select format('%s.%s: %s may %s', c.relname, a.attname, coalesce(g.rolname, 'PUBLIC'), lower(p.privilege_type))
  from pg_catalog.pg_attribute a join pg_catalog.pg_class c on c.oid = a.attrelid join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  cross join lateral pg_catalog.aclexplode(a.attacl) p left join pg_catalog.pg_roles g on g.oid = p.grantee
  where n.nspname = 'hoop' and a.attacl is not null and p.grantee <> c.relowner and p.privilege_type in ('INSERT', 'UPDATE')
  union all
  select format('the schema hoop: %s', case when n.nspowner <> r.oid then 'it is owned by ' || pg_catalog.pg_get_userbyid(n.nspowner)
    else pg_catalog.string_agg(distinct coalesce(g.rolname, 'PUBLIC') || ' may ' || lower(p.privilege_type), ', ') end)
  from pg_catalog.pg_namespace n join pg_catalog.pg_roles r on r.rolname = current_user
  left join lateral pg_catalog.aclexplode(coalesce(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) p on p.grantee <> n.nspowner and p.privilege_type = 'CREATE'
  left join pg_catalog.pg_roles g on g.oid = p.grantee
  where n.nspname = 'hoop' and (n.nspowner <> r.oid or p.grantee is not null)
  group by n.nspowner, r.oid
  union all
  select format('role %s %s, and may write what it may', m.rolname, case when pg_catalog.pg_has_role(m.oid, current_user, 'MEMBER') then 'is a member of ' || current_user else 'may write every table (pg_write_all_data)' end)
  from pg_catalog.pg_roles m
  where not m.rolsuper and m.rolname <> current_user and m.rolname not like 'pg\\_%'
    and (pg_catalog.pg_has_role(m.oid, current_user, 'MEMBER')
      or (pg_catalog.to_regrole('pg_write_all_data') is not null and pg_catalog.pg_has_role(m.oid, 'pg_write_all_data', 'MEMBER')))`;

/** Refuses a store another role may write (see {@link OTHER_WRITERS_SQL}), naming what and the fix. */
async function onlyItsRoleWrites(pool: pg.Pool): Promise<void> {
  const { rows } = await pool.query<{ problem: string }>(OTHER_WRITERS_SQL);
  if (rows.length === 0) return;
  throw new HoopError(
    ErrorCode.CONFIG_INVALID,
    `the gateway will not trust its store: another role may write it (${rows
      .map((r) => r.problem)
      .slice(0, 5)
      .join('; ')})`,
    {
      hint: "the store is the gateway's own, as its data directory is: revoke those grants (REVOKE INSERT, UPDATE, DELETE, TRUNCATE, TRIGGER ON ALL TABLES IN SCHEMA hoop FROM …), and give the tables to the store's role",
    },
  );
}

/** One step of the schema: applied once, in order of `version`. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * The store's own steps of the schema's history (src/gateway/migrations.ts holds it whole): its
 * devices, and the first two steps, which made several features' tables at once (released steps never
 * change). Each later feature's steps are beside it.
 */
export const STORE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'device keys',
    sql: `
      create table hoop.devices (
        device_id   uuid primary key,
        issuer      text not null,
        subject     text not null,
        name        text not null,
        public_key  text not null,
        fingerprint text not null,
        created_at  timestamptz not null,
        expires_at  timestamptz
      );
      create index devices_owner on hoop.devices (issuer, subject);`,
  },
  {
    version: 2,
    name: 'replicas, sessions, recordings, reviews',
    sql: `
      create table hoop.replicas (
        id         text primary key,
        url        text not null,
        version    text not null,
        started_at timestamptz not null,
        seen_at    timestamptz not null,
        stopped_at timestamptz
      );
      create table hoop.signing_keys (
        fingerprint text primary key,
        public_key  text not null,
        replica     text not null,
        retired     boolean not null default false,
        created_at  timestamptz not null default now()
      );
      create table hoop.sessions (
        id         text primary key,
        replica    text not null,
        started_at timestamptz not null,
        ended_at   timestamptz,
        summary    jsonb not null
      );
      create index sessions_started on hoop.sessions (started_at desc);
      create index sessions_running on hoop.sessions (replica) where ended_at is null;
      create table hoop.recording_files (
        session   text not null,
        name      text not null,
        data      bytea not null,
        stored_at timestamptz not null default now(),
        primary key (session, name)
      );
      create table hoop.reviews (
        id         text primary key,
        state      text not null,
        version    integer not null,
        holder     text,
        expires_at timestamptz not null,
        updated_at timestamptz not null default now(),
        settings   jsonb,
        review     jsonb not null
      );
      create index reviews_pending on hoop.reviews (holder) where state = 'pending';
      create table hoop.ssh_host_keys (
        replica    text primary key,
        public_key text not null
      );
      create index reviews_updated on hoop.reviews (updated_at);`,
  },
  {
    version: 3,
    name: 'audit delivery, client records, recordings in a bucket',
    sql: `
      create table hoop.audit_events (
        seq  bigserial primary key,
        line text not null
      );
      create table hoop.audit_cursors (
        sink text primary key,
        seq  bigint not null default 0
      );
      insert into hoop.audit_cursors (sink) values ('url');
      create table hoop.client_records (
        kind       text not null,
        id         text not null,
        state      jsonb not null,
        updated_at timestamptz not null default now(),
        primary key (kind, id)
      );
      create table hoop.client_record_files (
        kind      text not null,
        id        text not null,
        name      text not null,
        data      bytea not null,
        stored_at timestamptz not null default now(),
        primary key (kind, id, name)
      );
      alter table hoop.recording_files alter column data drop not null;
      alter table hoop.recording_files add column object text;`,
  },
];

/** The advisory lock key migrations take (any constant; "hoop" in ASCII). */
const MIGRATION_LOCK = 0x686f6f70;

/** What {@link migrate} did. */
export interface MigrationResult {
  /** The schema's version now. */
  version: number;
  /** The versions this call applied (none when another replica, or an earlier start, had). */
  applied: number[];
}

/**
 * Brings the `hoop` schema up to the newest of `migrations`, in one transaction under an advisory
 * lock (see the module documentation).
 *
 * @throws HoopError STORE_UNAVAILABLE (the database is newer than this gateway, or cannot be reached or changed)
 */
export function migrate(pool: pg.Pool, migrations: readonly Migration[]): Promise<MigrationResult> {
  return withTransaction(pool, 'apply the store schema', async (client) => {
    await client.query('select pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query('create schema if not exists hoop');
    await client.query('create table if not exists hoop.migrations (version integer primary key, name text not null, applied_at timestamptz not null default now())');
    const done = new Set((await client.query<{ version: number }>('select version from hoop.migrations')).rows.map((r) => r.version));
    const newest = Math.max(0, ...migrations.map((m) => m.version));
    const ahead = [...done].filter((v) => v > newest);
    if (ahead.length > 0) {
      throw new HoopError(ErrorCode.STORE_UNAVAILABLE, `the store's schema is at version ${Math.max(...ahead)}, newer than this gateway knows (${newest})`, {
        hint: 'run the same hoop version on every replica; upgrade this one',
      });
    }
    const applied: number[] = [];
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (done.has(m.version)) continue;
      await client.query(m.sql);
      await client.query('insert into hoop.migrations (version, name) values ($1, $2)', [m.version, m.name]);
      applied.push(m.version);
    }
    return { version: newest, applied };
  });
}

/**
 * Runs `fn` in a transaction on a client of `pool`: committed when `fn` resolves, rolled back when
 * it rejects (a client whose rollback fails too is dropped, not reused). A rejection that is not a
 * HoopError becomes STORE_UNAVAILABLE saying what the gateway was `doing`.
 */
export async function withTransaction<T>(pool: pg.Pool, doing: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await connectTo(pool);
  let broken = false;
  try {
    await client.query('begin');
    const result = await fn(client);
    await client.query('commit');
    return result;
  } catch (err) {
    broken = await client.query('rollback').then(
      () => false,
      () => true,
    );
    throw storeError(err, doing);
  } finally {
    client.release(broken);
  }
}

/** SQL for the database's `now()` as ISO 8601 in UTC, the shape of the times kept in JSON (`endedAt`, `decidedAt`). */
export const NOW_ISO = `to_char(now() at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/** Where the store is, for messages: `host:port/database`, never the password. */
export function describeStoreUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}${u.port ? `:${u.port}` : ''}${u.pathname}`;
  } catch {
    return 'the store';
  }
}

/** A pool on `url` (a libpq connection URI), checked by connecting once. */
export async function openStorePool(url: string): Promise<pg.Pool> {
  const pool = new pg.Pool({ connectionString: url, max: 10, idleTimeoutMillis: 30_000, connectionTimeoutMillis: 10_000, application_name: 'hoop gateway' });
  // A connection's error (the server restarted) must never end the gateway. The pool drops an idle
  // client that fails; a client in use that fails rejects its query, and the pool drops it when it
  // is released; neither may throw as an unhandled 'error' event.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  try {
    (await connectTo(pool)).release();
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw new HoopError(ErrorCode.STORE_UNAVAILABLE, `cannot reach the store at ${describeStoreUrl(url)}: ${describeError(err)}`, {
      hint: 'check store.url in the gateway configuration and that PostgreSQL accepts the gateway',
    });
  }
  return pool;
}

async function connectTo(pool: pg.Pool): Promise<pg.PoolClient> {
  try {
    return await pool.connect();
  } catch (err) {
    throw storeError(err, 'connect');
  }
}

/** `err` as STORE_UNAVAILABLE, saying what the gateway was `doing`. */
export function storeError(err: unknown, doing: string): HoopError {
  if (err instanceof HoopError) return err;
  return new HoopError(ErrorCode.STORE_UNAVAILABLE, `the store could not ${doing}: ${describeError(err)}`, {
    hint: 'check that the store (PostgreSQL) is up and reachable; the gateway retries on the next request',
    cause: err,
  });
}

interface DeviceRow {
  device_id: string;
  issuer: string;
  subject: string;
  name: string;
  public_key: string;
  fingerprint: string;
  created_at: Date;
  expires_at: Date | null;
}

function deviceOf(r: DeviceRow): Device {
  return {
    deviceId: r.device_id,
    issuer: r.issuer,
    subject: r.subject,
    name: r.name,
    publicKey: r.public_key,
    fingerprint: r.fingerprint,
    createdAt: r.created_at.toISOString(),
    ...(r.expires_at ? { expiresAt: r.expires_at.toISOString() } : {}),
  };
}

const LIVE = '(expires_at is null or expires_at > now())';

/** See the module documentation. */
export class PostgresGatewayStore implements GatewayStore {
  readonly #pool: pg.Pool;
  #closed = false;

  private constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  /**
   * Connects to `url` and brings the schema up to date.
   *
   * @throws HoopError STORE_UNAVAILABLE
   */
  static async open(url: string, migrations: readonly Migration[]): Promise<PostgresGatewayStore> {
    const pool = await openStorePool(url);
    try {
      await migrate(pool, migrations);
      await onlyItsRoleWrites(pool);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
    return new PostgresGatewayStore(pool);
  }

  /** The pool the store's other parts (replicas, sessions, reviews) share. */
  get pool(): pg.Pool {
    return this.#pool;
  }

  async #query<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<R[]> {
    if (this.#closed) throw new HoopError(ErrorCode.INTERNAL, 'the gateway store is closed');
    try {
      return (await this.#pool.query<R>(text, values)).rows;
    } catch (err) {
      throw storeError(err, 'answer');
    }
  }

  async registerDevice(owner: DeviceOwner, device: NewDevice): Promise<{ device: Device; created: boolean }> {
    if (this.#closed) throw new HoopError(ErrorCode.INTERNAL, 'the gateway store is closed');
    return withTransaction(this.#pool, 'register the device', async (client) => {
      // One registration per identity at a time, on every replica: the limits below hold.
      await client.query('select pg_advisory_xact_lock(hashtext($1), hashtext($2))', [owner.issuer, owner.subject]);
      const mine = (await client.query<DeviceRow>(`select * from hoop.devices where issuer = $1 and subject = $2 and ${LIVE}`, [owner.issuer, owner.subject])).rows;
      const existing = mine.find((d) => d.fingerprint === device.fingerprint);
      if (existing) return { device: deviceOf(existing), created: false };
      checkDeviceLimit(owner, device, mine.map(deviceOf));
      await client.query(`delete from hoop.devices where issuer = $1 and subject = $2 and not ${LIVE}`, [owner.issuer, owner.subject]);
      const row = (
        await client.query<DeviceRow>(
          'insert into hoop.devices (device_id, issuer, subject, name, public_key, fingerprint, created_at, expires_at) values ($1, $2, $3, $4, $5, $6, now(), $7) returning *',
          [randomUUID(), owner.issuer, owner.subject, device.name, device.publicKey, device.fingerprint, device.expiresAt ?? null],
        )
      ).rows[0]!;
      return { device: deviceOf(row), created: true };
    });
  }

  async listDevices(owner: DeviceOwner): Promise<Device[]> {
    return (await this.#query<DeviceRow>(`select * from hoop.devices where issuer = $1 and subject = $2 and ${LIVE} order by created_at, device_id`, [owner.issuer, owner.subject])).map(deviceOf);
  }

  async getDevice(deviceId: string): Promise<Device | undefined> {
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(deviceId)) return undefined;
    const [row] = await this.#query<DeviceRow>('select * from hoop.devices where device_id = $1', [deviceId]);
    return row ? deviceOf(row) : undefined;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }
}
