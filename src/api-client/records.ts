/**
 * The CLI's own records of its sessions and runs at the gateway: how much of one it holds, a file
 * uploaded, several records uploaded in one archive, one downloaded.
 *
 * @see docs/internals.md (§1.5)
 */
import type { ClientRecordInfo } from '../api/answers.js';
import { apiPath } from '../api/paths.js';
import type { RecordKind } from '../recording/spool.js';
import { gatewayBaseUrl } from '../tunnel/transport.js';
import { apiError, type GatewayApiError } from './api-error.js';
import { downloadFiles, type GatewayEndpoint, isStringArray, protocolError, requestJson } from './request.js';

const recordPath = (kind: RecordKind, id: string, file?: string): string => (kind === 'sessions' ? apiPath.clientRecord(id, file) : apiPath.runRecord(id, file));

/** `GET /v1/sessions/{id}/client` or `GET /v1/runs/{id}`: how much of a CLI's record the gateway holds. */
export async function getClientRecord(endpoint: GatewayEndpoint, token: string, kind: RecordKind, id: string): Promise<ClientRecordInfo> {
  const { body } = await requestJson(endpoint, 'GET', recordPath(kind, id), { token });
  const b = body as { record?: unknown; files?: unknown };
  if (!isStringArray(b.files) || typeof b.record !== 'object') throw protocolError(gatewayBaseUrl(endpoint.gateway).origin, 'the record');
  return { record: b.record as ClientRecordInfo['record'], files: b.files };
}

/** Uploads one file of a CLI's record (`PUT`); idempotent: resolves `stored: false` when the gateway had the same bytes. */
export async function putClientRecordFile(
  endpoint: GatewayEndpoint,
  token: string,
  kind: RecordKind,
  id: string,
  file: string,
  data: Buffer,
): Promise<{ stored: boolean; record: ClientRecordInfo['record'] }> {
  const { body } = await requestJson(endpoint, 'PUT', recordPath(kind, id, file), { token, raw: data });
  return body as { stored: boolean; record: ClientRecordInfo['record'] };
}

/** What `POST /v1/client-records` says of one record: stored (or held already), or the error its `PUT`s would have got. */
export interface RecordBatchAnswer {
  kind: RecordKind;
  id: string;
  stored?: boolean;
  record?: ClientRecordInfo['record'];
  failure?: GatewayApiError;
}

/** Uploads the files of several records in one request (`archive`: a ustar archive of `<kind>/<id>/<file>`); resolves what became of each. */
export async function postClientRecords(endpoint: GatewayEndpoint, token: string, archive: Buffer): Promise<RecordBatchAnswer[]> {
  const origin = gatewayBaseUrl(endpoint.gateway).origin;
  const { body } = await requestJson(endpoint, 'POST', apiPath.clientRecords, { token, raw: archive });
  const records = (body as { records?: unknown }).records;
  const valid = (r: unknown): r is { kind: RecordKind; id: string; status: number; stored?: boolean; record?: ClientRecordInfo['record']; error?: unknown } =>
    typeof r === 'object' &&
    r !== null &&
    ((r as { kind?: unknown }).kind === 'sessions' || (r as { kind?: unknown }).kind === 'runs') &&
    typeof (r as { id?: unknown }).id === 'string' &&
    typeof (r as { status?: unknown }).status === 'number';
  if (!Array.isArray(records) || !records.every(valid)) throw protocolError(origin, 'the records it took');
  return records.map(({ kind, id, status, stored, record, error }) =>
    status >= 200 && status <= 299
      ? { kind, id, ...(stored === undefined ? {} : { stored }), ...(record === undefined ? {} : { record }) }
      : { kind, id, failure: apiError(status, Buffer.from(JSON.stringify({ error })), origin, recordPath(kind, id)) as GatewayApiError },
  );
}

/** Downloads a CLI's record into `dir`; resolves what the gateway says of it. */
export async function downloadClientRecord(endpoint: GatewayEndpoint, token: string, kind: RecordKind, id: string, dir: string): Promise<ClientRecordInfo> {
  const info = await getClientRecord(endpoint, token, kind, id);
  await downloadFiles(endpoint, token, info.files, (f) => recordPath(kind, id, f), dir);
  return info;
}
