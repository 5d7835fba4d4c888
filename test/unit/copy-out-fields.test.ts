/**
 * A COPY text-format field's escapes, decoded and encoded in one pass (the text between escapes
 * copied whole: a 32 MiB field cost seconds of the event loop when built a character at a time),
 * held to the character-at-a-time reference on generated fields.
 */
import { describe, expect, it } from 'vitest';
import { decodeTextField, encodeTextField } from '../../src/postgres/pipeline/masking/copy-out.js';
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
