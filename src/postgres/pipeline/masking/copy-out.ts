/**
 * Masking the rows of COPY ... TO STDOUT (copy-out) in text, csv and binary format.
 *
 * The CopyOutResponse says text (0) or binary (1) but not whether text is PostgreSQL's text or
 * CSV format, nor the delimiter: the engine knows those from the parse tree and passes them as a
 * {@link CopyOptions}; the default is text with a tab. PostgreSQL sends one row per CopyData, but
 * the protocol does not promise it, so rows are cut from a carry-over buffer: a row split across
 * CopyData messages is emitted when it is complete.
 *
 * @see https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9 (file formats)
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-COPY
 */
import { PgProtocolError } from '../../wire/protocol-error.js';
import { readInt16, readValueLength } from '../../wire/fields.js';
import type { CopyOptions } from '../../../policy/masking/copy-format.js';

export type { CopyOptions };

/** Masks one field: undefined keeps it, null makes it NULL, a string replaces it. Index is the column position. */
export type CopyFieldMasker = (value: string | null, index: number) => string | null | undefined;
/** Masks one binary field: undefined keeps it, null makes it NULL, a buffer replaces it. */
export type CopyBinaryFieldMasker = (value: Buffer | null, index: number) => Buffer | null | undefined;

/** Most bytes held for one incomplete row. */
const MAX_CARRY = 0x3fffffff;
const BINARY_SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/** What a backslash and one letter stand for in a text-format field. */
const SIMPLE_ESCAPES: Readonly<Record<string, string>> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };
/** How a text-format field writes each character it escapes (the delimiter too), by char code. */
const ESCAPED: Readonly<Record<number, string>> = { 92: '\\\\', 10: '\\n', 13: '\\r', 9: '\\t', 8: '\\b', 12: '\\f', 11: '\\v' };

const isOctal = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '7';
const isHex = (c: string | undefined): boolean => c !== undefined && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'));

/** A text-format field's value: its escapes decoded (the text between them copied whole, so a long field costs one pass). */
export function decodeTextField(raw: string): string {
  let at = raw.indexOf('\\');
  if (at < 0) return raw;
  let out = '';
  let from = 0;
  for (; at >= 0 && at + 1 < raw.length; at = raw.indexOf('\\', from)) {
    out += raw.slice(from, at);
    let i = at + 1;
    const n = raw[i]!;
    if (SIMPLE_ESCAPES[n] !== undefined) out += SIMPLE_ESCAPES[n];
    else if (isOctal(n)) {
      let oct = n;
      while (oct.length < 3 && isOctal(raw[i + 1])) oct += raw[++i];
      out += String.fromCharCode(Number.parseInt(oct, 8));
    } else if (n === 'x' && isHex(raw[i + 1])) {
      let hex = raw[++i]!;
      if (isHex(raw[i + 1])) hex += raw[++i];
      out += String.fromCharCode(Number.parseInt(hex, 16));
    } else out += n;
    from = i + 1;
  }
  return out + raw.slice(from);
}

/** `value` as a text-format field with `delimiter` (one ASCII character): the characters it must escape escaped, the text between them copied whole. */
export function encodeTextField(value: string, delimiter: string): string {
  const d = delimiter.charCodeAt(0);
  let out = '';
  let from = 0;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    const e = ESCAPED[code] ?? (code === d ? `\\${delimiter}` : undefined);
    if (e === undefined) continue;
    out += value.slice(from, i) + e;
    from = i + 1;
  }
  return from === 0 ? value : out + value.slice(from);
}

/** Splits one text-format line (without its newline) at unescaped delimiters. */
function splitTextLine(line: string, delimiter: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < line.length; i++) {
    if (line[i] === '\\') i++;
    else if (line[i] === delimiter) {
      out.push(line.slice(start, i));
      start = i + 1;
    }
  }
  out.push(line.slice(start));
  return out;
}

/** A COPY's delimiter, quote, escape and NULL string, as given or by default. */
export type CsvOptions = Required<Omit<CopyOptions, 'format' | 'header'>>;

export interface CsvField {
  raw: string;
  value: string | null;
}

/** Parses one CSV row starting at `from`; null when the row is not complete (an open quote or no newline). */
export function parseCsvRow(text: string, from: number, o: CsvOptions): { fields: CsvField[]; end: number; eol: string } | null {
  const fields: CsvField[] = [];
  let i = from;
  for (;;) {
    const start = i;
    let value = '';
    let quoted = false;
    // The value is built of runs of the text copied whole, from `run` to where an escape or a quote stands.
    let run = i;
    while (i < text.length) {
      const c = text[i]!;
      if (c === o.quote) {
        value += text.slice(run, i);
        quoted = true;
        run = ++i;
        let closed = false;
        while (i < text.length) {
          const d = text[i]!;
          if (d === o.escape && o.escape !== o.quote && (text[i + 1] === o.quote || text[i + 1] === o.escape)) {
            value += text.slice(run, i) + text[i + 1];
            run = i += 2;
          } else if (d === o.quote) {
            value += text.slice(run, i);
            if (o.escape === o.quote && text[i + 1] === o.quote) {
              value += o.quote;
              run = i += 2;
            } else {
              run = ++i;
              closed = true;
              break;
            }
          } else i++;
        }
        if (!closed) return null;
      } else if (c === o.delimiter || c === '\n' || c === '\r') break;
      else i++;
    }
    if (i >= text.length) return null;
    value += text.slice(run, i);
    const raw = text.slice(start, i);
    fields.push({ raw, value: !quoted && raw === o.null ? null : value });
    if (text[i] === o.delimiter) {
      i++;
      continue;
    }
    const eol = text[i] === '\r' && text[i + 1] === '\n' ? '\r\n' : text[i] === '\r' && i + 1 >= text.length ? '' : text[i]!;
    if (eol === '') return null;
    return { fields, end: i + eol.length, eol };
  }
}

export function encodeCsvField(value: string | null, o: CsvOptions): string {
  if (value === null) return o.null;
  const needs = value === o.null || value === '\\.' || [o.delimiter, o.quote, '\n', '\r'].some((c) => value.includes(c));
  if (!needs) return value;
  let out = o.quote;
  let from = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c !== o.quote && (c !== o.escape || o.escape === o.quote)) continue;
    out += value.slice(from, i) + o.escape;
    from = i;
  }
  return out + value.slice(from) + o.quote;
}

/**
 * Masks the rows of one copy-out stream. Feed each CopyData payload to {@link push}; it returns
 * the payload to forward (complete rows only, masked), possibly empty. Call {@link end} at
 * CopyDone for whatever incomplete row is left.
 *
 * @see https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9
 */
export class CopyOutMasker {
  private carry: Buffer = Buffer.alloc(0);
  private rowIndex = 0;
  private binaryHeaderDone = false;
  private readonly o: CsvOptions;
  /** While {@link peek} runs: who is handed each field in place of the maskers. */
  #peeking: { text: CopyFieldMasker; binary: CopyBinaryFieldMasker } | undefined;

  constructor(
    private readonly options: CopyOptions,
    private readonly maskText: CopyFieldMasker,
    private readonly maskBinary: CopyBinaryFieldMasker,
    /** Masks a whole text that could not be parsed into fields (detectors only). */
    private readonly maskLoose: (text: string) => string,
  ) {
    const csv = options.format === 'csv';
    const quote = options.quote ?? '"';
    this.o = {
      delimiter: options.delimiter ?? (csv ? ',' : '\t'),
      quote,
      escape: options.escape ?? quote,
      null: options.null ?? (csv ? '' : '\\N'),
    };
  }

  /** The masked payload for one CopyData payload. @throws PgProtocolError on malformed binary COPY data */
  push(data: Buffer): Buffer {
    const input = this.carry.length ? Buffer.concat([this.carry, data]) : data;
    if (input.length > MAX_CARRY) throw new PgProtocolError('a COPY row is too long');
    const { out, rest } = this.options.format === 'binary' ? this.binary(input) : this.text(input);
    this.carry = Buffer.from(rest);
    return out;
  }

  /** The bytes of a row begun and not yet ended. */
  get carried(): number {
    return this.carry.length;
  }

  /** Hands each field of the rows {@link push} of `data` would mask to `fields` instead, and takes nothing: the stream stays as it was. */
  peek(data: Buffer, fields: { text: CopyFieldMasker; binary: CopyBinaryFieldMasker }): void {
    const { carry, rowIndex, binaryHeaderDone } = this;
    this.#peeking = fields;
    try {
      this.push(data);
    } finally {
      this.#peeking = undefined;
      Object.assign(this, { carry, rowIndex, binaryHeaderDone });
    }
  }

  /** The text of a row begun and not ended, which {@link end} masks by the detectors alone (none in binary). */
  get leftover(): string | undefined {
    return this.carry.length === 0 || this.options.format === 'binary' ? undefined : this.carry.toString('utf8');
  }

  /** What is left at CopyDone, masked by the detectors alone (binary leftovers are dropped). */
  end(): Buffer {
    const rest = this.carry;
    this.carry = Buffer.alloc(0);
    if (rest.length === 0 || this.options.format === 'binary') return Buffer.alloc(0);
    return Buffer.from(this.maskLoose(rest.toString('utf8')), 'utf8');
  }

  private text(input: Buffer): { out: Buffer; rest: Buffer } {
    const lastNl = input.lastIndexOf(0x0a);
    if (lastNl < 0) return { out: Buffer.alloc(0), rest: input };
    const s = input.subarray(0, lastNl + 1).toString('utf8');
    const maskText = this.#peeking?.text ?? this.maskText;
    let consumed = 0;
    let out = '';
    if (this.options.format === 'csv') {
      for (;;) {
        const row = parseCsvRow(s, consumed, this.o);
        if (!row) break;
        const header = this.options.header === true && this.rowIndex === 0;
        this.rowIndex++;
        out +=
          row.fields
            .map((f, i) => {
              if (header) return f.raw;
              const m = maskText(f.value, i);
              return m === undefined ? f.raw : encodeCsvField(m, this.o);
            })
            .join(this.o.delimiter) + row.eol;
        consumed = row.end;
      }
    } else {
      for (;;) {
        const nl = s.indexOf('\n', consumed);
        if (nl < 0) break;
        const line = s.slice(consumed, s[nl - 1] === '\r' && nl > consumed ? nl - 1 : nl);
        const eol = s.slice(consumed + line.length, nl + 1);
        this.rowIndex++;
        if (line === '\\.') out += line + eol;
        else {
          out +=
            splitTextLine(line, this.o.delimiter)
              .map((raw, i) => {
                // A NULL string of the client's own (not `\N`) is written unescaped for a value equal to it too: masked as that value, since hoop cannot tell the two apart.
                const value = raw === this.o.null && this.o.null === '\\N' ? null : decodeTextField(raw);
                const m = maskText(value, i);
                return m === undefined ? raw : m === null ? this.o.null : encodeTextField(m, this.o.delimiter);
              })
              .join(this.o.delimiter) + eol;
        }
        consumed = nl + 1;
      }
    }
    return { out: Buffer.from(out, 'utf8'), rest: input.subarray(Buffer.byteLength(s.slice(0, consumed), 'utf8')) };
  }

  private binary(input: Buffer): { out: Buffer; rest: Buffer } {
    const parts: Buffer[] = [];
    const maskBinary = this.#peeking?.binary ?? this.maskBinary;
    let at = 0;
    if (!this.binaryHeaderDone) {
      if (input.length < 19) return { out: Buffer.alloc(0), rest: input };
      if (!input.subarray(0, 11).equals(BINARY_SIGNATURE)) throw new PgProtocolError('binary COPY data has no PGCOPY signature');
      const ext = input.readUInt32BE(15);
      if (input.length < 19 + ext) return { out: Buffer.alloc(0), rest: input };
      parts.push(input.subarray(0, 19 + ext));
      at = 19 + ext;
      this.binaryHeaderDone = true;
    }
    for (;;) {
      if (input.length - at < 2) break;
      const n = readInt16(input, at); // signed: -1 ends the data
      if (n === -1) {
        parts.push(input.subarray(at, at + 2));
        at += 2;
        continue;
      }
      if (n < 0) throw new PgProtocolError(`binary COPY tuple has ${n} fields`);
      let p = at + 2;
      const fields: Array<Buffer | null> = [];
      let complete = true;
      for (let i = 0; i < n; i++) {
        if (input.length - p < 4) {
          complete = false;
          break;
        }
        const len = readValueLength(input, p, 'binary COPY tuple');
        p += 4;
        if (len === -1) {
          fields.push(null);
          continue;
        }
        if (input.length - p < len) {
          complete = false;
          break;
        }
        fields.push(input.subarray(p, p + len));
        p += len;
      }
      if (!complete) break;
      const row: Buffer[] = [input.subarray(at, at + 2)];
      let changed = false;
      fields.forEach((f, i) => {
        const m = maskBinary(f, i);
        const v = m === undefined ? f : m;
        if (m !== undefined) changed = true;
        const len = Buffer.alloc(4);
        len.writeInt32BE(v === null ? -1 : v.length);
        row.push(len);
        if (v !== null) row.push(v);
      });
      parts.push(changed ? Buffer.concat(row) : input.subarray(at, p));
      at = p;
    }
    return { out: Buffer.concat(parts), rest: input.subarray(at) };
  }
}
