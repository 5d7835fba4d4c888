/**
 * A time bound as people type one (`--since 1h`, `--until 2026-11-22`): a duration back from now
 * (`90s`, `30m`, `1h`, `2d`, `1w`, as tsh, gh and kubectl take them) or a date or time.
 */

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** What a bound may be, said in errors. */
export const TIME_BOUND_HELP = 'a duration back from now (30m, 1h, 2d, 1w) or a date or time (2026-11-22, 2026-11-22T10:00:00Z)';

/** The instant (ms since the epoch) `text` names, `now` being the present; undefined when it names none. */
export function parseTimeBound(text: string, now: number = Date.now()): number | undefined {
  const relative = /^\s*(\d{1,6})\s*([smhdw])\s*$/.exec(text);
  if (relative) return now - Number(relative[1]) * UNIT_MS[relative[2]!]!;
  // A bare number is neither: Date.parse would read "2" as a year.
  if (/^\s*\d+\s*$/.test(text)) return undefined;
  const t = Date.parse(text);
  return Number.isNaN(t) ? undefined : t;
}
