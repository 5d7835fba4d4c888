/**
 * Uploads the CLI's records from its spool (../recording/spool.ts) to the gateway. Small records (a
 * session's of a few statements: one chunk and its signed manifest) go together, many in one
 * request (`POST /v1/client-records`, a ustar archive of each one's chunks and its newest signed
 * manifest), so that a command that opens a session per statement pays one request for all those
 * that closed meanwhile, not four per session. A larger record goes file by file: chunks first,
 * then each checkpoint and the manifest before its signature, so the gateway can verify a record
 * when its signature arrives, and files the gateway already holds are skipped. Either way the same
 * bytes again are answered as stored, so a retry never duplicates and a command that was stopped
 * resumes where it was. A record leaves the spool once the gateway holds all of it.
 *
 * Failures: the network or the gateway being down is retried with backoff until the caller's
 * deadline, then left for the next hoop command; a record the gateway will never take (it does
 * not verify, or conflicts with what it holds, or it still does not know it a week after it began:
 * a run it forgot) is set aside under `spool/failed/` with the reason.
 *
 * @see docs/recording-format.md ("The CLI's records")
 */
import { realClock } from '../clock.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { GatewayApiError } from '../api-client/api-error.js';
import { getClientRecord, postClientRecords, putClientRecordFile } from '../api-client/records.js';
import type { GatewayEndpoint } from '../api-client/request.js';
import { describeError, ErrorCode, isHoopError } from '../errors.js';
import type { Spool, SpoolEntry } from '../recording/spool.js';
import { tarOf, type TarEntry } from '../recording/tar.js';
import { isChunkFile, MANIFEST, RECORDING_FILE, uploadOrder as recordOrder } from '../recording/writer.js';

/** Where records go. */
export interface UploadTarget {
  endpoint: GatewayEndpoint;
  /** A current token (renewed as needed). */
  token: () => Promise<string>;
  /** The gateway's origin: only the spool's records of this gateway are uploaded. */
  origin: string;
}

/** What {@link uploadSpool} did. */
export interface UploadReport {
  uploaded: SpoolEntry[];
  /** Left in the spool for a later command, with why. */
  left: Array<{ entry: SpoolEntry; error: string }>;
  /** Set aside: the gateway will never take them. */
  setAside: Array<{ entry: SpoolEntry; error: string; dir: string }>;
}

/**
 * The upload order: chunks, then checkpoints (manifest before signature), then the final manifest
 * and its signature. A manifest without its signature, or a signature without its manifest (the
 * writer was stopped between the two), is left out: the gateway could not verify it.
 */
function uploadOrder(files: string[]): string[] {
  const present = new Set(files);
  const paired = (f: string): boolean => isChunkFile(f) || (f.endsWith('.sig') ? present.has(f.slice(0, -4)) : present.has(`${f}.sig`));
  return recordOrder(files.filter((f) => RECORDING_FILE.test(f) && paired(f)).map((name) => ({ name }))).map((f) => f.name);
}

/** Uploads one record; resolves once the gateway holds every file of it. */
export async function uploadRecord(entry: SpoolEntry, target: UploadTarget): Promise<void> {
  const { kind, id } = entry.meta;
  const held = new Set(
    await getClientRecord(target.endpoint, await target.token(), kind, id).then(
      (info) => info.files,
      (err: unknown) => {
        // A run nobody uploaded to yet is unknown to the gateway until its first file.
        if (kind === 'runs' && err instanceof GatewayApiError && err.status === 404) return [];
        throw err;
      },
    ),
  );
  for (const file of uploadOrder(await entry.files.names())) {
    if (held.has(file)) continue;
    const data = await entry.files.read(file);
    // A checkpoint the writer replaced while we read: the newer one follows.
    if (!data && (file === MANIFEST || file === `${MANIFEST}.sig`)) throw new Error(`${entry.path}: ${file} is gone`);
    if (data) await putClientRecordFile(target.endpoint, await target.token(), kind, id, file, data);
  }
}

/** How an upload failure is handled: tried again soon, left for a later command, or never. */
function failureKind(err: unknown): 'retry' | 'later' | 'never' {
  if (err instanceof GatewayApiError) {
    if (err.status >= 500 || err.status === 408 || err.status === 429) return 'retry';
    // Another identity (or a fresh login) may upload it; a gateway that does not know the session yet may later.
    if (err.status === 401 || err.status === 404) return 'later';
    return 'never';
  }
  if (isHoopError(err, ErrorCode.TOKEN_REJECTED) || isHoopError(err, ErrorCode.NOT_LOGGED_IN)) return 'later';
  return 'retry';
}

/** How long a record the gateway does not know is tried again: it forgets a run a day after its end, a session when retention removes it. */
const UNKNOWN_RECORD_MS = 7 * 86_400_000;

/** Whether the gateway still does not know `entry` a week after it began: it has forgotten it (set aside, kept, not tried at every command). */
function forgotten(err: unknown, entry: SpoolEntry): boolean {
  return err instanceof GatewayApiError && err.status === 404 && realClock.now() - Date.parse(entry.meta.startedAt) > UNKNOWN_RECORD_MS;
}

/** A record goes in a batch when what it sends is at most this many bytes; a larger one, file by file. */
const BATCHED_RECORD_BYTES = 1024 * 1024;
/** Most bytes and records one batch carries (the gateway takes 8 MiB and 64 records). */
const BATCH_BYTES = 4 * 1024 * 1024;
const BATCH_RECORDS = 64;

/**
 * What a record sends in a batch: its chunks and its newest signed manifest with the signature
 * (the final one, else the last checkpoint; older checkpoints sign less of the same chunks), or
 * undefined when that is more than {@link BATCHED_RECORD_BYTES}.
 */
async function batchFiles(entry: SpoolEntry): Promise<TarEntry[] | undefined> {
  const names = (await entry.files.names()).filter((f) => RECORDING_FILE.test(f));
  const signed = (m: string): boolean => names.includes(m) && names.includes(`${m}.sig`);
  const manifest = signed(MANIFEST)
    ? MANIFEST
    : names
        .filter((f) => f.startsWith('checkpoint-') && !f.endsWith('.sig') && signed(f))
        .sort()
        .pop();
  const files: TarEntry[] = [];
  let bytes = 0;
  for (const name of [...names.filter(isChunkFile), ...(manifest ? [manifest, `${manifest}.sig`] : [])]) {
    const data = await entry.files.read(name);
    if (!data) throw new Error(`${entry.path}: ${name} is gone`);
    bytes += data.length;
    if (bytes > BATCHED_RECORD_BYTES) return undefined;
    files.push({ name: `${entry.meta.kind}/${entry.meta.id}/${name}`, data });
  }
  return files;
}

/** Uploads `entries`: small ones in batches, the rest file by file; resolves each one's failure (undefined: the gateway holds it). */
async function uploadSome(entries: readonly SpoolEntry[], target: UploadTarget): Promise<Array<[SpoolEntry, unknown]>> {
  const done: Array<[SpoolEntry, unknown]> = [];
  const oneByOne = async (entry: SpoolEntry): Promise<void> => {
    done.push([
      entry,
      await uploadRecord(entry, target).then(
        () => undefined,
        (err: unknown) => err,
      ),
    ]);
  };
  const batches: Array<{ entries: SpoolEntry[]; files: TarEntry[]; bytes: number }> = [];
  for (const entry of entries) {
    const files = await batchFiles(entry).catch(() => undefined);
    if (!files) {
      await oneByOne(entry);
      continue;
    }
    const bytes = files.reduce((n, f) => n + f.data.length, 0);
    let batch = batches.at(-1);
    if (!batch || batch.bytes + bytes > BATCH_BYTES || batch.entries.length >= BATCH_RECORDS) batches.push((batch = { entries: [], files: [], bytes: 0 }));
    batch.entries.push(entry);
    batch.files.push(...files);
    batch.bytes += bytes;
  }
  for (const batch of batches) {
    try {
      const answers = new Map((await postClientRecords(target.endpoint, await target.token(), tarOf(batch.files))).map((a) => [`${a.kind}/${a.id}`, a]));
      for (const entry of batch.entries) {
        const answer = answers.get(`${entry.meta.kind}/${entry.meta.id}`);
        done.push([entry, answer ? answer.failure : new GatewayApiError(ErrorCode.GATEWAY_PROTOCOL, 'the gateway said nothing of this record', 502, undefined)]);
      }
    } catch (err) {
      // A gateway without batches (an older one) takes the same records file by file; a batch refused whole, too, so that each record gets its own answer.
      if (err instanceof GatewayApiError && (err.status === 404 || err.status === 405 || failureKind(err) === 'never')) for (const entry of batch.entries) await oneByOne(entry);
      else for (const entry of batch.entries) done.push([entry, err]);
    }
  }
  return done;
}

/**
 * Uploads the spool's records of `target.origin` whose status is in `statuses` (by default the
 * closed ones and those a killed process left), or only those of `only`. Transient failures are
 * retried with backoff (250 ms doubling, at most 4 s apart) until `deadline` (epoch ms) or until
 * `signal` aborts.
 */
export async function uploadSpool(
  spool: Spool,
  target: UploadTarget,
  o: { deadline: number; statuses?: ReadonlyArray<SpoolEntry['status']>; only?: ReadonlySet<string>; signal?: AbortSignal } = { deadline: realClock.now() + 10_000 },
): Promise<UploadReport> {
  const report: UploadReport = { uploaded: [], left: [], setAside: [] };
  const statuses = o.statuses ?? ['closed', 'abandoned'];
  let pending = o.only ? await spool.only(o.only, target.origin) : (await spool.entries(target.origin)).filter((e) => statuses.includes(e.status));
  for (let attempt = 0; pending.length > 0; attempt++) {
    const again: Array<{ entry: SpoolEntry; error: string }> = [];
    for (const [entry, err] of await uploadSome(pending, target)) {
      if (err === undefined) {
        await spool.remove(entry);
        report.uploaded.push(entry);
        continue;
      }
      const error = describeError(err);
      const kind = forgotten(err, entry) ? 'never' : failureKind(err);
      if (kind === 'never') report.setAside.push({ entry, error, dir: await spool.setAside(entry, error) });
      else if (kind === 'later') report.left.push({ entry, error });
      else again.push({ entry, error });
    }
    const wait = Math.min(250 * 2 ** attempt, 4000);
    if (again.length > 0 && (o.signal?.aborted || realClock.now() + wait > o.deadline || !(await sleep(wait, true, o.signal ? { signal: o.signal } : {}).catch(() => false)))) {
      report.left.push(...again);
      break;
    }
    pending = again.map((a) => a.entry);
  }
  return report;
}
