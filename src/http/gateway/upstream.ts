/**
 * An HTTP connection's upstream, as the gateway reaches it: each request sent to the connection's
 * base URL with the credential only the gateway holds (../pipeline/credential.ts), verified against
 * the entry's CA (or the system's), over a keep-alive connection of the session's own, closed with
 * it. No connection carries two sessions' requests: HTTP/1.1 ties an answer to a request by order
 * alone, so an upstream that answers twice or late (or reads a request out of another's body)
 * would hand one caller's answer, or credential, to another's request. The caller's hop-by-hop fields, `Host`, framing and
 * `Expect` are not forwarded (the request goes whole, with its length); `Accept-Encoding` asks for
 * no coding, so that nothing needs decoding to be masked (one that comes coded anyway is decoded).
 *
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-7.6.1 (hop-by-hop fields)
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import type { HttpConnection } from '../../config/connection.js';
import type { SecretRef } from '../../config/secrets.js';
import { HttpStatusError } from '../wire/status-error.js';
import { type HttpCredential, injectCredential } from '../pipeline/credential.js';
import type { HttpUpstreamSide, UpstreamAnswer } from '../pipeline/relay.js';
import type { HttpRequest } from '../pipeline/stages.js';

/** How long the upstream has to answer a request's head. */
export const UPSTREAM_DEADLINE_MS = 120_000;

/** The connection's credential, its secret resolved; undefined when it has none. */
export async function resolveCredential(connection: HttpConnection, resolveSecret: (ref: SecretRef) => Promise<string>): Promise<HttpCredential | undefined> {
  const c = connection.credential;
  if (!c) return undefined;
  if (c.kind === 'bearer') return { kind: 'bearer', token: await resolveSecret(c.token) };
  if (c.kind === 'basic') return { kind: 'basic', user: c.user, password: await resolveSecret(c.password) };
  return { kind: c.kind, name: c.name, value: await resolveSecret(c.value) };
}

/** See the module documentation. */
export class HttpUpstream implements HttpUpstreamSide {
  readonly base: string;
  readonly #connection: HttpConnection;
  readonly #credential: HttpCredential | undefined;
  readonly #url: URL;
  readonly #agent: HttpAgent;

  constructor(connection: HttpConnection, credential: HttpCredential | undefined) {
    this.#connection = connection;
    this.#credential = credential;
    this.#url = new URL(connection.url);
    this.base = connection.url;
    // One connection at a time: a session has one request in flight.
    const o = { keepAlive: true, maxSockets: 1, maxFreeSockets: 1 };
    this.#agent = this.#url.protocol === 'https:' ? new HttpsAgent({ ...o, ...(connection.tls.ca ? { ca: connection.tls.ca } : {}) }) : new HttpAgent(o);
  }

  /** The session ended: its connection to the upstream closes. */
  close(): void {
    this.#agent.destroy();
  }

  send(req: HttpRequest): Promise<UpstreamAnswer> {
    const { body, method } = req;
    const kept = req.fields;
    const { fields, target } = this.#credential ? injectCredential(this.#credential, kept, req.target) : { fields: kept, target: req.target };
    const base = this.#url.pathname.replace(/\/+$/, '');
    const raw: string[] = ['host', this.#url.host, 'accept-encoding', 'identity'];
    for (const [n, v] of fields) raw.push(n, v);
    if (body || !['GET', 'HEAD', 'OPTIONS', 'DELETE'].includes(method)) raw.push('content-length', String(body?.length ?? 0));
    const https = this.#url.protocol === 'https:';
    const hostname = this.#url.hostname.replace(/^\[|\]$/g, '');
    const serverName = this.#connection.tls.serverName ?? (isIP(hostname) ? undefined : hostname);
    return new Promise((resolve, reject) => {
      const options = {
        hostname,
        port: this.#url.port || (https ? 443 : 80),
        method,
        path: `${base}${target.canonical}`,
        headers: raw,
        setHost: false,
        agent: this.#agent,
        timeout: UPSTREAM_DEADLINE_MS,
        ...(https && serverName ? { servername: serverName } : {}),
      };
      const sent = (https ? httpsRequest : httpRequest)(options, (res: IncomingMessage) => {
        const pairs: Array<[string, string]> = [];
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) pairs.push([res.rawHeaders[i]!, res.rawHeaders[i + 1]!]);
        resolve({ status: res.statusCode ?? 502, reason: res.statusMessage ?? '', fields: pairs, body: res, complete: () => res.complete });
      });
      sent.on('timeout', () => sent.destroy(new HttpStatusError(504, `the upstream did not answer within ${UPSTREAM_DEADLINE_MS / 1000} s`)));
      sent.on('error', (err) => reject(err));
      sent.end(body);
    });
  }
}
