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

/**
 * The spellings of `credential` a response could echo, longest first.
 *
 * @throws Error when its secret is shorter than {@link MIN_SECRET_LENGTH} characters
 */
export function credentialSpellings(credential: HttpCredential): Buffer[] {
  const secrets = credentialSecrets(credential);
  if (secrets[0]!.length < MIN_SECRET_LENGTH)
    throw new Error(`the credential is shorter than ${MIN_SECRET_LENGTH} characters: the gateway could not keep it out of responses without masking ordinary text`);
  const spellings = new Set<string>();
  const other = (c: string): boolean => !/[A-Za-z0-9]/.test(c);
  for (const s of secrets) {
    const bytes = Buffer.from(s, 'utf8');
    const encoded = encodeURIComponent(s);
    const json = JSON.stringify(s).slice(1, -1);
    spellings.add(s);
    spellings.add(encoded);
    spellings.add(encoded.replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase()));
    spellings.add(encodeURIComponent(encoded));
    spellings.add(json);
    spellings.add(json.replace(/\//g, '\\/'));
    spellings.add([...s].map((c) => (other(c) ? `&#x${c.charCodeAt(0).toString(16).toUpperCase()};` : c)).join(''));
    spellings.add([...s].map((c) => (other(c) ? `&#${c.charCodeAt(0)};` : c)).join(''));
    spellings.add([...s].map((c) => (other(c) ? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}` : c)).join(''));
    spellings.add(bytes.toString('hex'));
    spellings.add(bytes.toString('hex').toUpperCase());
    // In base64 (and base64url) the secret's bytes read the same whatever comes before them, but for the first and last characters of its run: each of the three alignments' stable middle.
    for (const at of [0, 1, 2]) {
      const b64 = Buffer.concat([Buffer.alloc(at), bytes]).toString('base64');
      const middle = at === 0 ? b64.replace(/=+$/, '').slice(0, Math.floor((bytes.length * 4) / 3)) : b64.slice(4, -4);
      if (at === 0) spellings.add(b64);
      if (middle.length < MIN_SECRET_LENGTH) continue;
      spellings.add(middle);
      spellings.add(middle.replace(/\+/g, '-').replace(/\//g, '_'));
    }
  }
  return [...spellings].map((s) => Buffer.from(s, 'utf8')).sort((a, b) => b.length - a.length);
}

/**
 * Masks the spellings of a secret in a stream of bytes as they pass: `push` gives what may go on
 * now (all but the last few bytes, which could begin a spelling the next chunk completes), `end`
 * the rest. What comes out is what went in, each spelling's bytes `*`, in the same length.
 */
export class SecretMask {
  readonly #spellings: readonly Buffer[];
  /** Bytes held back: they may start a spelling. */
  #held: Buffer = Buffer.alloc(0);
  readonly #keep: number;

  constructor(spellings: readonly Buffer[]) {
    this.#spellings = spellings;
    this.#keep = Math.max(0, ...spellings.map((s) => s.length - 1));
  }

  push(chunk: Buffer): Buffer {
    const joined = this.#held.length === 0 ? chunk : Buffer.concat([this.#held, chunk]);
    const all = this.#mask(joined, joined === chunk, false);
    // The last bytes are held: a spelling may begin there (or run on past a shorter one) that the next chunk completes.
    const cut = Math.max(0, all.length - this.#keep);
    this.#held = all.subarray(cut);
    return all.subarray(0, cut);
  }

  end(): Buffer {
    const rest = this.#mask(this.#held, false, true);
    this.#held = Buffer.alloc(0);
    return rest;
  }

  /**
   * `bytes` with every spelling masked (in place, or in a copy when `borrowed`, the caller's chunk,
   * has one); unless `final`, a spelling that begins where a longer one could still run past the
   * end is left for the next chunk.
   */
  #mask(bytes: Buffer, borrowed: boolean, final: boolean): Buffer {
    let own = !borrowed;
    const seen = final ? bytes.length : bytes.length - this.#keep;
    for (const s of this.#spellings) {
      for (let at = bytes.indexOf(s); at >= 0 && at < seen; at = bytes.indexOf(s, at + 1)) {
        // A chunk with nothing to mask goes on as it came: copied only once there is.
        if (!own) {
          bytes = Buffer.from(bytes);
          own = true;
        }
        bytes.fill(0x2a, at, at + s.length);
      }
    }
    return bytes;
  }
}

/** `text` with each spelling masked (a header's value). */
export function maskText(text: string, spellings: readonly Buffer[]): string {
  const mask = new SecretMask(spellings);
  return Buffer.concat([mask.push(Buffer.from(text, 'latin1')), mask.end()]).toString('latin1');
}

/** What a decoded string (a JSON string's value) becomes with `credential`'s secrets masked in it; undefined when it holds none. */
export function secretsMasker(credential: HttpCredential): (text: string) => string | undefined {
  const secrets = credentialSecrets(credential);
  return (text) => (secrets.some((x) => text.includes(x)) ? secrets.reduce((t, x) => t.split(x).join('*'.repeat(x.length)), text) : undefined);
}

/**
 * The credential kept out of responses, as a stage (./stages.ts): masked in every field's name and
 * value and across the body as its spellings go by; in a JSON body, also in every string as JSON
 * reads it (whatever escapes spell it: `\/`, `\u0074`), the string written anew, unless the masking
 * stage after it reads that JSON (`jsonMasked`: it masks the secrets too, in its one reading).
 */
export class CredentialEcho implements HttpStage {
  readonly #spellings: readonly Buffer[];
  /** The spellings as a field's text reads them (latin1: a character a byte). */
  readonly #fieldSpellings: readonly string[];
  readonly #masker: (text: string) => string | undefined;
  readonly #jsonMasked: boolean;

  constructor(credential: HttpCredential, jsonMasked: boolean) {
    this.#spellings = credentialSpellings(credential);
    this.#fieldSpellings = this.#spellings.map((s) => s.toString('latin1'));
    this.#masker = secretsMasker(credential);
    this.#jsonMasked = jsonMasked;
  }

  /** A field's name or value with the spellings masked (most hold none, and are given back as they are). */
  #field(text: string): string {
    return this.#fieldSpellings.some((s) => text.includes(s)) ? maskText(text, this.#spellings) : text;
  }

  response(res: HttpResponse): ResponseDecision | undefined {
    res.fields = res.fields.map(([n, v]) => [this.#field(n), this.#field(v)]);
    if (!res.hasBody) return undefined;
    const mask = new SecretMask(this.#spellings);
    const types = mediaTypes(res);
    const shape = types.length === 1 && !this.#jsonMasked ? jsonShape(types[0]!) : undefined;
    if (!shape) return { transform: { push: (chunk) => mask.push(chunk), end: () => mask.end() } };
    const json = new JsonStream((_path, value) => (typeof value === 'string' ? this.#masker(value) : undefined), this.#masker, shape);
    res.fields = res.fields.filter(([n]) => n.toLowerCase() !== 'content-length');
    return { transform: { push: (chunk) => json.pushNow(mask.push(chunk)), end: () => Buffer.concat([json.pushNow(mask.end()), json.end()]) } };
  }
}
