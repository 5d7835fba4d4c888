/**
 * Masking strategies: what a sensitive value becomes.
 *
 * - `redact`: the fixed text `[redacted]`.
 * - `last4`: every letter and digit except the last four becomes `*`; separators (anything that is
 *   not a letter or digit: spaces, dashes, `@`, dots) stay, so `4111 1111 1111 1111` becomes
 *   `**** **** **** 1111`.
 * - `hash`: `h:` and the first 16 hex digits of HMAC-SHA-256 under the policy key, so equal
 *   inputs give equal outputs (joins and group-bys still work) and the value cannot be recovered
 *   or brute-forced without the key.
 * - `null`: SQL NULL where the value is a whole field; inside a longer text (a notice, an error
 *   message, one match in a field that stays) it behaves as `redact`.
 *
 * @see https://datatracker.ietf.org/doc/html/rfc2104 (HMAC)
 * @see https://csrc.nist.gov/pubs/fips/180-4/upd1/final (SHA-256)
 */
import { createHmac } from 'node:crypto';

/** The strategies a policy can name. */
export type MaskStrategy = 'redact' | 'last4' | 'hash' | 'null';

/** Every strategy name. */
export const MASK_STRATEGIES: readonly MaskStrategy[] = ['redact', 'last4', 'hash', 'null'];

/** The text that replaces a redacted value. */
export const REDACTED = '[redacted]';

/** The prefix of a hashed value. */
export const HASH_PREFIX = 'h:';

/** Hex digits of the HMAC kept after {@link HASH_PREFIX} (64 bits). */
export const HASH_HEX_LENGTH = 16;

const LETTER_OR_DIGIT = /[\p{L}\p{N}]/u;
/** Whether `ch` (one code point) is a letter or a digit: ASCII's by its code, the rest by Unicode's classes. */
function isSignificant(ch: string): boolean {
  const c = ch.charCodeAt(0);
  if (c >= 0x80) return LETTER_OR_DIGIT.test(ch);
  const lower = c | 0x20;
  return (c >= 0x30 && c <= 0x39) || (lower >= 0x61 && lower <= 0x7a);
}

/**
 * Masks all but the last four letters/digits of `value` with `*`, keeping every other character.
 * A value with four or fewer letters/digits is masked entirely.
 */
export function last4(value: string): string {
  const chars = [...value];
  let significant = 0;
  for (const ch of chars) if (isSignificant(ch)) significant++;
  const keepFrom = significant > 4 ? significant - 4 : significant;
  let seen = 0;
  let out = '';
  for (const ch of chars) {
    if (isSignificant(ch)) {
      out += seen >= keepFrom ? ch : '*';
      seen++;
    } else out += ch;
  }
  return out;
}

/**
 * `h:` + the first {@link HASH_HEX_LENGTH} hex digits of HMAC-SHA-256(key, value).
 *
 * @see https://datatracker.ietf.org/doc/html/rfc2104
 */
export function keyedHash(value: string | Buffer, key: string | Buffer): string {
  return HASH_PREFIX + createHmac('sha256', key).update(value).digest('hex').slice(0, HASH_HEX_LENGTH);
}

/**
 * Applies a strategy to a text value. Returns null only for `null` when `allowNull` (the value is
 * a whole field that can be SQL NULL); otherwise `null` acts as `redact`. `key` is required for
 * `hash`.
 */
export function applyStrategy(value: string, strategy: MaskStrategy, key: string | Buffer | undefined, allowNull: boolean): string | null {
  switch (strategy) {
    case 'redact':
      return REDACTED;
    case 'last4':
      return last4(value);
    case 'hash':
      if (key === undefined || key.length === 0) return REDACTED;
      return keyedHash(value, key);
    case 'null':
      return allowNull ? null : REDACTED;
  }
}
