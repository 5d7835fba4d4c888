/**
 * Sessions and recordings in the PostgreSQL store, shared by every replica: `hoop.sessions` (one
 * row per session, written when it starts and again when it ends, so every replica lists every
 * replica's running sessions), `hoop.recording_files` (each file of each recording: chunks,
 * checkpoints, manifests, signatures, byte for byte as written) and `hoop.signing_keys` (each
 * replica's recording keys' public halves, all published at `/v1/keys`).
 *
 * The data path never waits on the store. The recording thread writes a recording to the data
 * directory as with the file store, and tells of each file once it is durable; this archive copies
 * files to the store in batches (one statement per batch, ./store-batch.ts, gathering what
 * happens within a few milliseconds: a short session's start, files and end go in one; a chunk is
 * one file, a second's or 256 KiB of events) in the order they were written, and removes the
 * session's archive once the final manifest is stored. The data directory is the spool: while the store is unreachable the
 * batches wait and are retried, and a replica that starts again on the same data directory sends
 * what its previous run left. A replica killed mid-session leaves in the store every chunk and the
 * last checkpoint it had sent, so its recordings verify up to that checkpoint; the take-over
 * (../replicas/replica.ts) marks its sessions truncated.
 *
 * With a bucket (`store.recordings`, ./recordings-bucket.ts) the bytes of each file go to the
 * object `<prefix><session>/<name>` and its row holds the key (`object`) with `data` null. A
 * batch first puts its files' objects (a few at a time), then writes its rows in one
 * transaction, so a row never names an object not yet stored; a bucket that cannot be reached
 * holds the batch back as the store does (the files wait in the spool and are sent again). An
 * object whose row the batch removed (an older checkpoint) is deleted once the rows are committed.
 * Rows with bytes (written before the bucket was configured) are still served from PostgreSQL.
 *
 * @see docs/recording-format.md
 * @see https://www.postgresql.org/docs/current/datatype-binary.html
 */
import { realClock } from '../../clock.js';
import type { KeyObject } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { recoverJournals } from '../../recording/journal-recovery.js';
import { cutRecording } from '../../recording/record-chunks.js';
import { parseSshPublicKey } from '../../recording/sshsig.js';
import type pg from 'pg';
import { ErrorCode, HoopError, describeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { RECORDING_FILE } from '../../recording/writer.js';
import { type RecordingFiles, recordingFiles } from '../../recording/recording-files.js';
import type { RecordingBucket } from './recordings-bucket.js';
import { SESSION_ID, sessionSummarySchema, type SessionSummary } from '../../api/answers.js';
import { recordingPath, summaryFromRecording, upstreamKeySchema, type PublishedKey, type SessionArchive, type UpstreamKey } from './recordings.js';
import { storedRow } from '../../stored-record.js';
import type { StoreReplica } from '../replicas/replica.js';
import { NOW_ISO, storeError, withTransaction, type Migration } from '../store/store-postgres.js';
import { endsBefore, writeBatch, type Op, type StoredFile } from './store-batch.js';

/** The session index's steps of the store's schema: session ids claimed once, running sessions' upstream cancel keys. */
export const SESSION_INDEX_MIGRATIONS: readonly Migration[] = [
  {
    version: 6,
    name: 'session ids, claimed once',
    // Insert-only: a session id a replica claimed is never given to another session, on any replica, even after its recording was pruned.
    sql: `
      create table hoop.session_claims (
        id         text primary key,
        replica    text not null,
        claimed_at timestamptz not null default now()
      );
      insert into hoop.session_claims (id, replica, claimed_at) select id, replica, started_at from hoop.sessions on conflict do nothing;`,
  },
  {
    version: 10,
    name: "running sessions' upstream cancel keys",
    // Out of `summary` (which listings show): the key a replica taking this one over cancels the statement it left running with.
    sql: 'alter table hoop.sessions add column upstream jsonb;',
  },
  {
    version: 13,
    name: "each replica's recording journals",
    // What each journal committed (gzip), while it is on the replica's disk: a replica that takes it over cuts the sessions it held from them.
    sql: `
      create table hoop.recording_journals (
        replica  text not null,
        name     text not null,
        "offset" bigint not null,
        data     bytea not null,
        primary key (replica, name, "offset")
      );`,
  },
];

/** A batch holds at most this many operations, or this many bytes of files. */
const BATCH_OPS = 256;
const BATCH_BYTES = 8 * 1024 * 1024;
/** Bytes of files waiting for the store held in memory at most, as they came from the recording thread; past it, a file is read from the data directory as it is sent. */
const HELD_BYTES = 16 * 1024 * 1024;
/** How long a write waits for others to go with it in one statement (a short session's start and end, the next sessions'). */
const GATHER_MS = 25;
/** Sessions listed at most (newest first). */
const MAX_LISTED = 10_000;
/** How long closing waits for the store to take what is left (the rest waits in the spool for the next start). */
const CLOSE_WAIT_MS = 10_000;
/** With a bucket: objects of one batch put at once at most. */
const PUT_CONCURRENCY = 8;

/** A session's summary as the store holds it (`hoop.sessions.summary`), read with its schema: a row this gateway cannot read fails the read (STORE_UNAVAILABLE) rather than be listed. */
const summaryOf = (r: { id: string; summary: unknown; ended_at?: Date | null; live?: boolean }): SessionSummary => {
  const summary = storedRow(sessionSummarySchema, r.summary, `session ${r.id}`);
  // Running only while the store says it has not ended on a replica that has not stopped: an edited `running` would waive verify's check of a cut-short recording.
  return (r.ended_at || r.live === false) && summary.recording === 'running' ? { ...summary, recording: 'truncated' } : summary;
};

/** A session row with whether the replica that runs it is one the store knows and has not stopped. */
const SESSION_ROWS = 'select s.id, s.summary, s.ended_at, (p.id is not null and p.stopped_at is null) as live from hoop.sessions s left join hoop.replicas p on p.id = s.replica';

/**
 * The take-over step for sessions of a dead replica (../replicas/replica.ts): the sessions it ran are ended
 * `gateway-stopped`, their recordings `truncated` (verifiable up to their last checkpoint).
 * Resolves them as they now stand, each with its upstream backend's cancel key (if it was kept).
 * A session whose summary or key this gateway cannot read is ended all the same (its row is what
 * the store changes), and said in `log`: it is left out of what is told of (its audit event, the
 * cancel of what it left running), rather than hold back the take-over of every other.
 */
export async function takeOverSessions(client: pg.PoolClient, dead: string, log: Logger): Promise<Array<{ summary: SessionSummary; upstream: UpstreamKey | null }>> {
  const ended = await client.query<{ id: string; summary: unknown; upstream: unknown }>(
    `with left_running as (select id, upstream from hoop.sessions where replica = $1 and ended_at is null for update)
     update hoop.sessions s set ended_at = now(), upstream = null, summary = s.summary || jsonb_build_object(
       'endedAt', ${NOW_ISO}, 'reason', 'gateway-stopped',
       'recording', case when s.summary->>'recording' = 'running' then 'truncated' else s.summary->>'recording' end)
     from left_running l where s.id = l.id
     returning s.id, s.summary, l.upstream`,
    [dead],
  );
  const out: Array<{ summary: SessionSummary; upstream: UpstreamKey | null }> = [];
  for (const row of ended.rows) {
    try {
      out.push({ summary: summaryOf(row), upstream: row.upstream === null ? null : storedRow(upstreamKeySchema, row.upstream, `upstream cancel key of session ${row.id}`) });
    } catch (err) {
      log.error('replica.session-unreadable', {
        replica: dead,
        session: row.id,
        error: describeError(err),
        message: 'the session is ended in the store; what it left running upstream is not cancelled',
      });
    }
  }
  return out;
}

/**
 * Cuts the sessions a stopped replica's recording journals hold and never cut (once it is taken
 * over, after that is committed: the take-over itself stays short), up to their last commit its
 * key signed, as truncated recordings signed with `key` (this replica's), and keeps their files in
 * the store (a file it holds already, the stopped replica's own cut, is kept); then its journals
 * go. `dropOnly`: they go, and nothing is cut (this replica's own last run, cut from its disk). One
 * replica at a time cuts a replica's journals; resolves how many sessions were cut, and the ids
 * of those no commit binds (nothing of them can be cut).
 */
export async function cutStoppedJournals(pool: pg.Pool, dead: string, key: KeyObject, dropOnly = false): Promise<JournalsCut> {
  return withTransaction(pool, `cut the recordings of replica ${dead}`, async (client) => {
    if (!(await client.query<{ mine: boolean }>(`select pg_try_advisory_xact_lock(hashtext('hoop.recording_journals'), hashtext($1)) as mine`, [dead])).rows[0]?.mine) return { cut: 0, unbound: [] };
    // Where each copy lies and its size, not its bytes: they are read a few megabytes at a time as the journals are rebuilt.
    const rows = dropOnly
      ? []
      : (await client.query<JournalCopy>('select name, "offset", octet_length(data) as bytes from hoop.recording_journals where replica = $1 order by name, "offset"', [dead])).rows;
    const cut = rows.length === 0 ? { cut: 0, unbound: [] } : await cutJournalCopies(client, dead, rows, key);
    await client.query('delete from hoop.recording_journals where replica = $1', [dead]);
    return cut;
  });
}

/** What cutting a stopped replica's journals did: sessions cut, and the ids of those no commit binds. */
export interface JournalsCut {
  cut: number;
  unbound: string[];
}

/** The replicas that stopped with journals in the store (a cut that did not finish: its replica stopped too). */
export async function stoppedWithJournals(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ replica: string }>('select distinct j.replica from hoop.recording_journals j join hoop.replicas p on p.id = j.replica where p.stopped_at is not null');
  return rows.map((r) => r.replica);
}

/** Rebuilds `dead`'s journals from the store's copies and cuts the sessions they hold into the store (see {@link cutStoppedJournals}). */
async function cutJournalCopies(client: pg.PoolClient, dead: string, rows: readonly JournalCopy[], key: KeyObject): Promise<JournalsCut> {
  const work = await mkdtemp(join(tmpdir(), 'hoop-take-over-'));
  try {
    // Each journal as it was on the dead replica's disk, up to the first gap in what it sent.
    const journals = join(work, 'journal');
    await mkdir(journals);
    const sizes = new Map<string, number>();
    for (const page of copyPages(rows)) {
      const copies = await client.query<{ name: string; offset: string; data: Buffer }>(
        'select j.name, j."offset", j.data from unnest($2::text[], $3::bigint[]) with ordinality as p(name, "offset", n) join hoop.recording_journals j on j.replica = $1 and j.name = p.name and j."offset" = p."offset" order by p.n',
        [dead, page.map((r) => r.name), page.map((r) => r.offset)],
      );
      for (const c of copies.rows) {
        if (Number(c.offset) !== (sizes.get(c.name) ?? 0)) continue;
        const data = gunzipSync(c.data);
        await appendFile(join(journals, c.name), data);
        sizes.set(c.name, Number(c.offset) + data.length);
      }
    }
    const keys = (await client.query<{ public_key: string }>('select public_key from hoop.signing_keys where replica = $1', [dead])).rows.map((r) => parseSshPublicKey(r.public_key));
    const { sessions, unbound } = recoverJournals(journals, keys);
    // The cuts' files go to the store many sessions a statement, not one file a round trip: the take-over's transaction stays short.
    const files = new CutFiles(client);
    for (const s of sessions) {
      if (!SESSION_ID.test(s.meta.id)) continue;
      // On this replica's event loop: the sessions it relays go on between two cuts.
      await new Promise((resolve) => setImmediate(resolve));
      const onFile = (name: string, data: Buffer): void => files.add(s.meta.id, name, data);
      await cutRecording({ path: join(work, 'cut', `${s.meta.id}.tar`), id: s.meta.id, protocol: s.meta.protocol, key, sealed: false, durable: false, onFile }, s.blocks());
    }
    await files.done();
    return { cut: sessions.length, unbound };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Where a journal copy lies in the store, and its size there. */
interface JournalCopy {
  name: string;
  offset: string;
  bytes: number;
}

/** Most bytes of journal copies one statement reads. */
const COPY_PAGE_BYTES = 8 * 1024 * 1024;

/** `rows` in order, in pages of at most {@link COPY_PAGE_BYTES} (or one copy, when it is larger). */
function* copyPages(rows: readonly JournalCopy[]): Generator<JournalCopy[]> {
  let page: JournalCopy[] = [];
  let bytes = 0;
  for (const r of rows) {
    if (page.length > 0 && bytes + r.bytes > COPY_PAGE_BYTES) {
      yield page;
      page = [];
      bytes = 0;
    }
    page.push(r);
    bytes += r.bytes;
  }
  if (page.length > 0) yield page;
}

/**
 * Files of cut recordings, sent to the store as they come, together (a file it holds already is
 * kept): at most {@link CUT_FILES_BYTES} or {@link CUT_FILES} a statement, one statement at a time,
 * so a long session's cut is never held whole. The first failure is thrown by the next file, or by {@link done}.
 */
class CutFiles {
  readonly #client: pg.PoolClient;
  #rows: Array<{ session: string; name: string; data: Buffer }> = [];
  #bytes = 0;
  /** The statements sent, in order; settles with the first failure kept in {@link #failed}. */
  #sent: Promise<void> = Promise.resolve();
  #failed: unknown;

  constructor(client: pg.PoolClient) {
    this.#client = client;
  }

  add(session: string, name: string, data: Buffer): void {
    if (this.#failed) throw this.#failed;
    this.#rows.push({ session, name, data });
    this.#bytes += data.length;
    if (this.#bytes >= CUT_FILES_BYTES || this.#rows.length >= CUT_FILES) this.#send();
  }

  /** Resolves once every file is in the store. */
  async done(): Promise<void> {
    this.#send();
    await this.#sent;
    if (this.#failed) throw this.#failed;
  }

  #send(): void {
    const rows = this.#rows;
    if (rows.length === 0) return;
    this.#rows = [];
    this.#bytes = 0;
    const insert = 'insert into hoop.recording_files (session, name, data) select * from unnest($1::text[], $2::text[], $3::bytea[]) on conflict (session, name) do nothing';
    const values = [rows.map((r) => r.session), rows.map((r) => r.name), rows.map((r) => r.data)];
    this.#sent = this.#sent
      .then(async () => {
        if (!this.#failed) await this.#client.query(insert, values);
      })
      .catch((err: unknown) => {
        this.#failed ??= err;
      });
  }
}

/** Most bytes and files of cut recordings one statement sends. */
const CUT_FILES_BYTES = 8 * 1024 * 1024;
const CUT_FILES = 256;

/** See the module documentation. */
export class PostgresSessionArchive implements SessionArchive {
  readonly #replica: StoreReplica;
  readonly #pool: pg.Pool;
  readonly #dataDir: string;
  readonly #spool: string;
  readonly #log: Logger;
  readonly #bucket: RecordingBucket | undefined;
  readonly #ops: Op[] = [];
  /** Bytes of the files in {@link #ops} held in memory (at most {@link HELD_BYTES}). */
  #held = 0;
  /** Ended sessions queued for the store, until a batch holding them commits (see indexedLater). */
  readonly #indexing = new Map<string, Promise<void>>();
  /** Objects whose rows are gone (older checkpoints) that the bucket has not deleted yet. */
  readonly #orphans = new Set<string>();
  #running: Promise<void> | undefined;
  #retry: NodeJS.Timeout | undefined;
  #gather: NodeJS.Timeout | undefined;
  #failures = 0;
  #closed = false;

  /** `dataDir`: where the recording thread writes (its `recordings/` is the spool); `bucket`: where files' bytes go (default: PostgreSQL). */
  constructor(replica: StoreReplica, dataDir: string, log: Logger, bucket?: RecordingBucket) {
    this.#replica = replica;
    this.#pool = replica.pool;
    this.#dataDir = dataDir;
    this.#spool = join(dataDir, 'recordings');
    this.#log = log;
    this.#bucket = bucket;
    replica.onRecovered(() => this.#kick());
  }

  /** Publishes this replica's recording keys. */
  async publish(own: PublishedKey[]): Promise<void> {
    try {
      for (const k of own) {
        await this.#pool.query('insert into hoop.signing_keys (fingerprint, public_key, replica, retired) values ($1, $2, $3, $4) on conflict (fingerprint) do update set retired = excluded.retired', [
          k.fingerprint,
          k.publicKey,
          this.#replica.id,
          k.status === 'retired',
        ]);
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

  fileWritten(id: string, name: string, removed: boolean, data?: Buffer): void {
    const held = data !== undefined && this.#held + data.length <= HELD_BYTES;
    if (held) this.#held += data.length;
    this.#push({ kind: 'file', session: id, name, removed, data: held ? data : undefined });
  }

  /** What the recording thread's journals commit goes to the store in the same order as the files cut from them (see ./recordings.ts). */
  readonly journal = {
    committed: (name: string, offset: number, data: Buffer): void => this.#push({ kind: 'journal', name, offset, data }),
    removed: (name: string): void => this.#push({ kind: 'journal-removed', name }),
  };

  upstream(id: string, key: UpstreamKey): void {
    this.#push({ kind: 'upstream', session: id, key });
  }

  async index(summary: SessionSummary): Promise<void> {
    let held = (): void => undefined;
    const later = new Promise<void>((resolve) => (held = resolve));
    this.#indexing.set(summary.id, later);
    this.#push({
      kind: 'session',
      summary,
      held: () => {
        this.#indexing.delete(summary.id);
        held();
      },
    });
    if (summary.recording !== 'none') this.#push({ kind: 'done', session: summary.id });
  }

  indexedLater(id: string): Promise<void> | undefined {
    return this.#indexing.get(id);
  }

  async sessions(): Promise<SessionSummary[]> {
    return (await this.#query<{ id: string; summary: unknown; ended_at: Date | null; live: boolean }>(`${SESSION_ROWS} order by s.started_at desc, s.id limit $1`, [MAX_LISTED])).map(summaryOf);
  }

  async session(id: string): Promise<SessionSummary | undefined> {
    const [row] = await this.#query<{ id: string; summary: unknown; ended_at: Date | null; live: boolean }>(`${SESSION_ROWS} where s.id = $1`, [id]);
    return row ? summaryOf(row) : undefined;
  }

  async agentUsed(q: { subject: string; issuer: string; agent: string; connection: string; except: string }): Promise<boolean> {
    const rows = await this.#query<{ one: number }>(
      "select 1 as one from hoop.sessions where id <> $1 and summary->>'agent' = $2 and summary->>'connection' = $3 and summary->>'subject' = $4 and summary->>'issuer' = $5 limit 1",
      [q.except, q.agent, q.connection, q.subject, q.issuer],
    );
    return rows.length > 0;
  }

  async recorded(id: string): Promise<boolean> {
    return (await this.#query('select 1 from hoop.sessions where id = $1', [id])).length > 0;
  }

  /** One row in `hoop.session_claims`, inserted or not: the store decides between replicas that ask at once. */
  async claim(id: string): Promise<boolean> {
    return (await this.#query('insert into hoop.session_claims (id, replica) values ($1, $2) on conflict do nothing returning id', [id, this.#replica.id])).length === 1;
  }

  async files(id: string): Promise<string[]> {
    return (await this.#query<{ name: string }>('select name from hoop.recording_files where session = $1 order by name', [id])).map((r) => r.name);
  }

  async file(id: string, name: string): Promise<Buffer | undefined> {
    const row = (await this.#query<{ data: Buffer | null; object: string | null }>('select data, object from hoop.recording_files where session = $1 and name = $2', [id, name]))[0];
    if (!row || row.object === null) return row?.data ?? undefined;
    if (!this.#bucket) {
      throw new HoopError(ErrorCode.STORE_UNAVAILABLE, `file ${name} of session ${id} is in a recordings bucket (object ${row.object}), and this gateway has no store.recordings`, {
        hint: 'give every replica the same store.recordings in its configuration',
      });
    }
    const data = await this.#bucket.get(row.object);
    if (!data) this.#log.warn('recording.object-missing', { session: id, file: name, object: row.object, message: 'the store indexes an object the bucket does not hold' });
    return data;
  }

  /** With a bucket, a session's objects (those its rows name, and any left under its key prefix) are deleted before its rows. */
  async prune(days: number, now: number): Promise<string[]> {
    const cutoff = new Date(now - days * 86_400_000);
    const due = "ended_at < $1 and summary->>'recording' not in ('deleted', 'none', 'running')";
    let only: string[] | undefined;
    if (this.#bucket) {
      only = (await this.#query<{ id: string }>(`select id from hoop.sessions where ${due} order by ended_at, id`, [cutoff])).map((r) => r.id);
      if (only.length === 0) return [];
      for (const id of only) {
        const keys = new Set((await this.#query<{ object: string }>('select object from hoop.recording_files where session = $1 and object is not null', [id])).map((r) => r.object));
        for (const key of await this.#bucket.list(this.#bucket.key(id, ''))) keys.add(key);
        await this.#bucket.delete([...keys]);
      }
    }
    const rows = await this.#query<{ id: string }>(
      `with gone as (
         update hoop.sessions set summary = summary || '{"recording":"deleted"}'
         where ${due}${only ? ' and id = any($2)' : ''} returning id),
       files as (delete from hoop.recording_files where session in (select id from gone))
       select id from gone`,
      only ? [cutoff, only] : [cutoff],
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
    const ids = new Set((await readdir(this.#spool).catch(() => [])).map((f) => f.replace(/\.tar$/, '')).filter((id) => SESSION_ID.test(id)));
    for (const id of [...ids].sort()) {
      const dir = await recordingPath(this.#dataDir, id);
      const names = (
        await recordingFiles(dir)
          .names()
          .catch(() => [])
      )
        .filter((f) => RECORDING_FILE.test(f))
        .sort();
      if (!(await this.recorded(id))) this.#push({ kind: 'session', summary: await summaryFromRecording(id, dir) });
      for (const name of names) this.#push({ kind: 'file', session: id, name, removed: false });
      this.#push({ kind: 'done', session: id });
      found++;
    }
    return found;
  }

  async close(): Promise<void> {
    const until = realClock.now() + CLOSE_WAIT_MS;
    while (this.#ops.length > 0 && realClock.now() < until) {
      this.#kick();
      await (this.#running ?? new Promise((r) => setTimeout(r, 100)));
    }
    this.#closed = true;
    clearTimeout(this.#retry);
    clearTimeout(this.#gather);
    if (this.#ops.length > 0)
      this.#log.warn('recording.spooled', { operations: this.#ops.length, message: 'the store did not take every recording file; they are sent when this replica starts again' });
    if (this.#bucket && this.#orphans.size > 0 && realClock.now() < until) await this.#deleteOrphans();
    this.#bucket?.close();
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
    this.#kick(this.#failures > 0 || this.#ops.length >= BATCH_OPS);
  }

  /** Sends what waits: at once (`now`), or with what joins it within {@link GATHER_MS}. */
  #kick(now = true): void {
    if (this.#running || this.#closed || this.#ops.length === 0) return;
    if (!now) {
      this.#gather ??= setTimeout(() => {
        this.#gather = undefined;
        this.#kick();
      }, GATHER_MS);
      this.#gather.unref();
      return;
    }
    clearTimeout(this.#retry);
    clearTimeout(this.#gather);
    this.#retry = this.#gather = undefined;
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
      const seen = new Set<string>();
      // One reader a session for the batch: a short session's archive is read once for all its files (it rereads itself when it grew).
      const readers = new Map<string, Promise<RecordingFiles>>();
      for (const op of this.#ops) {
        if (batch.length >= BATCH_OPS || bytes >= BATCH_BYTES || endsBefore(op, seen)) break;
        batch.push(op);
        if (op.kind === 'journal') bytes += op.data.length;
        if (op.kind === 'file' && !op.removed && op.data) {
          files.set(op, op.data);
          bytes += op.data.length;
        } else if (op.kind === 'file' && !op.removed) {
          // Removed meanwhile (an older checkpoint): its removal follows in the queue.
          let reader = readers.get(op.session);
          if (!reader) readers.set(op.session, (reader = recordingPath(this.#dataDir, op.session).then(recordingFiles)));
          const data = await (await reader).read(op.name).catch(() => undefined);
          files.set(op, data);
          bytes += data?.length ?? 0;
        }
      }
      try {
        await this.#send(batch, files);
      } catch (err) {
        this.#failures++;
        if (this.#failures === 1)
          this.#log.error('recording.store-failed', {
            error: describeError(err),
            waiting: this.#ops.length,
            message: 'recording files wait in the data directory and are sent when the store answers',
          });
        const ms = Math.min(30_000, 1000 * 2 ** Math.min(this.#failures - 1, 5));
        this.#retry = setTimeout(() => this.#kick(), ms);
        this.#retry.unref();
        return;
      }
      if (this.#failures > 0) this.#log.info('recording.store-recovered', { message: 'recording files are sent to the store again' });
      this.#failures = 0;
      this.#ops.splice(0, batch.length);
      for (const op of batch) if (op.kind === 'file' && op.data) this.#held -= op.data.length;
      for (const op of batch) if (op.kind === 'session') op.held?.();
      for (const op of batch) if (op.kind === 'done') await rm(await recordingPath(this.#dataDir, op.session), { recursive: true, force: true });
    }
  }

  async #send(batch: Op[], read: Map<Op, Buffer | undefined>): Promise<void> {
    const bucket = this.#bucket;
    /** With a bucket: the objects this batch stores (the last bytes read of each file). */
    const puts = new Map<string, Buffer>();
    const files = new Map<Op, StoredFile>();
    for (const op of batch) {
      if (op.kind !== 'file') continue;
      const data = read.get(op);
      if (!data) continue;
      // A batch touches a file's row once (endsBefore): no removal of it follows in the batch.
      const key = bucket?.key(op.session, op.name);
      if (key !== undefined) puts.set(key, data);
      files.set(op, key === undefined ? { data, object: null } : { data: null, object: key });
    }
    if (bucket) {
      await this.#putAll(bucket, puts);
      // An object put again (its name written anew) is no longer one to delete.
      for (const key of puts.keys()) this.#orphans.delete(key);
    }
    let written: Awaited<ReturnType<typeof writeBatch>>;
    try {
      written = await writeBatch(this.#pool, this.#replica.id, batch, files);
    } catch (err) {
      throw storeError(err, 'keep recording files');
    }
    // Committed: what follows never fails the batch (it would be sent again, and what it deleted forgotten).
    for (const key of written.gone) if (!puts.has(key)) this.#orphans.add(key);
    const other = [...written.other];
    for (const { session, name, file } of written.unseen) {
      const same = await this.#pool
        .query<{ same: boolean }>('select (data is not distinct from $3 and object is not distinct from $4) as same from hoop.recording_files where session = $1 and name = $2', [
          session,
          name,
          file.data,
          file.object,
        ])
        .then(
          (r) => r.rows[0]?.same !== false,
          () => true,
        );
      if (!same) other.push({ session, name });
    }
    // Insert-only: a file already held is evidence; the same bytes again (a retry) are nothing new, other bytes are refused and said.
    for (const { session, name } of other)
      this.#log.error('recording.conflict', {
        session,
        file: name,
        message: 'the store holds other bytes under this name: they are kept, these are not (a recording is never written over)',
      });
    if (bucket && this.#orphans.size > 0) await this.#deleteOrphans();
  }

  /** Puts `objects` in the bucket, {@link PUT_CONCURRENCY} at a time; rejects with the first failure once none is in flight. */
  async #putAll(bucket: RecordingBucket, objects: Map<string, Buffer>): Promise<void> {
    const queue = [...objects];
    let failed: { err: unknown } | undefined;
    const worker = async (): Promise<void> => {
      for (let next = queue.shift(); next && !failed; next = queue.shift()) {
        try {
          await bucket.put(next[0], next[1]);
        } catch (err) {
          failed ??= { err };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PUT_CONCURRENCY, queue.length) }, worker));
    if (failed) throw failed.err;
  }

  /** Deletes the objects whose rows are gone; those the bucket does not delete now are tried again after the next batch (prune deletes any left). */
  async #deleteOrphans(): Promise<void> {
    const keys = [...this.#orphans];
    try {
      await this.#bucket!.delete(keys);
      for (const key of keys) this.#orphans.delete(key);
    } catch (err) {
      this.#log.warn('recording.object-delete-failed', { objects: keys.length, error: describeError(err), message: 'tried again after the next batch; deleting the recording deletes them too' });
    }
  }
}
