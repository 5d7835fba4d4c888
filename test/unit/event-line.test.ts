/**
 * Events written field by field into blocks (src/recording/event-line.ts) read back as the JSON
 * that JSON.stringify would have written for the same values: escapes, non-ASCII and invalid
 * UTF-8, the 4 KiB cut, binary values, lines longer than a block, and a line an exception left
 * unfinished.
 */
import { describe, expect, it } from 'vitest';
import { LineBlocks, VALUE_MAX, cutValue } from '../../src/recording/event-line.js';

function lines(blocks: LineBlocks): unknown[] {
  return Buffer.concat(blocks.take())
    .toString('utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as unknown);
}

describe('event lines', () => {
  it('writes text from bytes and strings exactly as JSON.stringify would, whatever the characters', () => {
    const values = ['plain', 'a "quoted" \\ back\\slash', 'tab\tnew\nline\u0001', 'héllo wörld ✓ 🐘', '', 'x'.repeat(VALUE_MAX), 'y'.repeat(VALUE_MAX + 1), '€'.repeat(VALUE_MAX + 10)];
    const blocks = new LineBlocks();
    for (const v of values) {
      const bytes = Buffer.from(`..${v}..`);
      blocks
        .begin('row', 7)
        .key('fromBytes')
        .text(bytes, 2, bytes.length - 2)
        .key('fromString')
        .string(v)
        .end();
    }
    const invalid = Buffer.from([0x61, 0xff, 0xc3, 0x62]);
    blocks.begin('row', 8).key('fromBytes').text(invalid, 0, invalid.length).end();
    expect(lines(blocks)).toEqual([...values.map((v) => ({ t: 'row', at: 7, fromBytes: cutValue(v), fromString: v })), { t: 'row', at: 8, fromBytes: cutValue(invalid.toString('utf8')) }]);
  });

  it('writes binary values as base64, cut like text, and arrays, numbers, null and any JSON value', () => {
    const big = Buffer.alloc(5000, 7);
    const blocks = new LineBlocks();
    blocks
      .begin('bind', 1)
      .key('params')
      .array()
      .binary(Buffer.from([1, 2, 3]), 0, 3)
      .null()
      .binary(big, 0, big.length)
      .close()
      .key('n')
      .number(42)
      .key('masked')
      .json([{ strategy: 'redact' }, null])
      .end();
    expect(lines(blocks)).toEqual([{ t: 'bind', at: 1, params: ['base64:AQID', null, `base64:${cutValue(big.toString('base64'))}`], n: 42, masked: [{ strategy: 'redact' }, null] }]);
  });

  it('keeps lines whole across blocks and lines longer than a block, and drops a line left unfinished', () => {
    const blocks = new LineBlocks();
    const long = 'z'.repeat(3000);
    for (let i = 0; i < 40; i++) blocks.begin('row', i).key('values').array().string(long).string(long).close().end();
    blocks.begin('broken', 99).key('values').array().string('never ended');
    blocks.add(JSON.stringify({ t: 'end', at: 100, huge: 'h'.repeat(40_000) }));
    const all = lines(blocks) as Array<{ t: string; at: number }>;
    expect(all.map((e) => e.t)).toEqual([...Array(40).fill('row'), 'end']);
    expect(all[39]).toEqual({ t: 'row', at: 39, values: [long, long] });
    expect(blocks.bytes).toBe(0);
  });
});

describe('numbers in event lines', () => {
  it('writes integers digit by digit and any other number as JSON does', () => {
    const numbers = [0, 7, 10, 99, 1000, 1795359456192, Number.MAX_SAFE_INTEGER, -1, 1.5, -0.25, 1e21, Number.NaN, Number.POSITIVE_INFINITY];
    const blocks = new LineBlocks();
    blocks.begin('n', 1795359456192).key('values').array();
    for (const n of numbers) blocks.number(n);
    blocks.close().end();
    expect(lines(blocks)).toEqual([{ t: 'n', at: 1795359456192, values: JSON.parse(JSON.stringify(numbers)) as unknown }]);
  });
});
