/** readableView's shortcut (a text with nothing a rewrite begins with reads as written) changes nothing: generated texts read alike with and without it. */
import { describe, expect, it } from 'vitest';
import { readableView, readerRewrites } from '../../src/policy/masking/values.js';
import { last4 } from '../../src/policy/masking/strategies.js';

const ALPHABET = ['0', '4', '1', '9', 'e', 'E', '.', '+', '-', 'x', 'u', 'a', 'F', '\\', '&', '#', ';', '%', '{', '}', ' ', '@', 'n', 'b', 's', 'p', 'é', '４'];

/** A deterministic generator (mulberry32). */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('readableView', () => {
  it('reads 50,000 generated texts as its rewrites do', () => {
    const r = random(7);
    for (let i = 0; i < 50_000; i++) {
      const n = 1 + Math.floor(r() * 24);
      let text = '';
      for (let k = 0; k < n; k++) text += ALPHABET[Math.floor(r() * ALPHABET.length)];
      expect(readableView(text), JSON.stringify(text)).toBe(readerRewrites(text));
    }
  });

  it('last4 keeps the last four letters or digits, ASCII or not', () => {
    expect(last4('4111 1111 1111 1111')).toBe('**** **** **** 1111');
    expect(last4('ab-cd-éf-４2')).toBe('**-**-éf-４2');
    expect(last4('a_b')).toBe('*_*');
  });
});
