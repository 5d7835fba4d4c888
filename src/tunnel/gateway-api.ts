/**
 * The gateway's JSON API as the CLI uses it (`GET /v1/connections/{name}`), with the same TLS
 * rules and error mapping as the tunnel handshake: https only (http to loopback in dev), a
 * private CA when given, and HoopErrors with hints for every failure.
 *
 * @see /work/shared/ARCHITECTURE.md ("The data path")
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { ErrorCode, HoopError } from '../errors.js';
import { VERSION } from '../version.js';
import { gatewayBaseUrl, requestError, statusError } from './transport.js';

/** How the CLI reaches the gateway. */
export interface GatewayTarget {
  gateway: string | URL;
  token: string;
  ca?: Buffer | undefined;
  timeoutMs?: number;
}

/** A connection as the gateway describes it to a caller who may use it. */
export interface ConnectionInfo {
  name: string;
  type: string;
  database: string;
}

const MAX_BODY = 1024 * 1024;

/** GETs `path` (relative to the gateway base URL) and parses the JSON answer. */
async function getJson(target: GatewayTarget, path: string, connection: string): Promise<unknown> {
  const base = gatewayBaseUrl(target.gateway);
  const url = new URL(path, base);
  const options: https.RequestOptions = {
    method: 'GET',
    agent: false,
    headers: { Authorization: `Bearer ${target.token}`, Accept: 'application/json', 'User-Agent': `hoop/${VERSION}` },
    timeout: target.timeoutMs ?? 10_000,
    ...(target.ca ? { ca: target.ca } : {}),
  };
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? https : http).request(url, options, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= MAX_BODY) chunks.push(c);
      });
      res.on('error', (err) => reject(requestError(err, url.origin)));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        if (res.statusCode !== 200) {
          reject(statusError(res.statusCode ?? 0, body, connection, url.origin));
          return;
        }
        try {
          resolve(JSON.parse(body.toString('utf8')));
        } catch {
          reject(new HoopError(ErrorCode.GATEWAY_PROTOCOL, `the gateway at ${url.origin} answered with invalid JSON`, { hint: 'check that the URL points at a hoop gateway' }));
        }
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', (err) => reject(requestError(err, url.origin)));
    req.end();
  });
}

/** Asks the gateway about one connection; fails fast when the token, name or access is wrong. */
export async function getConnection(target: GatewayTarget, name: string): Promise<ConnectionInfo> {
  const body = (await getJson(target, `v1/connections/${encodeURIComponent(name)}`, name)) as Partial<ConnectionInfo>;
  if (typeof body.name !== 'string' || typeof body.type !== 'string' || typeof body.database !== 'string') {
    throw new HoopError(ErrorCode.GATEWAY_PROTOCOL, 'the gateway described the connection in a form this client does not understand', {
      hint: 'upgrade hoop to match the gateway',
    });
  }
  return { name: body.name, type: body.type, database: body.database };
}
