/**
 * The gateway's session index and its recordings: the sessions the caller may see, one session,
 * its recording's files, and the keys recordings are signed with.
 *
 * @see docs/recording-format.md
 */
import type { RecordingKey, SessionSummary } from '../api/answers.js';
import { apiPath } from '../api/paths.js';
import { gatewayBaseUrl } from '../tunnel/transport.js';
import { downloadFiles, type GatewayEndpoint, protocolError, requestJson } from './request.js';
import { ErrorCode } from '../errors.js';
import { suggestingNearest } from '../suggest.js';

/**
 * `GET /v1/sessions`: the sessions the caller may see (their own; everyone's for an auditor),
 * running ones first, then ended ones newest first, filtered by `user`, `connection`, `since`,
 * `until`, `denied`, `table`, `column`, `tool`, `path`, `method`.
 */
export async function listSessions(endpoint: GatewayEndpoint, token: string, filter: Record<string, string> = {}): Promise<{ sessions: SessionSummary[]; auditor: boolean }> {
  const { body } = await requestJson(endpoint, 'GET', apiPath.sessions(filter), { token });
  const b = body as { sessions?: unknown; auditor?: unknown };
  if (!Array.isArray(b.sessions)) throw protocolError(gatewayBaseUrl(endpoint.gateway).origin, 'its sessions');
  return { sessions: b.sessions as SessionSummary[], auditor: b.auditor === true };
}

/** `GET /v1/sessions/{id}`. */
export async function getSession(endpoint: GatewayEndpoint, token: string, id: string): Promise<SessionSummary> {
  const { body } = await suggestingNearest(requestJson(endpoint, 'GET', apiPath.session(id), { token }), ErrorCode.SESSION_UNKNOWN, id, async () =>
    (await listSessions(endpoint, token)).sessions.map((s) => s.id),
  );
  return body as SessionSummary;
}

/**
 * Downloads the files of session `id`'s recording into `dir` (`GET /v1/sessions/{id}/files[/name]`;
 * a running session's are of the snapshot its list names, `?snapshot=N`); resolves their names.
 */
export async function downloadRecording(endpoint: GatewayEndpoint, token: string, id: string, dir: string): Promise<string[]> {
  const { body } = await requestJson(endpoint, 'GET', apiPath.sessionFiles(id), { token });
  const { files, snapshot } = body as { files?: unknown; snapshot?: unknown };
  const query = typeof snapshot === 'number' && Number.isInteger(snapshot) ? `?snapshot=${snapshot}` : '';
  return downloadFiles(endpoint, token, files, (f) => `${apiPath.sessionFiles(id, f)}${query}`, dir);
}

/** `GET /v1/keys`: the keys the gateway signs recordings with, current and retired (no token needed). */
export async function getRecordingKeys(endpoint: GatewayEndpoint): Promise<RecordingKey[]> {
  const { body } = await requestJson(endpoint, 'GET', apiPath.keys);
  const keys = (body as { keys?: unknown }).keys;
  if (!Array.isArray(keys)) throw protocolError(gatewayBaseUrl(endpoint.gateway).origin, 'its recording keys');
  return keys as RecordingKey[];
}
