/**
 * A tunnel opened the way no hoop client opens one: an HTTP/1.1 Upgrade to `hoop-tunnel/1` with
 * exactly the headers a test gives (claims the gateway must not believe), then the tunnel's
 * framing as the CLI speaks it.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9110#name-upgrade
 */
import * as https from 'node:https';
import type { Duplex } from 'node:stream';
import { TunnelChannel } from '../../src/tunnel/channel.js';

/** Opens `GET /v1/connections/<connection>/tunnel` with `headers`; resolves the channel and the 101's headers, or rejects with the refusal's status and body. */
export function rawTunnel(
  gateway: string,
  ca: Buffer,
  connection: string,
  headers: Record<string, string>,
): Promise<{ channel: TunnelChannel; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = https.request(new URL(`/v1/connections/${encodeURIComponent(connection)}/tunnel`, gateway), {
      method: 'GET',
      ca,
      agent: false,
      headers: { Connection: 'Upgrade', Upgrade: 'hoop-tunnel/1', ...headers },
    });
    req.on('upgrade', (res, socket: Duplex, head: Buffer) => resolve({ channel: new TunnelChannel(socket, head, { peer: 'gateway' }), headers: res.headers }));
    req.on('response', (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}: ${body}`), { status: res.statusCode, body })));
    });
    req.on('error', reject);
    req.end();
  });
}
