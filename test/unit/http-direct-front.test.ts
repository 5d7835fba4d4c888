/** A direct HTTP client the gateway refuses is answered, read until it closes, and cut after a grace if it does not: no socket is left open. */
import { createServer, connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { serveDirectHttpClient } from '../../src/http/gateway/direct-front.js';
import type { SessionChannel } from '../../src/session/engine.js';

/** A connected pair of sockets: the gateway's end (as a session channel) and the client's. */
async function pair(halfOpen = false): Promise<{ server: Socket; client: Socket; close: () => void }> {
  const listening = createServer();
  await new Promise<void>((r) => listening.listen(0, '127.0.0.1', r));
  const accepted = new Promise<Socket>((r) => listening.once('connection', r));
  const client = connect({ port: (listening.address() as { port: number }).port, host: '127.0.0.1', allowHalfOpen: halfOpen });
  const server = await accepted;
  return { server, client, close: () => listening.close() };
}

const closed = (s: Socket): Promise<void> => new Promise((r) => (s.destroyed ? r() : s.once('close', () => r())));

afterEach(() => void vi.useRealTimers());

describe('a refused direct HTTP client', () => {
  it.each([
    ['its credential', { refused: 'direct credential dc_x was revoked' }, undefined],
    ['its admission', { value: 1 }, 429],
  ] as const)('refused by %s: answered, and its socket closed once the client closes', async (_by, found, status) => {
    const { server, client, close } = await pair();
    let answer = '';
    client.on('data', (b: Buffer) => (answer += b.toString('latin1')));
    void serveDirectHttpClient(server as unknown as SessionChannel, Buffer.alloc(0), {
      credential: async () => found,
      admit: (_v, _p, a) => a.refuse(status!, { error: { code: 'x', message: 'too many sessions' } }),
      spoke: () => undefined,
    });
    client.write('GET /direct/dc_x/pw/customers HTTP/1.1\r\nhost: x\r\n\r\n');
    await new Promise((r) => client.once('end', r));
    expect(answer).toMatch(status ? /^HTTP\/1\.1 429 / : /^HTTP\/1\.1 401 /);
    client.end();
    await closed(server);
    close();
  });

  it('is cut after a grace when it never closes', async () => {
    const { server, client, close } = await pair(true);
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    void serveDirectHttpClient(server as unknown as SessionChannel, Buffer.alloc(0), {
      credential: async () => ({ value: 1 }),
      admit: (_v, _p, a) => a.refuse(503, { error: { code: 'x', message: 'shutting down' } }),
      spoke: () => undefined,
    });
    client.on('data', () => undefined);
    client.write('GET /direct/dc_x/pw/ HTTP/1.1\r\nhost: x\r\n\r\n');
    await vi.waitFor(() => expect(server.writableEnded).toBe(true));
    expect(server.destroyed).toBe(false);
    vi.advanceTimersByTime(5_000);
    expect(server.destroyed).toBe(true);
    client.destroy();
    close();
  });
});
