/**
 * The connections a token's identity may use (`GET /v1/connections[/{name}]`), and a PostgreSQL
 * CancelRequest handed to the gateway (`POST /v1/connections/{name}/cancel`).
 *
 * @see docs/internals.md (§1)
 */
import type { ConnectionInfo, MaskingInfo } from '../api/answers.js';
import type { CancelBody } from '../api/bodies.js';
import { apiPath } from '../api/paths.js';
import { gatewayBaseUrl } from '../tunnel/transport.js';
import { type GatewayEndpoint, protocolError, requestJson } from './request.js';
import { ErrorCode } from '../errors.js';
import { suggestingNearest } from '../suggest.js';

/** A connection of a gateway answer, or undefined when it lacks a field this client needs. */
function connectionInfo(value: unknown): ConnectionInfo | undefined {
  const info = (typeof value === 'object' && value !== null ? value : {}) as Partial<Record<keyof ConnectionInfo, unknown>>;
  if (typeof info.name !== 'string' || typeof info.type !== 'string') return undefined;
  if (
    info.type === 'postgres' || info.type === 'mysql' ? typeof info.database !== 'string' : info.type === 'ssh' && !(Array.isArray(info.hostKeys) && info.hostKeys.every((k) => typeof k === 'string'))
  )
    return undefined;
  return {
    name: info.name,
    type: info.type,
    ...(typeof info.database === 'string' ? { database: info.database } : {}),
    ...(typeof info.user === 'string' ? { user: info.user } : {}),
    ...(Array.isArray(info.hostKeys) ? { hostKeys: info.hostKeys as string[] } : {}),
    ...(typeof info.url === 'string' ? { url: info.url } : {}),
    ...(typeof info.mode === 'string' ? { mode: info.mode } : {}),
    ...(typeof info.until === 'string' ? { until: info.until } : {}),
    ...(info.clientRecords === true ? { clientRecords: true as const } : {}),
    ...(typeof info.unavailable === 'string' ? { unavailable: info.unavailable } : {}),
    ...(maskingInfo(info.masking) ?? {}),
  };
}

/** A connection's `masking`, when it is one (as an object to spread), else undefined. */
function maskingInfo(value: unknown): { masking: MaskingInfo } | undefined {
  const m = (typeof value === 'object' && value !== null ? value : undefined) as Partial<Record<keyof MaskingInfo, unknown>> | undefined;
  if (!m || !Array.isArray(m.columns) || !Array.isArray(m.names) || !Array.isArray(m.detectors) || (m.derived !== 'mask' && m.derived !== 'deny')) return undefined;
  const strings = (list: unknown[], keys: readonly string[]): boolean =>
    list.every((e) => typeof e === 'object' && e !== null && keys.every((k) => typeof (e as Record<string, unknown>)[k] === 'string'));
  if (!strings(m.columns, ['table', 'column', 'strategy']) || !strings(m.names, ['pattern', 'strategy']) || !strings(m.detectors, ['detector', 'strategy'])) return undefined;
  return { masking: m as MaskingInfo };
}

/**
 * `GET /v1/connections`: the connections the token's identity may use (TOKEN_REJECTED on 401).
 * @see docs/internals.md (§1)
 */
export async function listConnections(endpoint: GatewayEndpoint, token: string): Promise<ConnectionInfo[]> {
  const origin = gatewayBaseUrl(endpoint.gateway).origin;
  const { body } = await requestJson(endpoint, 'GET', apiPath.connections, { token });
  const list = (typeof body === 'object' && body !== null ? (body as { connections?: unknown }).connections : undefined) as unknown;
  if (!Array.isArray(list)) throw protocolError(origin, 'its connections');
  const out: ConnectionInfo[] = [];
  for (const c of list) {
    const info = connectionInfo(c);
    if (!info) throw protocolError(origin, 'its connections');
    out.push(info);
  }
  return out;
}

/**
 * `GET /v1/connections/{name}`: fails fast when the token, the name or the access is wrong
 * (TOKEN_REJECTED, CONNECTION_UNKNOWN, ACCESS_DENIED).
 * @see docs/internals.md (§1)
 */
export async function getConnection(endpoint: GatewayEndpoint, token: string, name: string): Promise<ConnectionInfo> {
  const origin = gatewayBaseUrl(endpoint.gateway).origin;
  // A name typed wrong: the nearest of the caller's own connections (only those: the gateway says nothing of the rest).
  const { body } = await suggestingNearest(requestJson(endpoint, 'GET', apiPath.connection(name), { token, connection: name }), ErrorCode.CONNECTION_UNKNOWN, name, async () =>
    (await listConnections(endpoint, token)).map((c) => c.name),
  );
  const info = connectionInfo(body);
  if (!info) throw protocolError(origin, 'the connection');
  return info;
}

/**
 * `POST /v1/connections/{name}/cancel`: hands a PostgreSQL CancelRequest's key to the gateway, which
 * cancels the statement of the caller's session that holds it (and records that in the session).
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-CANCELING-REQUESTS
 */
export async function cancelStatement(endpoint: GatewayEndpoint, token: string, name: string, key: CancelBody): Promise<void> {
  await requestJson(endpoint, 'POST', apiPath.cancel(name), { token, connection: name, body: key });
}
