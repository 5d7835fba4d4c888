/**
 * The demo's REST API (the `demo-api` connection): the shop's customers as JSON, and refunds,
 * served on 127.0.0.1 only to a caller with its bearer token, which only the gateway holds (a
 * file among the demo's secrets, named by the policy as a secret reference): a request through
 * hoop carries it, one straight to the port without it gets 401.
 *
 * - `GET /customers` (`?country=GB`), `GET /customers/{id}`: the customers (emails, card numbers, SSNs).
 * - `POST /refunds` with `{"order": 7, "amount": 12.5}`: a refund issued (kept while the demo runs).
 * - `GET /refunds`: the refunds issued.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sampleCustomers } from './sample.js';

/** The running API. */
export interface DemoApi {
  port: number;
  stop(): Promise<void>;
}

/** Largest request body read. */
const MAX_BODY = 64 * 1024;

/** The API's token: made once, kept in `tokenFile` (0600). */
async function tokenOf(tokenFile: string): Promise<string> {
  if (!existsSync(tokenFile)) await writeFile(tokenFile, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
  return (await readFile(tokenFile, 'utf8')).trim();
}

/** Starts the API on 127.0.0.1:`port`; see the module documentation. */
export async function startDemoApi(o: { port: number; tokenFile: string }): Promise<DemoApi> {
  const expected = Buffer.from(`Bearer ${await tokenOf(o.tokenFile)}`);
  const customers = sampleCustomers();
  const refunds: Array<{ id: number; order: number; amount: number; status: 'issued' }> = [];
  const server = createServer((req, res) => {
    const given = Buffer.from(req.headers.authorization ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return send(res, 401, { error: 'a bearer token is required (hoop adds it: hoop exec demo-api GET /customers)' });
    route(req, res, customers, refunds).catch(() => send(res, 500, { error: 'the demo API failed' }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, '127.0.0.1', () => resolve());
  });
  return { port: (server.address() as AddressInfo).port, stop: () => new Promise((resolve) => server.close(() => resolve())) };
}

async function route(
  req: IncomingMessage,
  res: ServerResponse,
  customers: ReturnType<typeof sampleCustomers>,
  refunds: Array<{ id: number; order: number; amount: number; status: 'issued' }>,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://demo-api');
  const one = /^\/customers\/(\d+)$/.exec(url.pathname);
  if (req.method === 'GET' && url.pathname === '/customers') {
    const country = url.searchParams.get('country');
    return send(res, 200, country ? customers.filter((c) => c.country === country) : customers);
  }
  if (req.method === 'GET' && one) {
    const c = customers.find((x) => x.id === Number(one[1]));
    return c ? send(res, 200, c) : send(res, 404, { error: `no customer ${one[1]}` });
  }
  if (url.pathname === '/refunds' && req.method === 'GET') return send(res, 200, refunds);
  if (url.pathname === '/refunds' && req.method === 'POST') {
    const asked = await jsonBody(req);
    const order = (asked as { order?: unknown } | undefined)?.order;
    const amount = (asked as { amount?: unknown } | undefined)?.amount;
    if (!Number.isInteger(order) || typeof amount !== 'number' || !(amount > 0)) return send(res, 400, { error: 'send {"order": <id>, "amount": <more than 0>}' });
    const refund = { id: refunds.length + 1, order: order as number, amount, status: 'issued' as const };
    refunds.push(refund);
    return send(res, 201, refund);
  }
  send(res, 404, { error: `no route ${req.method} ${url.pathname}` });
}

/** A request's body as JSON, or undefined when it is not. */
async function jsonBody(req: IncomingMessage): Promise<unknown> {
  let text = '';
  for await (const chunk of req) {
    text += (chunk as Buffer).toString('utf8');
    if (text.length > MAX_BODY) return undefined;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function send(res: ServerResponse, status: number, value: unknown): void {
  const body = `${JSON.stringify(value)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
}
