import { describe, expect, it } from 'vitest';
import { ErrorCode, HoopError } from '../../src/errors.js';
import { newSessionId } from '../../src/tunnel/transport.js';
import {
  FRAME_HEADER_LENGTH,
  FrameReader,
  FrameType,
  MAX_CONTROL_PAYLOAD,
  MAX_DATA_PAYLOAD,
  decodeControl,
  encodeControl,
  encodeFrame,
  encodeFrameHeader,
  type Frame,
} from '../../src/tunnel/frames.js';
import { thrown } from '../harness/thrown.js';

function drain(reader: FrameReader): Frame[] {
  const out: Frame[] = [];
  for (let f = reader.next(); f !== null; f = reader.next()) out.push(f);
  return out;
}

function rawHeader(type: number, length: number): Buffer {
  const b = Buffer.alloc(5);
  b[0] = type;
  b.writeUInt32BE(length, 1);
  return b;
}

function expectViolation(fn: () => unknown, pattern: RegExp): void {
  const caught = thrown(fn);
  expect(caught).toBeInstanceOf(HoopError);
  expect((caught as HoopError).code).toBe(ErrorCode.PROTOCOL_VIOLATION);
  expect((caught as HoopError).message).toMatch(pattern);
}

const stream = Buffer.concat([
  encodeFrame(FrameType.DATA, Buffer.from('hello')),
  encodeControl({ type: 'close', reason: 'upstream-auth-failed', message: 'ünïcode ✓' }),
  encodeFrame(FrameType.DATA, Buffer.alloc(0)),
  encodeFrame(FrameType.DATA, Buffer.from([0, 1, 2, 3, 255])),
  encodeControl({ type: 'error', code: 'HOOP_X' }),
]);

/** DATA is a byte stream: consecutive DATA pieces are one run of bytes between CONTROL messages. */
function summarise(frames: Frame[]): unknown[] {
  const out: unknown[] = [];
  let data = '';
  for (const f of frames) {
    if (f.type === FrameType.DATA) {
      data += f.payload.toString('hex');
      continue;
    }
    if (data) out.push(['data', data]);
    data = '';
    out.push(['control', f.control]);
  }
  if (data) out.push(['data', data]);
  return out;
}

const expected = [
  ['data', Buffer.from('hello').toString('hex')],
  ['control', { type: 'close', reason: 'upstream-auth-failed', message: 'ünïcode ✓' }],
  ['data', '00010203ff'],
  ['control', { type: 'error', code: 'HOOP_X' }],
];

describe('encodeFrame / encodeFrameHeader', () => {
  it('writes type, big-endian length, payload', () => {
    const f = encodeFrame(FrameType.DATA, Buffer.from('abc'));
    expect([...f]).toEqual([0x01, 0, 0, 0, 3, 0x61, 0x62, 0x63]);
    expect([...encodeFrameHeader(FrameType.CONTROL, 0x01020304 & 0xffff)]).toEqual([0x02, 0, 0, 0x03, 0x04]);
    expect(encodeFrame(FrameType.DATA, Buffer.alloc(0)).length).toBe(FRAME_HEADER_LENGTH);
  });

  it('refuses payloads above the limits and unknown types', () => {
    expect(() => encodeFrame(FrameType.DATA, Buffer.alloc(MAX_DATA_PAYLOAD + 1))).toThrow(/limit/);
    expect(() => encodeFrameHeader(FrameType.CONTROL, MAX_CONTROL_PAYLOAD + 1)).toThrow(/limit/);
    expect(() => encodeFrameHeader(7 as FrameType, 1)).toThrow(/unknown type/);
    expect(encodeFrame(FrameType.DATA, Buffer.alloc(MAX_DATA_PAYLOAD)).length).toBe(MAX_DATA_PAYLOAD + 5);
    expect(() => encodeControl({ type: 'x', blob: 'a'.repeat(MAX_CONTROL_PAYLOAD) })).toThrow(/limit/);
    expect(() => encodeControl({} as never)).toThrow(/type/);
  });
});

describe('FrameReader', () => {
  it('decodes a whole stream pushed at once', () => {
    const r = new FrameReader();
    r.push(stream);
    expect(summarise(drain(r))).toEqual(expected);
    expect(r.idle).toBe(true);
  });

  it('decodes the stream split at every point', () => {
    for (let i = 0; i <= stream.length; i++) {
      const r = new FrameReader();
      r.push(stream.subarray(0, i));
      const frames = drain(r);
      r.push(stream.subarray(i));
      frames.push(...drain(r));
      expect(summarise(frames), `split at ${i}`).toEqual(expected);
      expect(r.idle).toBe(true);
    }
  });

  it('decodes the stream split at every pair of points', () => {
    for (let i = 0; i <= stream.length; i++) {
      for (let j = i; j <= stream.length; j++) {
        const r = new FrameReader();
        const frames: Frame[] = [];
        for (const part of [stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)]) {
          r.push(Buffer.from(part));
          frames.push(...drain(r));
        }
        expect(summarise(frames)).toEqual(expected);
      }
    }
  });

  it('decodes the stream one byte at a time', () => {
    const r = new FrameReader();
    const frames: Frame[] = [];
    for (const byte of stream) {
      r.push(Buffer.from([byte]));
      frames.push(...drain(r));
    }
    expect(summarise(frames)).toEqual(expected);
  });

  it('returns views, not copies, for payloads within one chunk', () => {
    const chunk = encodeFrame(FrameType.DATA, Buffer.from('zero-copy'));
    const r = new FrameReader();
    r.push(chunk);
    const f = r.next()!;
    expect(f.payload.buffer).toBe(chunk.buffer);
    expect(f.payload.byteOffset).toBe(chunk.byteOffset + 5);
  });

  it('streams a DATA payload spanning chunks as views of them, without waiting for the whole frame (1 MiB in 16 KiB pieces)', () => {
    const payload = Buffer.alloc(MAX_DATA_PAYLOAD);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
    const frame = Buffer.concat([encodeFrameHeader(FrameType.DATA, payload.length), payload]);
    const r = new FrameReader();
    const pieces: Buffer[] = [];
    for (let o = 0; o < frame.length; o += 16 * 1024) {
      const chunk = frame.subarray(o, o + 16 * 1024);
      r.push(chunk);
      const got = drain(r);
      expect(got.length, `piece at ${o}`).toBe(1);
      expect(got[0]!.payload.buffer).toBe(frame.buffer);
      pieces.push(got[0]!.payload);
    }
    expect(Buffer.concat(pieces).equals(payload)).toBe(true);
    expect(r.idle).toBe(true);
  });

  it('returns a CONTROL payload spanning chunks whole', () => {
    const frame = encodeControl({ type: 'close', message: 'x'.repeat(5000) });
    const r = new FrameReader();
    r.push(frame.subarray(0, 100));
    expect(r.next()).toBeNull();
    r.push(frame.subarray(100));
    expect(r.next()).toMatchObject({ type: FrameType.CONTROL, control: { type: 'close', message: 'x'.repeat(5000) } });
  });

  it('accepts a DATA payload of exactly the limit, rejects one byte more as soon as the header is in', () => {
    const r = new FrameReader();
    r.push(rawHeader(FrameType.DATA, MAX_DATA_PAYLOAD));
    expect(r.next()).toBeNull();
    const bad = new FrameReader();
    bad.push(rawHeader(FrameType.DATA, MAX_DATA_PAYLOAD + 1));
    expectViolation(() => bad.next(), /more than the 1048576-byte limit/);
  });

  it('rejects an oversize CONTROL length and a huge length', () => {
    const r = new FrameReader();
    r.push(rawHeader(FrameType.CONTROL, MAX_CONTROL_PAYLOAD + 1));
    expectViolation(() => r.next(), /65536-byte limit/);
    const h = new FrameReader();
    h.push(rawHeader(FrameType.DATA, 0xffffffff));
    expectViolation(() => h.next(), /4294967295 bytes/);
  });

  it('rejects an unknown type, even split inside the header, and stays failed', () => {
    for (const type of [0x00, 0x03, 0x7f, 0xff]) {
      const r = new FrameReader();
      const header = rawHeader(type, 1);
      r.push(header.subarray(0, 2));
      expect(r.next()).toBeNull();
      r.push(header.subarray(2));
      expectViolation(() => r.next(), /unknown frame type/);
      r.push(encodeFrame(FrameType.DATA, Buffer.from('x')));
      expectViolation(() => r.next(), /unknown frame type/);
    }
  });

  it('rejects a bad CONTROL payload: not JSON, not an object, no string type, bad UTF-8, empty', () => {
    const cases: Array<[Buffer, RegExp]> = [
      [Buffer.from('{"type":'), /not valid JSON/],
      [Buffer.from('[1,2]'), /JSON object with a string "type"/],
      [Buffer.from('"close"'), /JSON object/],
      [Buffer.from('null'), /JSON object/],
      [Buffer.from('{"type":7}'), /string "type"/],
      [Buffer.from('{"reason":"x"}'), /string "type"/],
      [Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]), /UTF-8/],
      [Buffer.alloc(0), /not valid JSON/],
    ];
    for (const [payload, pattern] of cases) {
      const r = new FrameReader();
      r.push(Buffer.concat([rawHeader(FrameType.CONTROL, payload.length), payload]));
      expectViolation(() => r.next(), pattern);
      expectViolation(() => decodeControl(payload), pattern);
    }
  });

  it('handles zero-length DATA frames anywhere, including split headers', () => {
    const zeros = Buffer.concat([encodeFrame(FrameType.DATA, Buffer.alloc(0)), encodeFrame(FrameType.DATA, Buffer.alloc(0))]);
    for (let i = 0; i <= zeros.length; i++) {
      const r = new FrameReader();
      r.push(zeros.subarray(0, i));
      const frames = drain(r);
      r.push(zeros.subarray(i));
      frames.push(...drain(r));
      expect(frames.map((f) => [f.type, f.payload.length])).toEqual([
        [1, 0],
        [1, 0],
      ]);
    }
  });

  it('reports idleness mid-frame', () => {
    const r = new FrameReader();
    const f = encodeFrame(FrameType.DATA, Buffer.from('abcdef'));
    r.push(f.subarray(0, 3));
    expect(r.next()).toBeNull();
    expect(r.idle).toBe(false);
    r.push(f.subarray(3, 7));
    expect(r.next()?.payload.toString()).toBe('ab');
    expect(r.next()).toBeNull();
    expect(r.idle).toBe(false);
    r.push(Buffer.alloc(0));
    r.push(f.subarray(7));
    expect(r.next()?.payload.toString()).toBe('cdef');
    expect(r.idle).toBe(true);
  });
});

describe('session ids', () => {
  it('are what the gateway accepts, and never begin with - or _ (they are given to commands as arguments)', () => {
    const ids = Array.from({ length: 5000 }, () => newSessionId());
    expect(ids.every((id) => /^[A-Za-z0-9][A-Za-z0-9_-]{15}$/.test(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
