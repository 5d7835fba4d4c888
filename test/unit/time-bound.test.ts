/**
 * Time bounds as people type them (`hoop sessions ls --since 1h`): durations back from now and
 * dates, the same at the CLI and the gateway; anything else is a usage error before the gateway
 * is asked.
 */
import { describe, expect, it } from 'vitest';
import { duration } from '../../src/client/client-config.js';
import { parseTimeBound } from '../../src/time-bound.js';
import { runCli } from '../harness/run-cli.js';

const now = Date.parse('2026-11-27T12:00:00Z');

describe('a time bound', () => {
  it('reads 30s, 30m, 1h, 2d and 1w back from now', () => {
    expect(parseTimeBound('30s', now)).toBe(now - 30_000);
    expect(parseTimeBound('30m', now)).toBe(now - 1_800_000);
    expect(parseTimeBound('1h', now)).toBe(now - 3_600_000);
    expect(parseTimeBound(' 2d ', now)).toBe(now - 2 * 86_400_000);
    expect(parseTimeBound('1w', now)).toBe(now - 7 * 86_400_000);
  });

  it('reads dates and times as written', () => {
    expect(parseTimeBound('2026-11-22', now)).toBe(Date.parse('2026-11-22'));
    expect(parseTimeBound('2026-11-22T10:00:00Z', now)).toBe(Date.parse('2026-11-22T10:00:00Z'));
  });

  it('reads nothing else: not a bare number, not an unknown unit', () => {
    for (const bad of ['2', '1y', 'h', '1.5h', 'yesterday', '']) expect(parseTimeBound(bad, now), bad).toBeUndefined();
  });

  it('is a usage error (64) at the CLI, said before any gateway is asked', async () => {
    const r = await runCli(['sessions', 'ls', '--since', 'yesterday', '--gateway', 'https://127.0.0.1:1'], {}, process.cwd());
    expect(r.code).toBe(64);
    expect(r.stderr).toMatch(/--since <time>.*must be a duration back from now \(30m, 1h, 2d, 1w\) or a date or time/);
  });
});

describe("an option's duration (--for, --ttl)", () => {
  it("takes what --since takes (30m, 2d) and PostgreSQL's units as the policy writes them (30min, 90s), in whole seconds", () => {
    expect(duration('30m')).toBe(1800);
    expect(duration('2d')).toBe(172_800);
    expect(duration('30min')).toBe(1800);
    expect(duration('90s')).toBe(90);
    expect(duration('600')).toBe(600);
    for (const bad of ['1y', 'soon', '500ms']) expect(() => duration(bad), bad).toThrow(/must be a time such as 1h, 30m or 90s/);
  });
});
