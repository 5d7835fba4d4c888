/**
 * A key written twice in one JSON object (src/json-number.ts `keyWrittenTwice`), which readers take
 * as the first or the last: found in generated texts as a reference of another construction finds
 * it (the streaming reader's count of keys as written against the keys the parsed objects hold),
 * through escapes, white space and strings that look like structure.
 */
import { describe, expect, it } from 'vitest';
import { JsonStream } from '../../src/http/pipeline/json-stream.js';
import { JsonNumber, keyWrittenTwice } from '../../src/json-number.js';
import { Random } from '../harness/random.js';

/** Whether `text` writes a key twice, by counting: keys as the stream reads them, against those the parsed value holds. */
function reference(text: string): boolean {
  let written = 0;
  const stream = new JsonStream(
    () => undefined,
    () => {
      written++;
      return undefined;
    },
  );
  stream.pushNow(Buffer.from(text));
  stream.end();
  const held = (v: unknown): number =>
    Array.isArray(v)
      ? v.reduce((n: number, x) => n + held(x), 0)
      : typeof v === 'object' && v !== null && !(v instanceof JsonNumber)
        ? Object.values(v).reduce((n: number, x) => n + 1 + held(x), 0)
        : 0;
  return written !== held(JSON.parse(text));
}

/** A JSON string for `s`, each character written as itself or as a `\u` escape. */
function spelled(r: Random, s: string): string {
  return `"${[...s].map((c) => (c === '"' || c === '\\' ? `\\${c}` : r.int(3) === 0 ? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}` : c)).join('')}"`;
}

const space = (r: Random): string => r.pick(['', '', ' ', '\n', '\t ', '\r\n  ']);

/** A JSON value of at most `depth` levels, its keys from a few so some repeat. */
function value(r: Random, depth: number): string {
  const kind = depth === 0 ? r.int(3) : r.int(5);
  if (kind === 0) return spelled(r, r.pick(['a', '":{', 'x"', '\\', '[}', 'role', '']));
  if (kind === 1) return r.pick(['1', '-0.5e3', 'true', 'null', '12345678901234567890']);
  if (kind === 2) return `[${space(r)}${space(r)}]`;
  if (kind === 3) return `[${Array.from({ length: r.int(4) }, () => space(r) + value(r, depth - 1) + space(r)).join(',')}]`;
  const n = r.int(4);
  return `{${Array.from({ length: n }, () => `${space(r)}${spelled(r, r.pick(['a', 'b', 'role', 'x":', '{']))}${space(r)}:${space(r)}${value(r, depth - 1)}${space(r)}`).join(',')}}`;
}

describe('keyWrittenTwice', () => {
  it('finds a key written twice in one object, however it is spelled, and no other', () => {
    expect(keyWrittenTwice('{"role":"clerk","role":"admin"}')).toBe('role');
    expect(keyWrittenTwice('{"role":"clerk","r\\u006fle":"admin"}')).toBe('role');
    expect(keyWrittenTwice('{"a":{"role":1},"b":{"role":2}}')).toBeUndefined();
    expect(keyWrittenTwice('{"a":"\\"a\\":","a" : 1}')).toBe('a');
    expect(keyWrittenTwice('[{"a":1},{"a":2}]')).toBeUndefined();
    expect(keyWrittenTwice('{"k":["k","k"],"x":{"k":0}}')).toBeUndefined();
  });

  it('agrees with counting keys as written against keys held, on 5,000 generated texts', () => {
    const r = new Random(75_077);
    let twice = 0;
    for (let i = 0; i < 5000; i++) {
      const text = value(r, 4);
      const found = keyWrittenTwice(text);
      expect(found !== undefined, text).toBe(reference(text));
      if (found !== undefined) {
        twice++;
        expect(['a', 'b', 'role', 'x":', '{'], 'it names the key decoded').toContain(found);
      }
    }
    expect(twice).toBeGreaterThan(200);
  });
});
