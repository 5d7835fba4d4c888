/**
 * Recordings and the CLIs' records:
 *
 * - `GET /v1/sessions[?user=&connection=&run=&runbook=&agent=&via=&role=&since=&until=&denied=1&table=&column=&tool=&min-rows=]`,
 *   `GET /v1/sessions/{id}`, and a recording's files (`…/files`, `…/files/{name}`). A caller sees
 *   their own sessions; members of the policy's `recording.auditors` groups see everyone's. A
 *   session the caller may not see is answered as unknown.
 * - `GET /v1/keys` (no token): the public keys recordings are signed with.
 * - The CLIs' records (../records/client-records.ts): `PUT /v1/sessions/{id}/client/{file}` and
 *   `PUT /v1/runs/{id}/files/{file}` store one file (raw bytes, at most 4 MiB), and
 *   `POST /v1/client-records` the files of several records at once (a ustar archive, at most 8
 *   MiB): a session's record only from its owner, a run's only from its person. `GET …/client` and `GET /v1/runs/{id}` say
 *   `{ record, files }`; `GET …/{file}` hands one out, to whoever may see the session (a run: its
 *   uploader, or an auditor).
 */
import type * as http from 'node:http';
import { describeError, ErrorCode, HoopError } from '../../errors.js';
import type { Identity } from '../../identity.js';
import { globMatches, segmentGlob } from '../../glob.js';
import type { RecordKind } from '../../recording/spool.js';
import { RECORDING_FILE } from '../../recording/writer.js';
import { owns, type Callers } from '../sessions/callers.js';
import { type ClientRecordState, MAX_RECORD_FILE_BYTES } from '../records/client-records.js';
import { RECORD_BATCH_ENTRY } from '../../api/paths.js';
import { HttpError } from '../http/http-error.js';
import type { GatewayParts } from '../parts/parts.js';
import type { SessionSummary } from '../../api/answers.js';
import { type Answer, asHoopError, errorBody, errorStatus, readBody } from '../http/respond.js';
import { readTar, type TarEntry } from '../../recording/tar.js';
import { parseTimeBound, TIME_BOUND_HELP } from '../../time-bound.js';
import { requestUrl } from '../http/request-target.js';

const notRecording = (): HttpError => new HttpError(404, 'this gateway does not record sessions', { hint: 'recording.enabled is false in its configuration' });

/** The query of `GET /v1/sessions` as a test of each session. */
function sessionFilter(query: URLSearchParams): (s: SessionSummary) => boolean {
  const time = (name: string): number | undefined => {
    const v = query.get(name);
    if (v === null) return undefined;
    const t = parseTimeBound(v);
    if (t === undefined) throw new HttpError(400, `${name} must be ${TIME_BOUND_HELP}`);
    return t;
  };
  const since = time('since');
  const until = time('until');
  const user = query.get('user');
  const run = query.get('run');
  const runbook = query.get('runbook');
  const agent = query.get('agent')?.toLowerCase() ?? null;
  const via = query.get('via');
  const role = query.get('role');
  const connection = query.get('connection');
  const denied = query.get('denied') !== null;
  const table = query.get('table')?.toLowerCase() ?? null;
  const column = query.get('column')?.toLowerCase() ?? null;
  const tool = query.get('tool');
  const method = query.get('method')?.toUpperCase() ?? null;
  const path = query.get('path');
  const paths = path === null ? undefined : segmentGlob(path);
  const minRowsText = query.get('min-rows');
  const minRows = minRowsText === null ? undefined : Number(minRowsText);
  if (minRows !== undefined && !(Number.isSafeInteger(minRows) && minRows >= 0)) throw new HttpError(400, 'min-rows must be a whole number of rows, such as 1000');
  return (s) =>
    (user === null || s.subject === user || s.email?.toLowerCase() === user.toLowerCase()) &&
    (connection === null || s.connection === connection) &&
    (run === null || s.runId === run) &&
    (runbook === null || s.runbook?.name === runbook) &&
    (agent === null || (s.agent !== undefined && globMatches(agent, s.agent))) &&
    (via === null || (s.via ?? 'connect') === via) &&
    (role === null || s.role === role) &&
    (since === undefined || s.endedAt === undefined || Date.parse(s.endedAt) >= since) &&
    (until === undefined || Date.parse(s.startedAt) <= until) &&
    (!denied || s.refused > 0) &&
    // A session whose statements hoop could not all read (tablesComplete false), or one that read tables named in a string (`*`), may have read any table or column.
    (table === null || s.tablesComplete === false || (s.tables ?? []).some((t) => t === '*' || t === table || t.endsWith(`.${table}`) || table.endsWith(`.${t}`))) &&
    (column === null || s.tablesComplete === false || (s.tables ?? []).includes('*') || columnSeen(s, column)) &&
    // A session that called more tools than its line keeps (toolsComplete false) may have called any.
    (tool === null || s.toolsComplete === false || (s.tools ?? []).some((t) => globMatches(tool, t))) &&
    // Likewise a session that made more requests than its line keeps.
    ((method === null && paths === undefined) || s.requestsComplete === false || (s.requests ?? []).some((r) => requestMatches(r, method, paths))) &&
    (minRows === undefined || (s.rowsRead ?? 0) + (s.rowsChanged ?? 0) >= minRows);
}

/** Whether a request of the index (`METHOD /path`) is of `method` (when given) on a path `paths` matches (when given). */
function requestMatches(request: string, method: string | null, paths: ((path: string) => boolean) | undefined): boolean {
  const space = request.indexOf(' ');
  return (method === null || request.slice(0, space) === method) && (paths === undefined || paths(request.slice(space + 1)));
}

/**
 * Whether session `s` read or named `column` (`table.column`, `schema.table.column`, or a bare
 * column name): a column its statements named, a `*` over its table, or a column it received
 * masked. Names compare from the right, so `customers.email` finds `public.customers.email`.
 */
function columnSeen(s: SessionSummary, column: string): boolean {
  const same = (named: string, wanted: string): boolean => named === wanted || named.endsWith(`.${wanted}`) || wanted.endsWith(`.${named}`);
  const table = column.includes('.') ? column.slice(0, column.lastIndexOf('.')) : undefined;
  return (s.maskedColumns ?? []).some((m) => same(m.column, column)) || (s.columns ?? []).some((c) => same(c, column) || (table !== undefined && c.endsWith('.*') && same(c.slice(0, -2), table)));
}

/** The sessions a caller may see, as the API lists them: from memory while they run here, else from the index, with what of the CLI's record of each was uploaded. */
class SessionListing {
  constructor(
    private readonly parts: GatewayParts,
    private readonly callers: Callers,
  ) {}

  /**
   * The sessions `identity` may see (its own; an auditor's: everyone's), running ones first, then
   * ended ones, each newest (by start) first; each says how much of the CLI's record of it was uploaded.
   */
  async all(identity: Identity): Promise<SessionSummary[]> {
    const { recordings, clientRecords } = this.parts;
    const { running, isAuditor } = this.callers;
    if (!recordings) throw notRecording();
    const auditor = isAuditor(identity);
    // Running ones first taken, then the index: a session that ends in between is in both (and listed once), never in neither.
    const now = [...running.values()].map((summary) => summary());
    const here = new Set(now.map((s) => s.id));
    // A shared store lists every replica's running sessions too; this replica's own are told from memory, fresher.
    const indexed = (await recordings.sessions()).filter((s) => s.endedAt !== undefined || !here.has(s.id));
    const ended = new Set(indexed.filter((s) => s.endedAt !== undefined).map((s) => s.id));
    const order = (a: SessionSummary, b: SessionSummary): number => Number(a.endedAt !== undefined) - Number(b.endedAt !== undefined) || b.startedAt.localeCompare(a.startedAt);
    const listed = [...now.filter((s) => !ended.has(s.id)), ...indexed].sort(order).filter((s) => auditor || owns(identity, s));
    // The CLIs' records of the listed sessions, in one lookup (a shared store holds every replica's).
    const clients =
      (await clientRecords?.states(
        'sessions',
        listed.map((s) => s.id),
      )) ?? new Map<string, never>();
    return listed.map((s) => {
      const client = clients.get(s.id)?.state;
      return client ? { ...s, clientRecord: client } : s;
    });
  }

  /** Session `id` as {@link SessionListing.all} lists it, if `identity` may see it (one lookup, not the whole index). */
  async one(identity: Identity, id: string): Promise<SessionSummary | undefined> {
    const { recordings, clientRecords } = this.parts;
    const { running, isAuditor } = this.callers;
    if (!recordings) throw notRecording();
    const indexed = await recordings.archive.session(id);
    // As in the listing: ended, the index's; running here, from memory (fresher).
    const s = indexed?.endedAt !== undefined ? indexed : (running.get(id)?.() ?? indexed);
    if (!s || !(isAuditor(identity) || owns(identity, s))) return undefined;
    const client = (await clientRecords?.state('sessions', id))?.state;
    return client ? { ...s, clientRecord: client } : s;
  }
}

/** The sessions API: sessions and their recordings, and the CLIs' records of sessions and runs, as a caller may see them. */
export function sessionsApi(parts: GatewayParts, callers: Callers) {
  const { recordings, clientRecords, runs, log } = parts;
  const { isAuditor } = callers;
  const listing = new SessionListing(parts, callers);

  return {
    /** `GET /v1/keys` */
    async keys(): Promise<Answer> {
      if (!recordings) throw notRecording();
      return { status: 200, body: { namespace: 'hoop-recording', keys: await recordings.publicKeys() } };
    },

    /** `GET /v1/sessions` (`id` absent), `GET /v1/sessions/{id}[/files[/{file}]]` */
    async sessions(req: http.IncomingMessage, identity: Identity, id: string | undefined, files: boolean, name: string | undefined): Promise<Answer> {
      if (id === undefined) {
        const all = await listing.all(identity);
        const keep = sessionFilter(requestUrl(req).searchParams);
        return { status: 200, body: { sessions: all.filter(keep), auditor: isAuditor(identity) } };
      }
      const summary = await listing.one(identity, id);
      if (!summary) throw new HoopError(ErrorCode.SESSION_UNKNOWN, `no session ${id} that you may see`, { hint: '`hoop sessions ls` lists the sessions you may see' });
      if (!files) return { status: 200, body: summary };
      if (name === undefined) {
        // A running session is shown from a snapshot written to the data disk, which its recording needs first.
        if (summary.endedAt === undefined) await parts.disk.check('write a snapshot of a running session');
        return { status: 200, body: await recordings!.files(id) };
      }
      if (!RECORDING_FILE.test(name)) throw new HoopError(ErrorCode.SESSION_UNKNOWN, `a recording holds no file ${name}`);
      const snapshot = requestUrl(req).searchParams.get('snapshot');
      const file = await recordings!.file(id, name, snapshot !== null && /^\d{1,9}$/.test(snapshot) ? Number(snapshot) : undefined);
      if (file === undefined) throw new HoopError(ErrorCode.SESSION_UNKNOWN, `no such file in this recording: ${name}`);
      return { status: 200, body: undefined, file };
    },

    /** The CLIs' records of sessions and runs (see the module documentation). */
    async clientRecord(req: http.IncomingMessage, identity: Identity, kind: RecordKind, id: string, name: string | undefined): Promise<Answer> {
      if (!recordings || !clientRecords) throw notRecording();
      const put = req.method === 'PUT';
      if (put) {
        if (name === undefined) throw new HttpError(405, 'PUT a file of the record, at …/{file}', { headers: { Allow: 'GET' } });
        await mayUpload(listing, runs, identity, kind, id);
        await parts.disk.check('store more records');
        const data = await readBody(req, MAX_RECORD_FILE_BYTES, "a record's files are its chunks, manifests and signatures, as hoop wrote them");
        const { stored, state } = await storeFiles(parts, identity, kind, id, [{ name, data }]);
        return { status: stored ? 201 : 200, body: { stored, record: state } };
      }
      if (kind === 'sessions') {
        if (!(await listing.one(identity, id))) throw unknownRecord(kind, id);
      } else {
        const state = await clientRecords.state('runs', id);
        if (!state || !(isAuditor(identity) || owns(identity, state))) throw unknownRecord(kind, id);
      }
      if (name === undefined) return { status: 200, body: { record: (await clientRecords.state(kind, id)) ?? null, files: await clientRecords.files(kind, id) } };
      if (!RECORDING_FILE.test(name)) throw new HoopError(ErrorCode.SESSION_UNKNOWN, `a record holds no file ${name}`);
      const file = await clientRecords.file(kind, id, name);
      if (file === undefined) throw new HoopError(ErrorCode.SESSION_UNKNOWN, `no such file in this record: ${name}`);
      return { status: 200, body: undefined, file };
    },

    /**
     * `POST /v1/client-records`: the files of several records in one ustar archive, each named
     * `<sessions|runs>/<id>/<file>`; each record taken as its files' `PUT`s would take it (the same
     * checks, one state save and one verification per record). Answers 200 with what became of each,
     * in the order they came: `{ records: [{ kind, id, status, stored?, record?, error? }] }`, where
     * `status` is the one its `PUT`s would have got. A body that is not such an archive is a 400.
     */
    async clientRecords(req: http.IncomingMessage, identity: Identity): Promise<Answer> {
      if (!recordings || !clientRecords) throw notRecording();
      await parts.disk.check('store more records');
      const body = await readBody(req, MAX_RECORD_BATCH_BYTES, 'send fewer records at once (hoop sends a record larger than 4 MiB file by file)');
      const batch = recordBatch(body);
      const answers: Array<{ kind: RecordKind; id: string; status: number } & Record<string, unknown>> = [];
      for (const { kind, id, files } of batch) {
        try {
          await mayUpload(listing, runs, identity, kind, id);
          const { stored, state } = await storeFiles(parts, identity, kind, id, files);
          answers.push({ kind, id, status: stored ? 201 : 200, stored, record: state });
        } catch (err) {
          const failure = asHoopError(err);
          answers.push({ kind, id, status: errorStatus(failure), ...errorBody(failure) });
        }
      }
      const refused = answers.filter((a) => a.status >= 300).length;
      log.info('client-record.batch', { subject: identity.subject, records: batch.length, refused });
      return { status: 200, body: { records: answers } };
    },
  };
}

/** Why `identity` may not upload to the record `kind/id`, thrown; nothing when it may. */
async function mayUpload(listing: SessionListing, runs: GatewayParts['runs'], identity: Identity, kind: RecordKind, id: string): Promise<void> {
  if (kind === 'sessions') {
    const summary = await listing.one(identity, id);
    if (!summary) throw unknownRecord(kind, id);
    if (!owns(identity, summary)) throw new HttpError(403, `only the owner of session ${id} uploads its record`);
    // A record only beside the gateway's own: not for a session it did not record, or whose recording retention removed.
    if (!['running', 'complete', 'truncated'].includes(summary.recording))
      throw new HttpError(409, `session ${id} has no recording here (${summary.recording}): the gateway takes no CLI record of it`);
  } else {
    // A run's record is its person's: the run must be one this gateway began for them.
    const run = await runs.get(id);
    if (!run) throw unknownRecord(kind, id);
    if (!owns(identity, run.owner)) throw new HttpError(403, `run ${id} was not begun by ${identity.subject}; only its person uploads its record`);
  }
}

/** Stores files of a record `identity` may upload to, checked against their registered device keys. */
async function storeFiles(
  parts: GatewayParts,
  identity: Identity,
  kind: RecordKind,
  id: string,
  files: ReadonlyArray<{ name: string; data: Buffer }>,
): Promise<{ stored: boolean; state: ClientRecordState }> {
  const { clientRecords, store, log } = parts;
  const owner = { issuer: identity.issuer, subject: identity.subject };
  const { stored, state } = await clientRecords!.putFiles(kind, id, files, owner, () => store.listDevices(owner));
  if (stored && files.some((f) => f.name.endsWith('.sig'))) log.info('client-record.uploaded', { kind, id, subject: identity.subject, state: state.state, fingerprint: state.fingerprint });
  return { stored, state };
}

/** A record the caller may not see, answered as one that does not exist. */
function unknownRecord(kind: RecordKind, id: string): HoopError {
  return new HoopError(ErrorCode.SESSION_UNKNOWN, `no ${kind === 'sessions' ? `session ${id}` : `run ${id}`} that you may see`, {
    hint: kind === 'sessions' ? '`hoop sessions ls` lists the sessions you may see' : 'the id is the HOOP_RUN_ID hoop run gave its command',
  });
}

/** Largest body of `POST /v1/client-records`, most files and most records in it (each record may cost a verification). */
export const MAX_RECORD_BATCH_BYTES = 8 * 1024 * 1024;
const MAX_BATCH_FILES = 1024;
export const MAX_BATCH_RECORDS = 64;

/** The records of a batch's archive, in the order their first files came. @throws HttpError 400 */
function recordBatch(body: Buffer): Array<{ kind: RecordKind; id: string; files: Array<{ name: string; data: Buffer }> }> {
  let entries: TarEntry[];
  try {
    entries = readTar(body, MAX_BATCH_FILES);
  } catch (err) {
    throw new HttpError(400, `the body is not an archive of records: ${describeError(err)}`, { hint: 'send a ustar archive of <sessions|runs>/<id>/<file> entries' });
  }
  const records = new Map<string, { kind: RecordKind; id: string; files: Array<{ name: string; data: Buffer }> }>();
  for (const { name, data } of entries) {
    const m = RECORD_BATCH_ENTRY.exec(name);
    if (!m) throw new HttpError(400, `${JSON.stringify(name.slice(0, 120))} names no record's file`, { hint: 'name each entry <sessions|runs>/<id>/<file>' });
    const key = `${m[1]}/${m[2]}`;
    let record = records.get(key);
    if (!record) {
      if (records.size >= MAX_BATCH_RECORDS) throw new HttpError(400, `the archive holds more than ${MAX_BATCH_RECORDS} records`, { hint: `send at most ${MAX_BATCH_RECORDS} records a request` });
      records.set(key, (record = { kind: m[1] as RecordKind, id: m[2]!, files: [] }));
    }
    record.files.push({ name: m[3]!, data });
  }
  return [...records.values()];
}
