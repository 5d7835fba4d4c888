/** "Did you mean": the nearest known name when it is near enough to be a typo, never the name itself. */
import { describe, expect, it } from 'vitest';
import { editDistance, nearestName } from '../../src/suggest.js';

describe('the nearest name', () => {
  it('is a typo away, case aside', () => {
    expect(nearestName('demo-dbb', ['demo-db', 'demo-ssh', 'demo-mysql'])).toBe('demo-db');
    expect(nearestName('Demo-Ssh', ['demo-db', 'demo-ssh'])).toBe('demo-ssh');
  });

  it('is none when nothing is near, or only the name itself', () => {
    expect(nearestName('prod', ['demo-db', 'demo-ssh'])).toBeUndefined();
    expect(nearestName('demo-db', ['demo-db'])).toBeUndefined();
    expect(nearestName('x', [])).toBeUndefined();
  });

  it('counts a swap of two neighbours as one edit, so a transposed short name is still near', () => {
    expect(editDistance('prdo', 'prod')).toBe(1);
    expect(editDistance('ab', 'ba')).toBe(1);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(nearestName('prdo', ['prod', 'staging'])).toBe('prod');
  });
});
