/**
 * The gateway's HTTP API as a test calls it, bypassing the CLI: any method, path, bearer token
 * and body, and the answer's status and JSON body as they came.
 */
import * as https from 'node:https';

/** An answer of the API. */
export interface ApiAnswer {
  status: number;
  body: Record<string, unknown>;
  headers: Record<string, string | string[] | undefined>;
}

/** Calls `method path` on the gateway at `url` (trusting `ca`), with `token` and a JSON `body` (or raw bytes). */
export function callApi(url: string, ca: Buffer, method: string, path: string, token?: string, body?: unknown): Promise<ApiAnswer> {
  return new Promise((done, fail) => {
    const data = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = {
      ...(token !== undefined ? { Authorization: `Bearer ${token}` } : {}),
      ...(data ? { 'Content-Type': Buffer.isBuffer(body) ? 'application/octet-stream' : 'application/json', 'Content-Length': String(data.length) } : {}),
    };
    const req = https.request(new URL(path, url), { method, ca, agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: Record<string, unknown> = {};
        try {
          parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
        } catch {
          parsed = { text };
        }
        done({ status: res.statusCode ?? 0, body: parsed, headers: res.headers });
      });
    });
    req.on('error', fail);
    req.end(data);
  });
}
