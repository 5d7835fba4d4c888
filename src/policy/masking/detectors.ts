/**
 * Content detectors for masking: pure functions that find sensitive values inside a text.
 *
 * Each detector returns the spans it found (start inclusive, end exclusive, UTF-16 offsets) in
 * order and without overlap. Detectors are tuned to keep false positives low: a hit must pass a
 * checksum (Luhn, ISO 7064 mod 97), a known-prefix check, or a documented entropy heuristic.
 *
 * @see https://www.iso.org/standard/70484.html (ISO/IEC 7812, card numbers and the Luhn check)
 * @see https://www.swift.com/standards/data-standards/iban (ISO 13616 IBAN registry)
 * @see https://www.ssa.gov/employer/randomization.html (SSN assignment and never-issued ranges)
 * @see https://datatracker.ietf.org/doc/html/rfc7519 (JWT compact serialization)
 * @see https://datatracker.ietf.org/doc/html/rfc7468 (PEM textual encoding)
 */

/** The detector names a policy can use. */
export type DetectorName = 'payment-card' | 'email' | 'us-ssn' | 'iban' | 'secret-token';

/** Every detector name, in the order they are applied. */
export const DETECTOR_NAMES: readonly DetectorName[] = ['secret-token', 'payment-card', 'iban', 'us-ssn', 'email'];

/** One sensitive value found in a text. */
export interface DetectorMatch {
  detector: DetectorName;
  /** UTF-16 offset of the first character. */
  start: number;
  /** UTF-16 offset past the last character. */
  end: number;
}

const isDigit = (c: number): boolean => c >= 48 && c <= 57;
const isUpper = (c: number): boolean => c >= 65 && c <= 90;
const isLower = (c: number): boolean => c >= 97 && c <= 122;
const isAlnum = (c: number): boolean => isDigit(c) || isUpper(c) || isLower(c);

/**
 * The Luhn (mod 10) check over a string of decimal digits.
 *
 * @see https://www.iso.org/standard/70484.html (ISO/IEC 7812-1 Annex B)
 */
export function luhnValid(digits: string): boolean {
  if (!/^\d+$/.test(digits)) return false;
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/**
 * Whether a card number's issuer identification number (its leading digits) belongs to a known
 * scheme, and its length fits that scheme: Visa, Mastercard, American Express, Discover, JCB,
 * Diners Club, UnionPay, Maestro, Mir.
 *
 * @see https://www.iso.org/standard/70484.html
 */
export function knownCardPrefix(digits: string): boolean {
  return /^\d{4}/.test(digits) && (cardLengths(Number(digits.slice(0, 4)))?.(digits.length) ?? false);
}

/** The lengths cards of each kind have. */
const VISA = (n: number): boolean => n === 13 || n === 16 || n === 19;
const SIXTEEN = (n: number): boolean => n === 16;
const FIFTEEN = (n: number): boolean => n === 15;
const LONG = (n: number): boolean => n >= 16 && n <= 19;
const DINERS = (n: number): boolean => n >= 14 && n <= 19;
const MAESTRO = (n: number): boolean => n >= 12 && n <= 19;

/** The lengths a card whose number begins with the four digits `p4` may have; undefined when no known card begins so. */
function cardLengths(p4: number): ((n: number) => boolean) | undefined {
  const p2 = Math.floor(p4 / 100);
  const p3 = Math.floor(p4 / 10);
  if (p4 >= 4000 && p4 <= 4999) return VISA;
  if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720)) return SIXTEEN; // Mastercard
  if (p2 === 34 || p2 === 37) return FIFTEEN; // Amex
  if (p4 === 6011 || (p3 >= 644 && p3 <= 649) || p2 === 65) return LONG; // Discover
  if (p4 >= 3528 && p4 <= 3589) return LONG; // JCB
  if ((p3 >= 300 && p3 <= 305) || p2 === 36 || p2 === 38 || p2 === 39) return DINERS;
  if (p2 === 62 || p2 === 81) return LONG; // UnionPay
  if (p4 >= 2200 && p4 <= 2204) return SIXTEEN; // Mir
  if (p2 === 50 || (p2 >= 56 && p2 <= 69)) return MAESTRO;
  return undefined;
}

const isDigitAt = (text: string, i: number): boolean => {
  const c = text.charCodeAt(i);
  return c >= 0x30 && c <= 0x39;
};
const isAlnumAt = (text: string, i: number): boolean => {
  const c = text.charCodeAt(i) | 0x20;
  return isDigitAt(text, i) || (c >= 0x61 && c <= 0x7a);
};

/**
 * A character that may group a card's digits as people and programs write them, one between two
 * groups: a space (a no-break, figure, thin or narrow one too) or a dash (a hyphen, en dash, minus
 * sign). Not a dot, a tab or a run of blanks: coordinates (`51.507351 -0.127758`) and columns of
 * numbers would read as cards.
 */
const isCardSeparator = (c: number): boolean => c === 0x20 || c === 0x2d || c === 0xa0 || c === 0x2007 || c === 0x2009 || c === 0x202f || (c >= 0x2010 && c <= 0x2013) || c === 0x2212 || c === 0xff0d;
/** A card number's digits alone (ASCII), however it was grouped or written: what its hash is of. */
export function cardDigits(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const v = digitValue(text, i);
    if (v >= 0) out += v;
  }
  return out;
}

/**
 * Payment card numbers: 13 to 19 digits (ASCII or fullwidth), optionally grouped by single
 * separators ({@link isCardSeparator}), with a known issuer prefix and a valid Luhn check digit.
 * A number is any run of whole digit groups
 * (beside another group or not: `4111 1111 1111 1111 12/28`, `7 4111 1111 1111 1111`) whose
 * ends touch no letter or digit; from each group of a run the longest number is taken, and numbers
 * that overlap are one span, so every digit of every number is in one (each digit read at most 19
 * times: linear in the text).
 *
 * @see https://www.iso.org/standard/70484.html
 */
export function findPaymentCards(text: string): DetectorMatch[] {
  const out: DetectorMatch[] = [];
  const n = text.length;
  const digit = /[0-9\uff10-\uff19]/g;
  for (let i = 0; i < n; ) {
    // The next digit: most of a text is none, and the regular expression engine passes over it at memory speed.
    digit.lastIndex = i;
    if (!digit.test(text)) break;
    i = digit.lastIndex - 1;
    if (i > 0 && (isAlnumAt(text, i - 1) || digitValue(text, i - 1) >= 0)) {
      i++;
      continue;
    }
    // Most runs of digits are too short for a card: counted first, they are passed over without building anything.
    let count = 0;
    let runEnd = i;
    for (let at = i; ; ) {
      while (digitValue(text, runEnd) >= 0) runEnd++;
      count += runEnd - at;
      if (runEnd + 1 < n && isCardSeparator(text.charCodeAt(runEnd)) && digitValue(text, runEnd + 1) >= 0) at = ++runEnd;
      else break;
    }
    if (count < 13) {
      i = runEnd;
      continue;
    }
    // The run starting at i: its digits' values, and each group's [start, end) in the text and its end among the digits.
    const values: number[] = [];
    const starts: number[] = [];
    const ends: number[] = [];
    const digitEnds: number[] = [];
    for (let at = i; ; ) {
      let end = at;
      for (let v = digitValue(text, end); v >= 0; v = digitValue(text, ++end)) values.push(v);
      starts.push(at);
      ends.push(end);
      digitEnds.push(values.length);
      if (end + 1 < n && isCardSeparator(text.charCodeAt(end)) && digitValue(text, end + 1) >= 0) at = end + 1;
      else break;
    }
    const luhn = luhnOfRun(values);
    // Where a number may end: after a group the next character of which is no letter (a digit cannot follow a group).
    const mayEnd = (g: number): boolean => ends[g]! >= n || !isAlnumAt(text, ends[g]!);
    // From each group, the longest number there; numbers that overlap are said as one span.
    for (let g = 0; g < starts.length; g++) {
      const s = g === 0 ? 0 : digitEnds[g - 1]!;
      if (values.length - s < 13) break;
      // Its first four digits say whether any card begins so: most runs of digits stop there.
      const lengths = cardLengths(values[s]! * 1000 + values[s + 1]! * 100 + values[s + 2]! * 10 + values[s + 3]!);
      if (!lengths) continue;
      let longest = -1;
      for (let k = g; k < starts.length && digitEnds[k]! - s <= 19; k++) {
        const length = digitEnds[k]! - s;
        if (length >= 13 && lengths(length) && mayEnd(k) && luhn(s, digitEnds[k]!)) longest = k;
      }
      if (longest < 0) continue;
      const last = out.at(-1);
      if (last && last.end >= starts[g]! && last.start >= i) last.end = Math.max(last.end, ends[longest]!);
      else out.push({ detector: 'payment-card', start: starts[g]!, end: ends[longest]! });
    }
    i = Math.max(ends.at(-1)!, i + 1);
  }
  return out;
}

/** A digit's value (ASCII or fullwidth), -1 for any other character. */
function digitValue(text: string, i: number): number {
  const c = text.charCodeAt(i);
  return c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0xff10 && c <= 0xff19 ? c - 0xff10 : -1;
}

/** The prefix sums {@link luhnOfRun} reads, kept between runs (a run's are read only until the next run's are made). */
let luhnSums = new Int32Array(4 * 64);

/** Whether the digits `values[s..e)` pass the Luhn check, each asked in constant time (sums of each parity's digits, plain and doubled, up to each place). */
function luhnOfRun(values: readonly number[]): (s: number, e: number) => boolean {
  const m = values.length;
  const w = m + 1;
  if (luhnSums.length < 4 * w) luhnSums = new Int32Array(8 * w);
  // Rows of `w`: the plain sums of the digits at even places, at odd places, then the doubled ones likewise.
  const sums = luhnSums;
  sums[0] = sums[w] = sums[2 * w] = sums[3 * w] = 0;
  for (let k = 0; k < m; k++) {
    const v = values[k]!;
    const twice = v * 2 > 9 ? v * 2 - 9 : v * 2;
    const par = k & 1;
    const plain = par * w;
    const doubled = (2 + par) * w;
    const otherPlain = (1 - par) * w;
    const otherDoubled = (3 - par) * w;
    sums[plain + k + 1] = sums[plain + k]! + v;
    sums[doubled + k + 1] = sums[doubled + k]! + twice;
    sums[otherPlain + k + 1] = sums[otherPlain + k]!;
    sums[otherDoubled + k + 1] = sums[otherDoubled + k]!;
  }
  // The last digit is taken as it is, the one before it doubled, and so on: by the parity of their places.
  return (s, e) => {
    const q = (e - 1) & 1;
    const plain = q * w;
    const doubled = (3 - q) * w;
    return (sums[plain + e]! - sums[plain + s]! + sums[doubled + e]! - sums[doubled + s]!) % 10 === 0;
  };
}

/** A character of an address's local part: letters, digits and `._%+-`. */
const isLocal = (c: number): boolean => isAlnum(c) || c === 0x2e || c === 0x5f || c === 0x25 || c === 0x2b || c === 0x2d;
const isLetter = (c: number): boolean => isUpper(c) || isLower(c);
/** Where an address may end: before no letter or digit, and no dot that goes on with one. */
const endsAddress = (text: string, b: number): boolean => !isAlnumAt(text, b) && !(text.charCodeAt(b) === 0x2e && isAlnumAt(text, b + 1));

/**
 * Email addresses (the common dot-atom form): a local part of 1 to 64 letters, digits and `._%+-`
 * (the whole run of them before the `@`, not starting with a dot), an `@`, and a domain of at least
 * two dot-separated labels (each 1 to 63 letters, digits and hyphens, starting with a letter or
 * digit) whose last is 2 to 63 letters, 254 characters in all, ending before no letter or digit
 * (and no dot that goes on with one). Each `@` gives its longest such address, found in one pass
 * over the labels after it (no regular expression: linear in the text).
 *
 * @see https://datatracker.ietf.org/doc/html/rfc5322#section-3.4.1
 * @see https://datatracker.ietf.org/doc/html/rfc1035#section-2.3.1
 */
export function findEmails(text: string): DetectorMatch[] {
  const out: DetectorMatch[] = [];
  for (let at = text.indexOf('@'); at >= 0; at = text.indexOf('@', at + 1)) {
    let a = at;
    while (a > 0 && at - a <= 64 && isLocal(text.charCodeAt(a - 1))) a--;
    if (a === at || at - a > 64 || (a > 0 && isLocal(text.charCodeAt(a - 1))) || text.charCodeAt(a) === 0x2e) continue;
    let end = -1;
    let labels = 0;
    // Each label in turn: a run of letters, digits and hyphens starting with a letter or digit, then a dot or the end.
    for (let i = at + 1; i < text.length && i - a <= 254 && isAlnum(text.charCodeAt(i)); ) {
      let j = i;
      while (j < text.length && j - i < 64 && (isAlnum(text.charCodeAt(j)) || text.charCodeAt(j) === 0x2d)) j++;
      if (j - i > 63) break;
      labels++;
      // The last label may be the letters this one starts with, up to a hyphen or its end.
      let k = i;
      while (k < j && isLetter(text.charCodeAt(k))) k++;
      if (labels >= 2 && k - i >= 2 && (k === j || text.charCodeAt(k) === 0x2d) && k - a <= 254 && endsAddress(text, k)) end = k;
      if (text.charCodeAt(j) !== 0x2e) break;
      i = j + 1;
    }
    if (end < 0) continue;
    // An address whose local part is the domain of the one before (`a@b.cd@e.fg`) joins it: one span.
    const last = out.at(-1);
    if (last && a < last.end) last.end = Math.max(last.end, end);
    else out.push({ detector: 'email', start: a, end });
  }
  return out;
}

const ssnCandidate = /(?<![0-9A-Za-z-])(\d{3})-(\d{2})-(\d{4})(?![0-9A-Za-z-])/g;

/**
 * US Social Security numbers written `NNN-NN-NNNN`, excluding what the SSA never issues: area
 * 000, 666 and 900–999, group 00, serial 0000, and the publicly used 078-05-1120 and 219-09-9999.
 *
 * @see https://www.ssa.gov/employer/randomization.html
 * @see https://www.ssa.gov/history/ssn/misused.html
 */
export function findUsSsns(text: string): DetectorMatch[] {
  if (!text.includes('-')) return [];
  const out: DetectorMatch[] = [];
  for (const m of text.matchAll(ssnCandidate)) {
    const [, area, group, serial] = m as unknown as [string, string, string, string];
    if (area === '000' || area === '666' || area[0] === '9' || group === '00' || serial === '0000') continue;
    if (m[0] === '078-05-1120' || m[0] === '219-09-9999') continue;
    out.push({ detector: 'us-ssn', start: m.index, end: m.index + m[0].length });
  }
  return out;
}

/**
 * IBAN lengths per country code (ISO 13616 registry).
 *
 * @see https://www.swift.com/standards/data-standards/iban
 */
const ibanLengths: Record<string, number> = {
  AD: 24,
  AE: 23,
  AL: 28,
  AT: 20,
  AZ: 28,
  BA: 20,
  BE: 16,
  BG: 22,
  BH: 22,
  BI: 27,
  BR: 29,
  BY: 28,
  CH: 21,
  CR: 22,
  CY: 28,
  CZ: 24,
  DE: 22,
  DJ: 27,
  DK: 18,
  DO: 28,
  EE: 20,
  EG: 29,
  ES: 24,
  FI: 18,
  FK: 18,
  FO: 18,
  FR: 27,
  GB: 22,
  GE: 22,
  GI: 23,
  GL: 18,
  GR: 27,
  GT: 28,
  HR: 21,
  HU: 28,
  IE: 22,
  IL: 23,
  IQ: 23,
  IS: 26,
  IT: 27,
  JO: 30,
  KW: 30,
  KZ: 20,
  LB: 28,
  LC: 32,
  LI: 21,
  LT: 20,
  LU: 20,
  LV: 21,
  LY: 25,
  MC: 27,
  MD: 24,
  ME: 22,
  MK: 19,
  MN: 20,
  MR: 27,
  MT: 31,
  MU: 30,
  NI: 28,
  NL: 18,
  NO: 15,
  OM: 23,
  PK: 24,
  PL: 28,
  PS: 29,
  PT: 25,
  QA: 29,
  RO: 24,
  RS: 22,
  RU: 33,
  SA: 24,
  SC: 31,
  SD: 18,
  SE: 24,
  SI: 19,
  SK: 24,
  SM: 27,
  SO: 23,
  ST: 25,
  SV: 28,
  TL: 23,
  TN: 24,
  TR: 26,
  UA: 29,
  VA: 22,
  VG: 24,
  XK: 20,
  YE: 30,
};

/**
 * The ISO 7064 MOD 97-10 check of an IBAN (without spaces, uppercase): move the first four
 * characters to the end, letters to numbers (A=10 … Z=35), and the remainder mod 97 must be 1.
 *
 * @see https://www.swift.com/standards/data-standards/iban
 */
export function ibanValid(iban: string): boolean {
  if (!/^[A-Z]{2}\d{2}[A-Z0-9]+$/.test(iban) || ibanLengths[iban.slice(0, 2)] !== iban.length) return false;
  const moved = iban.slice(4) + iban.slice(0, 4);
  let rem = 0;
  for (const ch of moved) {
    const c = ch.charCodeAt(0);
    const v = isDigit(c) ? c - 48 : c - 55;
    rem = v > 9 ? (rem * 100 + v) % 97 : (rem * 10 + v) % 97;
  }
  return rem === 1;
}

const ibanStart = /(?<![0-9A-Za-z])([A-Z]{2})(\d{2})/g;

/**
 * IBANs: a country code with a known length, two check digits, then the BBAN, optionally in
 * groups separated by single spaces, not followed by a letter or digit, passing MOD 97-10.
 *
 * @see https://www.swift.com/standards/data-standards/iban
 */
export function findIbans(text: string): DetectorMatch[] {
  const out: DetectorMatch[] = [];
  ibanStart.lastIndex = 0;
  for (let m = ibanStart.exec(text); m; m = ibanStart.exec(text)) {
    const length = ibanLengths[m[1]!];
    if (length === undefined) continue;
    let i = m.index + 4;
    let compact = m[1]! + m[2]!;
    while (compact.length < length && i < text.length) {
      let c = text.charCodeAt(i);
      if (c === 32 && i + 1 < text.length && (isUpper(text.charCodeAt(i + 1)) || isDigit(text.charCodeAt(i + 1)))) {
        i++;
        c = text.charCodeAt(i);
      }
      if (!isUpper(c) && !isDigit(c)) break;
      compact += text[i];
      i++;
    }
    // It ends where its run of digit groups ends: one more after it (`BE78 1234 5678 5555 5555 …`) makes it no IBAN.
    if (compact.length !== length || (i < text.length && isAlnum(text.charCodeAt(i))) || (text.charCodeAt(i) === 32 && isDigit(text.charCodeAt(i + 1)))) continue;
    if (!ibanValid(compact)) continue;
    out.push({ detector: 'iban', start: m.index, end: i });
    ibanStart.lastIndex = i;
  }
  return out;
}

/** Shannon entropy in bits per character of a string. */
export function shannonEntropy(s: string): number {
  if (s.length === 0) return 0;
  const counts = new Map<string, number>();
  for (const ch of s) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  let h = 0;
  for (const n of counts.values()) {
    const p = n / s.length;
    h -= p * Math.log2(p);
  }
  return h;
}

/** Tokens with a recognizable, vendor-documented shape (JWTs: {@link jwtSpans}). Every quantifier is bounded: a run of millions of characters never overflows the regular expression engine's stack. */
const knownTokens: RegExp[] = [
  // AWS access key ids (long-term AKIA, temporary ASIA).
  /(?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9])/g,
  // GitHub tokens: classic (ghp_, gho_, ghu_, ghs_, ghr_) and fine-grained.
  /(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{36,255}(?![A-Za-z0-9_])/g,
  /(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{22,255}/g,
  // Slack tokens (bot, app, user, refresh, legacy).
  /(?<![A-Za-z0-9])xox[abprse]-[A-Za-z0-9-]{10,250}/g,
  // Stripe secret and restricted keys.
  /(?<![A-Za-z0-9_])(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,247}/g,
];

/** How often consecutive characters change class (upper, lower, digit, other). */
function classChanges(s: string): number {
  const cls = (c: number): number => (isUpper(c) ? 0 : isLower(c) ? 1 : isDigit(c) ? 2 : 3);
  let n = 0;
  for (let i = 1; i < s.length; i++) if (cls(s.charCodeAt(i)) !== cls(s.charCodeAt(i - 1))) n++;
  return n;
}

/** The minimum length of an anonymous base64 or hex run considered a secret. */
const B64_MIN = 40;
const HEX_MIN = 48;

const isBase64Url = (c: number): boolean => isAlnum(c) || c === 0x5f /* _ */ || c === 0x2d; /* - */
const isBase64Any = (c: number): boolean => isBase64Url(c) || c === 0x2b /* + */ || c === 0x2f; /* / */
const isHex = (c: number): boolean => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);

/**
 * Calls `each` with the start and end of every maximal run of base64's characters (either
 * alphabet) at least {@link B64_MIN} long. Such a run holds one of every {@link B64_MIN}th
 * places of the text, so only those are read first, and a run is read out from one: each
 * character is read at most twice, whatever the runs' lengths.
 */
function base64Runs(text: string, each: (start: number, end: number) => void): void {
  const n = text.length;
  let done = 0;
  for (let k = B64_MIN - 1; k < n; k += B64_MIN) {
    if (k < done || !isBase64Any(text.charCodeAt(k))) continue;
    let start = k;
    while (start > done && isBase64Any(text.charCodeAt(start - 1))) start--;
    let end = k + 1;
    while (end < n && isBase64Any(text.charCodeAt(end))) end++;
    if (end - start >= B64_MIN) each(start, end);
    done = end;
  }
}

/**
 * JWS compact serializations: a base64url JSON header (`{"…` is always `eyJ`), at least five more
 * header characters, a payload of at least five, and a signature, dot-separated.
 * @see https://datatracker.ietf.org/doc/html/rfc7515#section-7.1
 */
function jwtSpans(text: string): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  const segment = (from: number): number => {
    let i = from;
    while (i < text.length && isBase64Url(text.charCodeAt(i))) i++;
    return i;
  };
  for (let at = text.indexOf('eyJ'); at >= 0; at = text.indexOf('eyJ', at + 1)) {
    if (at > 0 && isBase64Url(text.charCodeAt(at - 1))) continue;
    const header = segment(at + 3);
    if (header - at < 8 || text.charCodeAt(header) !== 0x2e) continue;
    const payload = segment(header + 1);
    if (payload - header - 1 < 5 || text.charCodeAt(payload) !== 0x2e) continue;
    const end = segment(payload + 1);
    spans.push([at, end]);
    at = end - 1;
  }
  return spans;
}

/**
 * Whether an anonymous run looks like random key material rather than a word, a path or a
 * hash-like identifier. The heuristic: a base64/base64url run of at least 40 characters that
 * mixes upper case, lower case and digits, has at least 4.2 bits of entropy per character
 * (English words stay well below; 40 random base64 characters average about 4.9), and changes
 * character class (upper, lower, digit, other) between at least 45% of neighbouring characters
 * (random base64 about 64%; camelCase identifiers and words far less); a hex run of at least 48 characters (so 40-character git object ids are not flagged)
 * with at least 3.3 bits per character (random hex averages about 3.8).
 */
export function looksRandom(run: string): boolean {
  const body = run.replace(/=+$/, '');
  if (/^[0-9a-fA-F]+$/.test(body)) return body.length >= HEX_MIN && shannonEntropy(body.toLowerCase()) >= 3.3;
  if (body.length < B64_MIN || !/[A-Z]/.test(body) || !/[a-z]/.test(body) || !/\d/.test(body)) return false;
  return shannonEntropy(body) >= 4.2 && classChanges(body) >= 0.45 * (body.length - 1);
}

/**
 * Secrets and tokens: JWTs, AWS access key ids, GitHub, Slack and Stripe tokens, PEM private key
 * blocks (to the END line, or to the end of the text when it is cut short), and long anonymous
 * base64 or hex runs that pass {@link looksRandom}.
 *
 * @see https://datatracker.ietf.org/doc/html/rfc7519#section-3
 * @see https://datatracker.ietf.org/doc/html/rfc7468#section-10
 * @see https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-unique-ids
 * @see https://docs.github.com/en/authentication/keeping-your-account-and-data-secure/about-authentication-to-github#githubs-token-formats
 */
export function findSecretTokens(text: string): DetectorMatch[] {
  const spans: Array<[number, number]> = [];
  let from = 0;
  for (;;) {
    const begin = text.indexOf('-----BEGIN ', from);
    if (begin < 0) break;
    const headEnd = text.indexOf('-----', begin + 11);
    if (headEnd < 0) break;
    const label = text.slice(begin + 11, headEnd);
    if (!/^[A-Z0-9 ]*PRIVATE KEY$/.test(label)) {
      from = headEnd;
      continue;
    }
    const endMarker = `-----END ${label}-----`;
    const end = text.indexOf(endMarker, headEnd + 5);
    const stop = end < 0 ? text.length : end + endMarker.length;
    spans.push([begin, stop]);
    from = stop;
  }
  spans.push(...jwtSpans(text));
  for (const re of knownTokens) for (const m of text.matchAll(re)) spans.push([m.index, m.index + m[0].length]);
  // Base64: a run of its alphabet and up to two '='. Hex: a run of letters and digits (within one of those) that is all hex digits.
  base64Runs(text, (start, run) => {
    let end = run;
    while (end < text.length && end - run < 2 && text.charCodeAt(end) === 0x3d /* = */) end++;
    if (looksRandom(text.slice(start, end))) spans.push([start, end]);
    for (let i = start; i < run; ) {
      if (!isAlnum(text.charCodeAt(i))) {
        i++;
        continue;
      }
      const from = i;
      let hex = true;
      for (; i < run && isAlnum(text.charCodeAt(i)); i++) hex &&= isHex(text.charCodeAt(i));
      if (hex && i - from >= HEX_MIN && looksRandom(text.slice(from, i))) spans.push([from, i]);
    }
  });
  return mergeSpans(spans).map(([start, end]) => ({ detector: 'secret-token' as const, start, end }));
}

function mergeSpans(spans: Array<[number, number]>): Array<[number, number]> {
  spans.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  const out: Array<[number, number]> = [];
  for (const s of spans) {
    const last = out[out.length - 1];
    if (last && s[0] < last[1]) last[1] = Math.max(last[1], s[1]);
    else out.push([s[0], s[1]]);
  }
  return out;
}

const finders: Record<DetectorName, (text: string) => DetectorMatch[]> = {
  'payment-card': findPaymentCards,
  email: findEmails,
  'us-ssn': findUsSsns,
  iban: findIbans,
  'secret-token': findSecretTokens,
};

/** Of `cards` (in order), those not wholly inside a valid IBAN of `text`: an account number's digit groups read as a card's (`DE91 1000 0000 0123 4567 89`) are not one. */
function outsideIbans(text: string, cards: DetectorMatch[]): DetectorMatch[] {
  if (cards.length === 0) return cards;
  const ibans = findIbans(text);
  if (ibans.length === 0) return cards;
  let k = 0;
  return cards.filter((c) => {
    while (k < ibans.length && ibans[k]!.end <= c.start) k++;
    return !(k < ibans.length && ibans[k]!.start <= c.start && c.end <= ibans[k]!.end);
  });
}

/** A number with a fraction or an exponent (`4.1e15`, `41111111111111.11e2`, `4111111111111111e0`, `4111111111111111.4`), not part of a word or another number. */
export const SCALED_NUMBER = /(?<![\w.])\d+(?:\.\d*)?e[+-]?\d{1,3}(?![\w.])|(?<![\w.])\d+\.\d+(?![\w.])/gi;
/** Of those, one with an exponent (`4111111111111111e0`, `41111111111111110e-1`): digits no reader of the text sees as written. */
export const EXPONENT_NUMBER = /(?<![\w.])\d+(?:\.\d*)?e[+-]?\d{1,3}(?![\w.])/gi;

/** The whole number `literal` (a {@link SCALED_NUMBER}) rounds to, as digits: what a reader of the number reads; undefined past 40 digits (no detector's value is that long). */
export function integerDigits(literal: string): string | undefined {
  const [mantissa = '', exp = '0'] = literal.toLowerCase().split('e');
  const [whole = '', fraction = ''] = mantissa.split('.');
  const shift = Number(exp) - fraction.length;
  if (whole.length + Number(exp) > 40) return undefined;
  const digits = BigInt(`${whole}${fraction}` || '0');
  if (shift >= 0) return (digits * 10n ** BigInt(shift)).toString();
  const unit = 10n ** BigInt(-shift);
  return ((digits + unit / 2n) / unit).toString();
}

/** What may read otherwise than written: invisible characters, dashes, spaces, other numbers and symbols (superscripts, circled letters and digits), small and fullwidth forms, dot leaders, mathematical letters and digits, segmented digits. */
const FOLDED = /^[\p{Default_Ignorable_Code_Point}\p{Pd}\u2212\p{Zs}\p{No}\p{So}\u2024-\u2026\uFE50-\uFE6B\uFF01-\uFF5E\u{1D400}-\u{1D7FF}\u{1FBF0}-\u{1FBF9}]$/u;
const IGNORABLE = /^\p{Default_Ignorable_Code_Point}$/u;
/** A character outside ASCII (the only ones that may read otherwise than written). */
const NOT_ASCII = /[^\0-\x7f]/;
const DASH = /^[\p{Pd}\u2212]$/u;
/** What each character outside ASCII reads as, by code point, once worked out: null when as written (ASCII always reads as written). */
const FOLDS = new Map<number, string | null>();
const foldOf = (cp: number): string | null => {
  let folded = FOLDS.get(cp);
  if (folded === undefined) {
    const ch = String.fromCodePoint(cp);
    folded = FOLDED.test(ch) ? (IGNORABLE.test(ch) ? '' : DASH.test(ch) ? '-' : ch.normalize('NFKC')) : ch;
    if (folded === ch) folded = null;
    // Bounded: past it (text made to hold every code point), each is worked out again.
    if (FOLDS.size < 65_536) FOLDS.set(cp, folded);
  }
  return folded;
};

/**
 * `text` as a reader sees it: what a renderer draws as nothing gone (Default_Ignorable: zero-width
 * spaces and joiners, soft hyphens, word joiners), compatibility forms folded (NFKC: fullwidth and
 * mathematical digits, `＠`, no-break and ideographic spaces) and every dash a `-`; with, per
 * character of it, the offset in `text` of the character it came from (`from`) and of the one after
 * (`past`). Undefined when it reads as written. Linear: only those characters are looked at.
 * @see https://www.unicode.org/reports/tr15/ (NFKC)
 */
export function readerView(text: string): { text: string; from: (k: number) => number; past: (k: number) => number } | undefined {
  // ASCII reads as written: the first character outside it is found at memory speed.
  const first = text.search(NOT_ASCII);
  if (first < 0) return undefined;
  const at: number[] = [];
  const was: number[] = [];
  const into: number[] = [];
  const now: number[] = [];
  const parts: string[] = [];
  let last = 0;
  let view = 0;
  for (let i = first; i < text.length; i++) {
    if (text.charCodeAt(i) < 0x80) continue;
    const cp = text.codePointAt(i)!;
    const size = cp > 0xffff ? 2 : 1;
    const folded = foldOf(cp);
    if (folded !== null) {
      if (i > last) parts.push(text.slice(last, i));
      parts.push(folded);
      view += i - last;
      at.push(i);
      was.push(size);
      into.push(view);
      now.push(folded.length);
      view += folded.length;
      last = i + size;
    }
    i += size - 1;
  }
  if (at.length === 0) return undefined;
  parts.push(text.slice(last));
  /** The last fold at or before view offset `k`. */
  const fold = (k: number): number => {
    let lo = -1;
    for (let hi = into.length; hi - lo > 1; ) {
      const mid = (lo + hi) >> 1;
      if (into[mid]! <= k) lo = mid;
      else hi = mid;
    }
    return lo;
  };
  const place = (k: number, end: boolean): number => {
    const j = fold(k);
    if (j < 0) return end ? k + 1 : k;
    if (k < into[j]! + now[j]!) return end ? at[j]! + was[j]! : at[j]!;
    const orig = at[j]! + was[j]! + (k - into[j]! - now[j]!);
    return end ? orig + 1 : orig;
  };
  return { text: parts.join(''), from: (k) => place(k, false), past: (k) => place(k, true) };
}

/**
 * Runs the given detectors over a text and returns their matches sorted by position, without
 * overlap: one detector's overlapping matches are one span; where two detectors' overlap, the one
 * that starts first (then the longer, then by the order of `detectors`) keeps the overlap, and the
 * other keeps what lies past it (a card after an
 * SSN-shaped prefix `555-12-4111 1111 …` is still masked past the prefix): together they cover
 * every character any detector matched. The text is read as written and as a reader sees it
 * ({@link readerView}).
 */
export function detect(text: string, detectors: readonly DetectorName[]): DetectorMatch[] {
  if (text.length < 6) return [];
  const all: DetectorMatch[] = [];
  const find = (t: string, each: (m: DetectorMatch) => void): void => {
    // One at a time: a long value can hold more matches than a call's arguments may.
    for (const d of detectors) for (const m of d === 'payment-card' ? outsideIbans(t, findPaymentCards(t)) : finders[d](t)) each(m);
  };
  find(text, (m) => all.push(m));
  // What a reader sees, where it differs: each match placed on the characters of the text it was read from.
  const view = readerView(text);
  if (view) find(view.text, (m) => all.push({ ...m, start: view.from(m.start), end: view.past(m.end - 1) }));
  if (all.length < 2) return all;
  const rank = (d: DetectorName): number => detectors.indexOf(d);
  all.sort((a, b) => a.start - b.start || b.end - a.end || rank(a.detector) - rank(b.detector));
  const out: DetectorMatch[] = [];
  for (const m of all) {
    const last = out[out.length - 1];
    if (!last || m.start >= last.end) out.push(m);
    // One detector's overlapping matches are one span (a card read as written and one read as a reader sees it: last4 of each showed 8 digits).
    else if (m.end > last.end && m.detector === last.detector) last.end = m.end;
    else if (m.end > last.end) out.push({ ...m, start: last.end });
  }
  return out;
}
