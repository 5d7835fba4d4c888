/**
 * A batch of the store's writes as one statement: each session row, file and journal copy with
 * its last state in the batch, written by one round trip (./recordings-postgres.ts queues them).
 * The queue starts a new batch where an op would act on a row otherwise than after the ops before
 * it ({@link endsBefore}), so every row is inserted, updated or deleted once, as in order.
 *
 * @see https://www.postgresql.org/docs/current/queries-with.html#QUERIES-WITH-MODIFYING
 */
import type pg from 'pg';
import type { SessionSummary } from '../../api/answers.js';
import type { UpstreamKey } from './recordings.js';

/** One write waiting for the store, in the order it happened. */
export type Op =
  | { kind: 'session'; summary: SessionSummary; held?: () => void }
  /** `data`: its bytes, when they came with it (else read from the data directory as it is sent). */
  | { kind: 'file'; session: string; name: string; removed: boolean; data?: Buffer | undefined }
  | { kind: 'upstream'; session: string; key: UpstreamKey }
  | { kind: 'done'; session: string }
  | { kind: 'journal'; name: string; offset: number; data: Buffer }
  | { kind: 'journal-removed'; name: string };

/**
 * Whether the batch ends before `op`, so that every op of a batch acts on its rows as it would
 * after the ops before it (`seen` collects what they touched as the batch grows): a file's row is
 * touched once a batch (its write, or its removal), a journal's copies never after the journal's
 * removal, and a session's summary never after an upstream key of a session the batch has no
 * summary of yet (the key went to a row that may not be in the store).
 */
export function endsBefore(op: Op, seen: Set<string>): boolean {
  const touched = (key: string): boolean => seen.has(key) || (seen.add(key), false);
  switch (op.kind) {
    case 'file':
      return touched(`f\n${op.session}\n${op.name}`);
    case 'journal':
      return seen.has(`j\n${op.name}`);
    case 'journal-removed':
      seen.add(`j\n${op.name}`);
      return false;
    case 'session':
      seen.add(`s\n${op.summary.id}`);
      return seen.has(`k\n${op.summary.id}`);
    case 'upstream':
      if (!seen.has(`s\n${op.session}`)) seen.add(`k\n${op.session}`);
      return false;
    default:
      return false;
  }
}

/** A file's bytes as the batch stores it: in the row, or in the bucket's object `object`. */
export type StoredFile = { data: Buffer; object: null } | { data: null; object: string };

/** The one statement; `$1` is the replica. */
const BATCH_SQL = `
  with sessions as (
    insert into hoop.sessions (id, replica, started_at, ended_at, summary, upstream)
    select id, $1, started_at, ended_at, summary, upstream from unnest($2::text[], $3::timestamptz[], $4::timestamptz[], $5::jsonb[], $6::jsonb[]) as s(id, started_at, ended_at, summary, upstream)
    on conflict (id) do update set ended_at = excluded.ended_at, summary = excluded.summary, replica = excluded.replica,
      upstream = case when excluded.ended_at is null then coalesce(excluded.upstream, hoop.sessions.upstream) end
    where hoop.sessions.ended_at is null or excluded.ended_at is not null),
  upstreams as (
    update hoop.sessions s set upstream = u.key from unnest($7::text[], $8::jsonb[]) as u(id, key) where s.id = u.id and s.ended_at is null),
  journals as (
    insert into hoop.recording_journals (replica, name, "offset", data) select $1, * from unnest($9::text[], $10::bigint[], $11::bytea[]) on conflict do nothing),
  journals_gone as (
    delete from hoop.recording_journals where replica = $1 and name = any($12::text[])),
  files_in as (
    select * from unnest($13::text[], $14::text[], $15::bytea[], $16::text[]) as f(session, name, data, object)),
  files as (
    insert into hoop.recording_files (session, name, data, object) select * from files_in on conflict (session, name) do nothing returning session, name),
  files_gone as (
    delete from hoop.recording_files r using unnest($17::text[], $18::text[]) as g(session, name) where r.session = g.session and r.name = g.name returning r.object)
  select 'gone' as kind, object as session, null as name from files_gone where object is not null
  union all
  select case when r.session is null then 'unseen' when r.data is not distinct from i.data and r.object is not distinct from i.object then 'same' else 'other' end, i.session, i.name
  from files_in i left join hoop.recording_files r on r.session = i.session and r.name = i.name
  where not exists (select 1 from files f where f.session = i.session and f.name = i.name)`;

/**
 * Writes `batch` in one statement (`files`: the bytes of each file op that writes one). A summary
 * never goes back (once ended, a later "running" one is ignored), a running session's upstream
 * key is kept until it ends, and a file already held is never written over. Resolves the objects
 * whose rows it deleted, and the files it did not insert: `other`, held with other bytes; `unseen`,
 * held by a write that committed while the statement ran (the caller compares them again).
 */
export async function writeBatch(
  client: pg.Pool,
  replica: string,
  batch: readonly Op[],
  files: Map<Op, StoredFile>,
): Promise<{ gone: string[]; other: Array<{ session: string; name: string }>; unseen: Array<{ session: string; name: string; file: StoredFile }> }> {
  const sessions = new Map<string, { summary?: SessionSummary; upstream?: UpstreamKey }>();
  const fileRows = new Map<string, { session: string; name: string; file?: StoredFile }>();
  const journals: Array<{ name: string; offset: number; data: Buffer }> = [];
  const journalsGone = new Set<string>();
  for (const op of batch) {
    if (op.kind === 'session') {
      const s = sessions.get(op.summary.id) ?? {};
      if (s.summary?.endedAt !== undefined && op.summary.endedAt === undefined) continue;
      sessions.set(op.summary.id, op.summary.endedAt === undefined ? { ...s, summary: op.summary } : { summary: op.summary });
    } else if (op.kind === 'upstream') {
      const s = sessions.get(op.session) ?? {};
      if (s.summary?.endedAt === undefined) sessions.set(op.session, { ...s, upstream: op.key });
    } else if (op.kind === 'file') {
      const file = files.get(op);
      if (op.removed || file) fileRows.set(`${op.session}\n${op.name}`, { session: op.session, name: op.name, file: op.removed ? undefined : file });
    } else if (op.kind === 'journal') journals.push(op);
    else if (op.kind === 'journal-removed') journalsGone.add(op.name);
  }
  const started = [...sessions.values()].filter((s) => s.summary !== undefined).map((s) => ({ summary: s.summary!, upstream: s.upstream ?? null }));
  const upstreams = [...sessions].filter(([, s]) => s.summary === undefined);
  const kept = journals.filter((j) => !journalsGone.has(j.name));
  const written = [...fileRows.values()].filter((f) => f.file !== undefined);
  const removed = [...fileRows.values()].filter((f) => f.file === undefined);
  const { rows } = await client.query<{ kind: 'gone' | 'same' | 'other' | 'unseen'; session: string; name: string | null }>({
    name: 'hoop-recording-batch',
    text: BATCH_SQL,
    values: [
      replica,
      started.map((s) => s.summary.id),
      started.map((s) => s.summary.startedAt),
      started.map((s) => s.summary.endedAt ?? null),
      started.map((s) => s.summary),
      started.map((s) => s.upstream),
      upstreams.map(([id]) => id),
      upstreams.map(([, s]) => s.upstream),
      kept.map((j) => j.name),
      kept.map((j) => j.offset),
      kept.map((j) => j.data),
      [...journalsGone],
      written.map((f) => f.session),
      written.map((f) => f.name),
      written.map((f) => f.file!.data),
      written.map((f) => f.file!.object),
      removed.map((f) => f.session),
      removed.map((f) => f.name),
    ],
  });
  return {
    gone: rows.filter((r) => r.kind === 'gone').map((r) => r.session),
    other: rows.filter((r) => r.kind === 'other').map((r) => ({ session: r.session, name: r.name! })),
    unseen: rows.filter((r) => r.kind === 'unseen').map((r) => ({ session: r.session, name: r.name!, file: fileRows.get(`${r.session}\n${r.name}`)!.file! })),
  };
}
