/**
 * Server timeouts an access rule imposes on the sessions it admits: `statement_timeout`,
 * `lock_timeout` and `idle_in_transaction_session_timeout`. The gateway sets them when it opens
 * the upstream session (a startup parameter the client may lower, never raise), and the judge
 * refuses a `SET` / `set_config` of them above the limit, to any value the server reads as 0 (no
 * limit: `0.5` and `500us` round to it), or to an expression.
 *
 * @see https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-STATEMENT-TIMEOUT
 * @see https://www.postgresql.org/docs/current/config-setting.html#CONFIG-SETTING-NAMES-VALUES
 */

/** The timeouts, in milliseconds, by the setting's name. */
export interface SessionLimits {
  statement_timeout?: number;
  lock_timeout?: number;
  idle_in_transaction_session_timeout?: number;
}

/** The settings a {@link SessionLimits} bounds. */
export type LimitedSetting = keyof SessionLimits;

/** The access-rule field of each limited setting. */
export const LIMIT_FIELDS: Readonly<Record<'statementTimeout' | 'lockTimeout' | 'idleInTransactionTimeout', LimitedSetting>> = {
  statementTimeout: 'statement_timeout',
  lockTimeout: 'lock_timeout',
  idleInTransactionTimeout: 'idle_in_transaction_session_timeout',
};

/** Whether `name` (lower-case) is a setting limits bound. */
export function isLimitedSetting(name: string): name is LimitedSetting {
  return name === 'statement_timeout' || name === 'lock_timeout' || name === 'idle_in_transaction_session_timeout';
}

/** INT_MAX: the largest value of an integer setting. */
const INT_MAX = 2_147_483_647;

/**
 * PostgreSQL's units of a setting whose base unit is the millisecond, largest first, as in the
 * server's `time_unit_conversion_table`: unit names are case-sensitive, and a fractional value is
 * first rounded to a whole number of the next smaller unit (`1.0000083min` is 60 s, `0.5004ms` is
 * 500 us); `us` has no smaller unit.
 * @see https://github.com/postgres/postgres/blob/REL_15_STABLE/src/backend/utils/misc/guc.c (time_unit_conversion_table, convert_to_base_unit)
 */
const TIME_UNITS: ReadonlyArray<readonly [string, number]> = [
  ['d', 1000 * 60 * 60 * 24],
  ['h', 1000 * 60 * 60],
  ['min', 1000 * 60],
  ['s', 1000],
  ['ms', 1],
  ['us', 1.0 / 1000],
];

/** C's `isspace` in the C locale: what the server's number parsing skips. */
const C_SPACE = /^[ \t\n\v\f\r]$/;
const isCSpace = (c: string | undefined): boolean => c !== undefined && C_SPACE.test(c);
const isDigit = (c: string | undefined, radix: number): boolean => c !== undefined && /^[0-9a-fA-F]$/.test(c) && Number.parseInt(c, 16) < radix;

/** C's `rint` in the default rounding mode: to the nearest integer, halves to the even one. */
export function rint(x: number): number {
  if (!Number.isFinite(x)) return x;
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff < 0.5) return floor;
  if (diff > 0.5) return floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * C's `strtol(text, &end, 0)` from the start of `text`: optional C spaces and sign, then a hex
 * (`0x`), octal (leading `0`) or decimal integer. `end` is 0 when nothing was converted (C's
 * `endptr == nptr`); `overflow` when the value is too large for hoop to carry exactly (C would
 * overflow a long further out, but no such value is a valid time: see {@link parseTimeSetting}).
 */
function strtol(text: string): { value: number; end: number; overflow: boolean } {
  let i = 0;
  while (isCSpace(text[i])) i++;
  let sign = 1;
  if (text[i] === '+' || text[i] === '-') sign = text[i++] === '-' ? -1 : 1;
  let radix = 10;
  if (text[i] === '0' && (text[i + 1] === 'x' || text[i + 1] === 'X') && isDigit(text[i + 2], 16)) {
    radix = 16;
    i += 2;
  } else if (text[i] === '0') radix = 8;
  const start = i;
  while (isDigit(text[i], radix)) i++;
  if (i === start) return { value: 0, end: 0, overflow: false };
  const value = Number.parseInt(text.slice(start, i), radix);
  return { value: sign * value, end: i, overflow: value > Number.MAX_SAFE_INTEGER };
}

/**
 * C's `strtod(text, &end)` (glibc) from the start of `text`, for what it can be handed here: a
 * decimal number (`1.5`, `.5`, `5.`, `1e-3`) or a hex one (`0x1.8p1`). `end` is 0 when nothing
 * was converted; undefined when C would report a range error (overflow, underflow) or for a hex
 * mantissa longer than hoop carries exactly.
 */
function strtod(text: string): { value: number; end: number } | undefined {
  let i = 0;
  while (isCSpace(text[i])) i++;
  const signAt = i;
  if (text[i] === '+' || text[i] === '-') i++;
  const hex = text[i] === '0' && (text[i + 1] === 'x' || text[i + 1] === 'X') && (isDigit(text[i + 2], 16) || (text[i + 2] === '.' && isDigit(text[i + 3], 16)));
  const radix = hex ? 16 : 10;
  if (hex) i += 2;
  const intStart = i;
  while (isDigit(text[i], radix)) i++;
  const intDigits = text.slice(intStart, i);
  let fracDigits = '';
  if (text[i] === '.') {
    const fracStart = i + 1;
    let j = fracStart;
    while (isDigit(text[j], radix)) j++;
    fracDigits = text.slice(fracStart, j);
    if (intDigits !== '' || fracDigits !== '') i = j;
  }
  if (intDigits === '' && fracDigits === '') return { value: 0, end: 0 };
  const expMark = hex ? /[pP]/ : /[eE]/;
  let exponent = 0;
  if (text[i] !== undefined && expMark.test(text[i]!)) {
    let j = i + 1;
    if (text[j] === '+' || text[j] === '-') j++;
    const expStart = j;
    while (isDigit(text[j], 10)) j++;
    if (j > expStart) {
      exponent = Number(text.slice(i + 1, j));
      i = j;
    }
  }
  const negative = text[signAt] === '-';
  let value: number;
  if (hex) {
    const digits = (intDigits + fracDigits).replace(/^0+/, '');
    if (digits.length > 13) return undefined;
    value = (digits === '' ? 0 : Number.parseInt(digits, 16)) * 2 ** (exponent - 4 * fracDigits.length);
  } else {
    value = Number(text.slice(signAt, i).replace(/^[+-]/, ''));
  }
  const nonZero = /[1-9a-fA-F]/.test(intDigits + fracDigits);
  // glibc reports ERANGE for an infinite result and for one that underflows (zero or subnormal).
  if (!Number.isFinite(value) || (nonZero && value < 2.2250738585072014e-308)) return undefined;
  return { value: negative ? -value : value, end: i };
}

/**
 * The number a PostgreSQL time setting whose unit is the millisecond (`statement_timeout`,
 * `lock_timeout`, `idle_in_transaction_session_timeout`) holds after the server reads `text`,
 * computed as the server's `parse_int` does; undefined when the server would refuse the value (or
 * for the few forms hoop does not follow; callers refuse those). That is: C spaces, then an
 * integer as `strtol` reads it (hex `0x10` and octal `010` too), read again as a double by
 * `strtod` when it stops at `.`, `e` or `E`; spaces; an optional case-sensitive unit (`us`, `ms`,
 * `s`, `min`, `h`, `d`; none means ms) whose fractional value is rounded to the next smaller
 * unit; then rounded half to even (`rint`) and checked against the int range. So `0.5`, `500us`,
 * `2.5us` and `0.00001min` are 0 (no limit), `1.5` and `2.5` are 2, `-0.5` is 0 and `-1` is -1
 * (which the server then refuses as below the setting's minimum).
 *
 * @see https://www.postgresql.org/docs/current/config-setting.html#CONFIG-SETTING-NAMES-VALUES
 * @see https://github.com/postgres/postgres/blob/REL_15_STABLE/src/backend/utils/misc/guc.c (parse_int, convert_to_base_unit)
 */
export function parseTimeSetting(text: string): number | undefined {
  const int = strtol(text);
  let value = int.value;
  let end = int.end;
  const stop = text[end];
  if (stop === '.' || stop === 'e' || stop === 'E' || int.overflow) {
    const double = strtod(text);
    if (double === undefined) return undefined;
    ({ value, end } = double);
  }
  if (end === 0 || Number.isNaN(value)) return undefined;
  while (isCSpace(text[end])) end++;
  if (end < text.length) {
    let unitEnd = end;
    while (unitEnd < text.length && !isCSpace(text[unitEnd]) && unitEnd - end < 3) unitEnd++;
    const unit = text.slice(end, unitEnd);
    let rest = unitEnd;
    while (isCSpace(text[rest])) rest++;
    if (rest < text.length) return undefined;
    const at = TIME_UNITS.findIndex(([name]) => name === unit);
    if (at < 0) return undefined;
    value *= TIME_UNITS[at]![1];
    const smaller = TIME_UNITS[at + 1];
    if (smaller) value = rint(value / smaller[1]) * smaller[1];
  }
  value = rint(value);
  if (!Number.isFinite(value) || value > INT_MAX || value < -INT_MAX - 1) return undefined;
  return value === 0 ? 0 : value;
}

/** A duration for messages: `30 s`, `5 min`, `250 ms`. */
export function describeMs(ms: number): string {
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  if (ms % 1000 === 0) return `${ms / 1000} s`;
  return `${ms} ms`;
}

/**
 * Why a client may not set `name` to `value` under `limits` (a constant's text, lower-case;
 * `default` for the session's start value; undefined for an expression), or undefined when it may:
 * the value must be one the server reads (see {@link parseTimeSetting}) as more than 0 ms and at
 * most the limit. (Lower-casing cannot make a value pass that the server reads otherwise: the
 * server's units are lower-case, so a value it accepts is unchanged by it.)
 */
export function limitProblem(limits: SessionLimits, name: string, value: string | undefined): string | undefined {
  if (!isLimitedSetting(name)) return undefined;
  const limit = limits[name];
  if (limit === undefined || value === 'default') return undefined;
  const said = `${name} is limited to ${describeMs(limit)} for this access`;
  if (value === undefined) return `${said}; it cannot be set from an expression`;
  const ms = parseTimeSetting(value);
  if (ms === undefined) return `${said}; "${value}" is not a time it can check`;
  if (ms < 0) return `${said}; the server reads "${value}" as ${ms} ms, which is no time`;
  if (ms === 0) return `${said}; the server reads "${value}" as 0, and 0 would turn the limit off`;
  if (ms > limit) return `${said}; ${describeMs(ms)} is more`;
  return undefined;
}

/** The least restrictive of several rules' limits: a setting one rule leaves unlimited is unlimited. */
export function loosestLimits(all: readonly SessionLimits[]): SessionLimits {
  const out: SessionLimits = {};
  for (const name of Object.values(LIMIT_FIELDS)) {
    if (all.length === 0 || all.some((l) => l[name] === undefined)) continue;
    out[name] = Math.max(...all.map((l) => l[name]!));
  }
  return out;
}
