/**
 * Uploads the CLI's records from its spool (./spool.ts) to the gateway, file by file: chunks
 * first, then each checkpoint and the manifest before its signature, so the gateway can verify a
 * record when its signature arrives. Files the gateway already holds are skipped, and a `PUT` of
 * the same bytes is answered as stored, so a retry never duplicates and a command that was
 * stopped resumes where it was. A record leaves the spool once the gateway holds all of it.
 *
 * Failures: the network or the gateway being down is retried with backoff until the caller's
 * deadline, then left for the next hoop command; a record the gateway will never take (it does
 * not verify, or conflicts with what it holds) is set aside under `spool/failed/` with the reason.
 *
 * @see docs/recording-format.md ("The CLI's records")
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { GatewayApiError, getClientRecord, putClientRecordFile, type GatewayEndpoint } from '../auth/gateway-client.js';
import { describeError, ErrorCode, isHoopError } from '../errors.js';
import type { Spool, SpoolEntry } from '../recording/spool.js';
import { MANIFEST, RECORDING_FILE } from '../recording/writer.js';

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
  const paired = (f: string): boolean => f.startsWith('events-') || (f.endsWith('.sig') ? present.has(f.slice(0, -4)) : present.has(`${f}.sig`));
  const rank = (f: string): number => (f.startsWith('events-') ? 0 : f.startsWith('checkpoint-') ? 1 : 2);
  return files.filter((f) => RECORDING_FILE.test(f) && paired(f)).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
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
  for (const file of uploadOrder(await readdir(entry.dir))) {
    if (held.has(file)) continue;
    const data = await readFile(join(entry.dir, file)).catch((err: NodeJS.ErrnoException) => {
      // A checkpoint the writer replaced while we read: the newer one follows.
      if (err.code === 'ENOENT' && file !== MANIFEST && file !== `${MANIFEST}.sig`) return undefined;
      throw err;
    });
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

/**
 * Uploads the spool's records of `target.origin` whose status is in `statuses` (by default the
 * closed ones and those a killed process left), or only those of `only`. Transient failures are
 * retried with backoff (250 ms doubling, at most 4 s apart) until `deadline` (epoch ms) or until
 * `signal` aborts.
 */
export async function uploadSpool(
  spool: Spool,
  target: UploadTarget,
  o: { deadline: number; statuses?: ReadonlyArray<SpoolEntry['status']>; only?: ReadonlySet<string>; signal?: AbortSignal } = { deadline: Date.now() + 10_000 },
): Promise<UploadReport> {
  const report: UploadReport = { uploaded: [], left: [], setAside: [] };
  const statuses = o.statuses ?? ['closed', 'abandoned'];
  const entries = o.only ? await spool.only(o.only, target.origin) : (await spool.entries(target.origin)).filter((e) => statuses.includes(e.status));
  for (const entry of entries) {
    for (let attempt = 0; ; attempt++) {
      try {
        await uploadRecord(entry, target);
        await spool.remove(entry);
        report.uploaded.push(entry);
        break;
      } catch (err) {
        const error = describeError(err);
        const kind = failureKind(err);
        if (kind === 'never') {
          report.setAside.push({ entry, error, dir: await spool.setAside(entry, error) });
          break;
        }
        const wait = Math.min(250 * 2 ** attempt, 4000);
        if (kind === 'later' || o.signal?.aborted || Date.now() + wait > o.deadline || !(await sleep(wait, true, o.signal ? { signal: o.signal } : {}).catch(() => false))) {
          report.left.push({ entry, error });
          break;
        }
      }
    }
  }
  return report;
}
