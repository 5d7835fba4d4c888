/**
 * What a client sent that its record redacts (secrets typed into SQL, bound as parameters, found by
 * the detectors), remembered for a while: where the server repeats one (an error's detail, a
 * notice: `Key (password)=(…) already exists`), the record holds its marker, as it holds the request.
 * Every recent secret is looked for, not only the last statement's: a pipelined batch's errors come
 * after later statements were sent.
 */
import { redactionMarker, secretPieces } from './redact.js';

/** Most pieces remembered (the oldest go first), and most characters in all. */
const MAX_PIECES = 512;
const MAX_CHARS = 1 << 20;

/** Field codes of an error or notice that quote the rows a COPY FROM sent (DETAIL, CONTEXT). @see https://www.postgresql.org/docs/current/protocol-error-fields.html */
const COPY_ROW_FIELDS = new Set(['D', 'W']);

/** See the module documentation. */
export class SentSecrets {
  readonly #key: Buffer | string | undefined;
  /** Each way a secret may be repeated -> its marker (by the secret as sent). */
  readonly #pieces = new Map<string, string>();
  #chars = 0;
  /** Longest first, made again when a piece is added. */
  #order: Array<[string, string]> | undefined;
  /** A COPY FROM STDIN is under way: its rows, which no record holds, are quoted by its errors. */
  copying = false;

  constructor(key: Buffer | string | undefined) {
    this.#key = key;
  }

  /** The secrets of `sql` at `spans`, as its record redacted them. */
  statement(sql: string, spans: ReadonlyArray<readonly [number, number]>): void {
    for (const [s, e] of spans) {
      const secret = sql.slice(s, e);
      for (const piece of secretPieces(secret)) this.#add(piece, secret);
    }
  }

  /** A value its record redacted whole (a bound parameter, what the detectors found in one). */
  value(value: string): void {
    if (value.length >= 4) this.#add(value, value);
  }

  /** Whether an error or notice may repeat something: a secret was sent, or a COPY's rows. */
  get any(): boolean {
    return this.#pieces.size > 0 || this.copying;
  }

  /** `text` with every secret it repeats as its marker. */
  redact(text: string): string {
    if (this.#pieces.size === 0) return text;
    this.#order ??= [...this.#pieces].sort((a, b) => b[0].length - a[0].length);
    let out = text;
    for (const [piece, marker] of this.#order) if (out.includes(piece)) out = out.split(piece).join(marker);
    return out;
  }

  /**
   * Field `code` of an error or notice, as it is recorded: its secrets as their markers; during a COPY FROM, what quotes
   * its rows (DETAIL: `Failing row contains (…)`, CONTEXT: `COPY t, line 1: "…"`) as one marker, and the message's quoted
   * values (`invalid input syntax for type integer: "…"`) as theirs.
   */
  field(code: string, text: string): string {
    if (this.copying && COPY_ROW_FIELDS.has(code)) return redactionMarker(text, this.#key);
    const out = this.redact(text);
    return this.copying && code === 'M' ? out.replace(/"[^"]*"/g, (quoted) => `"${redactionMarker(quoted.slice(1, -1), this.#key)}"`) : out;
  }

  #add(piece: string, secret: string): void {
    if (piece.length > MAX_CHARS) return;
    if (this.#pieces.delete(piece)) this.#chars -= piece.length;
    this.#pieces.set(piece, redactionMarker(secret, this.#key));
    this.#chars += piece.length;
    this.#order = undefined;
    for (const [oldest] of this.#pieces) {
      if (this.#pieces.size <= MAX_PIECES && this.#chars <= MAX_CHARS) break;
      this.#pieces.delete(oldest);
      this.#chars -= oldest.length;
    }
  }
}
