/**
 * When a token says its person signed in (`auth_time`), judged for decisions that need a recent
 * sign-in (src/gateway/api/access.ts `signInProblem`), on a clock the test sets.
 */
import { describe, expect, it } from 'vitest';
import { signInProblem } from '../../src/gateway/api/access.js';

const now = Date.parse('2026-11-26T12:00:00Z');
const s = now / 1000;
const within = 15 * 60_000;

describe('a sign-in time', () => {
  it('counts when it is within the limit, up to the clock tolerance ahead, and not after the token was issued', () => {
    expect(signInProblem({ auth_time: s - 60, iat: s }, within, 30, now)).toBeUndefined();
    expect(signInProblem({ auth_time: s - 15 * 60, iat: s }, within, 30, now)).toBeUndefined();
    expect(signInProblem({ auth_time: s + 30, iat: s + 30 }, within, 30, now)).toBeUndefined();
  });

  it('does not when missing, too old, in the future beyond the tolerance, or after iat', () => {
    expect(signInProblem({}, within, 30, now)).toMatch(/no auth_time/);
    expect(signInProblem({ auth_time: 'yesterday' }, within, 30, now)).toMatch(/no auth_time/);
    expect(signInProblem({ auth_time: s - 15 * 60 - 1 }, within, 30, now)).toMatch(/15 min ago/);
    expect(signInProblem({ auth_time: s + 31 }, within, 30, now)).toMatch(/31 s from now/);
    expect(signInProblem({ auth_time: s + 86_400 * 365 }, within, 30, now)).toMatch(/from now, which no sign-in can be/);
    expect(signInProblem({ auth_time: s, iat: s - 1 }, within, 30, now)).toMatch(/after iat/);
  });
});
