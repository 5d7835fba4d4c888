/**
 * JSON read and written without losing a number: a number token a double would not keep as
 * written (more than 15 significant digits, or past a double's range: a 19-digit card number, a
 * 64-bit id) is read as a {@link JsonNumber} that keeps its text, and written back as that text.
 * Every other value is what `JSON.parse` reads; a text without such a token costs one
 * `JSON.parse` and a scan by one fixed regular expression.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8259#section-6
 */
import { randomBytes } from 'node:crypto';

/** JSON's number grammar, whole. */
const NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?$/;
/** Whether a text may hold a number a double would not keep: 16 digits in a row (a dot among them), or a 3-digit exponent. */
const MAY_LOSE = /\d(?:\.?\d){15}|[eE][-+]?\d{3}/;
/**
 * A JSON string, or a number token that {@link MAY_LOSE} could mean (16 digits or dots, or a
 * 3-digit exponent, at its start): left to right, a string is passed over whole, so no digit inside
 * one is read as a number. Linear in JSON text (each string is read once, from its opening quote).
 */
const STRING_OR_LONG_NUMBER = /"[^"\\]*(?:\\[\s\S][^"\\]*)*"|-?(?=[\d.]{16}|[\d.]*[eE][-+]?\d{3})(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?/g;

/** A JSON number kept as written; `Number` of it is what `JSON.parse` would have read. */
export class JsonNumber {
  readonly #text: string;

  constructor(text: string) {
    if (!NUMBER.test(text)) throw new TypeError(`not a JSON number: ${text.slice(0, 40)}`);
    this.#text = text;
  }

  /** The number as written. */
  get text(): string {
    return this.#text;
  }

  valueOf(): number {
    return Number(this.#text);
  }

  toString(): string {
    return this.#text;
  }

  /** In {@link jsonText}, its text; in a bare `JSON.stringify`, the double `JSON.parse` would have read. */
  toJSON(): number | string {
    if (!writing) return Number(this.#text);
    writing.nonce ??= newMark();
    return `\u0000${writing.nonce}:${this.#text}`;
  }
}

/** Whether number token `t` loses anything as a double: more than 15 significant digits, or out of range. */
function loses(t: string): boolean {
  const mantissa = t.replace(/^-/, '').replace(/[eE].*$/, '');
  const digits = mantissa.replace('.', '').replace(/^0+/, '');
  if (digits.length > 15) return true;
  const n = Number(t);
  return !Number.isFinite(n) || (n === 0 && digits !== '');
}

/** A new mark: what a long number is written as in a string, by a reader who alone knows it. */
export function newMark(): string {
  return randomBytes(12).toString('hex');
}

/**
 * JSON text `text` with each number a double would not keep written as a string,
 * `"\u0000<mark>:<number>"`; a text that is not JSON as it is (its reader refuses it, and the scan,
 * linear only in JSON, never reads it: a string left open restarts at each of its escaped quotes).
 */
export function markNumbers(text: string, mark: string): string {
  if (!MAY_LOSE.test(text)) return text;
  try {
    JSON.parse(text);
  } catch {
    return text;
  }
  return marked(text, mark);
}

/** {@link markNumbers} of a text known to be JSON. */
function marked(text: string, mark: string): string {
  return text.replace(STRING_OR_LONG_NUMBER, (t) => (t.charCodeAt(0) === 0x22 || !loses(t) ? t : `"\\u0000${mark}:${t}"`));
}

/** {@link markNumbers} of a part of a JSON text known to be JSON whole (a line of it, which begins outside a string). */
export function markJsonPart(text: string, mark: string): string {
  return MAY_LOSE.test(text) ? marked(text, mark) : text;
}

/** `text` as JSON, each number a double would not keep as a {@link JsonNumber}; throws as `JSON.parse` does. */
export function parseJson(text: string): unknown {
  const value: unknown = JSON.parse(text);
  if (!MAY_LOSE.test(text)) return value;
  const mark = newMark();
  const written = marked(text, mark);
  return written === text ? value : unmarked(JSON.parse(written), mark);
}

/** `value` (parsed from {@link markNumbers}' text, and the caller's own) with each string marked by `mark` a {@link JsonNumber}; walked without recursion. */
export function unmarked(value: unknown, mark: string): unknown {
  const prefix = `\u0000${mark}:`;
  const read = (v: unknown): unknown => (typeof v === 'string' && v.startsWith(prefix) && NUMBER.test(v.slice(prefix.length)) ? new JsonNumber(v.slice(prefix.length)) : v);
  const stack: object[] = typeof value === 'object' && value !== null ? [value] : [];
  for (let o = stack.pop(); o !== undefined; o = stack.pop()) {
    const entries = o as Record<string, unknown>;
    for (const k of Object.keys(entries)) {
      const v = entries[k];
      if (typeof v === 'object' && v !== null) stack.push(v);
      else entries[k] = read(v);
    }
  }
  return read(value);
}

/** The write {@link jsonText} is in: the nonce its numbers are marked by, once one is met. */
let writing: { nonce?: string } | undefined;

/** `value` as JSON (`JSON.stringify`'s, `space` as its), each {@link JsonNumber} as written. */
export function jsonText(value: unknown, space?: number): string {
  const outer = writing;
  const mine: { nonce?: string } = {};
  writing = mine;
  let out: string;
  try {
    out = JSON.stringify(value, undefined, space) ?? 'null';
  } finally {
    writing = outer;
  }
  return mine.nonce === undefined ? out : unmarkText(out, mine.nonce);
}

/** JSON text `text` with each string marked by `mark` (`"\u0000<mark>:<number>"`) written as its number; a mark no one else knows, so no other string holds it. */
export function unmarkText(text: string, mark: string): string {
  const head = `"\\u0000${mark}:`;
  let out = '';
  let from = 0;
  for (let at = text.indexOf(head); at >= 0; at = text.indexOf(head, at + 1)) {
    // A string's own quote (not one escaped inside another string), then a number and the string's end: a mark; any other text that holds it stays as it is.
    let slashes = 0;
    while (text[at - 1 - slashes] === '\\') slashes++;
    const end = text.indexOf('"', at + head.length);
    if (slashes % 2 === 1 || end < 0 || !NUMBER.test(text.slice(at + head.length, end))) continue;
    out += text.slice(from, at) + text.slice(at + head.length, end);
    from = end + 1;
    at = end;
  }
  return from === 0 ? text : out + text.slice(from);
}

/** The first key `text` (JSON, as `JSON.parse` takes it) writes twice in one object, decoded (`"a"` and `"\u0061"` are one key); undefined when none. */
export function keyWrittenTwice(text: string): string | undefined {
  const objects: (Set<string> | undefined)[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b) objects.push(new Set());
    else if (c === 0x5b) objects.push(undefined);
    else if (c === 0x7d || c === 0x5d) objects.pop();
    else if (c === 0x22) {
      let end = i + 1;
      while (text.charCodeAt(end) !== 0x22) end += text.charCodeAt(end) === 0x5c ? 2 : 1;
      let next = end + 1;
      while (/[ \t\n\r]/.test(text[next] ?? '')) next++;
      const keys = objects.at(-1);
      if (keys && text[next] === ':') {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        if (keys.has(key)) return key;
        keys.add(key);
      }
      i = end;
    }
  }
  return undefined;
}
