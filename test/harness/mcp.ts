/**
 * MCP tests' clients: a raw client straight on a tunnel to the gateway (no hoop CLI in its path),
 * and a session's recording as its events.
 */
import { expect } from 'vitest';
import { newSessionId, openTunnel } from '../../src/tunnel/transport.js';
import type { HoopStack } from './stack.js';
import { eventually } from './wait.js';

/** A raw MCP client: lines out, parsed messages in. */
export interface RawMcp {
  channel: Awaited<ReturnType<typeof openTunnel>>['channel'];
  received: Array<Record<string, unknown>>;
  /** Each line received, as sent. */
  lines: string[];
  send(m: unknown): boolean;
  /** The answer to request `id`, once it came. */
  answer(id: unknown): Promise<Record<string, unknown>>;
  request(id: number | string, method: string, params?: Record<string, unknown>): Promise<Record<string, unknown>>;
  ended(): boolean;
  close(): void;
}

/** A client of MCP connection `name` of `stack` as `subject`, initialized (session `sessionId`). */
export async function rawMcp(stack: HoopStack, name: string, o: { subject?: string; sessionId?: string } = {}): Promise<RawMcp> {
  const token = await stack.token(o.subject ?? 'alice');
  const { channel } = await openTunnel({ gateway: stack.gateway.url, connection: name, token, sessionId: o.sessionId ?? newSessionId(), clientVersion: 'test', ca: stack.pki.ca });
  const received: Array<Record<string, unknown>> = [];
  const lines: string[] = [];
  let buffer = '';
  let ended = false;
  channel.on('data', (b: Buffer) => {
    buffer += b.toString('utf8');
    for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
      lines.push(buffer.slice(0, nl));
      received.push(JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>);
      buffer = buffer.slice(nl + 1);
    }
  });
  for (const e of ['end', 'close', 'error']) channel.on(e, () => (ended = true));
  const send = (m: unknown): boolean => channel.write(typeof m === 'string' ? m : `${JSON.stringify(m)}\n`);
  const answer = (id: unknown) =>
    eventually(
      () => {
        const found = received.find((m) => m.id === id && (m.result !== undefined || m.error !== undefined));
        expect(found, `an answer to ${String(id)}`).toBeDefined();
        return found!;
      },
      { timeout: 60_000, interval: 20 },
    );
  const request = async (id: number | string, method: string, params: Record<string, unknown> = {}) => {
    send({ jsonrpc: '2.0', id, method, params });
    return answer(id);
  };
  await request(0, 'initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } });
  send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  return { channel, received, lines, send, answer, request, ended: () => ended, close: () => channel.destroy() };
}
