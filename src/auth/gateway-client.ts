/**
 * The gateway's identity API as the CLI uses it: `GET /v1/auth/config` (which OpenID provider,
 * client and scopes to log in with), `GET /v1/whoami` (what the gateway makes of a token) and
 * `POST /v1/devices` (register the device key). Same TLS rules and error mapping as the tunnel:
 * https only (http to loopback), a private CA when given, HoopErrors with hints, never a token
 * in a message.
 *
 * @see docs/architecture.md (§3)
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-2.1 (bearer token)
 */
import { createHash } from 'node:crypto';
import { signDeviceProof } from '../device-proof.js';
import * as http from 'node:http';
import * as https from 'node:https';
import { ErrorCode, HoopError } from '../errors.js';
import { gatewayBaseUrl, requestError } from '../tunnel/transport.js';
import { VERSION } from '../version.js';
import {
  type AuthConfig,
  type ClientRecordInfo,
  type ConnectionInfo,
  type MaskingInfo,
  type PolicyStatus,
  codeFitsStatus,
  type DirectCredentialView,
  type RaisedAlert,
  type RecordingKey,
  type RegisteredDevice,
  type RunStarted,
  type RunView,
  readErrorBody,
  type SessionSummary,
  type WhoAmI,
} from '../api/answers.js';
import type { AccessRequestBody, AlertClearBody, CancelBody, ReviewDecisionBody, RunAskBody, RunEgressBody, RunHeartbeatBody } from '../api/bodies.js';
import { apiPath } from '../api/paths.js';

export type { AuthConfig, ClientRecordInfo, ConnectionInfo, PolicyStatus, RaisedAlert, RecordingKey, RegisteredDevice, RunStarted, SessionSummary, WhoAmI };
import type { Review } from '../policy/review-record.js';
import { mkdir, writeFile } from 'node:fs/promises';
import type { RecordKind } from '../recording/spool.js';
import { join } from 'node:path';

/** How to reach the gateway. @see docs/architecture.md (§3) */
export interface GatewayEndpoint {
  gateway: string | URL;
  ca?: Buffer | undefined;
  timeoutMs?: number;
}

const MAX_BODY = 1024 * 1024;

/**
 * The gateway refused an identity API request. `reason` is the token rejection reason of a 401.
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1
 */
export class GatewayApiError extends HoopError {
  readonly status: number;
  readonly reason: string | undefined;

  constructor(code: ErrorCode, message: string, status: number, hint: string | undefined, reason?: string) {
    super(code, message, hint === undefined ? {} : { hint });
    this.status = status;
    this.reason = reason;
  }
}

/**
 * What a user should read for a token rejection `reason` from gateway `origin`.
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1
 */
export function rejectionText(reason: string | undefined, origin: string): { message: string; hint: string } | undefined {
  const login = `run \`hoop login --gateway ${origin}\``;
  switch (reason) {
    case 'expired':
      return { message: `your token for ${origin} has expired`, hint: login };
    case 'missing':
      return { message: `${origin} needs a token and got none`, hint: login };
    case 'malformed':
    case 'unknown-key':
    case 'bad-signature':
      return { message: `${origin} could not verify your token`, hint: `${login} to get a fresh one` };
    case 'untrusted-issuer':
      return { message: `${origin} does not trust the identity provider that issued your token`, hint: `${login}; it asks the gateway which provider to use` };
    case 'wrong-audience':
      return { message: `your token was issued for another audience than ${origin}`, hint: `${login}; for a workload token, request it for the gateway's audience` };
    case 'wrong-token-type':
      return { message: `${origin} wants another kind of token (access token vs ID token)`, hint: login };
    case 'no-matching-rule':
      return {
        message: `${origin} trusts the issuer of this workload token, but none of its rules matches the token's claims`,
        hint: 'ask a gateway administrator to add a rule for this workload (repository, ref, namespace, ...)',
      };
    case 'not-yet-valid':
      return { message: `${origin} says your token is not valid yet`, hint: "check this machine's clock, then log in again" };
    case 'run-ended':
      return { message: `the run this credential belonged to has ended, and ${origin} no longer accepts it`, hint: 'start the command again with hoop run' };
    case 'unknown-run':
      return { message: `${origin} issued no such run credential`, hint: 'a run credential comes from hoop run: start the command with hoop run' };
    default:
      return undefined;
  }
}

/** The codes the CLI takes at the gateway's word when they come with their own status (../api/answers.ts), and what it says when the gateway said nothing more. */
const TAKEN_AT_ITS_WORD: Partial<Record<string, { message: (origin: string) => string; hint: string }>> = {
  [ErrorCode.SESSION_UNKNOWN]: { message: () => 'no such session', hint: '`hoop sessions ls` lists the sessions you may see' },
  [ErrorCode.REVIEW_UNKNOWN]: { message: () => 'no such review', hint: '`hoop review ls` lists the reviews you may see' },
  [ErrorCode.RECORDING_UNAVAILABLE]: { message: (origin) => `${origin} cannot record sessions now`, hint: 'try again later' },
};

function apiError(status: number, body: Buffer, origin: string, path: string, connection?: string): HoopError {
  const parsed = readErrorBody(body, 500);
  // The gateway's own codes for what only a person may do, and when: said as it says them.
  if (parsed.code === ErrorCode.RUN_FORBIDDEN || parsed.code === ErrorCode.SIGN_IN_REQUIRED) {
    return new GatewayApiError(parsed.code, parsed.message ?? `${origin} refused the request`, status, parsed.hint);
  }
  if (connection !== undefined && (status === 403 || status === 404)) {
    return status === 403
      ? new GatewayApiError(ErrorCode.ACCESS_DENIED, parsed.message ?? `you may not use the connection "${connection}"`, status, parsed.hint ?? 'ask an administrator to grant you access to it')
      : new GatewayApiError(
          ErrorCode.CONNECTION_UNKNOWN,
          parsed.message ?? `the gateway knows no connection named "${connection}"`,
          status,
          parsed.hint ?? 'check the name; `hoop connections` lists the ones you may use',
        );
  }
  if (status === 401) {
    const text = rejectionText(parsed.reason, origin);
    // Which kind of token the issuer is configured for, and what to change, only the gateway can say.
    const said = parsed.reason === 'wrong-token-type' && parsed.message ? `${origin}: ${parsed.message}` : undefined;
    return new GatewayApiError(
      ErrorCode.TOKEN_REJECTED,
      said ?? text?.message ?? parsed.message ?? `${origin} rejected the token`,
      status,
      text?.hint ?? parsed.hint ?? `run \`hoop login --gateway ${origin}\``,
      parsed.reason,
    );
  }
  if (status === 403) return new GatewayApiError(ErrorCode.ACCESS_DENIED, parsed.message ?? `${origin} refused the request`, status, parsed.hint);
  if (status === 404 && path === apiPath.authConfig) {
    return new GatewayApiError(
      ErrorCode.USAGE,
      `${origin} has no login configured`,
      status,
      parsed.hint ?? 'ask its administrator to add a `login` block to the gateway configuration, or log in with a workload token (--id-token-file)',
    );
  }
  const taken = parsed.code !== undefined && codeFitsStatus(parsed.code, status) ? TAKEN_AT_ITS_WORD[parsed.code] : undefined;
  if (taken) return new GatewayApiError(parsed.code as ErrorCode, parsed.message ?? taken.message(origin), status, parsed.hint ?? taken.hint);
  if (
    status === 409 ||
    status === 410 ||
    status === 429 ||
    (status === 400 && (path.startsWith('v1/reviews') || path.startsWith('v1/runs') || path.startsWith('v1/alerts') || path === apiPath.requests))
  )
    return new GatewayApiError(ErrorCode.USAGE, parsed.message ?? `${origin} refused the request (HTTP ${status})`, status, parsed.hint);
  if (status === 404) {
    return new GatewayApiError(ErrorCode.GATEWAY_PROTOCOL, `${origin} does not serve /${path}`, status, 'upgrade the gateway to a version with identity support, or check the URL');
  }
  if (status >= 500) return new GatewayApiError(ErrorCode.GATEWAY_UNREACHABLE, parsed.message ?? `${origin} failed with HTTP ${status}`, status, parsed.hint ?? 'try again later');
  return new GatewayApiError(
    ErrorCode.GATEWAY_PROTOCOL,
    parsed.message ?? `unexpected answer from ${origin}: HTTP ${status}`,
    status,
    parsed.hint ?? 'check that the URL points at a hoop gateway compatible with this client',
  );
}

async function requestJson(
  endpoint: GatewayEndpoint,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  options: { token?: string; body?: unknown; raw?: Buffer; connection?: string } = {},
): Promise<{ status: number; body: unknown }> {
  const { status, bytes } = await request(endpoint, method, path, options, MAX_BODY);
  try {
    return { status, body: JSON.parse(bytes.toString('utf8')) };
  } catch {
    throw new HoopError(ErrorCode.GATEWAY_PROTOCOL, `${gatewayBaseUrl(endpoint.gateway).origin} answered /${path} with invalid JSON`, { hint: 'check that the URL points at a hoop gateway' });
  }
}

/**
 * Keep-alive agents, one per CA (and one for plain http to loopback): a command's API requests
 * share connections instead of making a TLS handshake each (a session's record is uploaded in
 * several requests as it closes). Idle connections do not keep the process alive.
 *
 * @see https://nodejs.org/api/http.html#new-agentoptions
 */
const agents = new Map<string, http.Agent>();

function agentFor(url: URL, ca: Buffer | undefined): http.Agent {
  const key = url.protocol === 'https:' ? `https ${ca ? createHash('sha256').update(ca).digest('hex') : ''}` : 'http';
  let agent = agents.get(key);
  if (!agent) {
    agent = url.protocol === 'https:' ? new https.Agent({ keepAlive: true, ...(ca ? { ca } : {}) }) : new http.Agent({ keepAlive: true });
    agents.set(key, agent);
  }
  return agent;
}

/**
 * One API request; resolves the body's bytes (at most `maxBody`), rejects with a HoopError for a
 * non-2xx answer. A request on a kept-alive connection that the gateway closed just before is
 * sent once more on a new one (it never reached the gateway).
 */
async function request(
  endpoint: GatewayEndpoint,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  options: { token?: string; body?: unknown; raw?: Buffer; connection?: string },
  maxBody: number,
): Promise<{ status: number; bytes: Buffer }> {
  try {
    return await requestOnce(endpoint, method, path, options, maxBody);
  } catch (err) {
    if (!(err instanceof StaleConnection)) throw err;
    return requestOnce(endpoint, method, path, options, maxBody, true);
  }
}

/** A kept-alive connection that was closed under a request before any answer came. */
class StaleConnection extends Error {}

async function requestOnce(
  endpoint: GatewayEndpoint,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  options: { token?: string; body?: unknown; raw?: Buffer; connection?: string },
  maxBody: number,
  fresh = false,
): Promise<{ status: number; bytes: Buffer }> {
  const base = gatewayBaseUrl(endpoint.gateway);
  const url = new URL(path, base);
  const payload = options.raw ?? (options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body), 'utf8'));
  const headers: Record<string, string> = { Accept: 'application/json', 'User-Agent': `hoop/${VERSION}` };
  if (options.token !== undefined) {
    if (!/^[A-Za-z0-9\-._~+/]+=*$/.test(options.token)) {
      throw new HoopError(ErrorCode.NOT_LOGGED_IN, 'the token is not a valid bearer token', { hint: `run \`hoop login --gateway ${base.origin}\`` });
    }
    headers.Authorization = `Bearer ${options.token}`;
  }
  if (payload) {
    headers['Content-Type'] = options.raw ? 'application/octet-stream' : 'application/json';
    headers['Content-Length'] = String(payload.length);
  }
  const requestOptions: https.RequestOptions = {
    method,
    agent: fresh ? false : agentFor(url, endpoint.ca),
    headers,
    timeout: endpoint.timeoutMs ?? 10_000,
    ...(endpoint.ca ? { ca: endpoint.ca } : {}),
  };
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = (url.protocol === 'https:' ? https : http).request(url, requestOptions, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= maxBody) chunks.push(c);
        else res.destroy(new Error(`the answer is larger than ${maxBody} bytes`));
      });
      res.on('error', (err) => reject(requestError(err, url.origin)));
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        const body = Buffer.concat(chunks);
        if (status < 200 || status > 299) {
          reject(apiError(status, body, url.origin, path, options.connection));
          return;
        }
        resolve({ status, bytes: body });
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => {
      const stale = req.reusedSocket && !answered && (err.code === 'ECONNRESET' || err.code === 'EPIPE');
      reject(stale ? new StaleConnection(err.message) : requestError(err, url.origin));
    });
    req.end(payload);
  });
}

function protocolError(origin: string, what: string): HoopError {
  return new HoopError(ErrorCode.GATEWAY_PROTOCOL, `${origin} described ${what} in a form this client does not understand`, { hint: 'upgrade hoop to match the gateway' });
}

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
const isStringRecord = (v: unknown): v is Record<string, string> => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((s) => typeof s === 'string');

/**
 * `GET /v1/auth/config`. Throws HoopError(USAGE) when the gateway has no login configured.
 * @see docs/architecture.md (§3)
 */
export async function getAuthConfig(endpoint: GatewayEndpoint): Promise<AuthConfig> {
  const origin = gatewayBaseUrl(endpoint.gateway).origin;
  const { body } = await requestJson(endpoint, 'GET', apiPath.authConfig);
  const b = body as Partial<Record<keyof AuthConfig, unknown>>;
  if (typeof b.issuer !== 'string' || typeof b.clientId !== 'string' || !isStringArray(b.scopes)) throw protocolError(origin, 'its login configuration');
  const tokenType = b.tokenType === 'access' || b.tokenType === 'id' ? b.tokenType : 'any';
  return {
    issuer: b.issuer,
    clientId: b.clientId,
    ...(typeof b.clientSecret === 'string' && b.clientSecret !== '' ? { clientSecret: b.clientSecret } : {}),
    ...(typeof b.redirectPort === 'number' && Number.isInteger(b.redirectPort) && b.redirectPort > 0 && b.redirectPort < 65536 ? { redirectPort: b.redirectPort } : {}),
    ...(isStringRecord(b.authorizationParams) ? { authorizationParams: b.authorizationParams } : {}),
    scopes: b.scopes,
    tokenType,
    ...(typeof b.resource === 'string' && b.resource !== '' ? { resource: b.resource } : {}),
    ...(typeof b.workloadAudience === 'string' && b.workloadAudience !== '' ? { workloadAudience: b.workloadAudience } : {}),
  };
}

/**
 * `GET /v1/whoami` with `token`. Throws HoopError(TOKEN_REJECTED) with a helpful message on 401.
 * @see docs/architecture.md (§3)
 */
export async function getWhoAmI(endpoint: GatewayEndpoint, token: string): Promise<WhoAmI> {
  const origin = gatewayBaseUrl(endpoint.gateway).origin;
  const { body } = await requestJson(endpoint, 'GET', apiPath.whoami, { token });
  const b = body as Partial<Record<keyof WhoAmI, unknown>>;
  if (typeof b.subject !== 'string' || typeof b.issuer !== 'string' || typeof b.expiresAt !== 'string') throw protocolError(origin, 'your identity');
  return {
    subject: b.subject,
    issuer: b.issuer,
    kind: b.kind === 'workload' ? 'workload' : 'user',
    groups: isStringArray(b.groups) ? b.groups : [],
    expiresAt: b.expiresAt,
    ...(typeof b.email === 'string' ? { email: b.email } : {}),
  };
}

/**
 * `POST /v1/devices`: registers the public half of the device key (idempotent), with a proof of
 * possession signed by its private half (src/device-proof.ts); the private key is never sent.
 * @see https://www.rfc-editor.org/rfc/rfc8410 (SPKI PEM of an Ed25519 key)
 */
export async function registerDevice(endpoint: GatewayEndpoint, token: string, device: { publicKey: string; privateKey: string; name: string; ephemeral?: boolean }): Promise<RegisteredDevice> {
  const origin = gatewayBaseUrl(endpoint.gateway).origin;
  const proof = signDeviceProof(device.privateKey, device.publicKey, token);
  const { body } = await requestJson(endpoint, 'POST', apiPath.devices, { token, body: { publicKey: device.publicKey, name: device.name, proof, ...(device.ephemeral ? { ephemeral: true } : {}) } });
  const b = body as Partial<Record<keyof RegisteredDevice, unknown>>;
  if (typeof b.deviceId !== 'string' || typeof b.fingerprint !== 'string') throw protocolError(origin, 'the registered device');
  return { deviceId: b.deviceId, fingerprint: b.fingerprint };
}

/** A connection of a gateway answer, or undefined when it lacks a field this client needs. */
function connectionInfo(value: unknown): ConnectionInfo | undefined {
  const info = (typeof value === 'object' && value !== null ? value : {}) as Partial<Record<keyof ConnectionInfo, unknown>>;
  if (typeof info.name !== 'string' || typeof info.type !== 'string') return undefined;
  if (info.type === 'postgres' ? typeof info.database !== 'string' : info.type === 'ssh' && !(Array.isArray(info.hostKeys) && info.hostKeys.every((k) => typeof k === 'string'))) return undefined;
  return {
    name: info.name,
    type: info.type,
    ...(typeof info.database === 'string' ? { database: info.database } : {}),
    ...(typeof info.user === 'string' ? { user: info.user } : {}),
    ...(Array.isArray(info.hostKeys) ? { hostKeys: info.hostKeys as string[] } : {}),
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
 * @see docs/architecture.md (§1)
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
 * @see docs/architecture.md (§1)
 */
export async function getConnection(endpoint: GatewayEndpoint, token: string, name: string): Promise<ConnectionInfo> {
  const origin = gatewayBaseUrl(endpoint.gateway).origin;
  const { body } = await requestJson(endpoint, 'GET', apiPath.connection(name), { token, connection: name });
  const info = connectionInfo(body);
  if (!info) throw protocolError(origin, 'the connection');
  return info;
}

/**
 * `GET /v1/policy`: the commit the gateway runs, how it validates a commit, and what it refused.
 * @throws HoopError GATEWAY_PROTOCOL for an answer of another shape
 */
export async function getPolicyStatus(endpoint: GatewayEndpoint, token: string): Promise<PolicyStatus> {
  const origin = gatewayBaseUrl(endpoint.gateway).origin;
  const { body } = await requestJson(endpoint, 'GET', apiPath.policy, { token });
  const b = (typeof body === 'object' && body !== null ? body : {}) as Partial<Record<keyof PolicyStatus, unknown>>;
  const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
  if (
    typeof b.commit !== 'string' ||
    typeof b.ref !== 'string' ||
    typeof b.repo !== 'string' ||
    !strings(b.allowedSecrets) ||
    typeof b.signedCommitsOnly !== 'boolean' ||
    !Array.isArray(b.unavailable)
  ) {
    throw protocolError(origin, 'its policy (an older gateway?)');
  }
  return b as PolicyStatus;
}

/**
 * `POST /v1/connections/{name}/cancel`: hands a PostgreSQL CancelRequest's key to the gateway, which
 * cancels the statement of the caller's session that holds it (and records that in the session).
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-CANCELING-REQUESTS
 */
export async function cancelStatement(endpoint: GatewayEndpoint, token: string, name: string, key: CancelBody): Promise<void> {
  await requestJson(endpoint, 'POST', apiPath.cancel(name), { token, connection: name, body: key });
}

/**
 * `POST /v1/connections/{name}/direct`: a direct credential for `name` (a PostgreSQL user and
 * password to sign in with at the gateway's own address), for `seconds` (the gateway's default
 * when absent).
 */
export async function mintDirect(endpoint: GatewayEndpoint, token: string, name: string, ask: { seconds?: number } = {}): Promise<DirectCredentialView> {
  const { body } = await requestJson(endpoint, 'POST', apiPath.direct(name), { token, connection: name, body: ask });
  const b = body as Partial<DirectCredentialView>;
  if (typeof b.user !== 'string' || typeof b.password !== 'string' || typeof b.database !== 'string' || typeof b.expiresAt !== 'string' || typeof b.id !== 'string') {
    throw protocolError(gatewayBaseUrl(endpoint.gateway).origin, 'the direct credential');
  }
  return b as DirectCredentialView;
}

/** `POST /v1/direct/{id}/renew`: the credential lives `seconds` more from now; resolves its new end. */
export async function renewDirect(endpoint: GatewayEndpoint, token: string, id: string, ask: { seconds?: number } = {}): Promise<string> {
  const { body } = await requestJson(endpoint, 'POST', apiPath.directOne(id, true), { token, body: ask });
  const expiresAt = (body as { expiresAt?: unknown }).expiresAt;
  if (typeof expiresAt !== 'string') throw protocolError(gatewayBaseUrl(endpoint.gateway).origin, 'the renewed direct credential');
  return expiresAt;
}

/** `DELETE /v1/direct/{id}`: the credential is no longer accepted, and its sessions end. */
export async function revokeDirect(endpoint: GatewayEndpoint, token: string, id: string): Promise<void> {
  await requestJson(endpoint, 'DELETE', apiPath.directOne(id), { token });
}

/**
 * `GET /v1/sessions`: the sessions the caller may see (their own; everyone's for an auditor),
 * running ones first, then ended ones newest first, filtered by `user`, `connection`, `since`,
 * `until`, `denied`, `table`, `column`.
 */
export async function listSessions(endpoint: GatewayEndpoint, token: string, filter: Record<string, string> = {}): Promise<{ sessions: SessionSummary[]; auditor: boolean }> {
  const { body } = await requestJson(endpoint, 'GET', apiPath.sessions(filter), { token });
  const b = body as { sessions?: unknown; auditor?: unknown };
  if (!Array.isArray(b.sessions)) throw protocolError(gatewayBaseUrl(endpoint.gateway).origin, 'its sessions');
  return { sessions: b.sessions as SessionSummary[], auditor: b.auditor === true };
}

/** `GET /v1/sessions/{id}`. */
export async function getSession(endpoint: GatewayEndpoint, token: string, id: string): Promise<SessionSummary> {
  const { body } = await requestJson(endpoint, 'GET', apiPath.session(id), { token });
  return body as SessionSummary;
}

/** Largest recording file downloaded. */
const MAX_RECORDING_FILE = 256 * 1024 * 1024;

/** Downloads the files of session `id`'s recording into `dir` (`GET /v1/sessions/{id}/files[/name]`); resolves their names. */
export async function downloadRecording(endpoint: GatewayEndpoint, token: string, id: string, dir: string): Promise<string[]> {
  const { body } = await requestJson(endpoint, 'GET', apiPath.sessionFiles(id), { token });
  return downloadFiles(endpoint, token, (body as { files?: unknown }).files, (f) => apiPath.sessionFiles(id, f), dir);
}

async function downloadFiles(endpoint: GatewayEndpoint, token: string, files: unknown, path: (file: string) => string, dir: string): Promise<string[]> {
  if (!isStringArray(files) || files.some((f) => !/^[A-Za-z0-9._-]+$/.test(f))) throw protocolError(gatewayBaseUrl(endpoint.gateway).origin, 'the recording');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const f of files) {
    const { bytes } = await request(endpoint, 'GET', path(f), { token }, MAX_RECORDING_FILE);
    await writeFile(join(dir, f), bytes, { mode: 0o600 });
  }
  return files;
}

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

/** `GET /v1/keys`: the keys the gateway signs recordings with, current and retired (no token needed). */
export async function getRecordingKeys(endpoint: GatewayEndpoint): Promise<RecordingKey[]> {
  const { body } = await requestJson(endpoint, 'GET', apiPath.keys);
  const keys = (body as { keys?: unknown }).keys;
  if (!Array.isArray(keys)) throw protocolError(gatewayBaseUrl(endpoint.gateway).origin, 'its recording keys');
  return keys as RecordingKey[];
}

/** A review as `GET /v1/reviews` answers it (the gateway's own record of it). */
export type ReviewInfo = Review;

/** `GET /v1/reviews[?state=]`: the reviews the caller may see (theirs, those they may decide; an auditor's: all), newest first. */
export async function listReviews(endpoint: GatewayEndpoint, token: string, state?: string): Promise<ReviewInfo[]> {
  const { body } = await requestJson(endpoint, 'GET', apiPath.reviews(state), { token });
  const b = body as { reviews?: unknown };
  if (!Array.isArray(b.reviews)) throw protocolError(gatewayBaseUrl(endpoint.gateway).origin, 'its reviews');
  return b.reviews as ReviewInfo[];
}

/** `GET /v1/reviews/{id}[?wait=S]`: one review, after waiting up to `waitSeconds` (60 at most) for its decision. */
export async function getReview(endpoint: GatewayEndpoint, token: string, id: string, waitSeconds = 0): Promise<ReviewInfo> {
  const wait = Math.min(60, Math.max(0, Math.floor(waitSeconds)));
  const { body } = await requestJson({ ...endpoint, timeoutMs: Math.max(endpoint.timeoutMs ?? 10_000, (wait + 15) * 1000) }, 'GET', apiPath.review(id, wait), { token });
  return body as ReviewInfo;
}

/** `POST /v1/requests`: asks for temporary access to `connection`; resolves the request (a review) as raised. */
export async function requestAccess(endpoint: GatewayEndpoint, token: string, body: AccessRequestBody & { mode: 'read-only' | 'read-write' }): Promise<ReviewInfo> {
  const { body: answer } = await requestJson(endpoint, 'POST', apiPath.requests, { token, body, connection: body.connection });
  return answer as ReviewInfo;
}

/**
 * Follows review `id` (long polls of at most 60 s) until it is decided or `seconds` have passed
 * (`Infinity`: until decided); `token` gives a fresh token for each poll. Resolves it as it then stands.
 */
export async function followReview(endpoint: GatewayEndpoint, token: () => Promise<string>, id: string, seconds: number): Promise<ReviewInfo> {
  const until = Date.now() + (Number.isFinite(seconds) ? seconds * 1000 : Number.MAX_SAFE_INTEGER);
  for (;;) {
    const r = await getReview(endpoint, await token(), id, Math.min(60, Math.max(0, until - Date.now()) / 1000));
    if (r.state !== 'pending' || Date.now() >= until) return r;
  }
}

/** `POST /v1/reviews/{id}/approve|deny`: records the caller's decision; resolves the review as it then stands. */
export async function decideReview(endpoint: GatewayEndpoint, token: string, id: string, decision: 'approve' | 'deny', reason?: string): Promise<ReviewInfo> {
  const { body } = await requestJson(endpoint, 'POST', apiPath.reviewDecision(id, decision), { token, body: (reason !== undefined ? { reason } : {}) satisfies ReviewDecisionBody });
  return body as ReviewInfo;
}

/** `POST /v1/runs`: begins an agent's run for the caller (a person's credential). */
export async function startRun(endpoint: GatewayEndpoint, token: string, ask: RunAskBody & { agent: string; via: 'run' | 'mcp' }): Promise<RunStarted> {
  const { body } = await requestJson(endpoint, 'POST', apiPath.runs, { token, body: ask });
  return body as RunStarted;
}

/**
 * `POST /v1/runs/{id}/heartbeat|end` with the run's control credential (a heartbeat with the
 * person's current token, so the run lives no longer than their sign-in); resolves the run as it
 * then stands.
 */
export async function controlRun(endpoint: GatewayEndpoint, controlToken: string, id: string, action: 'heartbeat' | 'end', personToken?: string): Promise<RunView> {
  const { body } = await requestJson(endpoint, 'POST', apiPath.runControl(id, action), {
    token: controlToken,
    ...(personToken !== undefined ? { body: { personToken } satisfies RunHeartbeatBody } : {}),
  });
  return body as RunView;
}

/** `POST /v1/runs/{id}/egress` with the run's control credential: connections its command asked for and was refused. */
export async function reportEgress(endpoint: GatewayEndpoint, controlToken: string, id: string, refused: RunEgressBody['refused']): Promise<void> {
  await requestJson(endpoint, 'POST', apiPath.runControl(id, 'egress'), { token: controlToken, body: { refused } satisfies RunEgressBody });
}

/** `GET /v1/alerts[?state=]`: the alerts the caller may see, newest first. */
export async function listAlerts(endpoint: GatewayEndpoint, token: string, state?: 'open' | 'cleared'): Promise<RaisedAlert[]> {
  const { body } = await requestJson(endpoint, 'GET', apiPath.alerts(state), { token });
  const b = body as { alerts?: unknown };
  if (!Array.isArray(b.alerts)) throw protocolError(gatewayBaseUrl(endpoint.gateway).origin, 'its alerts');
  return b.alerts as RaisedAlert[];
}

/** `POST /v1/alerts/{id}/clear`: clears an alert (its suspension ends); resolves it as it then stands. */
export async function clearAlert(endpoint: GatewayEndpoint, token: string, id: string, reason: string): Promise<RaisedAlert> {
  const { body } = await requestJson(endpoint, 'POST', apiPath.alertClear(id), { token, body: { reason } satisfies AlertClearBody });
  return body as RaisedAlert;
}
