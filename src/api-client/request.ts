/**
 * The gateway's API as the CLI asks it: one request helper for every area of ./ (a JSON answer,
 * or bytes; files downloaded into a directory). Same TLS rules and error mapping as the tunnel:
 * https only (http to loopback), a private CA when given, HoopErrors with hints (./api-error.ts),
 * never a token in a message.
 *
 * @see docs/internals.md (§3)
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-2.1 (bearer token)
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import { join } from 'node:path';
import type * as z from 'zod';
import { ErrorCode, HoopError } from '../errors.js';
import { gatewayBaseUrl, requestError } from '../tunnel/transport.js';
import { VERSION } from '../version.js';
import { apiError } from './api-error.js';

/** How to reach the gateway. @see docs/internals.md (§3) */
export interface GatewayEndpoint {
  gateway: string | URL;
  ca?: Buffer | undefined;
  timeoutMs?: number;
}

const MAX_BODY = 1024 * 1024;

/** The methods the API takes. */
type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** What a request carries: the bearer token, a JSON body or raw bytes, and the connection it is about (for the error a 403 or 404 becomes). */
interface RequestOptions {
  token?: string;
  body?: unknown;
  raw?: Buffer;
  connection?: string;
  /** Fields of hoop's own (`Hoop-Via`). */
  headers?: Record<string, string>;
  /** The largest answer taken (default 1 MiB). */
  maxBody?: number;
}

/** One API request whose answer is JSON; resolves it parsed (HoopError GATEWAY_PROTOCOL when it is not JSON). */
export async function requestJson(endpoint: GatewayEndpoint, method: Method, path: string, options: RequestOptions = {}): Promise<{ status: number; body: unknown }> {
  const { status, bytes } = await request(endpoint, method, path, options, options.maxBody ?? MAX_BODY);
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
async function request(endpoint: GatewayEndpoint, method: Method, path: string, options: RequestOptions, maxBody: number): Promise<{ status: number; bytes: Buffer }> {
  try {
    return await requestOnce(endpoint, method, path, options, maxBody);
  } catch (err) {
    if (!(err instanceof StaleConnection)) throw err;
    return requestOnce(endpoint, method, path, options, maxBody, true);
  }
}

/** A kept-alive connection that was closed under a request before any answer came. */
class StaleConnection extends HoopError {
  constructor(message: string) {
    super(ErrorCode.GATEWAY_UNREACHABLE, message);
  }
}

async function requestOnce(endpoint: GatewayEndpoint, method: Method, path: string, options: RequestOptions, maxBody: number, fresh = false): Promise<{ status: number; bytes: Buffer }> {
  const base = gatewayBaseUrl(endpoint.gateway);
  const url = new URL(path, base);
  const payload = options.raw ?? (options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body), 'utf8'));
  const headers: Record<string, string> = { ...options.headers, Accept: 'application/json', 'User-Agent': `hoop/${VERSION}` };
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

/** An answer of a shape this client does not understand (`what` says of what). */
export function protocolError(origin: string, what: string): HoopError {
  return new HoopError(ErrorCode.GATEWAY_PROTOCOL, `${origin} described ${what} in a form this client does not understand`, { hint: 'upgrade hoop to match the gateway' });
}

/**
 * `body` read as `schema` says `what` is: the answer's own value, or a protocol error naming the
 * field that is not of its shape (never a value cast to a type it is not).
 */
export function answerAs<T>(endpoint: GatewayEndpoint, what: string, schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw protocolError(gatewayBaseUrl(endpoint.gateway).origin, `${what} (${issue ? `${issue.path.join('.') || 'the answer'}: ${issue.message}` : 'its shape'})`);
}

export const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

/** Largest recording file downloaded. */
const MAX_RECORDING_FILE = 256 * 1024 * 1024;

/** Downloads `files` (a gateway answer's list, each `path(file)`) into `dir`, each at most 256 MiB; resolves their names. */
export async function downloadFiles(endpoint: GatewayEndpoint, token: string, files: unknown, path: (file: string) => string, dir: string): Promise<string[]> {
  if (!isStringArray(files) || files.some((f) => !/^[A-Za-z0-9._-]+$/.test(f))) throw protocolError(gatewayBaseUrl(endpoint.gateway).origin, 'the recording');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const f of files) {
    const { bytes } = await request(endpoint, 'GET', path(f), { token }, MAX_RECORDING_FILE);
    await writeFile(join(dir, f), bytes, { mode: 0o600 });
  }
  return files;
}
