/**
 * The credential an HTTP connection's gateway holds: injected into each request it forwards, and
 * kept out of every response it relays. A request never carries the caller's own credential
 * upstream (its `Authorization`, `Proxy-Authorization`, and the header or query parameter the
 * connection's credential goes in are dropped first); a response never carries the gateway's back:
 * each spelling of it an echo could take (as sent, base64 for basic auth, percent-encoded, JSON
 * escaped) is masked where it appears, in a header or anywhere in the body, across the chunks it
 * arrives in. Masking keeps the length (each byte becomes `*`), so a body's framing still holds.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-11.6.2 (Authorization)
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-2.1 (bearer tokens)
 * @see https://www.rfc-editor.org/rfc/rfc7617 (basic)
 */
import { canonicalTarget, type RequestTarget } from '../wire/target.js';
import { JsonStream } from './json-stream.js';
import { jsonShape, mediaTypes } from './media-type.js';
import type { HttpResponse, HttpStage, ResponseDecision } from './stages.js';

/** Where the connection's credential goes. */
export type HttpCredential =
  | { kind: 'bearer'; token: string }
  | { kind: 'basic'; user: string; password: string }
  | { kind: 'header'; name: string; value: string }
  | { kind: 'query'; name: string; value: string };

/** Fields a caller's request may not carry upstream whatever the credential (its own credentials). */
const CALLERS_CREDENTIALS = new Set(['authorization', 'proxy-authorization']);

/**
 * The fields (lower-case names) and target forwarded for a request: the caller's own credential
 * dropped, then the connection's added.
 */
export function injectCredential(credential: HttpCredential, fields: ReadonlyArray<readonly [string, string]>, target: RequestTarget): { fields: Array<[string, string]>; target: RequestTarget } {
  const header = credential.kind === 'header' ? credential.name.toLowerCase() : undefined;
  const out: Array<[string, string]> = fields.filter(([name]) => !CALLERS_CREDENTIALS.has(name) && name !== header).map(([n, v]) => [n, v]);
  if (credential.kind === 'bearer') out.push(['authorization', `Bearer ${credential.token}`]);
  else if (credential.kind === 'basic') out.push(['authorization', `Basic ${basic(credential)}`]);
  else if (credential.kind === 'header') out.push([header!, credential.value]);
  if (credential.kind !== 'query') return { fields: out, target };
  // The caller's own parameter of that name goes, in any case (a server may read names case-insensitively).
  const name = credential.name.toLowerCase();
  const query: Array<[string, string]> = [...target.query.filter(([n]) => n.toLowerCase() !== name), [credential.name, credential.value]];
  return { fields: out, target: { segments: target.segments, query, canonical: canonicalTarget(target.segments, query) } };
}

/** A basic credential's `user:password` in base64. */
function basic(c: { user: string; password: string }): string {
  return Buffer.from(`${c.user}:${c.password}`, 'utf8').toString('base64');
}

/** The secrets of `credential` as they are, the first its own (a basic one's password, its base64, and `user:password`). */
function credentialSecrets(credential: HttpCredential): string[] {
  return credential.kind === 'bearer' ? [credential.token] : credential.kind === 'basic' ? [credential.password, basic(credential), `${credential.user}:${credential.password}`] : [credential.value];
}

/** Shortest secret taken: a shorter one could not be masked without masking ordinary text. */
export const MIN_SECRET_LENGTH = 8;

/** Regular-expression source matching `text` as written. */
const literal = (text: string): string => text.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');

/** Most leading zeros a numeric character reference is read with (`&#00065;`). */
const REF_ZEROS = 4;

/** HTML's named references of the characters an HTML writer escapes by name (Python's `html.escape`, PHP's `htmlspecialchars`). */
const HTML_NAMED: Readonly<Record<string, string>> = { '&': 'amp', '"': 'quot', "'": 'apos', '<': 'lt', '>': 'gt', '/': 'sol' };

/** JSON's and JavaScript's short escapes of control characters. */
const SHORT_ESCAPES: Readonly<Record<number, string>> = { 8: 'b', 9: 't', 10: 'n', 12: 'f', 13: 'r' };

/**
 * Characters whose literal spelling begins another of their spellings (`%` of `%25`, `&` of `&#38;`,
 * `\` of `\x5c`). A secret's pattern spells each either way, never both at one place, so that at
 * any place at most one spelling of a character matches and the pattern never backtracks: a
 * secret holding one has two patterns, one with these characters as written, one with them
 * encoded (its other characters in any spelling in both).
 */
const STARTS_ESCAPES = new Set(['%', '&', '\\']);

/**
 * Each way character `c` may be spelled where a secret is echoed, as the bytes (latin1) a body
 * holds: as itself (UTF-8), each byte percent-encoded (once or twice), `+` for a space, an HTML
 * numeric reference (decimal or hex, with leading zeros) or named one (`&amp;`), a JSON or JavaScript escape (`\u`, `\x`,
 * `\"`, `\/`, `\n`). A character of {@link STARTS_ESCAPES} is spelled as written only when
 * `written`, and then in none of its other spellings that begin alike; `%` is never twice encoded
 * (`%2525` begins with `%25`). No spelling of `c` begins another (case-folded, leading zeros
 * aside): a test holds this. Hex digits and letters match in either case: the expression is
 * case-insensitive.
 */
export function characterSpellings(c: string, written = false): string[] {
  const all = spellingsOf(c);
  if (!STARTS_ESCAPES.has(c)) return all;
  // As written: the character itself and its spellings that begin with another byte; encoded: all others.
  return written ? all.filter((x) => x === c || x[0] !== c) : all.filter((x) => x !== c && x !== '%2525');
}

/** Every spelling of character `c`, before {@link characterSpellings} picks those of a pattern. */
function spellingsOf(c: string): string[] {
  const bytes = [...Buffer.from(c, 'utf8')];
  const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0');
  const cp = c.codePointAt(0)!;
  const units = c.length === 2 ? [c.charCodeAt(0), c.charCodeAt(1)] : [cp];
  const out = new Set<string>([
    Buffer.from(bytes).toString('latin1'),
    bytes.map((b) => `%${hex(b, 2)}`).join(''),
    bytes.map((b) => `%25${hex(b, 2)}`).join(''),
    `&#${cp};`,
    `&#x${hex(cp, 1)};`,
    units.map((u) => `\\u${hex(u, 4)}`).join(''),
  ]);
  if (cp < 0x100) out.add(`\\x${hex(cp, 2)}`);
  if (HTML_NAMED[c]) out.add(`&${HTML_NAMED[c]};`);
  if (c === ' ') out.add('+');
  if (c === '"' || c === '\\' || c === '/') out.add(`\\${c}`);
  if (SHORT_ESCAPES[cp]) out.add(`\\${SHORT_ESCAPES[cp]}`);
  return [...out];
}

/** Character `c`'s spellings (as written when `written`, see {@link characterSpellings}) as one alternation (a numeric reference with up to {@link REF_ZEROS} leading zeros), and the longest of them in bytes. */
function characterPattern(c: string, written: boolean): { source: string; longest: number } {
  const spellings = characterSpellings(c, written);
  const source = spellings.map((x) => (x.startsWith('&#') ? literal(x).replace(/^&#(x?)/, `&#$10{0,${REF_ZEROS}}`) : literal(x))).join('|');
  return { source: `(?:${source})`, longest: Math.max(...spellings.map((x) => (x.startsWith('&#') ? x.length + REF_ZEROS : x.length))) };
}

/**
 * What finds `credential` in bytes a response holds: its secrets with each character in any of
 * its spellings ({@link characterSpellings}), mixed as an echo may mix them (`%2F` in one place,
 * `/` in the next: one pattern per secret, an alternation per character, matched in one pass, in
 * time linear in the text for each place a match may begin), each secret as written and in hex,
 * and its base64 (and base64url), whose characters are not the secret's own.
 */
export interface SecretMatcher {
  /** Global and case-insensitive, over a latin1 view of the bytes (a character a byte); `lastIndex` is reset by each user. */
  readonly regex: RegExp;
  /** The longest spelling, in bytes: what a stream holds back in case it continues. */
  readonly longest: number;
}

/** Matchers made, by the secrets they find (a few connections' credentials): making one takes about a millisecond, and every session of a connection needs its own credential's. */
const matchers = new Map<string, SecretMatcher>();
const MAX_MATCHERS = 64;

/**
 * The matcher of `credential`'s spellings, made once for its secrets (it holds no state a use
 * keeps: each resets `lastIndex` and runs to its end).
 *
 * @throws Error when its secret is shorter than {@link MIN_SECRET_LENGTH} characters
 */
export function credentialMatcher(credential: HttpCredential): SecretMatcher {
  const secrets = credentialSecrets(credential);
  const key = JSON.stringify(secrets);
  const known = matchers.get(key);
  if (known) return known;
  const made = matcherOf(secrets);
  if (matchers.size >= MAX_MATCHERS) matchers.delete(matchers.keys().next().value!);
  matchers.set(key, made);
  return made;
}

/** The matcher of `secrets` (see {@link credentialMatcher}). */
function matcherOf(secrets: readonly string[]): SecretMatcher {
  if (secrets[0]!.length < MIN_SECRET_LENGTH)
    throw new Error(`the credential is shorter than ${MIN_SECRET_LENGTH} characters: the gateway could not keep it out of responses without masking ordinary text`);
  const patterns: Array<{ source: string; longest: number }> = [];
  for (const s of secrets) {
    // Its characters in any spelling each; one that holds a `%`, `&` or `\\` twice: with those as written, and encoded.
    for (const written of [...s].some((c) => STARTS_ESCAPES.has(c)) ? [true, false] : [false]) {
      const chars = [...s].map((c) => characterPattern(c, written));
      patterns.push({ source: chars.map((c) => c.source).join(''), longest: chars.reduce((n, c) => n + c.longest, 0) });
    }
    // Whole: its bytes in hex.
    const hex = Buffer.from(s, 'utf8').toString('hex');
    patterns.push({ source: hex, longest: hex.length });
    // In base64 (and base64url) the secret's bytes read the same whatever comes before them, but for the first and last characters of its run: each of the three alignments' stable middle.
    const bytes = Buffer.from(s, 'utf8');
    for (const at of [0, 1, 2]) {
      const b64 = Buffer.concat([Buffer.alloc(at), bytes]).toString('base64');
      const middle = at === 0 ? b64.replace(/=+$/, '').slice(0, Math.floor((bytes.length * 4) / 3)) : b64.slice(4, -4);
      for (const x of at === 0 ? [b64, middle] : [middle]) {
        if (x.length < MIN_SECRET_LENGTH) continue;
        patterns.push({ source: literal(x), longest: x.length });
        patterns.push({ source: literal(x.replace(/\+/g, '-').replace(/\//g, '_')), longest: x.length });
      }
    }
  }
  // Longest first: where two begin at one place, the longer is masked.
  patterns.sort((a, b) => b.longest - a.longest);
  return { regex: new RegExp(patterns.map((p) => p.source).join('|'), 'gi'), longest: Math.max(...patterns.map((p) => p.longest)) };
}

/** `bytes` (read as latin1) with every match of `matcher` masked with `*`, in a copy when `borrowed` and there is one; matches beginning at or after `before` are left. */
function maskMatches(bytes: Buffer, matcher: SecretMatcher, borrowed: boolean, before: number): Buffer {
  const { regex } = matcher;
  regex.lastIndex = 0;
  const text = bytes.toString('latin1');
  let out = bytes;
  for (let m = regex.exec(text); m && m.index < before; m = regex.exec(text)) {
    // A chunk with nothing to mask goes on as it came: copied only once there is.
    if (out === bytes && borrowed) out = Buffer.from(bytes);
    out.fill(0x2a, m.index, m.index + m[0].length);
  }
  return out;
}

const EMPTY = Buffer.alloc(0);

/**
 * Masks the spellings of a secret in a stream of bytes as they pass: `push` gives what may go on
 * now (all but the last bytes, which could begin a spelling the next chunk completes, and nothing
 * until twice as many came: each byte is read a bounded number of times however small the chunks),
 * `end` the rest. What comes out is what went in, each spelling's bytes `*`, in the same length.
 */
export class SecretMask {
  readonly #matcher: SecretMatcher;
  /** Bytes held back: they may start a spelling. */
  #held: Buffer = Buffer.alloc(0);
  readonly #keep: number;

  constructor(matcher: SecretMatcher) {
    this.#matcher = matcher;
    this.#keep = matcher.longest - 1;
  }

  push(chunk: Buffer): Buffer {
    const joined = this.#held.length === 0 ? chunk : Buffer.concat([this.#held, chunk]);
    // Read once at least as many bytes can go on as are held back: else small chunks would have the held bytes read again and again (time in their product).
    if (joined.length < 2 * this.#keep) {
      this.#held = joined === chunk ? Buffer.from(chunk) : joined;
      return EMPTY;
    }
    // A spelling that begins before the held bytes ends within `joined` (none is longer than they are, plus one).
    const all = maskMatches(joined, this.#matcher, joined === chunk, joined.length - this.#keep);
    // The last bytes are held: a spelling may begin there (or run on past a shorter one) that the next chunk completes.
    const cut = Math.max(0, all.length - this.#keep);
    this.#held = all.subarray(cut);
    return all.subarray(0, cut);
  }

  end(): Buffer {
    const rest = maskMatches(this.#held, this.#matcher, false, this.#held.length);
    this.#held = Buffer.alloc(0);
    return rest;
  }
}

/** `text` (a character a byte, as a header's value reads) with each spelling masked. */
export function maskText(text: string, matcher: SecretMatcher): string {
  return maskMatches(Buffer.from(text, 'latin1'), matcher, false, text.length).toString('latin1');
}

/** What a decoded string (a JSON string's value) becomes with `credential`'s secrets masked in it; undefined when it holds none. */
export function secretsMasker(credential: HttpCredential): (text: string) => string | undefined {
  const matcher = credentialMatcher(credential);
  return (text) => {
    const bytes = Buffer.from(text, 'utf8');
    const masked = maskMatches(bytes, matcher, true, bytes.length);
    // Each match is whole characters' bytes: what is left reads as UTF-8 as before.
    return masked === bytes ? undefined : masked.toString('utf8');
  };
}

/**
 * The credential kept out of responses, as a stage (./stages.ts): masked in every field's name and
 * value and across the body as its spellings go by; in a JSON body, also in every string as JSON
 * reads it (whatever escapes spell it: `\/`, `\u0074`), the string written anew, unless the masking
 * stage after it reads that JSON (`jsonMasked`: it masks the secrets too, in its one reading).
 */
export class CredentialEcho implements HttpStage {
  readonly #matcher: SecretMatcher;
  readonly #masker: (text: string) => string | undefined;
  readonly #jsonMasked: boolean;

  constructor(credential: HttpCredential, jsonMasked: boolean) {
    this.#matcher = credentialMatcher(credential);
    this.#masker = secretsMasker(credential);
    this.#jsonMasked = jsonMasked;
  }

  /** A field's name or value with the spellings masked (most hold none, and are given back as they are). */
  #field(text: string): string {
    return maskText(text, this.#matcher);
  }

  response(res: HttpResponse): ResponseDecision | undefined {
    res.fields = res.fields.map(([n, v]) => [this.#field(n), this.#field(v)]);
    if (!res.hasBody) return undefined;
    const mask = new SecretMask(this.#matcher);
    const types = mediaTypes(res);
    const shape = types.length === 1 && !this.#jsonMasked ? jsonShape(types[0]!) : undefined;
    if (!shape) return { transform: { push: (chunk) => mask.push(chunk), end: () => mask.end() } };
    const json = new JsonStream((_path, value) => (typeof value === 'string' ? this.#masker(value) : undefined), this.#masker, shape);
    res.fields = res.fields.filter(([n]) => n.toLowerCase() !== 'content-length');
    return { transform: { push: (chunk) => json.pushNow(mask.push(chunk)), end: () => Buffer.concat([json.pushNow(mask.end()), json.end()]) } };
  }
}
