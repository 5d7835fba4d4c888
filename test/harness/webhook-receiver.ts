/**
 * A webhook target on 127.0.0.1 that keeps every POST it receives (its path and JSON body) and
 * answers 204, for tests of what the gateway sends.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the target received, in order; its base URL; and how to stop it. */
export interface WebhookReceiver {
  received: Array<{ path: string; body: Record<string, unknown> }>;
  base: string;
  close(): void;
}

/** Starts a target on a free port. */
export async function webhookReceiver(): Promise<WebhookReceiver> {
  const received: WebhookReceiver['received'] = [];
  const server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (b: Buffer) => (body += b.toString()));
    req.on('end', () => {
      received.push({ path: req.url ?? '', body: JSON.parse(body) as Record<string, unknown> });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { received, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}
