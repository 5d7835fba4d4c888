/**
 * A binary-format value read as the detectors read text (src/policy/masking/values.ts): decoded
 * where its type is known (text-like types, integers, floats, numeric, uuid; arrays and records
 * element by element, by the type each names), every way its bytes may carry text or a number
 * otherwise (an extension's type such as citext, an enum, a bytea, a range, xid8). So a card in a
 * `text[]`, a record, a `float8` or an `int8range` sent in binary is found as in text format, and a
 * type hoop does not know is read, not passed unseen.
 *
 * @see https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-FORMAT-CODES
 * @see https://github.com/postgres/postgres/blob/master/src/backend/utils/adt/arrayfuncs.c (array_send)
 * @see https://github.com/postgres/postgres/blob/master/src/backend/utils/adt/rowtypes.c (record_send)
 */

/** Types whose binary value holds no text a detector looks for (bool, date, time, timestamp, interval, inet, macaddr, …). */
const NO_TEXT = new Set<number>([16, 650, 774, 829, 869, 1082, 1083, 1114, 1184, 1186, 1266, 1560, 1562]);

/** How deep arrays and records nest before the rest is read as bytes. */
const MAX_DEPTH = 16;

/** The text of binary value `value` of type `oid`, parts of an array or record on lines of their own. */
export function binaryText(value: Buffer, oid: number, depth = 0): string {
  switch (oid) {
    case 17: // bytea, "char", name, text, json, xml, bpchar, varchar, unknown: the text itself (a bytea's as its bytes read)
    case 18:
    case 19:
    case 25:
    case 114:
    case 142:
    case 705:
    case 1042:
    case 1043:
      return value.toString('utf8');
    case 3802: // jsonb: a version byte, then the text
      return value.subarray(1).toString('utf8');
    case 21:
      return value.length === 2 ? String(value.readInt16BE(0)) : value.toString('utf8');
    case 23:
    case 26:
      return value.length === 4 ? String(oid === 23 ? value.readInt32BE(0) : value.readUInt32BE(0)) : value.toString('utf8');
    case 20:
      return value.length === 8 ? value.readBigInt64BE(0).toString() : value.toString('utf8');
    case 700:
      return value.length === 4 ? String(value.readFloatBE(0)) : value.toString('utf8');
    case 701:
      return value.length === 8 ? String(value.readDoubleBE(0)) : value.toString('utf8');
    case 1700:
      return numericBinaryToString(value) ?? value.toString('utf8');
    case 2950:
      return value.toString('hex').replace(/^(.{8})(.{4})(.{4})(.{4})/, '$1-$2-$3-$4-');
  }
  if (NO_TEXT.has(oid)) return '';
  if (depth < MAX_DEPTH) {
    const parts = arrayParts(value) ?? recordParts(value);
    if (parts) return parts.map(([o, v]) => (v === null ? '' : binaryText(v, o, depth + 1))).join('\n');
  }
  return unknownText(value);
}

/** How much of a value of a type hoop does not decode is also read as numbers. */
const NUMBERS_READ = 1024;

/**
 * A value of a type hoop does not decode, read every way its bytes may carry what a client shows: as UTF-8 (an enum,
 * citext), and bytes that are no text each 8 bytes as an integer and a float wherever they start (xid8, money, pg_lsn, a range's or multirange's
 * int8 or float8 bounds, an extension's), as a numeric, and the numerics its length-prefixed parts hold (numrange's bounds).
 */
function unknownText(value: Buffer): string {
  const text = value.toString('utf8');
  // Text (an enum, citext): read as it is; bytes that are no text (a control, an invalid sequence), or 8 of them (an int8's), are read as numbers too.
  if (value.length !== 8 && !/[\x00-\x08\x0e-\x1f\x7f\ufffd]/.test(text)) return text;
  const texts = [text, numericBinaryToString(value) ?? ''];
  const end = Math.min(value.length, NUMBERS_READ);
  for (let at = 0; at + 8 <= end; at++) texts.push(value.readBigInt64BE(at).toString(), String(value.readDoubleBE(at)));
  for (let at = 0; at + 4 <= end; at++) {
    const len = value.readInt32BE(at);
    const number = len >= 8 && at + 4 + len <= value.length ? numericBinaryToString(value.subarray(at + 4, at + 4 + len)) : undefined;
    if (number !== undefined) texts.push(number);
  }
  return texts.join('\n');
}

/** An array's elements (array_send: dimensions, flags, element type, bounds, then each element by its length), when `value` is exactly one. */
function arrayParts(b: Buffer): Array<[number, Buffer | null]> | undefined {
  if (b.length < 12) return undefined;
  const ndim = b.readInt32BE(0);
  const flags = b.readInt32BE(4);
  const element = b.readUInt32BE(8);
  if (ndim < 0 || ndim > 6 || (flags !== 0 && flags !== 1) || b.length < 12 + 8 * ndim) return undefined;
  let count = ndim === 0 ? 0 : 1;
  for (let d = 0; d < ndim; d++) count *= Math.max(0, b.readInt32BE(12 + 8 * d));
  return lengthPrefixed(b, 12 + 8 * ndim, count, () => element);
}

/** A record's fields (record_send: their count, then each field's type and value by its length), when `value` is exactly one. */
function recordParts(b: Buffer): Array<[number, Buffer | null]> | undefined {
  return b.length < 4 ? undefined : lengthPrefixed(b, 4, b.readInt32BE(0), (lengthAt) => b.readUInt32BE(lengthAt - 4), 4);
}

/**
 * `count` values from `start`, each an Int32 length (-1: NULL) and its bytes, preceded by `before`
 * bytes read by `oidOf` (given where the length starts); undefined unless they end exactly at the end.
 */
function lengthPrefixed(b: Buffer, start: number, count: number, oidOf: (lengthAt: number) => number, before = 0): Array<[number, Buffer | null]> | undefined {
  if (count < 0 || count > (b.length - start) / (4 + before)) return undefined;
  const out: Array<[number, Buffer | null]> = [];
  let at = start;
  for (let i = 0; i < count; i++) {
    if (at + before + 4 > b.length) return undefined;
    at += before;
    const oid = oidOf(at);
    const len = b.readInt32BE(at);
    at += 4;
    if (len < -1 || (len > 0 && at + len > b.length)) return undefined;
    out.push([oid, len === -1 ? null : b.subarray(at, at + Math.max(0, len))]);
    at += Math.max(0, len);
  }
  return at === b.length ? out : undefined;
}

/** Decimal text of a binary numeric value, or undefined for NaN/infinities/malformed input. */
export function numericBinaryToString(value: Buffer): string | undefined {
  if (value.length < 8) return undefined;
  const ndigits = value.readInt16BE(0);
  const weight = value.readInt16BE(2);
  const sign = value.readUInt16BE(4);
  const dscale = value.readInt16BE(6);
  if (ndigits < 0 || value.length !== 8 + 2 * ndigits || (sign !== 0 && sign !== 0x4000) || dscale < 0) return undefined;
  const digit = (i: number): number => (i < ndigits ? value.readInt16BE(8 + 2 * i) : 0);
  let int = '';
  for (let i = 0; i <= weight; i++) int += i === 0 ? String(digit(i)) : String(digit(i)).padStart(4, '0');
  if (int === '') int = '0';
  let frac = '';
  for (let i = weight + 1; frac.length < dscale; i++) frac += i < 0 ? '0000' : String(digit(i)).padStart(4, '0');
  frac = frac.slice(0, dscale);
  return (sign === 0x4000 ? '-' : '') + int + (frac ? `.${frac}` : '');
}
