/**
 * hoop-mux/1 over a real loopback TCP connection, both ends in this process: many streams
 * intact at once, per-stream flow control (a stalled reader bounds its writer and does not hold
 * up the others), control messages in order, half-close and reset, one socket write for what
 * all streams wrote in one turn, and frames that break the protocol ending the connection.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, HoopError } from '../../src/errors.js';
import type { ControlMessage } from '../../src/tunnel/frames.js';
import { CLIENT_STREAM_WINDOW, MAX_STREAM_WINDOW, MuxConnection, MuxRefusal, STREAM_WINDOW, type MuxStream } from '../../src/tunnel/mux.js';
import { MAX_MUX_DATA, MuxFrameType, MuxReader, muxHeader, muxJsonFrame, muxWindowFrame, type MuxFrame } from '../../src/tunnel/mux-frames.js';
import { eventually, quietFor } from '../harness/wait.js';

const MiB = 1024 * 1024;
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A connected pair of TCP sockets on loopback. */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const client = net.connect(port, '127.0.0.1');
  const [accepted] = (await once(server, 'connection')) as [net.Socket];
  await once(client, 'connect').catch(() => undefined);
  server.close();
  cleanups.push(() => {
    client.destroy();
    accepted.destroy();
  });
  return [client, accepted];
}

/** A client and a gateway MuxConnection; `onOpen` answers the gateway's streams (default: accept and echo). */
async function muxPair(onOpen?: (stream: MuxStream) => void, clientWindow?: number): Promise<{ client: MuxConnection; gateway: MuxConnection; clientSocket: net.Socket; gatewaySocket: net.Socket }> {
  const [clientSocket, gatewaySocket] = await socketPair();
  const gateway = new MuxConnection(gatewaySocket, undefined, {
    peer: 'client',
    onOpen:
      onOpen ??
      ((stream) => {
        stream.accept({ 'hoop-session-id': `s${stream.id}` });
        stream.on('error', () => undefined);
        stream.pipe(stream);
      }),
  });
  const client = new MuxConnection(clientSocket, undefined, { peer: 'gateway', ...(clientWindow !== undefined ? { window: clientWindow } : {}) });
  // Streams end in error when a test closes the sockets: said here, not as uncaught errors.
  const open = client.open.bind(client);
  client.open = async (request) => {
    const opened = await open(request);
    opened.stream.on('error', () => undefined);
    return opened;
  };
  return { client, gateway, clientSocket, gatewaySocket };
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('MuxReader', () => {
  const frames = (bytes: Buffer, step: number): MuxFrame[] => {
    const r = new MuxReader();
    const out: MuxFrame[] = [];
    for (let i = 0; i < bytes.length; i += step) {
      r.push(bytes.subarray(i, i + step));
      for (let f = r.next(); f; f = r.next()) out.push(f);
    }
    return out;
  };

  it('decodes frames split at every byte boundary; DATA arrives as views, in pieces that add up', () => {
    const data = randomBytes(3000);
    const bytes = Buffer.concat([
      muxJsonFrame(MuxFrameType.OPEN, 1, { connection: 'db', headers: { authorization: 'Bearer x' } }),
      muxHeader(MuxFrameType.DATA, 1, data.length),
      data,
      muxWindowFrame(1, 4096),
      muxHeader(MuxFrameType.END, 1, 0),
    ]);
    for (const step of [1, 2, 7, 9, 100, bytes.length]) {
      const out = frames(bytes, step);
      expect(out[0]).toMatchObject({ type: MuxFrameType.OPEN, stream: 1, value: { connection: 'db' } });
      expect(Buffer.concat(out.filter((f) => f.type === MuxFrameType.DATA).map((f) => f.payload))).toEqual(data);
      expect(out.filter((f) => f.type === MuxFrameType.WINDOW).map((f) => f.value)).toEqual([{ credit: 4096 }]);
      expect(out.at(-1)).toMatchObject({ type: MuxFrameType.END, stream: 1 });
    }
  });

  it('refuses an unknown type, an oversize length (before its payload arrives), an empty grant, bad JSON, and keeps refusing', () => {
    const bad = (bytes: Buffer, text: RegExp): void => {
      const r = new MuxReader();
      r.push(bytes);
      let thrown: unknown;
      try {
        r.next();
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(HoopError);
      expect((thrown as HoopError).code).toBe(ErrorCode.PROTOCOL_VIOLATION);
      expect((thrown as HoopError).message).toMatch(text);
      expect(() => r.next()).toThrow(text);
    };
    bad(Buffer.from([0x7f, 0, 0, 0, 1, 0, 0, 0, 0]), /unknown frame type 0x7f/);
    const huge = muxHeader(MuxFrameType.END, 1, 0);
    huge[0] = MuxFrameType.DATA;
    huge.writeUInt32BE(MAX_MUX_DATA + 1, 5);
    bad(huge, /more than the 65536-byte limit/);
    bad(muxWindowFrame(1, 0), /grants nothing/);
    bad(Buffer.concat([muxHeader(MuxFrameType.CONTROL, 1, 3), Buffer.from('{x}')]), /not valid JSON/);
    bad(Buffer.concat([muxHeader(MuxFrameType.CONTROL, 1, 2), Buffer.from('[]')]), /must be a JSON object/);
  });
});

describe('MuxConnection', () => {
  it('carries 8 streams at once, 4 MiB each way in writes of 1 byte to 300 KiB, intact and in order', async () => {
    const { client } = await muxPair();
    const runs = Array.from({ length: 8 }, async (_, i) => {
      const { stream, headers } = await client.open({ connection: 'echo', headers: { authorization: 'Bearer t' } });
      expect(headers['hoop-session-id']).toBe(`s${stream.id}`);
      const payload = randomBytes(4 * MiB);
      const received: Buffer[] = [];
      stream.on('data', (d: Buffer) => received.push(d));
      const ended = once(stream, 'end');
      let offset = 0;
      let n = 0;
      while (offset < payload.length) {
        const size = Math.min(payload.length - offset, [1, 17, 4096, 70_000, 300 * 1024][(n++ + i) % 5]!);
        if (!stream.write(payload.subarray(offset, offset + size))) await once(stream, 'drain');
        offset += size;
      }
      stream.end();
      await ended;
      expect(sha(Buffer.concat(received))).toBe(sha(payload));
    });
    await Promise.all(runs);
    // Streams done on both sides are forgotten.
    await new Promise((r) => setImmediate(r));
    expect(client.size).toBe(0);
  });

  it('holds back-pressure per stream: a stalled reader bounds its writer while another stream keeps flowing', async () => {
    let stalled!: MuxStream;
    let lively!: MuxStream;
    const { client } = await muxPair((stream) => {
      stream.accept({});
      stream.on('error', () => undefined);
      if (stream.id === 1) stalled = stream;
      else {
        lively = stream;
        stream.pipe(stream);
      }
    });
    const a = (await client.open({ connection: 'x', headers: {} })).stream;
    const b = (await client.open({ connection: 'x', headers: {} })).stream;
    // The gateway's stream 1 never reads: the client's writes stop being taken after about a window.
    const chunk = randomBytes(64 * 1024);
    let offered = 0;
    const sent: Buffer[] = [];
    while (a.write(chunk)) {
      offered += chunk.length;
      sent.push(chunk);
      if (offered > 64 * MiB) break;
    }
    offered += chunk.length;
    sent.push(chunk);
    // A window for whatever is still in flight to land: it must fit in the bounds below.
    await quietFor(200);
    // Neither side holds more than the window, the readable and the writable buffers.
    expect(offered).toBeLessThan(STREAM_WINDOW + 4 * 64 * 1024);
    expect(stalled.readableLength).toBeLessThanOrEqual(STREAM_WINDOW);
    expect(a.writableLength).toBeLessThanOrEqual(STREAM_WINDOW + 128 * 1024);
    // Meanwhile the other stream answers 200 round trips.
    for (let i = 0; i < 200; i++) {
      const reply = once(b, 'data');
      b.write(`ping ${i}`);
      expect(String((await reply)[0])).toBe(`ping ${i}`);
    }
    expect(lively).toBeDefined();
    // The reader wakes up: everything arrives, in order.
    const got: Buffer[] = [];
    stalled.on('data', (d: Buffer) => got.push(d));
    const more = randomBytes(3 * MiB);
    a.end(more);
    await once(stalled, 'end');
    expect(sha(Buffer.concat(got))).toBe(sha(Buffer.concat([...sent, more])));
  });

  it("gives each direction the window its receiver announced: the client's for what the gateway sends, the gateway's for what the client sends", async () => {
    /** Bytes `to` holds unread once `from` has written all it can into a stalled stream. */
    const inFlight = async (from: MuxStream, to: MuxStream): Promise<number> => {
      to.pause();
      const chunk = randomBytes(64 * 1024);
      for (let i = 0; i < 64 && from.write(chunk); i++);
      // Until nothing more arrives for 100 ms.
      let held = -1;
      while (to.readableLength !== held) {
        held = to.readableLength;
        await quietFor(100);
      }
      return held;
    };
    for (const window of [100_000, undefined]) {
      const sides: MuxStream[] = [];
      const { client } = await muxPair((stream) => {
        sides.push(stream.accept({}));
        stream.on('error', () => undefined);
      }, window);
      const down = (await client.open({ connection: 'x', headers: {} })).stream;
      const up = (await client.open({ connection: 'x', headers: {} })).stream;
      await eventually(() => expect(sides).toHaveLength(2));
      // Gateway -> client: up to the client's window (its default is larger than the gateway's), never more.
      const announced = window ?? CLIENT_STREAM_WINDOW;
      const toClient = await inFlight(sides[0]!, down);
      expect(toClient).toBeLessThanOrEqual(announced);
      expect(toClient).toBeGreaterThan(announced - 64 * 1024);
      // Client -> gateway: the gateway's window, whatever the client announced.
      const toGateway = await inFlight(up, sides[1]!);
      expect(toGateway).toBeLessThanOrEqual(STREAM_WINDOW);
      expect(toGateway).toBeGreaterThan(STREAM_WINDOW - 64 * 1024);
      client.close();
    }
  });

  it('sends a control message after the bytes written before it, even while the window is closed', async () => {
    let gatewaySide!: MuxStream;
    const { client } = await muxPair((stream) => {
      gatewaySide = stream.accept({});
    });
    const { stream } = await client.open({ connection: 'x', headers: {} });
    const big = randomBytes(STREAM_WINDOW + 100_000);
    stream.write(big);
    // Written while the window is closed, the tail and the control message go out in one batch (_writev).
    const tail = Buffer.from('tail');
    stream.write(tail);
    stream.sendControl({ type: 'after', n: 1 });
    const events: Array<string | number> = [];
    let bytes = 0;
    const received: Buffer[] = [];
    gatewaySide.on('control', (m: ControlMessage) => events.push(`control at ${bytes}`, String(m.n)));
    // A window in which the control message must not overtake the bytes held back.
    await quietFor(100);
    expect(events).toEqual([]); // held behind the bytes the window does not let through yet
    gatewaySide.on('data', (d: Buffer) => {
      bytes += d.length;
      received.push(Buffer.from(d));
    });
    await eventually(() => expect(events).toEqual([`control at ${big.length + tail.length}`, '1']));
    // The control message is a CONTROL frame, never bytes of the stream.
    await eventually(() => expect(bytes).toBeGreaterThanOrEqual(big.length + tail.length));
    expect(Buffer.concat(received).equals(Buffer.concat([big, tail]))).toBe(true);
  });

  it('half-closes each direction on its own, then forgets the stream; a reset reaches the peer as an error and spares the others', async () => {
    const sides: MuxStream[] = [];
    const { client, gateway } = await muxPair((stream) => {
      sides.push(stream.accept({}));
      stream.on('error', () => undefined);
    });
    const one = (await client.open({ connection: 'x', headers: {} })).stream;
    const two = (await client.open({ connection: 'x', headers: {} })).stream;
    await new Promise((r) => setImmediate(r));
    const [g1, g2] = sides as [MuxStream, MuxStream];
    // Client ends its side; the gateway can still answer.
    const g1Ended = once(g1, 'end');
    g1.resume();
    one.end('bye');
    await g1Ended;
    const reply = once(one, 'data');
    const oneEnded = once(one, 'end');
    g1.end('still here');
    expect(String((await reply)[0])).toBe('still here');
    await oneEnded;
    await eventually(() => expect(gateway.size).toBe(1));
    // The gateway drops stream two: the client's side errors, the connection goes on.
    const failed = once(two, 'error');
    g2.destroy(new Error('session limit'));
    const [err] = (await failed) as [HoopError];
    expect(err.code).toBe(ErrorCode.GATEWAY_UNREACHABLE);
    expect(err.message).toMatch(/closed the session: session limit/);
    expect(gateway.size).toBe(0);
    const three = (await client.open({ connection: 'x', headers: {} })).stream;
    expect(three.id).toBe(3);
  });

  it('turns a refusal into a MuxRefusal with the status and body, and the connection keeps serving', async () => {
    const { client } = await muxPair((stream) => {
      if (stream.id === 1) stream.refuse(403, { error: { code: 'HOOP_ACCESS_DENIED', message: 'no' } });
      else stream.accept({});
    });
    const refused = await client.open({ connection: 'x', headers: {} }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(MuxRefusal);
    expect(refused).toMatchObject({ status: 403, body: { error: { code: 'HOOP_ACCESS_DENIED' } } });
    await expect(client.open({ connection: 'x', headers: {} })).resolves.toMatchObject({ headers: {} });
  });

  it('writes what every stream wrote in one turn in one socket write', async () => {
    const sides: MuxStream[] = [];
    const { client, gatewaySocket } = await muxPair((stream) => {
      sides.push(stream.accept({}));
    });
    const streams = await Promise.all(Array.from({ length: 8 }, async () => (await client.open({ connection: 'x', headers: {} })).stream));
    for (const s of streams) s.resume();
    await eventually(() => expect(sides).toHaveLength(8));
    const writes: number[] = [];
    const write = gatewaySocket.write.bind(gatewaySocket);
    gatewaySocket.write = ((chunk: Buffer, ...rest: never[]) => {
      writes.push(chunk.length);
      return write(chunk, ...rest);
    }) as typeof gatewaySocket.write;
    const received = Promise.all(streams.map((s) => once(s, 'data')));
    for (const side of sides) side.write(Buffer.alloc(100, side.id));
    await received;
    expect(writes).toEqual([8 * (9 + 100)]);
  });

  it('ends the whole connection on a frame that breaks the protocol, with every stream in error', async () => {
    const cases: Array<[string, (s: net.Socket) => void, RegExp]> = [
      ['garbage', (s) => s.write(Buffer.from('GET / HTTP/1.1\r\n\r\n')), /unknown frame type/],
      ['a frame for a stream never opened', (s) => s.write(muxWindowFrame(99, 10)), /stream 99, which was never opened/],
      ['an OPEN out of order', (s) => s.write(muxJsonFrame(MuxFrameType.OPEN, 1, { connection: 'x', headers: {} })), /opened out of order/],
      [
        'DATA past the window',
        (s) => {
          const piece = Buffer.alloc(MAX_MUX_DATA);
          for (let i = 0; i <= STREAM_WINDOW / MAX_MUX_DATA; i++) s.write(Buffer.concat([muxHeader(MuxFrameType.DATA, 1, piece.length), piece]));
        },
        /sent past its window/,
      ],
      ['an OPEN with a window of nothing', (s) => s.write(muxJsonFrame(MuxFrameType.OPEN, 2, { connection: 'x', headers: {}, window: 0 })), /"window" must be/],
      ['an OPEN with a window past the largest', (s) => s.write(muxJsonFrame(MuxFrameType.OPEN, 2, { connection: 'x', headers: {}, window: MAX_STREAM_WINDOW + 1 })), /"window" must be/],
      ['an OPEN whose headers are not strings', (s) => s.write(muxJsonFrame(MuxFrameType.OPEN, 2, { connection: 'x', headers: { authorization: 1 } })), /is not a string/],
    ];
    for (const [name, send, text] of cases) {
      const opened: MuxStream[] = [];
      const { client, gateway, clientSocket } = await muxPair((stream) => {
        opened.push(stream.accept({}));
        stream.on('error', () => undefined);
      });
      const { stream } = await client.open({ connection: 'x', headers: {} });
      stream.on('error', () => undefined);
      const closed = once(gateway, 'close');
      send(clientSocket); // the raw socket under the client's mux: a client that writes what it likes
      const [err] = (await closed) as [HoopError];
      expect(err?.code, name).toBe(ErrorCode.PROTOCOL_VIOLATION);
      expect(err.message, name).toMatch(text);
      expect(opened[0]!.destroyed, name).toBe(true);
      expect(gateway.size, name).toBe(0);
    }
  });
});
