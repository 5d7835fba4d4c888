/**
 * The CLI's API client (src/api-client/) against the real gateway: a command's requests share
 * kept-alive connections (a session's record is uploaded in several requests as it closes, and
 * each used to make a TLS handshake), and a request on a connection the server closed while it
 * was idle is sent again on a new one.
 */
import { readFile } from 'node:fs/promises';
import { createServer, connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listAlerts } from '../../src/api-client/alerts.js';
import { getAuthConfig, getWhoAmI } from '../../src/api-client/identity.js';
import { getReview, listReviews } from '../../src/api-client/reviews.js';
import { listenOnLoopback } from '../harness/listen.js';
import { startStack, type HoopStack } from '../harness/stack.js';

let stack: HoopStack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack?.close();
});

describe('gateway API client', () => {
  it("sends a command's requests over one kept-alive TLS connection", async () => {
    // A TCP forwarder in front of the gateway counts the connections the client makes.
    let connections = 0;
    const sockets: Socket[] = [];
    const forwarder = createServer((socket) => {
      connections++;
      const upstream = connect(stack.gateway.port, '127.0.0.1');
      sockets.push(socket, upstream);
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    });
    const port = await listenOnLoopback(forwarder);
    try {
      const endpoint = { gateway: `https://127.0.0.1:${port}`, ca: await readFile(stack.pki.caFile) };
      const token = await stack.token('alice');
      for (let i = 0; i < 5; i++) expect((await getWhoAmI(endpoint, token)).subject).toBe('alice');
      expect(connections).toBe(1);
    } finally {
      for (const s of sockets) s.destroy();
      forwarder.close();
    }
  });

  it('sends a request again on a new connection when the server closed the kept-alive one', async () => {
    // A loopback server that answers the first request of a connection with keep-alive, and
    // closes the connection without an answer when a second one comes on it (as a server
    // whose idle timeout fired just as the client reused the connection).
    const body = JSON.stringify({ issuer: 'https://idp.example', clientId: 'hoop-cli', scopes: ['openid'] });
    let connections = 0;
    let requests = 0;
    const server = createServer((socket) => {
      connections++;
      let served = 0;
      let seen = '';
      socket.on('data', (d: Buffer) => {
        seen += d.toString('latin1');
        while (seen.includes('\r\n\r\n')) {
          seen = seen.slice(seen.indexOf('\r\n\r\n') + 4);
          requests++;
          if (served++ > 0) {
            socket.destroy();
            return;
          }
          socket.write(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: keep-alive\r\n\r\n${body}`);
        }
      });
      socket.on('error', () => undefined);
    });
    const port = await listenOnLoopback(server);
    try {
      const endpoint = { gateway: `http://127.0.0.1:${port}` };
      expect((await getAuthConfig(endpoint)).clientId).toBe('hoop-cli');
      expect((await getAuthConfig(endpoint)).clientId).toBe('hoop-cli');
      // The second request reached the kept-alive connection, which closed; it went again on a new one.
      expect(requests).toBe(3);
      expect(connections).toBe(2);
    } finally {
      server.close();
    }
  });

  it('refuses an answer not of its shape, naming the field, rather than hand it on as a review or an alert', async () => {
    // A loopback server answering every request with `answer` (as a gateway of another version, or something else, might).
    let answer = '';
    const server = createServer((socket) => {
      socket.on('data', () => socket.end(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(answer)}\r\nConnection: close\r\n\r\n${answer}`));
      socket.on('error', () => undefined);
    });
    const port = await listenOnLoopback(server);
    try {
      const endpoint = { gateway: `http://127.0.0.1:${port}` };
      answer = JSON.stringify({ id: 'rv-1', state: 'approved' });
      await expect(getReview(endpoint, 't', 'rv-1')).rejects.toThrow(/described review rv-1 \(.+\) in a form this client does not understand/);
      answer = JSON.stringify({ reviews: [{ id: 'rv-1', state: 'whatever' }] });
      await expect(listReviews(endpoint, 't')).rejects.toMatchObject({ code: 'HOOP_GATEWAY_PROTOCOL' });
      answer = JSON.stringify({ alerts: [{ id: 'al-1', rule: 'r', count: 'many' }] });
      await expect(listAlerts(endpoint, 't')).rejects.toThrow(/alerts/);
    } finally {
      server.close();
    }
  });
});

/** The whole answer of the gateway to `request`, sent raw over TLS: what the client read before the gateway closed or went quiet. */
function rawAnswer(port: number, ca: Buffer, request: string): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const s = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => s.write(request));
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (/\r\n\r\n/.test(got)) s.end();
    });
    s.on('error', () => undefined);
    s.once('close', () => resolve(got));
  });
}

describe('request targets and names the gateway cannot read (the sixteenth attack)', () => {
  it("answers each with a 400 of that request alone: the process, and the others' requests, go on", async () => {
    const ca = await readFile(stack.pki.caFile);
    const token = await stack.token('alice');
    const upgrade = 'Connection: Upgrade\r\nUpgrade: hoop-tunnel/1\r\n';
    for (const target of ['http://[', 'http://a:b@[::1', '//[', 'http://%zz/', 'http://[::1']) {
      for (const extra of ['', upgrade]) {
        const answer = await rawAnswer(stack.gateway.port, ca, `GET ${target} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`);
        expect(answer, `${target} ${extra}`).toMatch(/^HTTP\/1\.1 400 /);
      }
    }
    // A name that is not percent-encoded UTF-8 is the caller's mistake, said so.
    for (const path of ['/v1/connections/%E0%A4%A', '/v1/connections/%E0%A4%A/cancel', '/v1/connections/%E0%A4%A/direct']) {
      const method = path.endsWith('/connections/%E0%A4%A') ? 'GET' : 'POST';
      const answer = await rawAnswer(stack.gateway.port, ca, `${method} ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`);
      expect(answer, path).toMatch(/^HTTP\/1\.1 400 /);
      expect(answer).toContain('not percent-encoded UTF-8');
    }
    expect((await getWhoAmI({ gateway: `https://127.0.0.1:${stack.gateway.port}`, ca }, token)).subject).toBe('alice');
  });
});
