/**
 * The HTTP lane's relay on a held clock: a connection that sends no request ends after its idle
 * time, a request that does not come whole in time is answered 408, an identity past its requests a
 * minute is answered 429 with Retry-After, a body over the policy's size 413; pipelined requests are
 * answered in order, one at a time; an answer whose body came whole goes to the client in one write,
 * one still coming is written as it comes; a client that ends its side is answered what it sent whole.
 */
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RequestRates } from '../../src/http/pipeline/request-rate.js';
import { HttpRelay, IDLE_MS, REQUEST_READ_MS, type UpstreamAnswer } from '../../src/http/pipeline/relay.js';
import type { HttpRequest } from '../../src/http/pipeline/stages.js';
import type { HttpJudge } from '../../src/policy/http.js';
import type { TunnelSession } from '../../src/session/engine.js';
import type { HttpConnection } from '../../src/config/connection.js';

/** An answer of `{}`, whole. */
const emptyObject = (): UpstreamAnswer => ({
  status: 200,
  reason: 'OK',
  fields: [
    ['content-type', 'application/json'],
    ['content-length', '2'],
  ],
  body: Readable.from([Buffer.from('{}')]),
  complete: () => true,
});

/** A relay with an upstream that answers each request with `answer()` (its path told to `asked`), its output collected, and each write to the client (`stalled`: a client that takes none); a path beginning `/held` is held for review (its withdrawals told to `withdrawn`). */
function relayOf(limits: HttpJudge['limits'] = { maxRequestBytes: 1024 }, rates = new RequestRates(), answer = emptyObject, stalled = false) {
  const channel = Object.assign(new PassThrough(), { sendControl: () => true, bytesSent: 0 });
  let out = '';
  const writes: string[] = [];
  const write = channel.write.bind(channel);
  channel.write = ((b: Buffer) => {
    writes.push(b.toString('latin1'));
    // A stalled client takes nothing: the channel is always behind, and never drains.
    return write(b) && !stalled;
  }) as typeof channel.write;
  channel.on('data', (b: Buffer) => (out += b.toString('latin1')));
  let ended: string | undefined;
  const asked: string[] = [];
  const withdrawn: string[] = [];
  const held = { action: 'review', reason: 'refunds are reviewed', rule: 'refunds', review: { groups: ['ops'], approvals: 1, timeoutMs: 60_000 } };
  // `/held` is held; `/denied` a rule refuses; `/default` the default refuses unless a body came (an allow rule on a body field).
  const decide = (ask: { segments: string[]; body?: unknown }) =>
    ask.segments[0] === 'held'
      ? held
      : ask.segments[0] === 'denied'
        ? { action: 'deny', reason: 'no', rule: 'no-denied' }
        : ask.segments[0] === 'default' && ask.body === undefined
          ? { action: 'deny', reason: 'no http rule matches; the default is deny' }
          : { action: 'allow', reason: 'ok' };
  const session = {
    id: 's1',
    identity: { issuer: 'https://idp', subject: 'alice' },
    connection: { name: 'api' },
    channel,
    log: { info: () => undefined, warn: () => undefined },
    lane: { http: { decide: (ask: { segments: string[]; body?: unknown }) => decide(ask), unmasked: [], limits } },
    reviews: { request: () => ({ id: 'rv-1', reused: false, decided: new Promise(() => undefined), withdraw: (why: string) => void withdrawn.push(why) }) },
  } as unknown as TunnelSession<HttpConnection>;
  // As the session relay does: the first end is the session's, and the relay is told why.
  const end = (why: string, what?: string): void => {
    if (ended) return;
    ended = why;
    relay.abort(what ?? why);
  };
  const relay: HttpRelay = new HttpRelay(session, { end, ending: () => ended !== undefined }, undefined, rates);
  relay.opened({
    base: 'http://api',
    send: async (req: HttpRequest) => {
      asked.push(req.target.canonical);
      return answer();
    },
  });
  return { relay, out: () => out, ended: () => ended, asked, writes, withdrawn };
}

const get = (path: string, close = false): Buffer => Buffer.from(`GET ${path} HTTP/1.1\r\nHost: x\r\n${close ? 'Connection: close\r\n' : ''}\r\n`);
const statuses = (out: string): string[] => [...out.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]!);

beforeEach(() => void vi.useFakeTimers());
afterEach(() => void vi.useRealTimers());

describe('the HTTP relay', () => {
  it('ends a connection that sends no request within its idle time, and not before', async () => {
    const r = relayOf();
    await vi.advanceTimersByTimeAsync(IDLE_MS - 1);
    expect(r.ended()).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(r.ended()).toBe('read-timeout');
  });

  it('idles again after each answer, and only then', async () => {
    const r = relayOf();
    await vi.advanceTimersByTimeAsync(IDLE_MS - 10);
    r.relay.fromClient(get('/a'));
    await vi.advanceTimersByTimeAsync(IDLE_MS - 10);
    expect(r.ended()).toBeUndefined();
    expect(statuses(r.out())).toEqual(['200']);
    await vi.advanceTimersByTimeAsync(10);
    expect(r.ended()).toBe('read-timeout');
  });

  it('answers 408 to a request that does not come whole in time', async () => {
    const r = relayOf();
    r.relay.fromClient(Buffer.from('GET /slow HTTP/1.1\r\nHost: x\r\n'));
    await vi.advanceTimersByTimeAsync(REQUEST_READ_MS - 1);
    expect(r.out()).toBe('');
    await vi.advanceTimersByTimeAsync(1);
    expect(statuses(r.out())).toEqual(['408']);
    expect(r.asked).toEqual([]);
  });

  it('answers pipelined requests in order, and an identity past its requests a minute 429 with Retry-After, across sessions', async () => {
    const rates = new RequestRates();
    const one = relayOf({ requestsPerMinute: 2, maxRequestBytes: 1024 }, rates);
    one.relay.fromClient(Buffer.concat([get('/a'), get('/b')]));
    await vi.advanceTimersByTimeAsync(0);
    expect(statuses(one.out())).toEqual(['200', '200']);
    expect(one.asked).toEqual(['/a', '/b']);
    const two = relayOf({ requestsPerMinute: 2, maxRequestBytes: 1024 }, rates);
    two.relay.fromClient(get('/c'));
    await vi.advanceTimersByTimeAsync(0);
    expect(statuses(two.out())).toEqual(['429']);
    expect(two.out()).toMatch(/\r\nretry-after: 30\r\n/);
    expect(two.asked).toEqual([]);
    await vi.advanceTimersByTimeAsync(30_000);
    two.relay.fromClient(get('/d'));
    await vi.advanceTimersByTimeAsync(0);
    expect(statuses(two.out())).toEqual(['429', '200']);
  });

  it('answers a head a rule refuses before its body, and waits for the body where only the default refuses', async () => {
    const expecting = (path: string): Buffer => Buffer.from(`POST ${path} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n`);
    const denied = relayOf();
    denied.relay.fromClient(expecting('/denied'));
    await vi.advanceTimersByTimeAsync(0);
    expect(statuses(denied.out())).toEqual(['403']);
    expect(denied.out()).not.toContain('100 Continue');
    expect(denied.ended()).toBeDefined();
    const defaulted = relayOf();
    defaulted.relay.fromClient(expecting('/default'));
    await vi.advanceTimersByTimeAsync(0);
    expect(defaulted.out()).toBe('HTTP/1.1 100 Continue\r\n\r\n');
    defaulted.relay.fromClient(Buffer.from('{}'));
    await vi.advanceTimersByTimeAsync(0);
    expect(statuses(defaulted.out())).toEqual(['100', '200']);
    expect(defaulted.asked).toEqual(['/default']);
  });

  it("refuses a body over the policy's size with 413, before any of it is read", async () => {
    const r = relayOf({ maxRequestBytes: 10 });
    r.relay.fromClient(Buffer.from('POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n'));
    await vi.advanceTimersByTimeAsync(0);
    expect(statuses(r.out())).toEqual(['413']);
    expect(r.ended()).toBeDefined();
  });

  it('writes an answer whose body came whole in one write, and one still coming as it comes', async () => {
    // A chunked answer of two chunks: the second (and the end) come only when the test says so.
    const body = new PassThrough();
    let whole = false;
    const r = relayOf(undefined, undefined, () => ({ status: 200, reason: 'OK', fields: [['content-type', 'text/plain']], body, complete: () => whole }));
    r.relay.fromClient(get('/stream'));
    await vi.advanceTimersByTimeAsync(0);
    body.write('first');
    await vi.advanceTimersByTimeAsync(0);
    expect(r.writes).toHaveLength(1);
    expect(r.writes[0]).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*transfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n$/);
    whole = true;
    body.end('second');
    await vi.advanceTimersByTimeAsync(0);
    expect(r.writes.slice(1)).toEqual(['6\r\nsecond\r\n0\r\n\r\n']);

    // The same answer come whole: the head, both chunks and the end in one write.
    const r2 = relayOf(undefined, undefined, () => ({
      status: 200,
      reason: 'OK',
      fields: [['content-type', 'text/plain']],
      body: Readable.from([Buffer.from('first'), Buffer.from('second')]),
      complete: () => true,
    }));
    r2.relay.fromClient(get('/whole'));
    await vi.advanceTimersByTimeAsync(0);
    expect(r2.writes).toHaveLength(1);
    expect(r2.writes[0]).toMatch(/\r\n\r\n5\r\nfirst\r\n6\r\nsecond\r\n0\r\n\r\n$/);

    // A large one come whole: not all held for one write (what passes 256 KiB goes then).
    const chunk = Buffer.alloc(200 * 1024, 0x61);
    const r3 = relayOf(undefined, undefined, () => ({ status: 200, reason: 'OK', fields: [['content-type', 'text/plain']], body: Readable.from([chunk, chunk, chunk]), complete: () => true }));
    r3.relay.fromClient(get('/large'));
    await vi.advanceTimersByTimeAsync(0);
    expect(r3.writes.map((w) => w.length > 400 * 1024)).toEqual([true, false]);
    expect(r3.writes[1]).toMatch(/0\r\n\r\n$/);
  });

  it('answers what a client sent whole before it ended its side, then ends; a request cut by the end, or none, ends it at once', async () => {
    const r = relayOf();
    r.relay.fromClient(Buffer.concat([get('/a'), get('/b')]));
    r.relay.clientEnded();
    await vi.advanceTimersByTimeAsync(0);
    expect(statuses(r.out())).toEqual(['200', '200']);
    expect(r.asked).toEqual(['/a', '/b']);
    expect(r.ended()).toBe('client-disconnected');

    const cut = relayOf();
    cut.relay.fromClient(Buffer.from('GET /c HTTP/1.1\r\nHo'));
    cut.relay.clientEnded();
    await vi.advanceTimersByTimeAsync(0);
    expect([cut.out(), cut.asked, cut.ended()]).toEqual(['', [], 'client-disconnected']);

    const none = relayOf();
    none.relay.clientEnded();
    expect([none.out(), none.ended()]).toEqual(['', 'client-disconnected']);
  });

  it('does not wait for a review once the client ended its side: a held request is withdrawn and said why, one still to be held is refused', async () => {
    const r = relayOf();
    r.relay.fromClient(get('/held/refund'));
    await vi.advanceTimersByTimeAsync(0);
    expect(r.out()).toBe('');
    r.relay.clientEnded();
    expect(r.withdrawn).toEqual(['session-ended']);
    expect(r.ended()).toBe('client-disconnected');
    expect(statuses(r.out())).toEqual(['503']);
    expect(r.out()).toContain('nobody waits for the review');

    const late = relayOf();
    late.relay.fromClient(Buffer.concat([get('/a'), get('/held/refund')]));
    late.relay.clientEnded();
    await vi.advanceTimersByTimeAsync(0);
    expect(statuses(late.out())).toEqual(['200', '403']);
    expect(late.out()).toContain('nobody waits for the review');
    expect([late.asked, late.withdrawn, late.ended()]).toEqual([['/a'], [], 'client-disconnected']);
  });

  it('ends the session when the client takes none of an answer within its idle time, and not before', async () => {
    const body = new PassThrough();
    const r = relayOf(undefined, undefined, () => ({ status: 200, reason: 'OK', fields: [['content-type', 'text/plain']], body, complete: () => false }), true);
    r.relay.fromClient(get('/big'));
    await vi.advanceTimersByTimeAsync(0);
    body.write('x'.repeat(1000));
    await vi.advanceTimersByTimeAsync(IDLE_MS - 1);
    expect(r.writes).toHaveLength(1);
    expect(r.ended()).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(r.ended()).toBe('read-timeout');
  });
});
