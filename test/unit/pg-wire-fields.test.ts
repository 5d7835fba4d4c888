/**
 * Every decoder and encoder of a message with Int16 counts, at 0, 32,767, 32,768 and 65,535 (the
 * counts PostgreSQL reads unsigned), and value lengths at their limits: Bind (whole, its parameter
 * spans, and as it streams), RowDescription, DataRow (read and written) and a binary COPY tuple.
 * The backend's counts cannot reach 32,768 from a real server (1,664 columns at most); the
 * frontend's are also run against one in test/integration/pg-fidelity-wire.test.ts.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
import { describe, expect, it } from 'vitest';
import { BindDecoder, bindParameterSpans, decodeFrontend } from '../../src/postgres/wire/frontend-messages.js';
import { PgProtocolError } from '../../src/postgres/wire/protocol-error.js';
import type { PgMessage } from '../../src/postgres/wire/reader.js';
import { dataRow, parseDataRow, parseRowDescription } from '../../src/postgres/wire/rows.js';
import { MAX_COUNT16, readCount16, readValueLength, writeCount16 } from '../../src/postgres/wire/fields.js';
import { frontendMessage, int32 } from '../harness/pg-frontend.js';

const COUNTS = [0, 1, 32_767, 32_768, 65_535];

function message(raw: Buffer): PgMessage {
  return { type: raw[0]!, body: raw.subarray(5), raw };
}

/** A Bind of `n` one-byte text parameters with `formats` format codes and `results` result codes. */
function bind(n: number, formats: number, results: number): Buffer {
  const params = Buffer.alloc(n * 5);
  for (let i = 0; i < n; i++) {
    params.writeInt32BE(1, i * 5);
    params[i * 5 + 4] = 0x30 + (i % 10);
  }
  const codes = (count: number, code: (i: number) => number): Buffer => {
    const b = Buffer.alloc(2 + 2 * count);
    writeCount16(b, count, 0);
    for (let i = 0; i < count; i++) b.writeInt16BE(code(i), 2 + 2 * i);
    return b;
  };
  const n16 = Buffer.alloc(2);
  writeCount16(n16, n, 0);
  return frontendMessage(
    'B',
    'portal',
    'stmt',
    codes(formats, () => 0),
    n16,
    params,
    codes(results, (i) => i % 2),
  );
}

describe('Int16 counts', () => {
  it('are read unsigned and written up to 65,535, never past it', () => {
    const b = Buffer.alloc(2);
    for (const n of COUNTS) {
      writeCount16(b, n, 0);
      expect(readCount16(b, 0)).toBe(n);
      expect(b.readUInt16BE(0)).toBe(n);
    }
    expect(() => writeCount16(b, MAX_COUNT16 + 1, 0)).toThrow(RangeError);
    expect(() => writeCount16(b, -1, 0)).toThrow(RangeError);
  });

  it.each(COUNTS)('Bind with %i parameters, format codes and result codes: whole, as spans and as it streams', (n) => {
    const raw = bind(n, n, n);
    const whole = decodeFrontend(message(raw));
    expect(whole).toMatchObject({ kind: 'bind', portal: 'portal', statement: 'stmt' });
    expect(whole.kind === 'bind' && whole.resultFormats.length).toBe(n);
    const spans = bindParameterSpans(raw.subarray(5))!;
    expect(spans).toHaveLength(n);
    if (n > 0) expect(raw.subarray(5).toString('latin1', spans[n - 1]!.start, spans[n - 1]!.end)).toBe(String((n - 1) % 10));
    const streamed = new BindDecoder();
    for (let at = 5; at < raw.length; at += 4093) streamed.push(raw.subarray(at, Math.min(raw.length, at + 4093)));
    expect(streamed.finish().resultFormats).toEqual(whole.kind === 'bind' ? whole.resultFormats : []);
  });

  it.each(COUNTS)('RowDescription and DataRow with %i columns', (n) => {
    const fields = Array.from({ length: n }, (_, i) => (i % 3 === 0 ? null : Buffer.from(String(i))));
    const row = dataRow(fields);
    expect(row.readUInt16BE(5)).toBe(n);
    expect(parseDataRow(row.subarray(5))).toEqual(fields);
    const desc = Buffer.alloc(2 + n * 20);
    desc.writeUInt16BE(n, 0);
    for (let i = 0; i < n; i++) {
      desc[2 + i * 20] = 0x61; // "a"
      desc.writeInt16BE(-1, 2 + i * 20 + 6); // attnum: a system column's is negative
      desc.writeInt16BE(-1, 2 + i * 20 + 12); // typlen: varlena
    }
    const parsed = parseRowDescription(desc);
    expect(parsed).toHaveLength(n);
    if (n > 0) expect(parsed[n - 1]).toMatchObject({ name: 'a', attnum: -1, typlen: -1 });
  });
});

describe('value lengths', () => {
  it('-1 is NULL, 0 is empty, anything below -1 is a protocol violation naming where', () => {
    expect(readValueLength(int32(-1), 0, 'DataRow')).toBe(-1);
    expect(readValueLength(int32(0), 0, 'DataRow')).toBe(0);
    expect(readValueLength(int32(2 ** 31 - 1), 0, 'DataRow')).toBe(2 ** 31 - 1);
    expect(() => readValueLength(int32(-2), 0, 'DataRow')).toThrow(new PgProtocolError('DataRow has a value of length -2'));
    expect(() => readValueLength(int32(-(2 ** 31)), 0, 'Bind message')).toThrow(PgProtocolError);
    expect(() => decodeFrontend(message(frontendMessage('B', '', '', 0, 1, int32(-2), 0)))).toThrow('Bind message has a value of length -2');
    expect(() => parseDataRow(Buffer.concat([Buffer.from([0, 1]), int32(-5)]))).toThrow('DataRow has a value of length -5');
    expect(bindParameterSpans(frontendMessage('B', '', '', 0, 1, int32(-2), 0).subarray(5))).toBeUndefined();
  });

  it('a count that promises more than the body holds is truncated, not read past', () => {
    expect(() => decodeFrontend(message(frontendMessage('B', '', '', 0, 65_535, int32(1), Buffer.from('x'), 0)))).toThrow('Bind message is truncated');
    expect(() => parseDataRow(Buffer.from([0xff, 0xff, 0, 0, 0, 0]))).toThrow('message is truncated');
  });
});
