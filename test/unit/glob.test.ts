/**
 * The one glob (src/glob.ts) against the regular expression it stands for, on every short
 * pattern and value over a small alphabet (a seeded sample), with and without a restricted star.
 */
import { describe, expect, it } from 'vitest';
import { argumentsGlob, glob, globMatches, globMayMatch, listNames } from '../../src/glob.js';
import { namesPerson } from '../../src/policy/access.js';

/** A small seeded generator (mulberry32), so a failure repeats. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const escape = (t: string): string => t.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');

describe('glob', () => {
  it('matches exactly what `^…$` with `*` as `.*` (or a restricted class) matches', () => {
    const next = random(39);
    const word = (n: number, chars: string): string => Array.from({ length: Math.floor(next() * n) }, () => chars[Math.floor(next() * chars.length)]).join('');
    // Mismatches are collected and said at once: an expect per case cost more than the matching.
    const wrong: string[] = [];
    for (let i = 0; i < 50_000; i++) {
      const pattern = word(7, 'ab/**');
      const value = word(9, 'ab/');
      const any = new RegExp(`^${pattern.split('*').map(escape).join('.*')}$`, 's');
      const inSegment = new RegExp(`^${pattern.split('*').map(escape).join('[^/]*')}$`);
      if (globMatches(pattern, value) !== any.test(value)) wrong.push(`${pattern} ~ ${value}`);
      if (globMatches(pattern, value, (c) => c !== '/') !== inSegment.test(value)) wrong.push(`${pattern} ~ ${value} within a segment`);
    }
    expect(wrong).toEqual([]);
  });

  it('takes every other character for itself, and compares lower-case when asked', () => {
    expect(globMatches('a.c', 'abc')).toBe(false);
    expect(globMatches('(a)+', '(a)+')).toBe(true);
    expect(glob('Billing.*', { lowerCase: true })('billing.INVOICES')).toBe(true);
    expect(glob('Billing.*')('billing.invoices')).toBe(false);
  });

  it('answers on patterns that make backtracking regular expressions explode (a backtracking match would not end; how fast: test/perf/parsing-speed.test.ts)', () => {
    expect(globMatches(`${'*a'.repeat(30)}b`, 'a'.repeat(5000))).toBe(false);
    expect(globMatches(`${'*a'.repeat(30)}`, 'a'.repeat(5000))).toBe(true);
  });

  it('does at most pattern length steps per character of 64 KiB made to be its worst', () => {
    const value = `${'a-'.repeat(32_767)}!x`;
    for (const pattern of [`${'*a'.repeat(30)}b`, '*-*-*-*-*-*-*-*-*.log', '*a*a*a*a*a*a*a*a*a*a*!y']) {
      for (const starTakes of [undefined, (c: string) => c !== '!']) {
        const steps = { steps: 0 };
        globMatches(pattern, value, starTakes, steps);
        expect(steps.steps, pattern).toBeLessThanOrEqual(pattern.length * (value.length + 1));
        // Free stars: each character of the value looked at about once, whatever the pattern's length (a 4 MiB MCP argument against a long deny glob held the event loop 1.2 s).
        if (starTakes === undefined) expect(steps.steps, pattern).toBeLessThanOrEqual(value.length + pattern.length);
      }
    }
    const near = `/srv/${'very/long/literal/segment/of/the/secret/dir/name/her/'.repeat(20_000)}x`;
    const steps = { steps: 0 };
    globMatches('/srv/**/very/long/literal/segment/of/the/secret/dir/name/here/**', near, undefined, steps);
    expect(steps.steps).toBeLessThanOrEqual(2 * near.length);
  });
});

describe('a glob over text with unknown runs', () => {
  it('may match wherever some text in their place matches, and exactly where none are unknown, over 50,000 generated patterns and pieces', () => {
    const next = random(73);
    const word = (n: number, chars: string): string => Array.from({ length: Math.floor(next() * n) }, () => chars[Math.floor(next() * chars.length)]).join('');
    const wrong: string[] = [];
    for (let i = 0; i < 50_000; i++) {
      const pattern = word(7, 'ab *');
      const pieces = Array.from({ length: 1 + Math.floor(next() * 3) }, () => (next() < 0.4 ? null : word(4, 'ab ')));
      // The reference: an unknown run is `.*` in a regular expression over the pattern's language.
      const known = pieces.filter((p): p is string => p !== null);
      if (globMayMatch(pattern, known) !== globMatches(pattern, known.join(''))) wrong.push(`${pattern} ~ ${JSON.stringify(known)}`);
      const holes = new RegExp(`^${pieces.map((p) => (p === null ? '.*' : escape(p))).join('')}$`, 's');
      // Whether the pattern's language meets the pieces' language: some value of the pattern (each star as a letter, or nothing) fits the pieces.
      const fits = (value: string): boolean => holes.test(value);
      let reference = false;
      const stars = pattern.split('*');
      const fill = (k: number, acc: string): void => {
        if (reference) return;
        if (k === stars.length - 1) {
          reference = fits(acc + stars[k]);
          return;
        }
        for (const star of ['', 'a', 'b', ' ', 'ab', 'a b', 'b a ', 'aa', 'bb', ' a', 'ba b']) fill(k + 1, acc + stars[k] + star);
      };
      fill(0, '');
      if (reference && !globMayMatch(pattern, pieces)) wrong.push(`${pattern} may match ${JSON.stringify(pieces)}`);
    }
    expect(wrong).toEqual([]);
    expect(globMayMatch('rm -rf *', ['ls', ' ', '-d', ' ', null])).toBe(false);
    expect(globMayMatch('rm -rf *', ['rm', ' ', '-rf', ' ', null])).toBe(true);
    expect(globMayMatch('rm -rf *', [null, ' ', '-rf', ' ', '/'])).toBe(true);
  });

  it('does at most pattern length steps per character of 64 KiB with unknown runs', () => {
    const pieces = Array.from({ length: 21_845 }, (_, i) => (i % 2 === 0 ? 'a--' : null));
    const pattern = `${'*a'.repeat(30)}b`;
    const steps = { steps: 0 };
    globMayMatch(pattern, pieces, steps);
    expect(steps.steps).toBeLessThanOrEqual(pattern.length * (3 * 21_845 + 21_845 + 1));
  });
});

describe('an allow rule’s arguments glob', () => {
  /** The regular expression the word glob stood for, before it was matched without one. */
  const reference = (p: string): RegExp =>
    new RegExp(
      `^${p
        .split('**')
        .map((piece) => piece.split('*').map(escape).join('[^/]*'))
        .join('.*')}$`,
      's',
    );

  it('reads a word as the regular expression it stands for (`*` within a segment, `**` across), over 50,000 generated words', () => {
    const next = random(72);
    const word = (n: number, chars: string): string => Array.from({ length: Math.floor(next() * n) }, () => chars[Math.floor(next() * chars.length)]).join('');
    const wrong: string[] = [];
    for (let i = 0; i < 50_000; i++) {
      const pattern = word(8, 'ab/.**');
      if (!pattern.includes('*') || pattern === '**') continue; // `**` alone is any number of arguments
      const value = word(10, 'ab/.');
      const shellGlob = /[*?[]/.test(value);
      const parent = !pattern.split('/').includes('..') && value.split('/').includes('..');
      if (argumentsGlob(pattern)([value]) !== (!shellGlob && !parent && reference(pattern).test(value))) wrong.push(`${pattern} ~ ${value}`);
    }
    expect(wrong).toEqual([]);
  });

  it('matches words and `**` words in steps linear in 64 KiB of arguments made to be its worst', () => {
    // The review's rule: one 4 KB command took 13.9 s to judge with a regular expression.
    const cases: Array<[string, string[]]> = [
      ['cat /var/log/app-*-*-*.log', ['cat', `/var/log/app-${'-'.repeat(65_000)}x`]],
      ['cat /srv/**/**/**/*.log', ['cat', `/srv/${'a/'.repeat(32_000)}x`]],
      ['git ** log ** -- ** x', ['git', ...Array.from({ length: 16_000 }, () => 'log'), 'y']],
    ];
    for (const [pattern, words] of cases) {
      const steps = { steps: 0 };
      expect(argumentsGlob(pattern)(words, steps)).toBe(false);
      const input = words.join(' ').length;
      expect(steps.steps, pattern).toBeLessThanOrEqual(pattern.length * (input + 1));
    }
  });
});

describe('lists of names', () => {
  it('name a value they hold, or every value when they hold `*`', () => {
    expect(listNames(['app', 'billing'], 'app')).toBe(true);
    expect(listNames(['app'], 'ap')).toBe(false);
    expect(listNames(['*'], 'anything')).toBe(true);
    expect(listNames(['a*'], 'ab')).toBe(false);
    expect(listNames([], 'app')).toBe(false);
  });

  it("name a person by subject, by email whatever its case, or by group, in a connection's allow and a rule alike", () => {
    const allow = { subjects: ['svc'], emails: ['Alice@Example.com'], groups: ['dba'] };
    expect(namesPerson(allow, { subject: 'x', email: 'alice@example.COM', groups: [] })).toBe(true);
    expect(namesPerson(allow, { subject: 'svc', groups: [] })).toBe(true);
    expect(namesPerson(allow, { subject: 'x', groups: ['dba'] })).toBe(true);
    expect(namesPerson(allow, { subject: 'x', email: 'bob@example.com', groups: ['dev'] })).toBe(false);
    expect(namesPerson({ subjects: ['*'], emails: [], groups: [] }, { subject: 'anyone', groups: [] })).toBe(true);
  });
});
