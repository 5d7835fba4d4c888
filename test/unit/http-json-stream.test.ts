/**
 * JSON bodies rewritten as they stream: generated documents, split at random places, come out as
 * the whole document with the same values replaced (checked against JSON.parse), the bytes kept
 * as they came where nothing is replaced; what JSON.parse refuses is refused; a value too large to
 * hold is refused rather than passed.
 */
import { describe, expect, it } from 'vitest';
import { type JsonPath, JsonStream, MAX_SCALAR_BYTES } from '../../src/http/pipeline/json-stream.js';
import { Random } from '../harness/random.js';
import { streamedThrough, streamedThroughAsync } from '../harness/streamed.js';

/** Masks strings under a key `email` or `ssn`, and numbers under `balance`. */
const mask = (path: JsonPath, value: unknown): string | null | undefined => {
  const last = path.at(-1);
  if ((last === 'email' || last === 'ssn') && typeof value === 'string') return '[redacted]';
  if (last === 'balance' && typeof value === 'number') return null;
  return undefined;
};

/** `value` with {@link mask} applied, as a whole. */
function masked(value: unknown, path: Array<string | number> = []): unknown {
  if (Array.isArray(value)) return value.map((v, i) => masked(v, [...path, i]));
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, masked(v, [...path, k])]));
  const m = mask(path, value);
  return m === undefined ? value : m;
}

const now = (s: JsonStream) => ({ push: (c: Buffer) => s.pushNow(c), end: () => s.end() });
const streamed = (text: string, cuts: number[] = []): string => streamedThrough(now(new JsonStream(mask)), text, cuts);

function generated(r: Random, depth = 0): unknown {
  const kind = r.int(depth > 3 ? 4 : 6);
  if (kind === 0) return r.pick(['a@b.example', 'x "quoted" \\ \n\t', 'ünï', '', '\u2028', 'ok']);
  if (kind === 1) return r.pick([0, -1.5, 1e21, 123456789, 3.14e-7]);
  if (kind === 2) return r.pick([true, false, null]);
  if (kind === 3) return r.pick(['secret', 42]);
  if (kind === 4) return Array.from({ length: r.int(4) }, () => generated(r, depth + 1));
  return Object.fromEntries(Array.from({ length: r.int(4) }, () => [r.pick(['email', 'ssn', 'balance', 'name', 'a b', 'é', '"k"']), generated(r, depth + 1)]));
}

describe('JsonStream', () => {
  it('replaces what the transform says, and keeps every other byte as it came', () => {
    const text = '{ "name" : "Ann",\n "email":"ann@shop.example", "tags": ["email", {"ssn": "123-45-6789"}], "balance": 12.50 }';
    expect(streamed(text, [])).toBe('{ "name" : "Ann",\n "email":"[redacted]", "tags": ["email", {"ssn": "[redacted]"}], "balance": null }');
    const plain = '{"name": "Ann", "list": [1, 2.5e3, true, null, "x\\"y"]}  ';
    expect(streamed(plain, [])).toBe(plain);
  });

  it('generated documents, split anywhere, come out as the whole masked', () => {
    const r = new Random(2026);
    for (let i = 0; i < 1500; i++) {
      const doc = generated(r);
      const text = JSON.stringify(doc, null, r.int(2) === 0 ? undefined : 1);
      const cuts = Array.from({ length: r.int(5) }, () => r.int(text.length + 1)).sort((a, b) => a - b);
      const out = streamed(text, cuts);
      expect(JSON.parse(out), text).toEqual(masked(doc));
      // Where nothing is replaced, the bytes are the ones that came.
      if (JSON.stringify(masked(doc)) === JSON.stringify(doc)) expect(out).toBe(text);
    }
  });

  it('tells the transform each scalar and key as JSON reads it (escapes too, split anywhere), with its path', () => {
    const r = new Random(7);
    /** The doc's keys and scalars in order, as a reader of the JSON sees them. */
    const seen = (v: unknown, path: Array<string | number>, out: string[]): string[] => {
      if (Array.isArray(v)) v.forEach((x, i) => seen(x, [...path, i], out));
      else if (typeof v === 'object' && v !== null)
        for (const [k, x] of Object.entries(v)) {
          out.push(`key ${JSON.stringify(k)}`);
          seen(x, [...path, k], out);
        }
      else out.push(`${JSON.stringify(path)} ${JSON.stringify(v)}`);
      return out;
    };
    for (let i = 0; i < 1500; i++) {
      const doc = [generated(r), { 'a\\"\u00e9\n': 'x\\y"z\u2028', [`${'\\'.repeat(r.int(4))}"`]: `${'\\'.repeat(r.int(4))}"` }];
      const text = JSON.stringify(doc, null, r.int(2) === 0 ? undefined : 1);
      const cuts = Array.from({ length: r.int(6) }, () => r.int(text.length + 1)).sort((a, b) => a - b);
      const told: string[] = [];
      const stream = new JsonStream(
        (path, value) => void told.push(`${JSON.stringify(path)} ${JSON.stringify(value)}`),
        (name) => void told.push(`key ${JSON.stringify(name)}`),
      );
      expect(streamedThrough(now(stream), text, cuts)).toBe(text);
      expect(told, text).toEqual(seen(doc, [], []));
    }
  });

  it('reads a chunk of many strings in time linear in it (each string looked at alone, not the rest of the chunk)', () => {
    /** CPU time (not the wall's: a busy machine does not stretch it) to read `n` strings in one chunk, the least of `tries`. */
    const read = (n: number, tries: number): number => {
      const bytes = Buffer.from(`[${Array.from({ length: n }, () => '"ab"').join(',')}]`);
      let best = Number.POSITIVE_INFINITY;
      for (let t = 0; t < tries; t++) {
        let strings = 0;
        const started = process.cpuUsage();
        const out = new JsonStream(() => void strings++).pushNow(bytes);
        const used = process.cpuUsage(started);
        best = Math.min(best, used.user + used.system);
        expect([strings, out.length]).toEqual([n, bytes.length]);
      }
      return best;
    };
    // Eight times the strings: about eight times the time when linear, sixty-four when each looks to the chunk's end.
    read(10_000, 1);
    expect(read(400_000, 2) / read(50_000, 3)).toBeLessThan(32);
  }, 120_000);

  it('waits where a preparation asks it to, and reads on from there: generated documents split anywhere come out as read without waiting', async () => {
    const r = new Random(2027);
    for (let i = 0; i < 1500; i++) {
      const doc = generated(r);
      const text = JSON.stringify(doc, null, r.int(2) === 0 ? undefined : 1);
      const cuts = Array.from({ length: r.int(5) }, () => r.int(text.length + 1)).sort((a, b) => a - b);
      // Every string waits (a key too), alternately for a resolved promise and a timer; the transform sees the value prepared last.
      const prepared: unknown[] = [];
      const seen: unknown[] = [];
      let n = 0;
      const s = new JsonStream(
        (path, value) => {
          seen.push(value);
          return mask(path, value);
        },
        undefined,
        'any',
        (value) => {
          if (typeof value !== 'string') return undefined;
          prepared.push(value);
          return n++ % 2 ? Promise.resolve() : new Promise((done) => setImmediate(done));
        },
      );
      const out = await streamedThroughAsync(s, text, cuts);
      expect(out, text).toBe(streamed(text, cuts));
      expect(seen.filter((v) => typeof v === 'string')).toEqual(prepared.filter((v) => seen.includes(v)));
    }
  });

  it('reads NDJSON value by value', () => {
    const lines = ['{"email":"a@b.example","n":1}', '{"email":"c@d.example","n":2}', '[1,2]'].join('\n');
    expect(streamed(`${lines}\n`, [7, 31, 40])).toBe('{"email":"[redacted]","n":1}\n{"email":"[redacted]","n":2}\n[1,2]\n');
  });

  it.each(['{"a":1,}', '[1,]', '{"a" 1}', '{1:2}', '{"a":01}', '[tru]', '{"a":"b"', '["a\u0001"]', '}', '{"a":1]', '[1 2]', '{"a":-}'])('refuses %j, which JSON.parse refuses', (text) => {
    expect(() => JSON.parse(text)).toThrow();
    expect(() => streamed(text, [Math.floor(text.length / 2)])).toThrow();
  });

  it('refuses a value too large to hold, rather than pass it unjudged', () => {
    const s = new JsonStream(mask);
    s.pushNow(Buffer.from('{"email": "'));
    expect(() => {
      for (let sent = 0; sent <= MAX_SCALAR_BYTES; sent += 64 * 1024) s.pushNow(Buffer.alloc(64 * 1024, 0x61));
    }).toThrow(/longer than 1024 KiB/);
    // Whole in one chunk (as a decoded one can come): refused too; one of the most it holds is read.
    expect(() => new JsonStream(mask).pushNow(Buffer.from(`{"email": "${'a'.repeat(MAX_SCALAR_BYTES)}"}`))).toThrow(/longer than 1024 KiB/);
    const most = Buffer.from(`{"n": "${'a'.repeat(MAX_SCALAR_BYTES - 2)}"}`);
    expect(new JsonStream(mask).pushNow(most)).toEqual(most);
  });
});
