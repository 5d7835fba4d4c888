/**
 * Sessions and recordings in the PostgreSQL store, shared by every replica: `hoop.sessions` (one
 * row per session, written when it starts and again when it ends, so every replica lists every
 * replica's running sessions), `hoop.recording_files` (each file of each recording: chunks,
 * checkpoints, manifests, signatures, byte for byte as written) and `hoop.signing_keys` (each
 * replica's recording keys' public halves, all published at `/v1/keys`).
 *
 * The data path never waits on the store. The recording thread writes a recording to the data
 * directory as with the file store, and tells of each file once it is durable; this archive copies
 * files to the store in batches (one transaction per batch: a chunk is one file, a second's or
 * 256 KiB of events) in the order they were written, and removes the session's directory once the
 * final manifest is stored. The data directory is the spool: while the store is unreachable the
 * batches wait and are retried, and a replica that starts again on the same data directory sends
 * what its previous run left. A replica killed mid-session leaves in the store every chunk and the
 * last checkpoint it had sent, so its recordings verify up to that checkpoint; the take-over
 * (./replica.ts) marks its sessions truncated.
 *
 * @see docs/recording-format.md
 * @see https://www.postgresql.org/docs/current/datatype-binary.html
 */
import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { RECORDING_FILE } from '../recording/writer.js';
import { SESSION_ID, summaryFromRecording, type PublishedKey, type SessionArchive, type SessionSummary } from './recordings.js';
import type { StoreReplica } from './replica.js';
import { storeError } from './store-postgres.js';

/** One write waiting for the store, in the order it happened. */
type Op =
  | { kind: 'session'; summary: SessionSummary }
  | { kind: 'file'; session: string; name: string; removed: boolean }
  | { kind: 'done'; session: string };

/** A batch holds at most this many operations, or this many bytes of files. */
const BATCH_OPS = 256;
const BATCH_BYTES = 8 * 1024 * 1024;
/** Sessions listed at most (newest first). */
const MAX_LISTED = 10_000;
/** How long closing waits for the store to take what is left (the rest waits in the spool for the next start). */
const CLOSE_WAIT_MS = 10_000;

/** `summary.endedAt` etc. are ISO 8601; SQL's `now()` in the same shape. */
const NOW_ISO = `to_char(now() at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/**
 * The take-over step for sessions of a dead replica (./replica.ts): the sessions it ran are ended
 * `gateway-stopped`, their recordings `truncated` (verifiable up to their last checkpoint).
 */
export async function takeOverSessions(client: pg.PoolClient, dead: string): Promise<void> {
  await client.query(
    `update hoop.sessions set ended_at = now(), summary = summary || jsonb_build_object(
       'endedAt', ${NOW_ISO}, 'reason', 'gateway-stopped',
       'recording', case when summary->>'recording' = 'running' then 'truncated' else summary->>'recording' end)
     where replica = $1 and ended_at is null`,
    [dead],
  );
}

/** See the module documentation. */
export class PostgresSessionArchive implements SessionArchive {
  readonly #replica: StoreReplica;
  readonly #pool: pg.Pool;
  readonly #spool: string;
  readonly #log: Logger;
  readonly #ops: Op[] = [];
  #running: Promise<void> | undefined;
  #retry: NodeJS.Timeout | undefined;
  #failures = 0;
  #closed = false;

  /** `dataDir`: where the recording thread writes (its `recordings/` is the spool). */
  constructor(replica: StoreReplica, dataDir: string, log: Logger) {
    this.#replica = replica;
    this.#pool = replica.pool;
    this.#spool = join(dataDir, 'recordings');
    this.#log = log;
    replica.onRecovered(() => this.#kick());
  }

  /** Operations waiting for the store. */
  get backlog(): number {
    return this.#ops.length;
  }

  /** Publishes this replica's recording keys. */
  async publish(own: PublishedKey[]): Promise<void> {
    try {
      for (const k of own) {
        await this.#pool.query(
          'insert into hoop.signing_keys (fingerprint, public_key, replica, retired) values ($1, $2, $3, $4) on conflict (fingerprint) do update set retired = excluded.retired',
          [k.fingerprint, k.publicKey, this.#replica.id, k.status === 'retired'],
        );
      }
    } catch (err) {
      throw storeError(err, 'publish the recording key');
    }
  }

  async publicKeys(): Promise<PublishedKey[]> {
    const rows = await this.#query<{ public_key: string; fingerprint: string; retired: boolean; replica: string }>('select * from hoop.signing_keys order by retired, created_at, fingerprint', []);
    return rows.map((r) => ({ publicKey: r.public_key, fingerprint: r.fingerprint, status: r.retired ? 'retired' : 'current', replica: r.replica }));
  }

  started(summary: SessionSummary): void {
    this.#push({ kind: 'session', summary });
  }

  fileWritten(id: string, name: string, removed: boolean): void {
    this.#push({ kind: 'file', session: id, name, removed });
  }

  async index(summary: SessionSummary): Promise<void> {
    this.#push({ kind: 'session', summary });
    if (summary.recording !== 'none') this.#push({ kind: 'done', session: summary.id });
  }

  async sessions(): Promise<SessionSummary[]> {
    return (await this.#query<{ summary: SessionSummary }>('select summary from hoop.sessions order by started_at desc, id limit $1', [MAX_LISTED])).map((r) => r.summary);
  }

  async recorded(id: string): Promise<boolean> {
    return (await this.#query('select 1 from hoop.sessions where id = $1', [id])).length > 0;
  }

  async files(id: string): Promise<string[]> {
    return (await this.#query<{ name: string }>('select name from hoop.recording_files where session = $1 order by name', [id])).map((r) => r.name);
  }

  async file(id: string, name: string): Promise<Buffer | undefined> {
    return (await this.#query<{ data: Buffer }>('select data from hoop.recording_files where session = $1 and name = $2', [id, name]))[0]?.data;
  }

  async prune(days: number, now: number): Promise<string[]> {
    const rows = await this.#query<{ id: string }>(
      `with gone as (
         update hoop.sessions set summary = summary || '{"recording":"deleted"}'
         where ended_at < $1 and summary->>'recording' not in ('deleted', 'none', 'running') returning id),
       files as (delete from hoop.recording_files where session in (select id from gone))
       select id from gone`,
      [new Date(now - days * 86_400_000)],
    );
    return rows.map((r) => r.id);
  }

  /**
   * Sends what a previous run of this replica left in the spool (it was killed, or the store was
   * unreachable when it stopped): every file, and for a session the store does not know, what
   * its recording says of it (truncated).
   */
  async recover(): Promise<number> {
    let found = 0;
    for (const id of (await readdir(this.#spool).catch(() => [])).filter((d) => SESSION_ID.test(d)).sort()) {
      const dir = join(this.#spool, id);
      const names = (await readdir(dir).catch(() => [])).filter((f) => RECORDING_FILE.test(f)).sort();
      if (!(await this.recorded(id))) this.#push({ kind: 'session', summary: await summaryFromRecording(id, dir) });
      for (const name of names) this.#push({ kind: 'file', session: id, name, removed: false });
      this.#push({ kind: 'done', session: id });
      found++;
    }
    return found;
  }

  async close(): Promise<void> {
    const until = Date.now() + CLOSE_WAIT_MS;
    while (this.#ops.length > 0 && Date.now() < until) {
      this.#kick();
      await (this.#running ?? new Promise((r) => setTimeout(r, 100)));
    }
    this.#closed = true;
    clearTimeout(this.#retry);
    if (this.#ops.length > 0) this.#log.warn('recording.spooled', { operations: this.#ops.length, message: 'the store did not take every recording file; they are sent when this replica starts again' });
  }

  async #query<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<R[]> {
    try {
      return (await this.#pool.query<R>(text, values)).rows;
    } catch (err) {
      throw storeError(err, 'answer');
    }
  }

  #push(op: Op): void {
    this.#ops.push(op);
    this.#kick();
  }

  #kick(): void {
    if (this.#running || this.#closed || this.#ops.length === 0) return;
    clearTimeout(this.#retry);
    this.#retry = undefined;
    this.#running = this.#drain().finally(() => {
      this.#running = undefined;
    });
  }

  /** Sends batches until none waits; on a failure, waits (1 s, doubling to 30 s) and sends the same batch again. */
  async #drain(): Promise<void> {
    while (this.#ops.length > 0 && !this.#closed) {
      const batch: Op[] = [];
      let bytes = 0;
      const files = new Map<Op, Buffer | undefined>();
      for (const op of this.#ops) {
        if (batch.length >= BATCH_OPS || bytes >= BATCH_BYTES) break;
        batch.push(op);
        if (op.kind === 'file' && !op.removed) {
          // Removed meanwhile (an older checkpoint): its removal follows in the queue.
          const data = await readFile(join(this.#spool, op.session, op.name)).catch(() => undefined);
          files.set(op, data);
          bytes += data?.length ?? 0;
        }
      }
      try {
        await this.#send(batch, files);
      } catch (err) {
        this.#failures++;
        if (this.#failures === 1) this.#log.error('recording.store-failed', { error: describeError(err), waiting: this.#ops.length, message: 'recording files wait in the data directory and are sent when the store answers' });
        const ms = Math.min(30_000, 1000 * 2 ** Math.min(this.#failures - 1, 5));
        this.#retry = setTimeout(() => this.#kick(), ms);
        this.#retry.unref();
        return;
      }
      if (this.#failures > 0) this.#log.info('recording.store-recovered', { message: 'recording files are sent to the store again' });
      this.#failures = 0;
      this.#ops.splice(0, batch.length);
      for (const op of batch) if (op.kind === 'done') await rm(join(this.#spool, op.session), { recursive: true, force: true });
    }
  }

  async #send(batch: Op[], files: Map<Op, Buffer | undefined>): Promise<void> {
    const client = await this.#pool.connect();
    try {
      await client.query('begin');
      for (const op of batch) {
        if (op.kind === 'session') {
          const s = op.summary;
          // A summary never goes back: once ended (or taken over), a late "running" one is ignored.
          await client.query(
            `insert into hoop.sessions (id, replica, started_at, ended_at, summary) values ($1, $2, $3, $4, $5)
             on conflict (id) do update set ended_at = excluded.ended_at, summary = excluded.summary, replica = excluded.replica
             where hoop.sessions.ended_at is null or excluded.ended_at is not null`,
            [s.id, this.#replica.id, s.startedAt, s.endedAt ?? null, s],
          );
        } else if (op.kind === 'file') {
          const data = files.get(op);
          if (op.removed) await client.query('delete from hoop.recording_files where session = $1 and name = $2', [op.session, op.name]);
          else if (data) await client.query('insert into hoop.recording_files (session, name, data) values ($1, $2, $3) on conflict (session, name) do update set data = excluded.data, stored_at = now()', [op.session, op.name, data]);
        }
      }
      await client.query('commit');
    } catch (err) {
      await client.query('rollback').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }
}
