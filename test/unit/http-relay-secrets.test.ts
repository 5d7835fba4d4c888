/**
 * What the HTTP relay records never holds a secret the client or the upstream sent it: the port's
 * path (a direct credential's) taken out of a head's fields however the request ends (whole, or
 * refused on its head while it waits for 100 Continue), and the connection's credential masked in
 * what hoop itself records of an answer it refused (a reason that quotes the upstream's fields).
 */
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { RequestRates } from '../../src/http/pipeline/request-rate.js';
import { HttpRelay, type UpstreamAnswer } from '../../src/http/pipeline/relay.js';
import type { TunnelSession } from '../../src/session/engine.js';
import type { HttpConnection } from '../../src/config/connection.js';
import { eventually } from '../harness/wait.js';

const PREFIX = 'hd_portpath0123456789abcdef';
const TOKEN = 'tok-3f9a1c7e5b2d4a6f8e0c';

/** A relay under port path {@link PREFIX} holding bearer {@link TOKEN}, whose upstream answers `answer()`; what it recorded and wrote. */
function relayOf(answer: () => UpstreamAnswer) {
  const channel = Object.assign(new PassThrough(), { sendControl: () => true, bytesSent: 0 });
  let out = '';
  channel.on('data', (b: Buffer) => (out += b.toString('latin1')));
  const recorded: string[] = [];
  let ended: string | undefined;
  const session = {
    id: 's1',
    identity: { issuer: 'https://idp', subject: 'alice' },
    connection: { name: 'api', url: 'http://api.internal/v1' },
    channel,
    log: { info: () => undefined, warn: () => undefined },
    recording: {
      stream: {
        record: (_k: number, _at: number, b: Buffer, from: number, to: number) => void recorded.push(b.subarray(from, to).toString('utf8')),
        event: (e: unknown) => void recorded.push(JSON.stringify(e)),
      },
      results: 'masked',
    },
    lane: {
      prefix: PREFIX,
      http: {
        decide: (ask: { segments: string[] }) => (ask.segments[0] === 'denied' ? { action: 'deny', reason: 'no', rule: 'no-denied' } : { action: 'allow', reason: 'ok' }),
        unmasked: [],
        limits: { maxRequestBytes: 1024 },
      },
    },
  } as unknown as TunnelSession<HttpConnection>;
  const end = (why: string, what?: string): void => {
    if (ended) return;
    ended = why;
    relay.abort(what ?? why);
  };
  const relay: HttpRelay = new HttpRelay(session, { end, ending: () => ended !== undefined }, { kind: 'bearer', token: TOKEN }, new RequestRates());
  relay.opened({ base: 'http://api.internal/v1', send: async () => answer() });
  return { relay, out: () => out, recorded };
}

const never = (): UpstreamAnswer => {
  throw new Error('not forwarded');
};

describe('what the HTTP relay records', () => {
  it('holds no port path from a field, for a request refused whole or on its head while it waits for 100 Continue', async () => {
    for (const expect100 of [false, true]) {
      const r = relayOf(never);
      const head = `POST /${PREFIX}/denied HTTP/1.1\r\nHost: x\r\nReferer: http://127.0.0.1:8080/${PREFIX}/page\r\nContent-Type: application/json\r\nContent-Length: 2\r\n`;
      r.relay.fromClient(Buffer.from(expect100 ? `${head}Expect: 100-continue\r\n\r\n` : `${head}\r\n{}`));
      await eventually(() => expect(r.out()).toMatch(/^HTTP\/1\.1 403 /));
      expect(r.recorded.join('\n')).toContain('http://127.0.0.1:8080/page');
      expect(r.recorded.join('\n'), `expect 100: ${expect100}`).not.toContain(PREFIX);
    }
  });

  it('masks the credential in why it refused an answer that quotes it', async () => {
    const r = relayOf(() => ({
      status: 200,
      reason: 'OK',
      fields: [
        ['content-type', 'application/json'],
        ['content-encoding', `x-${TOKEN}`],
      ],
      body: Readable.from([Buffer.from('{}')]),
      complete: () => true,
    }));
    r.relay.fromClient(Buffer.from(`GET /${PREFIX}/echo HTTP/1.1\r\nHost: x\r\n\r\n`));
    await eventually(() => expect(r.out()).toMatch(/^HTTP\/1\.1 502 /));
    expect(r.out()).not.toContain(TOKEN);
    expect(r.recorded.join('\n')).toMatch(/http-answer-refused/);
    expect(r.recorded.join('\n')).not.toContain(TOKEN);
  });
});
