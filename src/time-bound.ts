/**
 * A time bound as people type one (`--since 1h`, `--until 2026-11-22`): a duration back from now
 * (`90s`, `30m`, `1h`, `2d`, `1w`, as tsh, gh and kubectl take them) or a date or time.
 */

import { realClock } from './clock.js';

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** What a bound may be, said in errors. */
export const TIME_BOUND_HELP = 'a duration back from now (30m, 1h, 2d, 1w) or a date or time (2026-11-22, 2026-11-22T10:00:00Z)';

/** A duration as tsh, gh and kubectl take one (`90s`, `30m`, `1h`, `2d`, `1w`), in ms; undefined when `text` is none. */
export function parseShortDuration(text: string): number | undefined {
  const m = /^\s*(\d{1,6})\s*([smhdw])\s*$/.exec(text);
  return m ? Number(m[1]) * UNIT_MS[m[2]!]! : undefined;
}

/** The instant (ms since the epoch) `text` names, `now` being the present; undefined when it names none. */
export function parseTimeBound(text: string, now: number = realClock.now()): number | undefined {
  const back = parseShortDuration(text);
  if (back !== undefined) return now - back;
  // A bare number is neither: Date.parse would read "2" as a year.
  if (/^\s*\d+\s*$/.test(text)) return undefined;
  const t = Date.parse(text);
  return Number.isNaN(t) ? undefined : t;
}
