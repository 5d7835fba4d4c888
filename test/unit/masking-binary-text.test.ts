/**
 * Binary values read as the detectors read text: arrays and records element by element, by the
 * types they name; any bytes (malformed, nested past the cap) read without a throw.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { binaryText } from '../../src/policy/masking/binary-text.js';

/** array_send of one dimension of `type`, each element by its length (null: -1). */
function array(type: number, items: Array<Buffer | null>): Buffer {
  const head = Buffer.alloc(20);
  head.writeInt32BE(1, 0);
  head.writeInt32BE(items.includes(null) ? 1 : 0, 4);
  head.writeUInt32BE(type, 8);
  head.writeInt32BE(items.length, 12);
  head.writeInt32BE(1, 16);
  return Buffer.concat([head, ...items.map(lengthPrefixed)]);
}

function lengthPrefixed(b: Buffer | null): Buffer {
  const len = Buffer.alloc(4);
  len.writeInt32BE(b === null ? -1 : b.length);
  return b === null ? len : Buffer.concat([len, b]);
}

/** record_send of `fields`: their count, then each one's type and value. */
function record(fields: Array<[number, Buffer | null]>): Buffer {
  const count = Buffer.alloc(4);
  count.writeInt32BE(fields.length);
  return Buffer.concat([
    count,
    ...fields.map(([type, v]) => {
      const oid = Buffer.alloc(4);
      oid.writeUInt32BE(type);
      return Buffer.concat([oid, lengthPrefixed(v)]);
    }),
  ]);
}

const int8 = (n: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(n);
  return b;
};

describe('binaryText', () => {
  it('reads arrays and records by the types they name, at any depth, and a type it does not know as its bytes', () => {
    const card = Buffer.from('4111 1111 1111 1111');
    expect(binaryText(array(25, [card, null]), 1009)).toBe('4111 1111 1111 1111\n');
    expect(binaryText(array(20, [int8(4111111111111111n)]), 1016)).toBe('4111111111111111');
    expect(
      binaryText(
        record([
          [25, Buffer.from('a')],
          [1009, array(25, [card])],
          [20, int8(7n)],
        ]),
        2249,
      ),
    ).toBe(`a\n4111 1111 1111 1111\n7`);
    const f = Buffer.alloc(8);
    f.writeDoubleBE(4111111111111111);
    expect(binaryText(f, 701)).toBe('4111111111111111');
    expect(binaryText(Buffer.from('alice@example.com'), 91234)).toBe('alice@example.com');
  });

  it('reads any bytes without a throw, within a bound of work (nesting past 16 read as bytes)', () => {
    for (let i = 0; i < 20_000; i++) binaryText(randomBytes(i % 64), [1009, 2249, 16, 701, 91234][i % 5]!);
    let deep = array(25, [Buffer.from('x')]);
    for (let d = 0; d < 40; d++) deep = array(1009, [deep]);
    expect(typeof binaryText(deep, 1009)).toBe('string');
  });

  it('reads a type it does not decode every way its bytes may carry a number: a range, a multirange, xid8, money, a numeric range (the fifteenth attack)', () => {
    const card = 4111111111111111n;
    const range = (bounds: Buffer[]): Buffer => Buffer.concat([Buffer.from([0x02]), ...bounds.map(lengthPrefixed)]);
    const double = (x: number): Buffer => {
      const b = Buffer.alloc(8);
      b.writeDoubleBE(x);
      return b;
    };
    // numeric_send of 4111111111111111: base-10000 digits 4111 1111 1111 1111, weight 3.
    const numeric = Buffer.from([0, 4, 0, 3, 0, 0, 0, 0, 0x10, 0x0f, 0x04, 0x57, 0x04, 0x57, 0x04, 0x57]);
    const multirange = (ranges: Buffer[]): Buffer => Buffer.concat([Buffer.from([0, 0, 0, ranges.length]), ...ranges.map(lengthPrefixed)]);
    for (const [what, oid, bytes] of [
      ['int8range', 3926, range([int8(card), int8(card + 1n)])],
      ['xid8', 5069, int8(card)],
      ['money', 790, int8(card * 100n)],
      ['float8 range of an extension', 99_001, range([double(4111111111111111), double(4111111111111112)])],
      ['numrange', 3906, range([numeric])],
      ['int8multirange', 4536, multirange([range([int8(card), int8(card + 1n)])])],
    ] as const)
      expect(binaryText(bytes, oid), what).toContain('4111111111111111');
  });
});
