import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, HoopError } from '../../src/errors.js';
import { acceptTunnel, isTunnelUpgrade, parseTunnelRequest, rejectUpgrade } from '../../src/tunnel/accept.js';
import type { TunnelChannel } from '../../src/tunnel/channel.js';
import { FrameReader, FrameType, encodeControl, encodeFrame, type ControlMessage } from '../../src/tunnel/frames.js';
import { openTunnel, TunnelRefusedError, type OpenTunnelOptions } from '../../src/tunnel/transport.js';
import { createTestPki, type TestPki } from '../harness/certs.js';
import { eventually, pace, quietFor } from '../harness/wait.js';

const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJl';
const MiB = 1024 * 1024;

let pki: TestPki;
let otherPki: TestPki;
let server: https.Server;
let plainServer: http.Server;
let base: string;
let plainBase: string;
const held = new Map<string, (channel: TunnelChannel) => void>();
const serverChannels = new Set<TunnelChannel>();

function waitHeld(sessionId: string): Promise<TunnelChannel> {
  return new Promise((resolve) => held.set(sessionId, resolve));
}

function onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
  const info = parseTunnelRequest(req);
  if (!isTunnelUpgrade(req) || !info) {
    rejectUpgrade(socket, 400, { error: { code: 'HOOP_USAGE', message: 'not a tunnel request' } });
    return;
  }
  if (info.token !== TOKEN) {
    rejectUpgrade(socket, 401, { error: { code: 'HOOP_TOKEN_REJECTED', message: 'the token has expired', hint: 'log in again', reason: 'expired' } });
    return;
  }
  const sessionId = info.sessionId ?? 'none';
  const accept = (): TunnelChannel => {
    const channel = acceptTunnel(req, socket, head, { 'Hoop-Session-Id': sessionId, 'Hoop-Gateway-Version': '9.8.7', 'Hoop-Policy-Commit': 'c0ffee' });
    serverChannels.add(channel);
    channel.on('error', () => undefined);
    channel.on('close', () => serverChannels.delete(channel));
    return channel;
  };
  switch (info.connection) {
    case 'echo': {
      const channel = accept();
      channel.sendControl({ type: 'hello', via: info.via ?? null, clientVersion: info.clientVersion ?? null, policyCommit: info.policyCommit ?? null });
      channel.on('control', (message: ControlMessage) => channel.sendControl({ type: 'echo', message }));
      channel.pipe(channel);
      return;
    }
    case 'hold':
      held.get(sessionId)?.(accept());
      return;
    case 'garbage':
      accept();
      socket.write(Buffer.from([0x09, 0, 0, 0, 1, 0]));
      return;
    case 'reset':
      accept().once('data', () => (socket as net.Socket).resetAndDestroy());
      return;
    case 'forbidden':
      rejectUpgrade(socket, 403, { error: { code: 'HOOP_ACCESS_DENIED', message: 'no access to forbidden for you' } });
      return;
    case 'down':
      rejectUpgrade(socket, 503, { error: { code: 'HOOP_UPSTREAM_UNAVAILABLE', message: 'upstream down', hint: 'wait for the database' } });
      return;
    case 'badgateway':
      rejectUpgrade(socket, 502, { error: { code: 'HOOP_UPSTREAM_AUTH_FAILED', message: 'upstream rejected the credentials', reason: 'upstream-auth-failed' } });
      return;
    case 'teapot':
      rejectUpgrade(socket, 418, { error: { code: 'HOOP_X', message: 'short and stout' } });
      return;
    case 'crash':
      socket.end('HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\nConnection: close\r\n\r\noops!');
      return;
    case 'ok200':
      socket.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
      return;
    case 'websocket':
      socket.end('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
      return;
    default:
      rejectUpgrade(socket, 404, { error: { code: 'HOOP_CONNECTION_UNKNOWN', message: `no connection named ${info.connection}` } });
  }
}

function options(connection: string, extra: Partial<OpenTunnelOptions> = {}): OpenTunnelOptions {
  return { gateway: base, connection, token: TOKEN, sessionId: randomUUID(), clientVersion: '1.2.3', ca: pki.ca, ...extra };
}

async function failure(promise: Promise<unknown>): Promise<HoopError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(HoopError);
    const e = err as HoopError;
    expect(`${e.message} ${e.hint} ${JSON.stringify(e)}`).not.toContain(TOKEN);
    return e;
  }
  throw new Error('expected a failure');
}

function closed(channel: TunnelChannel): Promise<void> {
  return new Promise((resolve) => (channel.destroyed ? resolve() : channel.once('close', () => resolve())));
}

function nextControl(channel: TunnelChannel): Promise<ControlMessage> {
  return once(channel, 'control').then(([message]) => message as ControlMessage);
}

async function listen(s: net.Server): Promise<number> {
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return (s.address() as AddressInfo).port;
}

beforeAll(async () => {
  [pki, otherPki] = await Promise.all([createTestPki(), createTestPki()]);
  const leaf = await pki.issue('gateway', ['IP:127.0.0.1', 'DNS:localhost']);
  server = https.createServer({ key: leaf.key, cert: leaf.cert });
  server.on('request', (_req, res) => res.writeHead(404).end());
  server.on('upgrade', onUpgrade);
  base = `https://127.0.0.1:${await listen(server)}`;
  plainServer = http.createServer((_req, res) => res.writeHead(404).end());
  plainServer.on('upgrade', onUpgrade);
  plainBase = `http://127.0.0.1:${await listen(plainServer)}`;
});

afterAll(async () => {
  for (const channel of serverChannels) channel.destroy();
  server?.closeAllConnections();
  plainServer?.closeAllConnections();
  await Promise.all([new Promise((r) => server?.close(r)), new Promise((r) => plainServer?.close(r))]);
  await Promise.all([pki?.cleanup(), otherPki?.cleanup()]);
});

/** Reads `channel` to its end, hashing; resolves with the digest and byte count. */
function digestOf(channel: TunnelChannel): Promise<{ hash: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  channel.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    bytes += chunk.length;
  });
  return new Promise((resolve, reject) => {
    channel.once('end', () => resolve({ hash: hash.digest('hex'), bytes }));
    channel.once('error', reject);
  });
}

/**
 * Writes `total` bytes (slices of `source` of varied offsets) into `channel`, honouring
 * write() === false, sampling `held()` after every write; resolves with the digest.
 */
function produce(channel: TunnelChannel, total: number, chunkSize: number, held: () => number) {
  const source = randomBytes(4 * MiB);
  const hash = createHash('sha256');
  const state = { offered: 0, maxHeld: 0, sawFalse: false };
  const done = (async () => {
    let i = 0;
    while (state.offered < total) {
      const n = Math.min(chunkSize, total - state.offered);
      const start = (i++ * 4099) % (source.length - n);
      const piece = source.subarray(start, start + n);
      hash.update(piece);
      const ok = channel.write(piece);
      state.offered += n;
      state.maxHeld = Math.max(state.maxHeld, held());
      if (!ok) {
        state.sawFalse = true;
        await once(channel, 'drain');
      }
    }
    channel.end();
    return hash.digest('hex');
  })();
  return { state, done };
}

/** Resolves once `offered()` has not grown for `quietMs`. */
async function stalled(offered: () => number, quietMs = 300): Promise<void> {
  let last = -1;
  let since = Date.now();
  for (;;) {
    await quietFor(25);
    const now = offered();
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return;
  }
}

describe('openTunnel / acceptTunnel over TLS', () => {
  it('round-trips data and control both ways, with handshake headers', async () => {
    const sessionId = randomUUID();
    const opened = await openTunnel(options('echo', { sessionId, via: 'exec', policyCommit: 'abc' }));
    const { channel } = opened;
    expect(opened.sessionId).toBe(sessionId);
    expect(opened.gatewayVersion).toBe('9.8.7');
    expect(opened.policyCommit).toBe('c0ffee');
    const hello = await nextControl(channel);
    expect(hello).toEqual({ type: 'hello', via: 'exec', clientVersion: '1.2.3', policyCommit: 'abc' });

    channel.write('ping');
    const [echoed] = await once(channel, 'data');
    expect(echoed.toString()).toBe('ping');

    channel.sendControl({ type: 'approval', state: 'pending', n: 1 });
    expect(await nextControl(channel)).toEqual({ type: 'echo', message: { type: 'approval', state: 'pending', n: 1 } });

    const result = digestOf(channel);
    channel.end('bye');
    expect((await result).bytes).toBe(3);
    await closed(channel);
    expect(channel.socket.destroyed).toBe(true);
  });

  it('keeps control messages that arrive before a listener is attached', async () => {
    const { channel } = await openTunnel(options('echo'));
    // Lets the gateway's hello come in while nobody listens for control messages: what this test is about.
    await pace(100);
    channel.sendControl({ type: 'late' });
    const seen: ControlMessage[] = [];
    channel.on('control', (m: ControlMessage) => seen.push(m));
    await eventually(() => expect(seen).toHaveLength(2), { interval: 5 });
    expect(seen.map((m) => m.type)).toEqual(['hello', 'echo']);
    channel.end();
    channel.resume();
    await closed(channel);
  });

  it('serves a raw client: token lists in Connection/Upgrade, bearer scheme in any case, frames sent with the request', async () => {
    const socket = net.connect(Number(new URL(plainBase).port), '127.0.0.1');
    await once(socket, 'connect');
    socket.write(
      'GET /v1/connections/echo/tunnel?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive, Upgrade\r\n' +
        `Upgrade: HOOP-TUNNEL/1\r\nAuthorization: bearer ${TOKEN}\r\nHoop-Session-Id: raw-1\r\n\r\n`,
    );
    socket.write(Buffer.concat([encodeFrame(FrameType.DATA, Buffer.from('early')), encodeControl({ type: 'early' })]));
    let raw = Buffer.alloc(0);
    const reader = new FrameReader();
    const frames: Array<[number, string]> = [];
    let headDone = false;
    socket.on('data', (chunk: Buffer) => {
      if (!headDone) {
        raw = Buffer.concat([raw, chunk]);
        const end = raw.indexOf('\r\n\r\n');
        if (end < 0) return;
        expect(raw.subarray(0, end).toString('latin1')).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n[\s\S]*Upgrade: hoop-tunnel\/1\r\n[\s\S]*Hoop-Session-Id: raw-1/);
        headDone = true;
        chunk = raw.subarray(end + 4);
      }
      reader.push(chunk);
      for (let f = reader.next(); f; f = reader.next()) frames.push([f.type, f.type === FrameType.DATA ? f.payload.toString() : JSON.stringify(f.control)]);
    });
    await eventually(() => expect(frames).toHaveLength(3), { interval: 5 });
    expect(frames.map(([t]) => t).sort()).toEqual([1, 2, 2]);
    expect(frames).toContainEqual([1, 'early']);
    expect(frames).toContainEqual([2, JSON.stringify({ type: 'echo', message: { type: 'early' } })]);
    socket.destroy();
  });

  it('moves 64 MiB each way intact (echo), in writes of 1 byte to 3 MiB', async () => {
    const { channel } = await openTunnel(options('echo'));
    const received = digestOf(channel);
    const sizes = [1, 7, 1000, 65_536, 65_537, MiB, MiB + 1, 3 * MiB];
    const source = randomBytes(4 * MiB);
    const sent = createHash('sha256');
    let offered = 0;
    let i = 0;
    const total = 64 * MiB;
    while (offered < total) {
      const n = Math.min(sizes[i % sizes.length]!, total - offered);
      const start = (i * 131) % (source.length - n);
      i++;
      const piece = source.subarray(start, start + n);
      sent.update(piece);
      offered += n;
      if (!channel.write(piece)) await once(channel, 'drain');
    }
    channel.end();
    const { hash, bytes } = await received;
    expect(bytes).toBe(total);
    expect(hash).toBe(sent.digest('hex'));
  });

  it('holds back-pressure client -> gateway: a stalled reader bounds memory, then everything arrives', async () => {
    const sessionId = randomUUID();
    const gatewaySide = waitHeld(sessionId);
    const { channel } = await openTunnel(options('hold', { sessionId }));
    const gw = await gatewaySide;
    const total = 200 * MiB;
    const held = (): number => channel.writableLength + channel.socket.writableLength;
    const before = process.memoryUsage().arrayBuffers;
    const { state, done } = produce(channel, total, 256 * 1024, held);
    await stalled(() => state.offered);
    const grown = process.memoryUsage().arrayBuffers - before;
    expect(state.sawFalse).toBe(true);
    expect(state.offered).toBeLessThan(total);
    expect(state.maxHeld).toBeLessThan(4 * MiB);
    expect(held()).toBeLessThan(4 * MiB);
    expect(gw.readableLength + gw.socket.readableLength).toBeLessThan(4 * MiB);
    console.log(
      `[tunnel] client->gateway stalled after ${(state.offered / MiB).toFixed(1)} MiB offered (kernel buffers included); max held by writer ${(state.maxHeld / 1024).toFixed(0)} KiB; arrayBuffers +${(grown / MiB).toFixed(1)} MiB`,
    );
    const received = digestOf(gw);
    const [sent, got] = await Promise.all([done, received]);
    expect(got.bytes).toBe(total);
    expect(got.hash).toBe(sent);
    expect(state.maxHeld).toBeLessThan(4 * MiB);
    gw.end();
    channel.resume();
    await Promise.all([closed(channel), closed(gw)]);
  });

  it('holds back-pressure gateway -> client: a stalled CLI reader bounds the gateway writer', async () => {
    const sessionId = randomUUID();
    const gatewaySide = waitHeld(sessionId);
    const { channel } = await openTunnel(options('hold', { sessionId }));
    const gw = await gatewaySide;
    const total = 200 * MiB;
    const held = (): number => gw.writableLength + gw.socket.writableLength;
    const { state, done } = produce(gw, total, MiB + 17, held);
    await stalled(() => state.offered);
    expect(state.sawFalse).toBe(true);
    expect(state.offered).toBeLessThan(total);
    expect(state.maxHeld).toBeLessThan(4 * MiB);
    expect(channel.readableLength + channel.socket.readableLength).toBeLessThan(4 * MiB);
    const received = digestOf(channel);
    const [sent, got] = await Promise.all([done, received]);
    expect(got.bytes).toBe(total);
    expect(got.hash).toBe(sent);
    expect(state.maxHeld).toBeLessThan(4 * MiB);
    channel.end();
    gw.resume();
    await Promise.all([closed(channel), closed(gw)]);
  });

  it('destroys the channel with PROTOCOL_VIOLATION on an invalid frame from the gateway', async () => {
    const { channel } = await openTunnel(options('garbage'));
    const [err] = await once(channel, 'error');
    expect(err).toBeInstanceOf(HoopError);
    expect((err as HoopError).code).toBe(ErrorCode.PROTOCOL_VIOLATION);
    expect((err as HoopError).message).toMatch(/unknown frame type 0x09/);
    expect(channel.socket.destroyed).toBe(true);
  });

  it('reports a connection reset by the gateway as GATEWAY_UNREACHABLE', async () => {
    const { channel } = await openTunnel(options('reset', { gateway: plainBase }));
    channel.resume();
    channel.write('reset me');
    const [err] = await once(channel, 'error');
    expect((err as HoopError).code).toBe(ErrorCode.GATEWAY_UNREACHABLE);
    expect((err as HoopError).message).toMatch(/lost the connection to the gateway/);
  });

  it('measures ping-pong latency of 10k small messages (printed, not asserted)', async () => {
    const { channel } = await openTunnel(options('echo'));
    await nextControl(channel);
    const message = Buffer.alloc(32, 0x61);
    const rounds = 10_000;
    const times = new Float64Array(rounds);
    await new Promise<void>((resolve, reject) => {
      let round = 0;
      let pending = 0;
      let started = 0n;
      const send = (): void => {
        pending = message.length;
        started = process.hrtime.bigint();
        channel.write(message);
      };
      channel.on('error', reject);
      channel.on('data', (chunk: Buffer) => {
        pending -= chunk.length;
        if (pending > 0) return;
        times[round++] = Number(process.hrtime.bigint() - started) / 1000;
        if (round === rounds) resolve();
        else send();
      });
      send();
    });
    times.sort();
    const mean = times.reduce((a, b) => a + b, 0) / rounds;
    console.log(`[tunnel] TLS loopback ping-pong, ${rounds} x 32 B: mean ${mean.toFixed(1)} µs, p50 ${times[rounds / 2]!.toFixed(1)} µs, p99 ${times[Math.floor(rounds * 0.99)]!.toFixed(1)} µs`);
    channel.removeAllListeners('data');
    channel.end();
    channel.resume();
    await closed(channel);
  });
});

describe('openTunnel failures', () => {
  it('maps HTTP refusals to error codes, keeping the body message, hint and reason', async () => {
    const rejected = await failure(openTunnel(options('echo', { token: 'some.other.token' })));
    expect(rejected).toBeInstanceOf(TunnelRefusedError);
    expect(rejected.code).toBe(ErrorCode.TOKEN_REJECTED);
    expect(rejected.message).toBe('the token has expired');
    expect(rejected.hint).toBe('log in again');
    expect((rejected as TunnelRefusedError).reason).toBe('expired');
    expect((rejected as TunnelRefusedError).status).toBe(401);

    const cases: Array<[string, ErrorCode, number]> = [
      ['forbidden', ErrorCode.ACCESS_DENIED, 403],
      ['nope', ErrorCode.CONNECTION_UNKNOWN, 404],
      ['down', ErrorCode.UPSTREAM_UNAVAILABLE, 503],
      ['badgateway', ErrorCode.UPSTREAM_UNAVAILABLE, 502],
      ['teapot', ErrorCode.GATEWAY_PROTOCOL, 418],
      ['crash', ErrorCode.GATEWAY_PROTOCOL, 500],
      ['ok200', ErrorCode.GATEWAY_PROTOCOL, 200],
    ];
    for (const [connection, code, status] of cases) {
      const err = await failure(openTunnel(options(connection)));
      expect(err.code, connection).toBe(code);
      expect((err as TunnelRefusedError).status, connection).toBe(status);
      expect(err.hint, connection).toBeTruthy();
    }
    const down = await failure(openTunnel(options('down')));
    expect([down.message, down.hint]).toEqual(['upstream down', 'wait for the database']);
    const bad = (await failure(openTunnel(options('badgateway')))) as TunnelRefusedError;
    expect([bad.reason, bad.gatewayCode]).toEqual(['upstream-auth-failed', 'HOOP_UPSTREAM_AUTH_FAILED']);
    const unknown = await failure(openTunnel(options('nope')));
    expect(unknown.message).toBe('no connection named nope');
    const crash = await failure(openTunnel(options('crash')));
    expect(crash.message).toMatch(/HTTP 500/);
  });

  it('refuses a 101 to another protocol', async () => {
    const err = await failure(openTunnel(options('websocket')));
    expect(err.code).toBe(ErrorCode.GATEWAY_PROTOCOL);
    expect(err.message).toMatch(/websocket/);
  });

  it('reports an untrusted certificate as GATEWAY_UNREACHABLE with the --ca-file hint', async () => {
    for (const ca of [otherPki.ca, undefined]) {
      const err = await failure(openTunnel(options('echo', { ca })));
      expect(err.code).toBe(ErrorCode.GATEWAY_UNREACHABLE);
      expect(err.message).toMatch(/certificate/);
      expect(err.hint).toMatch(/--ca-file/);
      expect(err.hint).toMatch(/HOOP_CA_FILE/);
    }
  });

  it('reports nothing listening as GATEWAY_UNREACHABLE', async () => {
    const probe = net.createServer();
    const port = await listen(probe);
    await new Promise((r) => probe.close(r));
    const err = await failure(openTunnel(options('echo', { gateway: `https://127.0.0.1:${port}` })));
    expect(err.code).toBe(ErrorCode.GATEWAY_UNREACHABLE);
    expect(err.message).toMatch(/ECONNREFUSED/);
    expect(err.hint).toBe(`is the gateway running at https://127.0.0.1:${port}?`);
  });

  it('times out on a gateway that never answers, and honours an abort signal', async () => {
    const silent = net.createServer(() => undefined);
    const port = await listen(silent);
    try {
      const started = Date.now();
      const err = await failure(openTunnel(options('echo', { gateway: `https://127.0.0.1:${port}`, timeoutMs: 300 })));
      expect(err.code).toBe(ErrorCode.GATEWAY_UNREACHABLE);
      expect(err.message).toMatch(/did not answer within 0.3 s/);
      // At the deadline asked for, not before (the message says which deadline it was).
      expect(Date.now() - started).toBeGreaterThanOrEqual(290);

      const controller = new AbortController();
      const pending = openTunnel(options('echo', { gateway: `https://127.0.0.1:${port}`, signal: controller.signal }));
      controller.abort(new Error('user pressed ^C'));
      await expect(pending).rejects.toThrow('user pressed ^C');
    } finally {
      silent.close();
    }
  });

  it('gives a gateway it reached its own deadline to answer: a busy gateway is slow, not gone', async () => {
    const busy = http.createServer(() => undefined);
    busy.on('upgrade', () => undefined);
    const port = await listen(busy);
    try {
      const started = Date.now();
      const err = await failure(openTunnel(options('echo', { gateway: `http://127.0.0.1:${port}`, timeoutMs: 300, answerTimeoutMs: 1000 })));
      expect(err.code).toBe(ErrorCode.GATEWAY_UNREACHABLE);
      expect(err.message).toMatch(/was reached but did not answer within 1 s/);
      expect(Date.now() - started).toBeGreaterThanOrEqual(990);
    } finally {
      busy.closeAllConnections();
      busy.close();
    }
  });

  it('refuses plain http to a non-loopback host, allows it on loopback', async () => {
    for (const gateway of ['http://gateway.example.com', 'http://10.0.0.1:8080', 'http://localhost.example.com']) {
      const err = await failure(openTunnel(options('echo', { gateway })));
      expect(err.code).toBe(ErrorCode.USAGE);
      expect(err.message).toMatch(/TLS is required/);
    }
    expect((await failure(openTunnel(options('echo', { gateway: 'ftp://127.0.0.1' })))).code).toBe(ErrorCode.USAGE);

    const { channel } = await openTunnel(options('echo', { gateway: plainBase }));
    expect((await nextControl(channel)).type).toBe('hello');
    const result = digestOf(channel);
    channel.end('plain');
    expect((await result).bytes).toBe(5);
  });

  it('never puts the token in an error, even one the URL carries', async () => {
    const err = await failure(openTunnel(options('echo', { gateway: `https://user:${TOKEN}@127.0.0.1:1`, token: TOKEN })));
    expect(err.code).toBe(ErrorCode.GATEWAY_UNREACHABLE);
    const malformed = await failure(openTunnel(options('echo', { token: 'bad token\r\nX: y' })));
    expect(malformed.code).toBe(ErrorCode.NOT_LOGGED_IN);
    expect(malformed.message).not.toContain('bad token');
  });
});
