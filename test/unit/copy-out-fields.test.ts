/**
 * A COPY text-format field's escapes, decoded and encoded in one pass (the text between escapes
 * copied whole: a 32 MiB field cost seconds of the event loop when built a character at a time),
 * held to the character-at-a-time reference on generated fields.
 */
import { describe, expect, it } from 'vitest';
import { type CsvOptions, decodeTextField, encodeCsvField, encodeTextField, parseCsvRow } from '../../src/postgres/pipeline/masking/copy-out.js';
import { Random } from '../harness/random.js';

/** The reference: each character read in turn. @see https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.2 */
function decodeReference(raw: string): string {
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c !== '\\' || i + 1 >= raw.length) {
      out += c;
      continue;
    }
    const n = raw[++i]!;
    const simple: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };
    if (simple[n] !== undefined) out += simple[n];
    else if (/[0-7]/.test(n)) {
      let oct = n;
      while (oct.length < 3 && /[0-7]/.test(raw[i + 1] ?? '')) oct += raw[++i];
      out += String.fromCharCode(Number.parseInt(oct, 8));
    } else if (n === 'x' && /[0-9a-fA-F]/.test(raw[i + 1] ?? '')) {
      let hex = raw[++i]!;
      if (/[0-9a-fA-F]/.test(raw[i + 1] ?? '')) hex += raw[++i];
      out += String.fromCharCode(Number.parseInt(hex, 16));
    } else out += n;
  }
  return out;
}

/** The reference: each character written in turn. */
function encodeReference(value: string, delimiter: string): string {
  const escaped: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\b': '\\b', '\f': '\\f', '\v': '\\v' };
  let out = '';
  for (const c of value) out += escaped[c] ?? (c === delimiter ? `\\${c}` : c);
  return out;
}

/** The reference: one CSV row read a character at a time (null: not complete). */
function parseCsvReference(text: string, from: number, o: CsvOptions): { fields: Array<{ raw: string; value: string | null }>; end: number; eol: string } | null {
  const fields: Array<{ raw: string; value: string | null }> = [];
  let i = from;
  for (;;) {
    const start = i;
    let value = '';
    let quoted = false;
    while (i < text.length) {
      const c = text[i]!;
      if (c === o.quote) {
        quoted = true;
        i++;
        let closed = false;
        while (i < text.length) {
          const d = text[i]!;
          if (d === o.escape && o.escape !== o.quote && (text[i + 1] === o.quote || text[i + 1] === o.escape)) {
            value += text[i + 1];
            i += 2;
          } else if (d === o.quote) {
            if (o.escape === o.quote && text[i + 1] === o.quote) {
              value += o.quote;
              i += 2;
            } else {
              i++;
              closed = true;
              break;
            }
          } else {
            value += d;
            i++;
          }
        }
        if (!closed) return null;
      } else if (c === o.delimiter || c === '\n' || c === '\r') break;
      else {
        value += c;
        i++;
      }
    }
    if (i >= text.length) return null;
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

/** The reference: one CSV field written a character at a time. */
function encodeCsvReference(value: string | null, o: CsvOptions): string {
  if (value === null) return o.null;
  const needs = value === o.null || value === '\\.' || [o.delimiter, o.quote, '\n', '\r'].some((c) => value.includes(c));
  if (!needs) return value;
  let out = o.quote;
  for (const c of value) out += c === o.quote || (c === o.escape && o.escape !== o.quote) ? o.escape + c : c;
  return out + o.quote;
}

describe('COPY text-format fields', () => {
  it('decode and encode as the character-at-a-time reference does, on 20,000 generated fields', () => {
    const seed = Date.now() % 100_000;
    const r = new Random(seed);
    const alphabet = ['\\', '\\', 'x', 'X', '0', '7', '8', 'a', 'f', 'G', 'n', 't', 'b', 'v', '\t', '\n', '\r', '|', ',', ' ', 'é', '😀', '\u0000'];
    for (let k = 0; k < 20_000; k++) {
      const s = Array.from({ length: r.int(24) }, () => r.pick(alphabet)).join('');
      expect(decodeTextField(s), `seed ${seed}: ${JSON.stringify(s)}`).toBe(decodeReference(s));
      for (const delimiter of ['\t', '|', ',']) {
        expect(encodeTextField(s, delimiter), `seed ${seed}: ${JSON.stringify(s)}`).toBe(encodeReference(s, delimiter));
        expect(decodeTextField(encodeTextField(s, delimiter))).toBe(s);
      }
    }
  });
});

describe('COPY CSV rows', () => {
  it('read and write as the character-at-a-time reference does, on 20,000 generated rows, with the quote as its own escape and with another', () => {
    const seed = Date.now() % 100_000;
    const r = new Random(seed);
    const alphabet = ['"', '"', "'", '\\', ',', ';', '\n', '\r', 'a', 'Z', ' ', 'é', '😀', '\\.'];
    const options: CsvOptions[] = [
      { delimiter: ',', quote: '"', escape: '"', null: '' },
      { delimiter: ';', quote: "'", escape: '\\', null: 'NULL' },
    ];
    for (let k = 0; k < 20_000; k++) {
      const s = Array.from({ length: r.int(30) }, () => r.pick(alphabet)).join('');
      for (const o of options) {
        const from = r.int(3);
        expect(parseCsvRow(s, from, o), `seed ${seed}: ${JSON.stringify(s)} from ${from}`).toEqual(parseCsvReference(s, from, o));
        expect(encodeCsvField(s, o), `seed ${seed}: ${JSON.stringify(s)}`).toBe(encodeCsvReference(s, o));
        // What is written reads back as the value it was (a row of one field).
        expect(parseCsvRow(`${encodeCsvField(s, o)}\n`, 0, o)?.fields[0]?.value).toBe(s);
      }
    }
  });
});
