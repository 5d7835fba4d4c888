/**
 * hoop-mux/1 end to end, from real parts (the gateway over TLS, PostgreSQL, an OpenID provider):
 *
 * - many sessions of one {@link TunnelMux} share one TCP connection, each its own PostgreSQL session;
 * - every stream is authenticated and authorized on its own (401 / 403 / 404 as hoop-tunnel/1),
 *   and the mux Upgrade itself needs a valid token;
 * - a client that speaks the documented frame format by hand over TLS gets a working session, and
 *   each kind of bad frame ends only its own connection;
 * - a client (gateway or raw) that leaves while a stream is still being admitted costs nothing
 *   more than its connection: no unhandled error, no session left behind (the CLI side goes
 *   through a TCP relay to the real gateway, cut at the chosen moment);
 * - statement policy still applies to a session on a stream;
 * - flow control: a stream whose reader stalls holds back its own server, never its neighbours.
 */
import { randomBytes } from 'node:crypto';
import { connect as netConnect, createServer as netServer, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { getHeapSnapshot } from 'node:v8';
import { decodeJwt, decodeProtectedHeader, SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, HoopError } from '../../src/errors.js';
import { StatementJudge } from '../../src/policy/decide.js';
import type { Policy } from '../../src/policy/schema.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import { query, startupMessage, terminate } from '../../src/postgres/wire/messages.js';
import { MessageReader, parseAuthentication, parseErrorFields, type PgMessage } from '../../src/postgres/wire/reader.js';
import { MuxFrameType } from '../../src/tunnel/mux-frames.js';
import { CLIENT_STREAM_WINDOW, STREAM_WINDOW } from '../../src/tunnel/mux.js';
import { openTunnel, TunnelMux, TunnelRefusedError, type OpenedTunnel } from '../../src/tunnel/transport.js';
import { execute, frontendMessage, int32, parse, sync } from '../harness/pg-frontend.js';
import { errorIn, RawFrontend } from '../harness/raw-pg.js';
import { listenOnLoopback } from '../harness/listen.js';
import { startStack, type HoopStack } from '../harness/stack.js';
import { eventually, pace, poll, quietFor } from '../harness/wait.js';

let stack: HoopStack;
/** alice, no statement judge. */
let token: string;
/** alice in the `judged` group: her sessions get a statement judge that denies writes to mux_guarded. */
let judgedToken: string;
const muxes: TunnelMux[] = [];

const guardPolicy: Policy = {
  connections: [],
  access: [],
  statements: {
    unparseable: 'deny',
    rules: [{ name: 'guarded-is-read-only', match: { kinds: ['insert', 'update', 'delete', 'truncate'], tables: ['public.mux_guarded'] }, action: 'deny', message: 'mux_guarded may not be changed' }],
  },
  masking: { columns: [], names: [], detectors: [], derived: 'mask' },
  recording: { results: 'masked', rowCap: 1000, onFailure: 'close', auditors: [] },
  tests: [],
};

/**
 * Errors nothing handled in this process, where the gateway and the client run: in a real
 * `hoop gateway` (or `hoop connect`) each of them would end the process. There must be none.
 */
const uncaught: unknown[] = [];
const onUncaught = (err: unknown): void => void uncaught.push(err);

async function expectNoUncaught(): Promise<void> {
  // A window for an error thrown on a later tick (a socket's error event, a rejected promise) to surface.
  await quietFor(200);
  const seen = uncaught.splice(0).map((e) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e)));
  expect(seen, 'errors nothing handled (each would crash a real gateway or CLI process)').toEqual([]);
}

beforeAll(async () => {
  process.on('uncaughtException', onUncaught);
  await loadSqlParser();
  stack = await startStack({
    gateway: {
      // Short, so that a session the gateway fails to end at once does not hold up its shutdown for long.
      postgres: { handshakeTimeoutMs: 4000 },
      sessionPolicy: (identity, connection) =>
        identity.groups.includes('judged') ? { judge: new StatementJudge(guardPolicy, { subject: identity.subject, groups: identity.groups }, connection.name, 'read-write') } : undefined,
    },
  });
  await stack.pg.psql(
    `create table mux_rows(session int not null, n int not null, primary key (session, n));
     create table mux_guarded(id int primary key, v text);
     insert into mux_guarded select g, 'v' || g from generate_series(1, 5) g;
     grant all on mux_rows, mux_guarded to public`,
    { database: 'app' },
  );
  [token, judgedToken] = await Promise.all([stack.token('alice'), stack.token('alice', ['judged'])]);
});

afterAll(async () => {
  for (const m of muxes) m.close();
  await stack?.close();
  process.off('uncaughtException', onUncaught);
});

afterEach(expectNoUncaught);

function newMux(): TunnelMux {
  const mux = new TunnelMux({ gateway: stack.gateway.url, clientVersion: 'test', ca: stack.pki.ca });
  muxes.push(mux);
  return mux;
}

const sid = (): string => `mux-${randomBytes(8).toString('hex')}`;

interface Session {
  opened: OpenedTunnel;
  raw: RawFrontend;
}

/** A session on `mux` to `connection`, signed in up to ReadyForQuery. */
async function session(mux: TunnelMux, t = token, connection = 'app'): Promise<Session> {
  const opened = await mux.open({ connection, token: t, sessionId: sid() });
  const raw = new RawFrontend(opened.channel);
  await raw.startup('');
  return { opened, raw };
}

/** Ends a session as a client would (Terminate, then its side of the stream). */
function finish(s: Session): void {
  s.raw.write(terminate());
  s.opened.channel.end();
}

/** The text values of every DataRow among `messages`. */
function rows(messages: readonly PgMessage[]): Array<Array<string | null>> {
  return messages
    .filter((m) => m.type === 0x44)
    .map((m) => {
      const n = m.body.readInt16BE(0);
      const out: Array<string | null> = [];
      let at = 2;
      for (let i = 0; i < n; i++) {
        const len = m.body.readInt32BE(at);
        at += 4;
        if (len < 0) out.push(null);
        else {
          out.push(m.body.subarray(at, at + len).toString('utf8'));
          at += len;
        }
      }
      return out;
    });
}

async function one(s: Session, sql: string): Promise<Array<Array<string | null>>> {
  const messages = await s.raw.simple(sql);
  const err = errorIn(messages);
  if (err) throw new Error(`${sql}: ${err.code} ${err.message}`);
  return rows(messages);
}

/** The gateway's `tunnel.open` log lines of these sessions. */
function openLogs(ids: Iterable<string>): Array<Record<string, unknown>> {
  const set = new Set(ids);
  return stack.logs().filter((l) => l.event === 'tunnel.open' && set.has(l.session as string));
}

/**
 * The session `id`, whose client left, is not kept by the gateway: either it was never opened,
 * or it was closed as `client-disconnected`; and the gateway is back to `baseline` sessions.
 */
async function expectNoSessionLeft(id: string, baseline: number): Promise<void> {
  const events = (): string[] =>
    stack
      .logs()
      .filter((l) => l.session === id && (l.event === 'tunnel.open' || l.event === 'tunnel.close'))
      .map((l) => `${String(l.event)}${l.reason ? `:${String(l.reason)}` : ''}`);
  const settled = (): boolean => stack.gateway.activeSessions <= baseline && (events().length === 0 || events().some((e) => e.startsWith('tunnel.close')));
  // A window for a late tunnel.open to show up: with no event at all the session looks settled.
  await quietFor(300);
  await eventually(() => expect(settled()).toBe(true)).catch(() => undefined);
  if (events().includes('tunnel.open')) expect(events(), `the gateway's log of session ${id}`).toContain('tunnel.close:client-disconnected');
  expect(stack.gateway.activeSessions, 'sessions the gateway still counts as active').toBeLessThanOrEqual(baseline);
}

async function refusal(p: Promise<unknown>): Promise<TunnelRefusedError> {
  const err = await p.then(
    () => {
      throw new Error('expected a refusal');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TunnelRefusedError);
  return err as TunnelRefusedError;
}

/** A real token of the provider's, re-signed with an expiry an hour ago. */
async function expiredToken(): Promise<string> {
  const real = await stack.token('alice');
  const header = decodeProtectedHeader(real);
  const claims = decodeJwt(real);
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ ...claims, iat: now - 7200, nbf: now - 7200, exp: now - 3600 }).setProtectedHeader({ ...header, alg: 'RS256' }).sign(stack.oidc.signingKey.privateKey);
}

// ---------------------------------------------------------------------------------------------
// A hand-written hoop-mux/1 client: TLS, the HTTP Upgrade, frames as documented.
// ---------------------------------------------------------------------------------------------

interface Frame {
  type: number;
  stream: number;
  payload: Buffer;
}

function frame(type: number, stream: number, payload: Buffer = Buffer.alloc(0), length = payload.length): Buffer {
  const head = Buffer.alloc(9);
  head[0] = type;
  head.writeUInt32BE(stream >>> 0, 1);
  head.writeUInt32BE(length >>> 0, 5);
  return Buffer.concat([head, payload]);
}

const json = (type: number, stream: number, value: unknown): Buffer => frame(type, stream, Buffer.from(JSON.stringify(value), 'utf8'));

/** DATA frames (64 KiB at most each) carrying `bytes`. */
function dataFrames(stream: number, bytes: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += 64 * 1024) parts.push(frame(MuxFrameType.DATA, stream, bytes.subarray(at, at + 64 * 1024)));
  return Buffer.concat(parts);
}

class RawMux {
  readonly socket: TLSSocket;
  status = 0;
  responseHead = '';
  /** The HTTP body of a refused Upgrade. */
  body = Buffer.alloc(0);
  readonly frames: Frame[] = [];
  /** Streams for which every DATA frame received is acknowledged at once with a WINDOW of its size. */
  readonly autoCredit = new Set<number>();
  ended = false;
  #buf = Buffer.alloc(0);
  #upgraded = false;
  #headDone = false;
  #onHead: (() => void) | undefined;

  private constructor(socket: TLSSocket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.ended = true;
      this.#onHead?.();
    });
  }

  /** Connects over TLS and sends the Upgrade; resolves once the response head (and, if refused, its body) is in. */
  static async upgrade(headers: Record<string, string>, path = '/v1/tunnel'): Promise<RawMux> {
    const socket = tlsConnect({ host: '127.0.0.1', port: stack.gateway.port, ca: stack.pki.ca });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    const mux = new RawMux(socket);
    const lines = [`GET ${path} HTTP/1.1`, `Host: 127.0.0.1:${stack.gateway.port}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
    socket.write(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
    await new Promise<void>((resolve) => (mux.#onHead = resolve));
    if (mux.status !== 101) await mux.closed(30_000);
    return mux;
  }

  static open(t: string): Promise<RawMux> {
    return RawMux.upgrade({ Connection: 'Upgrade', Upgrade: 'hoop-mux/1', Authorization: `Bearer ${t}` });
  }

  #onData(chunk: Buffer): void {
    this.#buf = Buffer.concat([this.#buf, chunk]);
    if (!this.#headDone) {
      const end = this.#buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      this.responseHead = this.#buf.subarray(0, end).toString('latin1');
      this.status = Number(/^HTTP\/1\.1 (\d{3})/.exec(this.responseHead)?.[1] ?? 0);
      this.#buf = this.#buf.subarray(end + 4);
      this.#headDone = true;
      this.#upgraded = this.status === 101;
      this.#onHead?.();
    }
    if (!this.#upgraded) {
      this.body = Buffer.concat([this.body, this.#buf]);
      this.#buf = Buffer.alloc(0);
      return;
    }
    while (this.#buf.length >= 9) {
      const length = this.#buf.readUInt32BE(5);
      if (this.#buf.length < 9 + length) break;
      const f = { type: this.#buf[0]!, stream: this.#buf.readUInt32BE(1), payload: Buffer.from(this.#buf.subarray(9, 9 + length)) };
      this.frames.push(f);
      this.#buf = this.#buf.subarray(9 + length);
      if (f.type === MuxFrameType.DATA && this.autoCredit.has(f.stream)) this.grant(f.stream, f.payload.length);
    }
  }

  header(name: string): string | undefined {
    const line = this.responseHead.split('\r\n').find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
    return line?.slice(line.indexOf(':') + 1).trim();
  }

  write(bytes: Buffer, callback?: () => void): boolean {
    return this.socket.write(bytes, callback);
  }

  /** Sends WINDOW: the gateway may send `credit` more DATA bytes on `stream`. */
  grant(stream: number, credit: number): void {
    const payload = Buffer.alloc(4);
    payload.writeUInt32BE(credit);
    this.write(frame(MuxFrameType.WINDOW, stream, payload));
  }

  /** Sends OPEN for `stream` with the headers of a v1 Upgrade (lower case). */
  openStream(stream: number, t: string, connection = 'app'): void {
    this.write(json(MuxFrameType.OPEN, stream, { connection, headers: { authorization: `Bearer ${t}`, 'hoop-session-id': sid(), 'hoop-client-version': 'raw-mux-test' } }));
  }

  /** Waits for a frame on `stream` of one of `types`. */
  async waitFrame(stream: number, types: number[], timeoutMs = 30_000): Promise<Frame> {
    const frame = await poll(
      () => {
        const f = this.frames.find((x) => x.stream === stream && types.includes(x.type));
        if (!f && this.ended) throw new Error(`the connection closed before a frame of type ${types} on stream ${stream}`);
        return f;
      },
      { timeout: timeoutMs, interval: 10 },
    );
    if (!frame) throw new Error(`no frame of type ${types} on stream ${stream} within ${timeoutMs} ms`);
    return frame;
  }

  /** Every DATA byte received on `stream`, in order. */
  data(stream: number): Buffer {
    return Buffer.concat(this.frames.filter((f) => f.stream === stream && f.type === MuxFrameType.DATA).map((f) => f.payload));
  }

  /** The PostgreSQL messages received on `stream`. */
  pgMessages(stream: number): PgMessage[] {
    const reader = new MessageReader({ side: 'backend' });
    reader.push(this.data(stream));
    const out: PgMessage[] = [];
    for (let m = reader.next(); m; m = reader.next()) out.push({ type: m.type, body: Buffer.from(m.body), raw: Buffer.from(m.raw) });
    return out;
  }

  /** Waits until `count` ReadyForQuery messages arrived on `stream`; returns its messages. */
  async untilReady(stream: number, count: number, timeoutMs = 30_000): Promise<PgMessage[]> {
    const ready = await poll(
      () => {
        const messages = this.pgMessages(stream);
        if (messages.filter((m) => m.type === 0x5a).length >= count) return messages;
        if (this.ended) throw new Error(`the connection closed; stream ${stream} got ${messages.map((m) => String.fromCharCode(m.type)).join('')}`);
        return undefined;
      },
      { timeout: timeoutMs, interval: 10 },
    );
    if (!ready)
      throw new Error(
        `stream ${stream} got only ${this.pgMessages(stream)
          .map((m) => String.fromCharCode(m.type))
          .join('')}`,
      );
    return ready;
  }

  /** True once the socket has closed, within `timeoutMs`. */
  async closed(timeoutMs = 30_000): Promise<boolean> {
    return (await poll(() => this.ended || undefined, { timeout: timeoutMs, interval: 10 })) ?? false;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

// ---------------------------------------------------------------------------------------------

describe('many sessions over one connection', () => {
  it('20 concurrent sessions through one TunnelMux all get their own results, and the database holds exactly their rows', async () => {
    const mux = newMux();
    const N = 20;
    const ROWS = 5;
    const results = await Promise.all(
      Array.from({ length: N }, async (_, i) => {
        const s = await session(mux);
        const [[me, pid]] = (await one(s, `select ${i} * 7 as me, pg_backend_pid()`)) as [[string, string]];
        expect(me).toBe(String(i * 7));
        const returned: string[] = [];
        for (let k = 1; k <= ROWS; k++) {
          const r = await one(s, `insert into mux_rows(session, n) values (${i}, ${k}) returning session * 100 + n`);
          returned.push(r[0]![0]!);
        }
        expect(returned).toEqual(Array.from({ length: ROWS }, (_, k) => String(i * 100 + k + 1)));
        // The session sees its own rows and the others' committed ones, never a neighbour's reply.
        expect(await one(s, `select count(*) from mux_rows where session = ${i}`)).toEqual([[String(ROWS)]]);
        finish(s);
        return { id: s.opened.sessionId, pid };
      }),
    );
    // 20 PostgreSQL sessions of their own (one backend each)...
    expect(new Set(results.map((r) => r.pid)).size).toBe(N);
    // ...exactly the rows they inserted...
    const stored = (await stack.pg.psql('select session, n from mux_rows order by session, n', { database: 'app' })).trim().split('\n');
    expect(stored).toEqual(Array.from({ length: N * ROWS }, (_, j) => `${Math.floor(j / ROWS)}|${(j % ROWS) + 1}`));
    // ...and the gateway saw them all come from one TCP connection (one client address and port).
    const opens = openLogs(results.map((r) => r.id));
    expect(opens).toHaveLength(N);
    expect(new Set(opens.map((l) => l.remote)).size).toBe(1);
    expect(opens.every((l) => l.client === 'test' && l.subject === 'alice' && l.connection === 'app')).toBe(true);
    await stack.pg.psql('truncate mux_rows', { database: 'app' });
  });

  it('a second TunnelMux is a second connection; a v1 tunnel is another still', async () => {
    const [a, b] = [await session(newMux()), await session(newMux())];
    const { channel, sessionId } = await openTunnel({ gateway: stack.gateway.url, connection: 'app', token, sessionId: sid(), clientVersion: 'test', ca: stack.pki.ca });
    const v1 = { opened: { channel, sessionId }, raw: new RawFrontend(channel) };
    await v1.raw.startup('');
    for (const s of [a, b, v1]) expect(await one(s, 'select 1')).toEqual([['1']]);
    const opens = openLogs([a.opened.sessionId, b.opened.sessionId, sessionId]);
    expect(opens).toHaveLength(3);
    expect(new Set(opens.map((l) => l.remote)).size).toBe(3);
    for (const s of [a, b, v1]) finish(s);
  });
});

describe('each stream is authenticated and authorized on its own', () => {
  it('a stream with a bad or expired token is refused 401 while the sessions before and after it on the same connection work', async () => {
    const mux = newMux();
    const before = await session(mux);
    expect(await one(before, 'select 1 as before')).toEqual([['1']]);

    const garbage = await refusal(mux.open({ connection: 'app', token: 'not-a-jwt', sessionId: sid() }));
    expect(garbage).toMatchObject({ status: 401, code: ErrorCode.TOKEN_REJECTED, gatewayCode: ErrorCode.TOKEN_REJECTED });
    const expired = await refusal(mux.open({ connection: 'app', token: await expiredToken(), sessionId: sid() }));
    expect(expired).toMatchObject({ status: 401, code: ErrorCode.TOKEN_REJECTED, reason: 'expired' });
    // Another identity's valid token on the same connection is that identity's session.
    const bob = await session(mux, await stack.token('bob'));
    expect(await one(bob, 'select 2')).toEqual([['2']]);

    expect(await one(before, 'select 3 as still')).toEqual([['3']]);
    const after = await session(mux);
    expect(await one(after, 'select 4 as after')).toEqual([['4']]);

    const opens = openLogs([before.opened.sessionId, bob.opened.sessionId, after.opened.sessionId]);
    expect(opens.map((l) => l.subject)).toEqual(['alice', 'bob', 'alice']);
    expect(new Set(opens.map((l) => l.remote)).size).toBe(1);
    for (const s of [before, bob, after]) finish(s);
  });

  it('a stream for a connection the identity may not use gets 403, an unknown one 404, as a v1 tunnel does', async () => {
    const mux = newMux();
    const live = await session(mux);
    for (const [connection, status, code] of [
      ['carol-only', 403, ErrorCode.ACCESS_DENIED],
      ['no-such-connection', 404, ErrorCode.CONNECTION_UNKNOWN],
    ] as const) {
      const viaMux = await refusal(mux.open({ connection, token, sessionId: sid() }));
      const viaV1 = await refusal(openTunnel({ gateway: stack.gateway.url, connection, token, sessionId: sid(), clientVersion: 'test', ca: stack.pki.ca }));
      expect(viaMux).toMatchObject({ status, code, gatewayCode: code });
      expect({ status: viaMux.status, code: viaMux.code, gatewayCode: viaMux.gatewayCode, message: viaMux.message }).toEqual({
        status: viaV1.status,
        code: viaV1.code,
        gatewayCode: viaV1.gatewayCode,
        message: viaV1.message,
      });
    }
    // carol may use carol-only, on a connection whose Upgrade alice's token opened.
    const carol = await session(mux, await stack.token('carol'), 'carol-only');
    expect(await one(carol, 'select current_database()')).toEqual([['app']]);
    expect(await one(live, 'select 5')).toEqual([['5']]);
    finish(carol);
    finish(live);
  });

  it('the mux Upgrade itself needs a valid token: 401 and no 101 without one or with a bad one', async () => {
    const cases: Array<[string, Record<string, string>]> = [
      ['no Authorization', {}],
      ['a malformed token', { Authorization: 'Bearer not-a-jwt' }],
      ['an expired token', { Authorization: `Bearer ${await expiredToken()}` }],
      ['another scheme', { Authorization: `Basic ${Buffer.from('alice:pw').toString('base64')}` }],
    ];
    for (const [what, auth] of cases) {
      const raw = await RawMux.upgrade({ Connection: 'Upgrade', Upgrade: 'hoop-mux/1', ...auth });
      expect(raw.status, what).toBe(401);
      expect(raw.responseHead, what).not.toMatch(/^HTTP\/1\.1 101/m);
      expect(raw.header('www-authenticate'), what).toMatch(/^Bearer /);
      const body = JSON.parse(raw.body.toString('utf8')) as { error: Record<string, string> };
      expect(body, what).toMatchObject({ error: { code: ErrorCode.TOKEN_REJECTED } });
      expect(raw.frames, what).toEqual([]);
      expect(await raw.closed(), what).toBe(true);
      // As the v1 endpoint answers the same request.
      const v1 = await RawMux.upgrade({ Connection: 'Upgrade', Upgrade: 'hoop-tunnel/1', ...auth }, '/v1/connections/app/tunnel');
      expect({ status: raw.status, www: raw.header('www-authenticate'), body }, what).toEqual({ status: v1.status, www: v1.header('www-authenticate'), body: JSON.parse(v1.body.toString('utf8')) });
    }
    // Through the client: the same refusal, as a TunnelRefusedError.
    const err = await refusal(newMux().open({ connection: 'app', token: 'not-a-jwt', sessionId: sid() }));
    expect(err).toMatchObject({ status: 401, code: ErrorCode.TOKEN_REJECTED });
    // A valid one is switched to hoop-mux/1.
    const ok = await RawMux.open(token);
    expect(ok.status).toBe(101);
    expect(ok.header('upgrade')).toBe('hoop-mux/1');
    ok.destroy();
  });
});

describe('a client speaking hoop-mux/1 by hand', () => {
  let bystander: Session;

  beforeAll(async () => {
    bystander = await session(newMux());
  });

  afterAll(() => {
    if (bystander) finish(bystander);
  });

  async function othersStillServed(): Promise<void> {
    expect(await one(bystander, 'select 42 as bystander')).toEqual([['42']]);
    const fresh = await session(newMux());
    expect(await one(fresh, 'select 43 as fresh')).toEqual([['43']]);
    finish(fresh);
  }

  it('opens a stream, signs in to PostgreSQL and runs a query with frames as documented', async () => {
    const raw = await RawMux.open(token);
    expect(raw.status).toBe(101);
    raw.openStream(1, token);
    const accept = await raw.waitFrame(1, [MuxFrameType.ACCEPT, MuxFrameType.REFUSE]);
    expect(accept.type).toBe(MuxFrameType.ACCEPT);
    const headers = JSON.parse(accept.payload.toString('utf8')) as Record<string, string>;
    expect(headers['Hoop-Session-Id'] ?? headers['hoop-session-id']).toMatch(/^[A-Za-z0-9_-]{8,64}$/);

    raw.write(
      frame(
        MuxFrameType.DATA,
        1,
        startupMessage([
          ['user', 'hoop'],
          ['database', 'app'],
        ]),
      ),
    );
    const signIn = await raw.untilReady(1, 1);
    expect(parseAuthentication(signIn.find((m) => m.type === 0x52)!.body).code).toBe(0);
    const before = raw.data(1).length;

    // A query split over two DATA frames: frame boundaries mean nothing.
    const q = query('select 40 + 2 as answer, current_user');
    raw.write(Buffer.concat([frame(MuxFrameType.DATA, 1, q.subarray(0, 7)), frame(MuxFrameType.DATA, 1, q.subarray(7))]));
    await raw.untilReady(1, 2);
    const reader = new MessageReader({ side: 'backend' });
    reader.push(raw.data(1).subarray(before));
    const answer: PgMessage[] = [];
    for (let m = reader.next(); m; m = reader.next()) answer.push({ type: m.type, body: Buffer.from(m.body), raw: Buffer.from(m.raw) });
    expect(answer.map((m) => String.fromCharCode(m.type)).join('')).toBe('TDCZ');
    expect(rows(answer)).toEqual([['42', stack.pg.users.scram.user]]);

    // More than a window of result: the gateway sends at most 256 KiB until the client grants
    // credit with WINDOW frames, then the rest.
    const BIG = 600;
    const bigFrom = raw.data(1).length;
    raw.write(frame(MuxFrameType.DATA, 1, query(`select repeat('y', 1000) from generate_series(1, ${BIG})`)));
    // More than half a window arrives; then, until nothing more comes for 200 ms, the gateway has stopped at the end of the window.
    await eventually(() => expect(raw.data(1).length - bigFrom).toBeGreaterThan(STREAM_WINDOW / 2));
    let got = -1;
    while (raw.data(1).length !== got) {
      got = raw.data(1).length;
      await quietFor(200);
    }
    expect(got).toBeLessThanOrEqual(STREAM_WINDOW);
    expect(got - bigFrom).toBeGreaterThan(STREAM_WINDOW / 2);
    raw.autoCredit.add(1);
    raw.grant(1, got);
    await raw.untilReady(1, 3);
    const big = new MessageReader({ side: 'backend' });
    big.push(raw.data(1).subarray(bigFrom));
    const bigRows: PgMessage[] = [];
    for (let m = big.next(); m; m = big.next()) bigRows.push({ type: m.type, body: Buffer.from(m.body), raw: Buffer.from(m.raw) });
    expect(rows(bigRows)).toEqual(Array.from({ length: BIG }, () => ['y'.repeat(1000)]));
    expect(bigRows.find((m) => m.type === 0x43)?.body.toString('latin1')).toBe(`SELECT ${BIG}\0`);

    // Terminate, then END: the gateway ends the stream and the connection stays usable.
    raw.write(Buffer.concat([frame(MuxFrameType.DATA, 1, terminate()), frame(MuxFrameType.END, 1)]));
    await raw.waitFrame(1, [MuxFrameType.END, MuxFrameType.RESET]);
    raw.openStream(2, token);
    expect((await raw.waitFrame(2, [MuxFrameType.ACCEPT, MuxFrameType.REFUSE])).type).toBe(MuxFrameType.ACCEPT);
    // A refused stream: REFUSE with the v1 status and body.
    raw.openStream(3, 'not-a-jwt');
    const refused = await raw.waitFrame(3, [MuxFrameType.ACCEPT, MuxFrameType.REFUSE]);
    expect(refused.type).toBe(MuxFrameType.REFUSE);
    expect(JSON.parse(refused.payload.toString('utf8'))).toMatchObject({ status: 401, body: { error: { code: ErrorCode.TOKEN_REJECTED } } });
    expect(raw.ended).toBe(false);
    raw.destroy();
  });

  const violations: Array<[string, (raw: RawMux) => Promise<void> | void]> = [
    ['garbage bytes', (raw) => void raw.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))],
    ['an unknown frame type', (raw) => void raw.write(frame(0x09, 1, Buffer.from('{}')))],
    ['a frame of type 0', (raw) => void raw.write(frame(0x00, 0))],
    ['a DATA frame for a stream never opened', (raw) => void raw.write(frame(MuxFrameType.DATA, 7, Buffer.from('hello')))],
    ['a WINDOW frame for a stream never opened', (raw) => void raw.write(frame(MuxFrameType.WINDOW, 5, Buffer.from([0, 0, 16, 0])))],
    [
      'OPEN with ids out of order',
      async (raw) => {
        raw.openStream(2, token);
        await raw.waitFrame(2, [MuxFrameType.ACCEPT]);
        raw.openStream(1, token);
      },
    ],
    [
      'OPEN reusing an id',
      async (raw) => {
        raw.openStream(1, token);
        await raw.waitFrame(1, [MuxFrameType.ACCEPT]);
        raw.openStream(1, token);
      },
    ],
    ['OPEN of stream 0', (raw) => raw.openStream(0, token)],
    ['a DATA length header above 64 KiB (no payload follows)', (raw) => void raw.write(frame(MuxFrameType.DATA, 1, Buffer.alloc(0), 64 * 1024 + 1))],
    ['an OPEN length header of 0xffffffff (no payload follows)', (raw) => void raw.write(frame(MuxFrameType.OPEN, 1, Buffer.alloc(0), 0xffffffff))],
    ['an OPEN whose payload is not JSON', (raw) => void raw.write(frame(MuxFrameType.OPEN, 1, Buffer.from('{connection')))],
  ];

  it.each(violations)('%s ends that connection; others are served, and new ones open', async (_what, misbehave) => {
    const raw = await RawMux.open(token);
    expect(raw.status).toBe(101);
    await misbehave(raw);
    expect(await raw.closed(30_000)).toBe(true);
    await othersStillServed();
  });

  /** How many strings on this process's heap (the gateway runs in it) hold `needle`: each copy counts, from a heap snapshot. */
  async function copiesOnHeap(needle: string): Promise<number> {
    const chunks: Buffer[] = [];
    for await (const chunk of getHeapSnapshot()) chunks.push(Buffer.from(chunk as Uint8Array));
    const snapshot = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }; nodes: number[]; strings: string[] };
    const {
      node_fields: fields,
      node_types: [types],
    } = snapshot.snapshot.meta;
    const [typeAt, nameAt] = [fields.indexOf('type'), fields.indexOf('name')];
    const stringTypes = new Set(['string', 'concatenated string', 'sliced string'].map((t) => types.indexOf(t)));
    const holding = new Set(snapshot.strings.flatMap((text, i) => (text.includes(needle) ? [i] : [])));
    let copies = 0;
    for (let i = 0; i < snapshot.nodes.length; i += fields.length) if (stringTypes.has(snapshot.nodes[i + typeAt]!) && holding.has(snapshot.nodes[i + nameAt]!)) copies++;
    return copies;
  }

  it('a session does not keep its bearer token: with 20 sessions open, the token is on the heap fewer than 10 times (a copy per session would be 20 and more)', async () => {
    const own = await stack.token('alice');
    const signature = own.slice(own.lastIndexOf('.') + 1);
    const raw = await RawMux.open(own);
    const open = async (from: number, to: number): Promise<void> => {
      for (let s = from; s <= to; s++) raw.openStream(s, own);
      for (let s = from; s <= to; s++) {
        await raw.waitFrame(s, [MuxFrameType.ACCEPT]);
        raw.write(
          frame(
            MuxFrameType.DATA,
            s,
            startupMessage([
              ['user', 'hoop'],
              ['database', 'app'],
            ]),
          ),
        );
      }
      for (let s = from; s <= to; s++) await raw.untilReady(s, 1);
    };
    await open(1, 20);
    // The test's own two (the token and its signature); one snapshot of the process's heap, which costs seconds.
    const withTwenty = await copiesOnHeap(signature);
    raw.destroy();
    // Each session's OPEN carried the token; the gateway read it once, when it admitted the session.
    expect(withTwenty).toBeLessThan(10);
  });

  it('a violation ends the sessions already open on that connection too', async () => {
    const raw = await RawMux.open(token);
    raw.openStream(1, token);
    await raw.waitFrame(1, [MuxFrameType.ACCEPT]);
    raw.write(
      frame(
        MuxFrameType.DATA,
        1,
        startupMessage([
          ['user', 'hoop'],
          ['database', 'app'],
        ]),
      ),
    );
    await raw.untilReady(1, 1);
    raw.write(frame(MuxFrameType.DATA, 1, query('select pg_backend_pid()')));
    const pid = rows(await raw.untilReady(1, 2))[0]![0]!;
    raw.write(frame(MuxFrameType.DATA, 9, Buffer.from('x')));
    expect(await raw.closed(30_000)).toBe(true);
    // Its PostgreSQL backend goes away with it.
    await eventually(async () => expect((await stack.pg.psql(`select count(*) from pg_stat_activity where pid = ${pid}`)).trim()).toBe('0'), { timeout: 60_000 });
    await othersStillServed();
  });

  it('DATA past the 256 KiB window, sent without waiting for WINDOW, ends the connection', async () => {
    const baseline = stack.gateway.activeSessions;
    const raw = await RawMux.open(token);
    const id = sid();
    // OPEN and, in the same write, one byte more than the stream's window: nothing on the gateway
    // reads the stream before the session is admitted, so no credit can have been granted.
    raw.write(
      Buffer.concat([
        json(MuxFrameType.OPEN, 1, { connection: 'app', headers: { authorization: `Bearer ${token}`, 'hoop-session-id': id, 'hoop-client-version': 'raw-mux-test' } }),
        dataFrames(1, Buffer.alloc(STREAM_WINDOW + 1, 0x41)),
      ]),
    );
    expect(await raw.closed(30_000)).toBe(true);
    await expectNoUncaught();
    await expectNoSessionLeft(id, baseline);
    await othersStillServed();
  });

  // Admitting a session takes the gateway a few turns of its event loop (the token, the session
  // id, the recording): a client may leave, or break the protocol, in the meantime.
  it.each([
    ['ends its side (FIN)', (raw: RawMux, open: Buffer) => void raw.socket.end(open)],
    ['drops the connection', (raw: RawMux, open: Buffer) => void raw.write(open, () => raw.destroy())],
    ['sends a bad frame', (raw: RawMux, open: Buffer) => void raw.write(Buffer.concat([open, frame(0x09, 1, Buffer.from('{}'))]))],
  ])('a client that %s while its stream is still being admitted loses only its connection, and the gateway keeps no session for it', async (_what, leave) => {
    const baseline = stack.gateway.activeSessions;
    const raw = await RawMux.open(token);
    const id = sid();
    leave(raw, json(MuxFrameType.OPEN, 1, { connection: 'app', headers: { authorization: `Bearer ${token}`, 'hoop-session-id': id, 'hoop-client-version': 'raw-mux-test' } }));
    expect(await raw.closed(30_000)).toBe(true);
    await expectNoUncaught();
    await expectNoSessionLeft(id, baseline);
    await othersStillServed();
  });
});

describe('the client side of a lost connection', () => {
  /** A TCP relay to the gateway that can hold back what the gateway sends, and cut everything. */
  async function relay(): Promise<{ port: number; hold(): void; cut(): void; close(): void }> {
    const sockets = new Set<Socket>();
    let holding = false;
    const server = netServer((client) => {
      const upstream = netConnect({ host: '127.0.0.1', port: stack.gateway.port });
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => (client.destroy(), upstream.destroy()));
      }
      client.on('data', (d: Buffer) => upstream.write(d));
      upstream.on('data', (d: Buffer) => {
        if (!holding) client.write(d);
      });
    });
    const port = await listenOnLoopback(server);
    return {
      port,
      hold: () => (holding = true),
      cut: () => sockets.forEach((s) => s.destroy()),
      close: () => server.close(),
    };
  }

  it('a session still waiting for its answer when the connection drops fails with GATEWAY_UNREACHABLE, and nothing else', async () => {
    const r = await relay();
    try {
      const mux = new TunnelMux({ gateway: `https://127.0.0.1:${r.port}`, clientVersion: 'test', ca: stack.pki.ca });
      muxes.push(mux);
      const first = await session(mux);
      expect(await one(first, 'select 1')).toEqual([['1']]);
      r.hold();
      const pendingId = sid();
      const pending = mux.open({ connection: 'app', token, sessionId: pendingId }).then(
        () => undefined,
        (e: unknown) => e,
      );
      // The gateway has the OPEN and admitted it; its answer is the one the relay holds back.
      await eventually(() => expect(stack.logs().some((l) => l.event === 'tunnel.open' && l.session === pendingId)).toBe(true));
      r.cut();
      const err = await pending;
      expect(err).toBeInstanceOf(HoopError);
      expect(err).toMatchObject({ code: ErrorCode.GATEWAY_UNREACHABLE });
      expect(await first.raw.closed(30_000)).toBe(true);
      await expectNoUncaught();
      // The next session opens a new connection.
      const direct = newMux();
      const again = await session(direct);
      expect(await one(again, 'select 2')).toEqual([['2']]);
      finish(again);
    } finally {
      r.close();
    }
  });
});

describe('policy through the mux', () => {
  it('a denied statement on a stream is refused with 42501 and the table is unchanged; allowed ones run', async () => {
    const mux = newMux();
    const judged = await session(mux, judgedToken);
    const plain = await session(mux, token);
    const before = await stack.pg.psql('select id, v from mux_guarded order by id', { database: 'app' });

    for (const sql of ['delete from mux_guarded', "update mux_guarded set v = 'x' where id = 1", "insert into mux_guarded values (99, 'no')"]) {
      const messages = await judged.raw.simple(sql);
      const err = errorIn(messages);
      expect(err, sql).toMatchObject({ code: '42501' });
      expect(err?.message, sql).toContain('mux_guarded may not be changed');
      expect(messages.at(-1)!.type).toBe(0x5a);
    }
    // The session stays usable, and reads are allowed.
    expect(await one(judged, 'select count(*) from mux_guarded')).toEqual([['5']]);
    expect(await stack.pg.psql('select id, v from mux_guarded order by id', { database: 'app' })).toBe(before);

    // The neighbouring stream without a judge is not affected by the other's policy.
    expect(await one(plain, "update mux_guarded set v = 'changed' where id = 5 returning v")).toEqual([['changed']]);
    expect((await stack.pg.psql('select v from mux_guarded where id = 5', { database: 'app' })).trim()).toBe('changed');
    await stack.pg.psql("update mux_guarded set v = 'v5' where id = 5", { database: 'app' });
    finish(judged);
    finish(plain);
  });

  it('a statement right behind a run of CopyData is judged, wherever the tunnel frames cut the run', async () => {
    // CopyData passes in runs (no decision per message): the run must end at the Query behind it.
    const judged = await session(newMux(), judgedToken);
    const before = await stack.pg.psql('select id, v from mux_guarded order by id', { database: 'app' });
    expect(errorIn(await judged.raw.simple('create temp table copied (line text)'))).toBeUndefined();
    const lines = Array.from({ length: 200 }, (_, i) => frontendMessage('d', Buffer.from(`line ${i}\n`)));
    const denied = query('delete from mux_guarded');
    const cases: Array<[string, Buffer, number]> = [
      ['in a COPY', Buffer.concat([query('copy copied from stdin'), ...lines, frontendMessage('c'), denied]), 2],
      ['outside a COPY (the server ignores CopyData there)', Buffer.concat([...lines, denied]), 1],
    ];
    let copies = 0;
    for (const [what, bytes, readies] of cases) {
      const end = bytes.length - denied.length;
      for (const cut of [1, 100, end - 3, end, end + 1, end + 3, bytes.length - 1]) {
        const from = judged.raw.raw.length;
        judged.raw.write(bytes.subarray(0, cut));
        // The two parts go as two tunnel frames, not one.
        await pace(20);
        judged.raw.write(bytes.subarray(cut));
        const messages = await judged.raw.messagesSince(from, readies);
        expect(errorIn(messages), `${what}, cut at ${cut}`).toMatchObject({ code: '42501' });
        if (readies === 2) copies++;
      }
    }
    expect(await one(judged, 'select count(*) from copied')).toEqual([[String(copies * lines.length)]]);
    expect(await stack.pg.psql('select id, v from mux_guarded order by id', { database: 'app' })).toBe(before);
    finish(judged);
  });

  it('a Bind over 1 MiB whose header is cut between tunnel frames is judged by its own names, and runs', async () => {
    const judged = await session(newMux(), judgedToken);
    const value = Buffer.alloc(1024 * 1024 + 10, 'y');
    for (const cut of [1, 3]) {
      const name = `big_${cut}`;
      const bind = frontendMessage('B', '', name, 0, 1, int32(value.length), value, 0);
      const from = judged.raw.raw.length;
      judged.raw.write(Buffer.concat([parse(name, 'select length($1::text)'), bind.subarray(0, cut)]));
      // The gateway reads the cut header on its own before the rest arrives.
      await pace(100);
      judged.raw.write(Buffer.concat([bind.subarray(cut), execute(''), sync()]));
      const messages = await judged.raw.messagesSince(from, 1);
      expect(errorIn(messages), `cut at ${cut}`).toBeUndefined();
      expect(rows(messages), `cut at ${cut}`).toEqual([[String(value.length)]]);
    }
    finish(judged);
  });
});

describe('flow control', () => {
  it('a stream whose reader stalls holds back its own result, not its neighbour; then it reads every row intact', async () => {
    const ROWS = 200_000;
    const WIDTH = 1000;
    const mux = newMux();
    const slow = await session(mux);
    const fast = await session(mux);
    const stream = slow.opened.channel;
    // From now on nothing reads the slow stream.
    stream.pause();
    stream.removeAllListeners('data');
    const sql = `select repeat('x', ${WIDTH}) from generate_series(1, ${ROWS})`;
    stream.write(query(sql));

    // PostgreSQL ends up blocked writing to the gateway: the gateway does not buffer the result.
    await eventually(async () => expect((await stack.pg.psql(`select coalesce(wait_event, '') from pg_stat_activity where query = '${sql.replace(/'/g, "''")}'`)).trim()).toBe('ClientWrite'), {
      timeout: 30_000,
    });
    // What is in flight settles: the client then holds at most the window it announced.
    let held = -1;
    // Until it stays the same for three checks 100 ms apart.
    for (let stable = 0; stable < 3; ) {
      await quietFor(100);
      if (stream.readableLength === held) stable++;
      else [held, stable] = [stream.readableLength, 0];
    }
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThanOrEqual(CLIENT_STREAM_WINDOW);

    // Meanwhile the neighbour on the same connection answers (behind the stalled stream it would never be answered), and the stalled stream gets nothing more.
    for (let i = 0; i < 100; i++) expect(await one(fast, `select ${i} + 1`)).toEqual([[String(i + 1)]]);
    expect(stream.readableLength).toBe(held);

    // Now read it all.
    const expected = Buffer.alloc(WIDTH, 'x');
    const reader = new MessageReader({ side: 'backend' });
    let dataRows = 0;
    let bad = 0;
    let complete = '';
    let errors = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${dataRows} rows arrived`)), 90_000);
      stream.on('data', (chunk: Buffer) => {
        reader.push(chunk);
        for (let m = reader.next(); m; m = reader.next()) {
          if (m.type === 0x44) {
            dataRows++;
            if (m.body.length !== 6 + WIDTH || m.body.readInt16BE(0) !== 1 || m.body.readInt32BE(2) !== WIDTH || !m.body.subarray(6).equals(expected)) bad++;
          } else if (m.type === 0x43) complete = m.body.subarray(0, m.body.length - 1).toString();
          else if (m.type === 0x45) errors += parseErrorFields(m.body).message;
          else if (m.type === 0x5a) {
            clearTimeout(timer);
            resolve();
          }
        }
      });
      stream.resume();
    });
    expect(errors).toBe('');
    expect(complete).toBe(`SELECT ${ROWS}`);
    expect(dataRows).toBe(ROWS);
    expect(bad).toBe(0);
    // Both sessions go on.
    const after = new RawFrontend(stream);
    expect(rows(await after.simple('select 7'))).toEqual([['7']]);
    expect(await one(fast, 'select 8')).toEqual([['8']]);
    finish({ opened: slow.opened, raw: after });
    finish(fast);
  }, 360_000);
});
