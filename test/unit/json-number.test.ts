/**
 * JSON read and written without losing a number (src/json-number.ts): every text `JSON.stringify`
 * could have written, with number tokens of any length put in, comes back byte for byte; what is
 * not JSON is refused as `JSON.parse` refuses it; no string is ever read as a number.
 */
import { describe, expect, it } from 'vitest';
import { JsonNumber, jsonText, markNumbers, parseJson, unmarkText } from '../../src/json-number.js';
import { Random } from '../harness/random.js';

/** A number token: as JSON.stringify writes a double, or one a double would not keep. */
function numberToken(r: () => number): string {
  const digits = (n: number) => Array.from({ length: n }, () => Math.floor(r() * 10)).join('');
  const pick = Math.floor(r() * 8);
  const sign = r() < 0.3 ? '-' : '';
  if (pick === 0) return JSON.stringify(Math.floor(r() * 1e9) * (sign ? -1 : 1));
  if (pick === 1) return JSON.stringify(r() * 1000);
  if (pick === 2) return `${sign}${1 + Math.floor(r() * 9)}${digits(15 + Math.floor(r() * 20))}`;
  if (pick === 3) return `${sign}${1 + Math.floor(r() * 9)}${digits(3)}.${digits(13 + Math.floor(r() * 10))}`;
  if (pick === 4) return `${sign}0.${'0'.repeat(Math.floor(r() * 5))}${1 + Math.floor(r() * 9)}${digits(16)}`;
  if (pick === 5) return `${sign}${1 + Math.floor(r() * 9)}e${r() < 0.5 ? '-' : '+'}${400 + Math.floor(r() * 600)}`;
  if (pick === 6) return `${sign}${1 + Math.floor(r() * 9)}.${digits(17)}E${Math.floor(r() * 30)}`;
  return JSON.stringify(`digits in a string: ${digits(20)} "${digits(17)}" \\ ${digits(3)}e999`);
}

/** A text JSON.stringify could have written, but for its number tokens. */
function document(r: () => number, depth = 0): string {
  const n = Math.floor(r() * 5);
  if (depth > 3 || r() < 0.3) return numberToken(r);
  if (r() < 0.5) return `[${Array.from({ length: n }, () => document(r, depth + 1)).join(',')}]`;
  return `{${Array.from({ length: n }, (_, i) => `${JSON.stringify(`k${i}:${Math.floor(r() * 1e17)}`)}:${document(r, depth + 1)}`).join(',')}}`;
}

describe('parseJson and jsonText', () => {
  it('give back every generated text byte for byte, and read each number as JSON.parse does where a double keeps it', () => {
    const random = new Random(72);
    const r = () => random.int(2 ** 32) / 2 ** 32;
    for (let i = 0; i < 5000; i++) {
      const text = document(r);
      const read = parseJson(text);
      expect(jsonText(read), text).toBe(text);
      // What a double reads of each is what JSON.parse reads.
      expect(JSON.stringify(read), text).toBe(JSON.stringify(JSON.parse(text)));
    }
  });

  it('keeps a 19-digit card, a 64-bit id and a number past a double as written, and the rest as doubles', () => {
    const read = parseJson('{"card":4111111111111111110,"id":-18446744073709551615,"big":1e400,"tiny":1e-400,"n":42,"f":0.1,"pad":0.0000000000000001}') as Record<string, unknown>;
    expect(read.card).toBeInstanceOf(JsonNumber);
    expect((read.card as JsonNumber).text).toBe('4111111111111111110');
    expect((read.id as JsonNumber).text).toBe('-18446744073709551615');
    expect((read.big as JsonNumber).text).toBe('1e400');
    expect((read.tiny as JsonNumber).text).toBe('1e-400');
    expect([read.n, read.f, read.pad]).toEqual([42, 0.1, 1e-16]);
    expect(jsonText(read, 2)).toContain('"card": 4111111111111111110,');
  });

  it('refuses what is not JSON as JSON.parse does, with a long number beside it', () => {
    for (const text of ['[01234567890123456789]', '["a 1234567890123456789]', '[1234567890123456789e]', '[1234567890123456789 1]', '{"a":-}', '[1e400', '-01234567890123456789'])
      expect(() => parseJson(text), text).toThrow(SyntaxError);
  });

  it('never reads a string as a number, whatever it holds', () => {
    const texts = ['["\\u00001234567890123456789",12345678901234567890]', '["\\\\",12345678901234567890,"\\"12345678901234567890"]', '{"\\u0000":1e999,"x":"\\u0000abc1e999"}'];
    for (const text of texts) expect(jsonText(parseJson(text)), text).toBe(text);
    const read = parseJson(texts[0]!) as unknown[];
    expect(read[0]).toBe('\u00001234567890123456789');
  });

  it('writes a string that looks like its mark as a string', () => {
    const n = new JsonNumber('12345678901234567890');
    const value = { a: n, b: `\u0000${'0'.repeat(24)}1`, c: '"\\u0000' };
    expect(jsonText(value)).toBe(`{"a":12345678901234567890,"b":${JSON.stringify(value.b)},"c":${JSON.stringify(value.c)}}`);
    // A bare JSON.stringify writes the double JSON.parse would have read: nothing else learns the mark.
    expect(JSON.stringify(value)).toBe(`{"a":12345678901234567000,"b":${JSON.stringify(value.b)},"c":${JSON.stringify(value.c)}}`);
    expect(() => new JsonNumber('1,"x":2')).toThrow(TypeError);
  });

  it('marks nothing in a text that is not JSON, at once: a string left open is not scanned again from each escaped quote (the thirteenth attack: seconds for 80 KB)', () => {
    const open = `"${'\\"'.repeat(1_000_000)} 1234567890123456`;
    expect(markNumbers(open, 'mark')).toBe(open);
    expect(markNumbers('{"a":12345678901234567890}', 'mark')).toBe('{"a":"\\u0000mark:12345678901234567890"}');
  });

  it("writes back only a mark that holds a number: a string that holds the mark (learned somehow) stays a string, whatever follows it (the thirteenth attack's injection)", () => {
    const mark = 'm'.repeat(24);
    for (const text of [`{"n":"\\u0000${mark}:[true,{},null]"}`, `{"n":"\\u0000${mark}:1,\\"x\\":2"}`, `{"n":"x\\"\\u0000${mark}:1"}`, `{"n":"\\u0000${mark}:"}`])
      expect(unmarkText(text, mark), text).toBe(text);
    expect(unmarkText(`{"n":"\\u0000${mark}:12345678901234567890","s":"a"}`, mark)).toBe('{"n":12345678901234567890,"s":"a"}');
  });

  it('reads a 3 MiB line of numbers with one long among them, and one nested deep, without a stack to overflow', () => {
    const many = `[${'1,'.repeat(1_500_000)}12345678901234567890]`;
    const read = parseJson(many) as unknown[];
    expect((read.at(-1) as JsonNumber).text).toBe('12345678901234567890');
    const deep = `${'['.repeat(100_000)}12345678901234567890${']'.repeat(100_000)}`;
    let inner = parseJson(deep);
    while (Array.isArray(inner)) inner = inner[0];
    expect(inner).toBeInstanceOf(JsonNumber);
  });
});
