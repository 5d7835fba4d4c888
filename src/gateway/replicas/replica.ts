/**
 * One gateway replica among several on a PostgreSQL store: its presence, its wake-ups, and the
 * take-over of a replica that died.
 *
 * - Presence: each replica has an id (kept in `<dataDir>/replica-id`, so a replica restarted on
 *   the same data directory is the same replica and finds its spool again) and a row in
 *   `hoop.replicas` whose `seen_at` it sets every `heartbeatMs`. A failed heartbeat marks the store
 *   unreachable ({@link StoreReplica.reachable}); the next one that succeeds marks it back.
 * - Wake-ups: one dedicated connection LISTENs on the channels the replica's parts asked for
 *   (reviews decided elsewhere, CancelRequests for a session held here). It reconnects by itself;
 *   as notifications sent while it was away are lost, each part is told to catch up then.
 * - Life line: that connection holds an advisory lock named after the replica ({@link replicaLives}),
 *   which PostgreSQL releases the moment the process dies (its socket closes): what must not
 *   happen once a replica is gone (approving a statement it holds) asks for the lock, not a
 *   heartbeat seconds old.
 * - Take-over: a replica not seen for `deadAfterMs` and not stopped is dead. The first replica to
 *   notice marks it stopped in a transaction and runs the take-over steps (its running sessions
 *   become truncated, the reviews it held are expired or handed over) in that same transaction,
 *   so exactly one replica does it, once. A replica that starts again after a crash takes over its
 *   own previous run the same way.
 * - An outage of the store is nobody's death: while the store was down no replica could say it was
 *   alive, so a replica judges the others only once it has reached the store for `deadAfterMs`
 *   without a break, and the store itself has run that long (`pg_postmaster_start_time()`). The
 *   others then had as long to come back.
 * - Fencing: a replica that finds itself marked stopped by another (it was silent for longer than
 *   `deadAfterMs`: a pause, a partition) was taken over while it lived. The store already says its
 *   sessions ended and its held statements expired, so it ends them too ({@link onFenced}), then
 *   takes its place again.
 *
 * Times are the database's (`now()`), so the replicas' clocks need not agree.
 *
 * @see https://www.postgresql.org/docs/current/sql-notify.html
 * @see https://www.postgresql.org/docs/current/sql-listen.html
 */
import { randomBytes } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { describeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { VERSION } from '../../version.js';
import { auditBacklog } from '../audit/audit-postgres.js';
import { storeError, withTransaction } from '../store/store-postgres.js';

/**
 * A step of the take-over of a dead replica, in the transaction that marks it stopped. It may
 * resolve what to do once that transaction is committed (tell of what it did).
 */
export type TakeOver = (client: pg.PoolClient, dead: string) => Promise<void | (() => void)>;

/** One replica as `hoop gateway status` shows it. */
export interface ReplicaRow {
  id: string;
  url: string;
  version: string;
  startedAt: string;
  seenAt: string;
  /** live: seen within the dead-after time; stopped: ended (cleanly, or taken over); silent: not seen lately, not taken over yet. */
  state: 'live' | 'silent' | 'stopped';
}

/** What {@link StoreReplica.status} tells. */
export interface StoreStatus {
  /** The schema's version. */
  schema: number;
  replicas: ReplicaRow[];
  pendingReviews: number;
  runningSessions: number;
  /** Audit events stored and not yet delivered to the `url` destination. */
  auditBacklog: number;
}

/** Options of {@link StoreReplica.start}. */
export interface StoreReplicaOptions {
  /** Where the replica id is kept. */
  dataDir: string;
  /** The replica's own URL (for people reading `hoop gateway status`). */
  url: string;
  log: Logger;
  heartbeatMs?: number;
  deadAfterMs?: number;
}

const REPLICA_ID_FILE = 'replica-id';
const REPLICA_ID = /^[a-z0-9-]{4,64}$/;

/** See the module documentation. */
/** The two keys of replica `id`'s life-line advisory lock (SQL over an expression naming the replica). */
const LIFE_LINE_KEYS = (id: string): string => `hashtext('hoop.replica'), hashtext(${id})`;

/** SQL: whether the replica named by the expression `id` lives: its listening connection holds its life line. */
export function replicaLives(id: string): string {
  return `exists (select 1 from pg_locks l where l.locktype = 'advisory' and l.granted and l.objsubid = 2 and l.database = (select oid from pg_database where datname = current_database())
    and l.classid = hashtext('hoop.replica')::oid and l.objid = hashtext(${id})::oid)`;
}

export class StoreReplica {
  readonly id: string;
  readonly pool: pg.Pool;
  readonly #o: Required<Omit<StoreReplicaOptions, 'dataDir' | 'url'>>;
  #url: string;
  readonly #handlers = new Map<string, Array<(payload: string) => void>>();
  readonly #catchUps: Array<() => Promise<void>> = [];
  readonly #takeOvers: TakeOver[] = [];
  readonly #recovered: Array<() => void> = [];
  readonly #beats: Array<() => Promise<void>> = [];
  readonly #fenced: Array<() => void> = [];
  /** Since when (monotonic ms) the store has answered every heartbeat: the others are judged only after `deadAfterMs` of it. */
  #reachableSince = performance.now();
  #listener: pg.Client | undefined;
  #listening: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #reachable = true;
  #stopped = false;
  #beat: Promise<void> = Promise.resolve();

  private constructor(id: string, pool: pg.Pool, o: StoreReplicaOptions) {
    this.id = id;
    this.pool = pool;
    this.#o = { log: o.log, heartbeatMs: o.heartbeatMs ?? 2_000, deadAfterMs: o.deadAfterMs ?? 15_000 };
    this.#url = o.url;
  }

  /** This replica's id for `dataDir`: the one kept there, or a new one (kept). */
  static async idFor(dataDir: string): Promise<string> {
    const file = join(dataDir, REPLICA_ID_FILE);
    const kept = (await readFile(file, 'utf8').catch(() => '')).trim();
    if (REPLICA_ID.test(kept)) return kept;
    const id = `r-${randomBytes(6).toString('hex')}`;
    const handle = await open(file, 'w', 0o600);
    await handle.writeFile(`${id}\n`);
    await handle.sync();
    await handle.close();
    return id;
  }

  /** Creates the replica of `dataDir` on `pool`; {@link begin} makes it present. */
  static async create(pool: pg.Pool, o: StoreReplicaOptions): Promise<StoreReplica> {
    return new StoreReplica(await StoreReplica.idFor(o.dataDir), pool, o);
  }

  /** A replica seen within this long (ms) is surely live: two heartbeats, or a third of the dead-after time if longer. */
  get liveWithinMs(): number {
    return Math.max(2 * this.#o.heartbeatMs, this.#o.deadAfterMs / 3);
  }

  /** How long a silent replica may go unseen before another takes it over (ms). */
  get deadAfterMs(): number {
    return this.#o.deadAfterMs;
  }

  /** Whether the store answered the last heartbeat. */
  get reachable(): boolean {
    return this.#reachable;
  }

  /** Calls `fn` with each notification's payload on `channel` (a plain identifier). */
  on(channel: string, fn: (payload: string) => void): void {
    const list = this.#handlers.get(channel) ?? [];
    list.push(fn);
    this.#handlers.set(channel, list);
  }

  /** Calls `fn` when the listening connection (re)connects: what was sent while it was away is lost, so catch up. */
  onCatchUp(fn: () => Promise<void>): void {
    this.#catchUps.push(fn);
  }

  /** Adds a step of the take-over of a dead replica (see the module documentation). */
  onTakeOver(fn: TakeOver): void {
    this.#takeOvers.push(fn);
  }

  /** Calls `fn` after each heartbeat the store answered (periodic work: overdue reviews). */
  onBeat(fn: () => Promise<void>): void {
    this.#beats.push(fn);
  }

  /** Calls `fn` when this replica finds that another took it over while it lived: its sessions are over in the store. */
  onFenced(fn: () => void): void {
    this.#fenced.push(fn);
  }

  /** Calls `fn` when the store answers again after it did not. */
  onRecovered(fn: () => void): void {
    this.#recovered.push(fn);
  }

  /** Sends `payload` on `channel` to every replica (this one too). */
  async notify(channel: string, payload: string): Promise<void> {
    try {
      await this.pool.query('select pg_notify($1, $2)', [channel, payload]);
    } catch (err) {
      throw storeError(err, 'tell the other replicas');
    }
  }

  /**
   * Takes over this replica's own previous run (a crash), marks it present, starts listening and
   * the heartbeat.
   *
   * @throws HoopError STORE_UNAVAILABLE
   */
  async begin(): Promise<void> {
    await this.#takeOver(this.id, true);
    try {
      await this.pool.query(
        `insert into hoop.replicas (id, url, version, started_at, seen_at) values ($1, $2, $3, now(), now())
         on conflict (id) do update set url = excluded.url, version = excluded.version, started_at = now(), seen_at = now(), stopped_at = null`,
        [this.id, this.#url, VERSION],
      );
    } catch (err) {
      throw storeError(err, 'register this replica');
    }
    this.#reachableSince = performance.now();
    await this.#listen();
    this.#timer = setInterval(() => {
      this.#beat = this.#beat.then(() => this.#heartbeat());
    }, this.#o.heartbeatMs);
    this.#timer.unref();
  }

  async #listen(): Promise<void> {
    if (this.#stopped) return;
    const client = new pg.Client({ ...(this.pool.options as pg.ClientConfig), application_name: 'hoop gateway (listen)' });
    client.on('notification', (n) => {
      for (const fn of this.#handlers.get(n.channel) ?? []) {
        try {
          fn(n.payload ?? '');
        } catch (err) {
          this.#o.log.error('store.notification-failed', { channel: n.channel, error: describeError(err) });
        }
      }
    });
    const lost = (err?: Error): void => {
      if (this.#listener !== client) return;
      this.#listener = undefined;
      client.end().catch(() => undefined);
      if (this.#stopped) return;
      this.#o.log.warn('store.listen-lost', { ...(err ? { error: describeError(err) } : {}), message: 'reconnecting; reviews and cancels decided meanwhile are caught up then' });
      setTimeout(() => void this.#listen().catch(() => undefined), this.#o.heartbeatMs).unref();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    this.#listener = client;
    try {
      await client.connect();
      if (!(await client.query<{ held: boolean }>(`select pg_try_advisory_lock(${LIFE_LINE_KEYS('$1')}) as held`, [this.id])).rows[0]?.held)
        throw new Error(`the life line of replica ${this.id} is still held by a connection of its last run; trying again`);
      for (const channel of this.#handlers.keys()) await client.query(`listen ${pg.escapeIdentifier(channel)}`);
    } catch (err) {
      lost(err as Error);
      throw storeError(err, 'listen for the other replicas');
    }
    for (const fn of this.#catchUps) await fn().catch((err: unknown) => this.#o.log.error('store.catch-up-failed', { error: describeError(err) }));
  }

  async #heartbeat(): Promise<void> {
    if (this.#stopped) return;
    let present: boolean;
    try {
      present = ((await this.pool.query('update hoop.replicas set seen_at = now() where id = $1 and stopped_at is null', [this.id])).rowCount ?? 0) > 0;
      if (!this.#reachable) {
        this.#reachable = true;
        this.#reachableSince = performance.now();
        this.#o.log.info('store.reachable', { message: 'the store answers again' });
        for (const fn of this.#recovered) fn();
      }
    } catch (err) {
      if (this.#reachable) this.#o.log.error('store.unreachable', { error: describeError(err), message: 'new sessions follow recording.onFailure until the store answers again' });
      this.#reachable = false;
      return;
    }
    if (!present && !(await this.#rejoin())) return;
    if (!this.#listener && !this.#listening) {
      this.#listening = this.#listen()
        .catch(() => undefined)
        .finally(() => (this.#listening = undefined));
    }
    try {
      // Only after reaching the store for as long as the others may be silent (see the module documentation).
      if (performance.now() - this.#reachableSince >= this.#o.deadAfterMs) {
        const dead = await this.pool.query<{ id: string }>(
          `select id from hoop.replicas where stopped_at is null and id <> $1 and seen_at < now() - make_interval(secs => $2)
             and pg_postmaster_start_time() < now() - make_interval(secs => $2)`,
          [this.id, this.#o.deadAfterMs / 1000],
        );
        for (const { id } of dead.rows) await this.#takeOver(id, false);
      }
      for (const fn of this.#beats) await fn();
    } catch (err) {
      this.#o.log.error('store.sweep-failed', { error: describeError(err) });
    }
  }

  /**
   * This replica was marked stopped by another (fenced): ends what the store says ended, then
   * takes its place again. Resolves whether it did.
   */
  async #rejoin(): Promise<boolean> {
    this.#o.log.error('replica.fenced', {
      replica: this.id,
      message: 'another replica took this one for dead and took its sessions over; they end here too, and this replica takes new sessions again',
    });
    for (const fn of this.#fenced) {
      try {
        fn();
      } catch (err) {
        this.#o.log.error('replica.fence-failed', { error: describeError(err) });
      }
    }
    try {
      await this.pool.query('update hoop.replicas set seen_at = now(), started_at = now(), stopped_at = null where id = $1', [this.id]);
      return true;
    } catch (err) {
      this.#o.log.error('store.unreachable', { error: describeError(err), message: "could not take this replica's place again; the next heartbeat tries again" });
      return false;
    }
  }

  /** Marks `dead` stopped and runs the take-over steps, once across replicas. */
  async #takeOver(dead: string, own: boolean): Promise<void> {
    const { claimed, committed } = await withTransaction(this.pool, `take over replica ${dead}`, async (client) => {
      // Only the replica that marks it stopped takes it over; the others find it stopped.
      const claimed = own
        ? await client.query('select id from hoop.replicas where id = $1 for update', [dead])
        : await client.query('update hoop.replicas set stopped_at = now() where id = $1 and stopped_at is null returning id', [dead]);
      const committed: Array<() => void> = [];
      if (claimed.rowCount) {
        for (const step of this.#takeOvers) {
          const then = await step(client, dead);
          if (then) committed.push(then);
        }
      }
      return { claimed: (claimed.rowCount ?? 0) > 0, committed };
    });
    for (const then of committed) then();
    if (claimed && !own)
      this.#o.log.warn('replica.taken-over', {
        replica: dead,
        by: this.id,
        message: `replica ${dead} stopped answering; its sessions are marked truncated and the reviews it held expired or taken over`,
      });
  }

  /** Publishes this replica's SSH host key, so `hoop connect` pins every replica's (a balancer may send it to any). */
  async publishSshHostKey(publicKey: string): Promise<void> {
    try {
      await this.pool.query('insert into hoop.ssh_host_keys (replica, public_key) values ($1, $2) on conflict (replica) do update set public_key = excluded.public_key', [this.id, publicKey]);
    } catch (err) {
      throw storeError(err, 'publish the SSH host key');
    }
  }

  /** Every replica's SSH host key (`ssh-ed25519 AAAA…`). */
  async sshHostKeys(): Promise<string[]> {
    try {
      return (await this.pool.query<{ public_key: string }>('select distinct public_key from hoop.ssh_host_keys order by public_key')).rows.map((r) => r.public_key);
    } catch (err) {
      throw storeError(err, 'read the SSH host keys');
    }
  }

  /** Says where this replica listens, once it does. */
  async listening(url: string): Promise<void> {
    this.#url = url;
    await this.pool.query('update hoop.replicas set url = $2 where id = $1', [this.id, url]).catch(() => undefined);
  }

  /** The replicas, whether the store answers, pending reviews and running sessions. */
  status(): Promise<StoreStatus> {
    return storeStatus(this.pool, this.#o.deadAfterMs);
  }

  /** Stops the heartbeat and listening, and marks the replica stopped (its sessions have ended). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#beat;
    const listener = this.#listener;
    this.#listener = undefined;
    await listener?.end().catch(() => undefined);
    await this.pool.query('update hoop.replicas set stopped_at = now() where id = $1', [this.id]).catch(() => undefined);
  }
}

/**
 * What `hoop gateway status` says of the store on `pool`: its schema, the replicas it knows (live
 * when seen within `deadAfterMs`), pending reviews and running sessions.
 *
 * @throws HoopError STORE_UNAVAILABLE
 */
export async function storeStatus(pool: pg.Pool, deadAfterMs = 15_000): Promise<StoreStatus> {
  try {
    const [replicas, counts] = await Promise.all([
      pool.query<{ id: string; url: string; version: string; started_at: Date; seen_at: Date; stopped_at: Date | null; live: boolean }>(
        'select *, seen_at > now() - make_interval(secs => $1) as live from hoop.replicas order by started_at, id',
        [deadAfterMs / 1000],
      ),
      pool.query<{ reviews: string; sessions: string; schema: number }>(
        "select (select count(*) from hoop.reviews where state = 'pending') as reviews, (select count(*) from hoop.sessions where ended_at is null) as sessions, (select max(version) from hoop.migrations) as schema",
      ),
    ]);
    const schema = Number(counts.rows[0]!.schema);
    return {
      schema,
      replicas: replicas.rows.map((r) => ({
        id: r.id,
        url: r.url,
        version: r.version,
        startedAt: r.started_at.toISOString(),
        seenAt: r.seen_at.toISOString(),
        state: r.stopped_at ? 'stopped' : r.live ? 'live' : 'silent',
      })),
      pendingReviews: Number(counts.rows[0]!.reviews),
      runningSessions: Number(counts.rows[0]!.sessions),
      // Schema 3 brought the audit tables; a store not migrated yet has none.
      auditBacklog: schema >= 3 ? await auditBacklog(pool) : 0,
    };
  } catch (err) {
    throw storeError(err, 'say how the replicas are');
  }
}
