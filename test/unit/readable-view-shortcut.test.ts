/** readableView's shortcut (a text with nothing a rewrite begins with reads as written) changes nothing: generated texts read alike with and without it. */
import { describe, expect, it } from 'vitest';
import { readableView, readerRewrites } from '../../src/policy/masking/values.js';
import { last4 } from '../../src/policy/masking/strategies.js';
import { Random } from '../harness/random.js';

const ALPHABET = ['0', '4', '1', '9', 'e', 'E', '.', '+', '-', 'x', 'u', 'a', 'F', '\\', '&', '#', ';', '%', '{', '}', ' ', '@', 'n', 'b', 's', 'p', 'é', '４'];

describe('readableView', () => {
  it('reads 50,000 generated texts as its rewrites do', () => {
    const r = new Random(7);
    for (let i = 0; i < 50_000; i++) {
      const n = 1 + r.int(24);
      let text = '';
      for (let k = 0; k < n; k++) text += r.pick(ALPHABET);
      expect(readableView(text), JSON.stringify(text)).toBe(readerRewrites(text));
    }
  });

  it('last4 keeps the last four letters or digits, ASCII or not', () => {
    expect(last4('4111 1111 1111 1111')).toBe('**** **** **** 1111');
    expect(last4('ab-cd-éf-４2')).toBe('**-**-éf-４2');
    expect(last4('a_b')).toBe('*_*');
  });
});
