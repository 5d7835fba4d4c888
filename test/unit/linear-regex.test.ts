/**
 * The policy's regular expressions run in linear time: each pattern of a generated grammar
 * matches what JavaScript's own RegExp matches (the reference), what needs backtracking is
 * refused, and adversarial input costs steps in proportion to its length.
 */
import { describe, expect, it } from 'vitest';
import { LinearRegex, RegexSyntaxError, type Steps } from '../../src/linear-regex.js';
import { Random } from '../harness/random.js';

/** A seeded sequence in [0, 1) (the harness's generator), so a failure repeats. */
function random(seed: number): () => number {
  const r = new Random(seed);
  return () => r.int(2 ** 32) / 2 ** 32;
}

const ATOMS = [
  'a',
  'b',
  'A',
  '-',
  ' ',
  '/',
  '.',
  '\\d',
  '\\w',
  '\\s',
  '\\S',
  '\\W',
  '[ab]',
  '[^a]',
  '[a-c]',
  '[\\d-]',
  '\\.',
  '\\-',
  '\\/',
  '\\x41',
  '\\u0062',
  '[]',
  '[^]',
  '\\n',
  '1',
  '{',
  '}',
  ']',
];
const QUANTS = ['', '', '', '*', '+', '?', '{2}', '{1,3}', '{0,}', '*?', '+?', '{2,}?'];

const UNBOUNDED = new Set(['*', '+', '{0,}', '*?', '+?', '{2,}?']);

/** A pattern of the grammar hoop reads, `depth` groups deep at most, and whether it repeats without bound what repeats without bound. */
function generated(next: () => number, depth: number): { source: string; nested: boolean; unbounded: boolean } {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  const parts: string[] = [];
  let nested = false;
  let unbounded = false;
  const n = 1 + Math.floor(next() * 4);
  for (let k = 0; k < n; k++) {
    const r = next();
    let atom: string;
    let inner = false;
    if (r < 0.12 && depth > 0) {
      const one = generated(next, depth - 1);
      const other = next() < 0.4 ? generated(next, depth - 1) : undefined;
      inner = one.unbounded || !!other?.unbounded;
      nested ||= one.nested || !!other?.nested;
      atom = `(${next() < 0.5 ? '?:' : ''}${one.source}${other ? `|${other.source}` : ''})`;
    } else if (r < 0.17) atom = pick(['^', '$', '\\b', '\\B']);
    else atom = pick(ATOMS);
    if (/^(\^|\$|\\b|\\B)$/.test(atom)) {
      parts.push(atom);
      continue;
    }
    const quant = pick(QUANTS);
    nested ||= inner && UNBOUNDED.has(quant);
    unbounded ||= inner || UNBOUNDED.has(quant);
    parts.push(atom + quant);
  }
  return { source: parts.join(next() < 0.15 ? '|' : ''), nested, unbounded };
}

const pattern = (next: () => number, depth: number): string => generated(next, depth).source;

/** Text of up to `longest` characters from an alphabet that meets the atoms. */
function input(next: () => number, longest = 12): string {
  const alphabet = 'abAB-/ .1\n_{}]é';
  let s = '';
  const n = Math.floor(next() * longest);
  for (let k = 0; k < n; k++) s += alphabet[Math.floor(next() * alphabet.length)];
  return s;
}

describe('a linear regular expression', () => {
  it('matches what RegExp matches, and refuses what RegExp refuses, over 20,000 generated patterns and inputs', () => {
    const next = random(71);
    let compared = 0;
    // What differs is gathered and said once (an assertion per comparison costs more than the comparisons).
    const differs: string[] = [];
    for (let k = 0; k < 20_000; k++) {
      const { source, nested } = generated(next, 2);
      const ignoreCase = next() < 0.3;
      let reference: RegExp | undefined;
      try {
        reference = new RegExp(source, ignoreCase ? 'i' : '');
      } catch {
        reference = undefined;
      }
      if (!reference) {
        expect(() => new LinearRegex(source, { ignoreCase }), source).toThrow(RegexSyntaxError);
        continue;
      }
      const ours = new LinearRegex(source, { ignoreCase });
      for (let j = 0; j < 5; j++) {
        // The reference backtracks: a repetition of a repetition gets text short enough for it to try every way.
        const s = input(next, nested ? 7 : 12);
        if (ours.test(s) !== reference.test(s)) differs.push(`/${source}/${ignoreCase ? 'i' : ''} on ${JSON.stringify(s)}`);
        compared++;
      }
    }
    expect(differs).toEqual([]);
    expect(compared).toBeGreaterThan(50_000);
  });

  it('refuses lookaround and backreferences, saying it cannot run them in linear time', () => {
    for (const source of ['a(?=b)', 'a(?!b)', '(?<=a)b', '(?<!a)b', '(a)\\1', '(?<x>a)\\k<x>']) expect(() => new LinearRegex(source), source).toThrow(/linear time/);
    expect(() => new LinearRegex('a{1,100000}')).toThrow(/repetition over/);
    expect(() => new LinearRegex('(a{1,1000}){1,1000}')).toThrow(/too large/);
  });

  it('does work in proportion to its input: 64 KiB made to make a backtracking engine explode', () => {
    // docs/ssh.md's own example, and the textbook blow-ups.
    const cases: Array<[string, string]> = [
      ['\\brm\\s+(-\\S+\\s+)*(-[a-zA-Z]*[rR]|--recursive)', `rm ${'-x '.repeat(21_845)}`],
      ['(a+)+$', `${'a'.repeat(65_535)}!`],
      ['(a|a)*b', 'a'.repeat(65_536)],
      ['(.*a){20}', 'a'.repeat(65_536)],
      ['(\\w+\\s?)*$', `${'word '.repeat(13_107)}!`],
    ];
    for (const [source, text] of cases) {
      const re = new LinearRegex(source);
      const steps: Steps = { steps: 0 };
      re.test(text, steps);
      const bound = (text.length + 1) * 2 * re.size;
      expect(steps.steps, source).toBeLessThanOrEqual(bound);
      // And the count is real: twice the input, about twice the steps.
      const twice: Steps = { steps: 0 };
      re.test(text + text, twice);
      expect(twice.steps, source).toBeLessThanOrEqual(2.2 * steps.steps + re.size);
    }
  });

  it('may match text with unknown runs wherever some text in their place matches (soundness over 20,000 generated patterns), and exactly where none are unknown', () => {
    const next = random(72);
    const wrong: string[] = [];
    for (let k = 0; k < 20_000; k++) {
      const source = pattern(next, 2);
      let re: LinearRegex;
      try {
        re = new LinearRegex(source);
      } catch {
        continue;
      }
      const known = input(next);
      if (re.mayMatch([known]) !== re.test(known)) wrong.push(`/${source}/ on ${JSON.stringify(known)}`);
      // Pieces with holes, and one text that fills them: whenever it matches, the holes may.
      const pieces: Array<string | null> = [];
      let filled = '';
      for (let j = 0, n = 1 + Math.floor(next() * 3); j < n; j++) {
        if (next() < 0.5) {
          const fill = input(next);
          pieces.push(null);
          filled += fill;
        } else {
          const text = input(next);
          pieces.push(text);
          filled += text;
        }
      }
      if (re.test(filled) && !re.mayMatch(pieces)) wrong.push(`/${source}/ on ${JSON.stringify(pieces)} (filled: ${JSON.stringify(filled)})`);
    }
    expect(wrong).toEqual([]);
    const rm = new LinearRegex('^rm\\s+-rf\\b');
    expect(rm.mayMatch(['ls -d ', null])).toBe(false);
    expect(rm.mayMatch(['rm -rf ', null])).toBe(true);
    expect(rm.mayMatch([null, ' -rf /'])).toBe(true);
  });

  it('does work in proportion to its input with unknown runs in it: 64 KiB of them', () => {
    const re = new LinearRegex('\\brm\\s+(-\\S+\\s+)*(-[a-zA-Z]*[rR]|--recursive)');
    const pieces = Array.from({ length: 21_845 }, (_, i) => (i % 2 === 0 ? 'x -' : null));
    const steps: Steps = { steps: 0 };
    re.mayMatch(pieces, steps);
    expect(steps.steps).toBeLessThanOrEqual((3 * 21_845 + 1) * 2 * re.size);
  });
});
