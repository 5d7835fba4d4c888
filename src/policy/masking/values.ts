/**
 * Masking one field value of a known type and wire format (0 text, 1 binary), so that what goes
 * back to the client is still a valid value of the column's type, or NULL.
 *
 * The rule: a value of a text-like type (text, varchar, bpchar, name, unknown, json, jsonb, xml)
 * is rewritten in place; in binary format such a value is its text bytes (jsonb: a version byte
 * 1, then the text), so the same rewrite applies. A value of any other type that must be masked
 * becomes NULL, since `[redacted]` or `****1111` is not a valid integer, date or uuid. Content
 * detectors inspect text-format values of every type (a hit in a scalar non-text type such as
 * int8 or numeric makes the field NULL; arrays and composites are rewritten in place, as the
 * replacements contain no array or record syntax) and binary values read as text (see
 * {@link binaryText}: a hit in one makes the field NULL).
 *
 * @see https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-FORMAT-CODES
 * @see https://www.postgresql.org/docs/current/datatype-json.html
 */
import { binaryText } from './binary-text.js';
import { EXPONENT_NUMBER, integerDigits } from './detectors.js';
import { AHEAD_CHARS, type MaskingRules } from './rules.js';
import type { MaskStrategy } from './strategies.js';

/** Well-known type OIDs (pg_type.dat). @see https://www.postgresql.org/docs/current/catalog-pg-type.html */
export const TypeOid = {
  NAME: 19,
  INT8: 20,
  TEXT: 25,
  JSON: 114,
  XML: 142,
  UNKNOWN: 705,
  BPCHAR: 1042,
  VARCHAR: 1043,
  NUMERIC: 1700,
  JSONB: 3802,
} as const;

const textLike = new Set<number>([TypeOid.TEXT, TypeOid.VARCHAR, TypeOid.BPCHAR, TypeOid.NAME, TypeOid.UNKNOWN, TypeOid.JSON, TypeOid.JSONB, TypeOid.XML]);

/** Whether `text` is a JSON text. */
export function parsesAsJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** Scalar types whose text form cannot hold a replacement text: a masked value becomes NULL. */
const scalarNonText = new Set<number>([16, 17, 18, 20, 21, 23, 26, 28, 29, 650, 700, 701, 774, 790, 829, 869, 1082, 1083, 1114, 1184, 1186, 1266, 1560, 1562, 1700, 2950]);

/** Whether values of the type (by OID) are text on the wire in both formats. */
export function isTextLike(typeOid: number): boolean {
  return textLike.has(typeOid);
}

/** A column's type and wire format. */
export interface FieldType {
  typeOid: number;
  /** 0 text, 1 binary. */
  format: number;
}

function decodeText(value: Buffer, t: FieldType): string {
  if (t.format === 1 && t.typeOid === TypeOid.JSONB) return value.subarray(1).toString('utf8');
  return value.toString('utf8');
}

function encodeText(text: string, t: FieldType): Buffer {
  const b = Buffer.from(text, 'utf8');
  if (t.format === 1 && t.typeOid === TypeOid.JSONB) return Buffer.concat([Buffer.from([1]), b]);
  return b;
}

const isJson = (oid: number): boolean => oid === TypeOid.JSON || oid === TypeOid.JSONB;

/**
 * A whole field masked by `strategy`: the rewritten bytes, or null for SQL NULL.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-DATAROW
 */
export function maskField(value: Buffer, t: FieldType, strategy: MaskStrategy, rules: MaskingRules): Buffer | null {
  if (!textLike.has(t.typeOid)) return null;
  let text = decodeText(value, t);
  if (isJson(t.typeOid)) {
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed === 'string') text = parsed;
    } catch {
      /* mask the raw text */
    }
  }
  const masked = rules.apply(text, strategy, true);
  if (masked === null) return null;
  return encodeText(isJson(t.typeOid) ? JSON.stringify(masked) : masked, t);
}

/**
 * A text-format value as its client reads it, where that differs from its text: bytea's hex (or
 * escaped) bytes, a float's exponent form as its digits, money without its symbol and separators,
 * a `json` string's `\u` escapes of letters and digits decoded (jsonb's output has none). A match in
 * what only the reading shows makes a scalar field NULL; json is masked as read.
 */
function asClientReads(text: string, oid: number): string {
  switch (oid) {
    case 17:
      return text.startsWith('\\x')
        ? Buffer.from(text.slice(2), 'hex').toString('latin1')
        : text.replace(/\\([0-7]{3}|\\)/g, (_m, e: string) => (e === '\\' ? e : String.fromCharCode(Number.parseInt(e, 8))));
    case 700:
    case 701: {
      const x = Number(text);
      return /e/i.test(text) && Number.isFinite(x) ? BigInt(Math.trunc(x)).toString() : text;
    }
    case 790:
      return text.replace(/[^0-9.-]/g, '');
    case TypeOid.JSON:
    case TypeOid.JSONB:
      // Its escapes decoded, and a number in exponent form read as the digits a JSON parser makes of it.
      return readableView(text);
    case TypeOid.XML:
      return decodePrintable(text);
    default:
      return textLike.has(oid) ? text : readableView(text);
  }
}

/** What an escape may decode to for the detectors: a letter, a digit (a fullwidth one too), `@ . + -`, a space or dash a card's groups may be joined by. */
const DECODED = /^[0-9A-Za-z @.+\-\uff10-\uff19\u00a0\u2007\u2009\u202f\u2010-\u2013\u2212\uff0d]+$/;
/** HTML's named references of those. */
const NAMED: Record<string, string> = { nbsp: '\u00a0', ndash: '\u2013', minus: '\u2212', hyphen: '\u2010', dash: '\u2010', thinsp: '\u2009', numsp: '\u2007', period: '.', commat: '@', plus: '+' };

/**
 * What may spell a detector's match (never a quote) spelt as an escape a reader decodes, decoded
 * ({@link DECODED}): JSON's and JavaScript's `\uXXXX`, `\u{X}` and `\xXX`, an XML or HTML
 * character reference (`&#x34;`, `&#X34;`, `&#0052;`, the `;` left out as HTML allows, `&nbsp;`),
 * a URL's `%34` and `%C2%A0` (UTF-8).
 */
function decodePrintable(text: string): string {
  return text.replace(
    /\\u([0-9a-fA-F]{4})|\\u\{0*([0-9a-fA-F]{1,6})\}|\\x([0-9a-fA-F]{2})(?![0-9a-fA-F])|&#[xX]0*([0-9a-fA-F]{1,6});?|&#0*([0-9]{1,7});?|&([a-z]{4,6});|((?:%[0-9a-fA-F]{2})+)/g,
    (whole, u?: string, braced?: string, x?: string, hexRef?: string, decRef?: string, named?: string, percent?: string) => {
      let c: string | undefined;
      if (named !== undefined) c = NAMED[named];
      else if (percent !== undefined) {
        try {
          c = decodeURIComponent(percent);
        } catch {
          c = undefined;
        }
      } else {
        const code = decRef !== undefined ? Number.parseInt(decRef, 10) : Number.parseInt((u ?? braced ?? x ?? hexRef)!, 16);
        c = code <= 0x10ffff ? String.fromCodePoint(code) : undefined;
      }
      return c !== undefined && DECODED.test(c) ? c : whole;
    },
  );
}

/** What every rewrite of {@link readableView} begins with: an escape's `\\`, `&` or `%`, or an exponent's `e` after a digit or a point; a text without one reads as written. */
const MAY_READ_OTHERWISE = /[\\&%]|[\d.]e/i;

/**
 * What a value of any type (an array, a record, a range, a COPY row's field) holds as its client
 * reads it, for the detectors: hex bytea runs decoded, numbers in exponent form as the digits of their value,
 * escapes and character references of letters and digits decoded.
 */
export function readableView(text: string): string {
  return MAY_READ_OTHERWISE.test(text) ? readerRewrites(text) : text;
}

/** {@link readableView}'s rewrites, all of them (exported for the test that its shortcut changes nothing). */
export function readerRewrites(text: string): string {
  return decodePrintable(text)
    .replace(/\\x([0-9a-fA-F]{12,})/g, (_m, hex: string) => ` ${Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex').toString('latin1')} `)
    .replace(EXPONENT_NUMBER, (f) => integerDigits(f) ?? f);
}

/** The text the detectors read of a field: as its client reads it (./binary-text.ts for binary values); the raw text too where there is one. */
function fieldText(value: Buffer, t: FieldType): { raw: string | undefined; text: string } {
  const raw = t.format === 0 || textLike.has(t.typeOid) ? decodeText(value, t) : undefined;
  return { raw, text: raw !== undefined ? asClientReads(raw, t.typeOid) : binaryText(value, t.typeOid) };
}

/** What {@link detectInField} would read of `value` when it is long enough to mask ahead (./mask-ahead.ts), else undefined. */
export function longFieldText(value: Buffer, t: FieldType): string | undefined {
  if (value.length < AHEAD_CHARS) return undefined;
  const { text } = fieldText(value, t);
  return text.length >= AHEAD_CHARS ? text : undefined;
}

/**
 * A field with the content detectors applied: undefined when nothing was found (keep the bytes),
 * the rewritten bytes, or null for SQL NULL (a match whose strategy is `null`, or a match in a
 * value whose type cannot hold the replacement).
 */
export function detectInField(value: Buffer, t: FieldType, rules: MaskingRules): Buffer | null | undefined {
  if (rules.detectors.length === 0 || value.length < 6) return undefined;
  const { raw, text } = fieldText(value, t);
  const r = rules.maskText(text);
  if (!r.changed) return undefined;
  if (r.nullify) return null;
  // Found only in how the client reads it (a hex run, a float's digits): the text cannot be rewritten in place.
  if (raw !== undefined && text !== raw && !textLike.has(t.typeOid)) return null;
  // A replacement is a value of the column's type: a card masked inside a JSON number is no JSON.
  if (isJson(t.typeOid) && !parsesAsJson(r.text)) return null;
  if (t.format === 1 && !textLike.has(t.typeOid)) return null;
  if (t.format === 0 && scalarNonText.has(t.typeOid)) return null;
  return encodeText(r.text, t);
}
