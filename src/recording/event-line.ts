/**
 * Events written as JSON lines (RFC 8259) straight into UTF-8 blocks outside the JavaScript heap.
 *
 * A recorder on the data path writes an event field by field ({@link EventLine}): a value read from
 * the wire (a column name, a row's value, a bind parameter) goes from the message's bytes to the
 * block without becoming a string or an object, and nothing waits on the heap for the chunk to be
 * cut: the garbage collector never copies what a recording holds. Rare events can still be written
 * whole as objects ({@link LineBlocks.add}).
 *
 * Values read from the wire are cut at {@link VALUE_MAX} characters (`…` marks the cut), and
 * binary ones are written as `base64:…` (docs/recording-format.md).
 *
 * @see https://www.rfc-editor.org/rfc/rfc8259
 */
import { jsonText } from '../json-number.js';

/** Longest value read from the wire that a recording keeps (in UTF-16 units, as JavaScript counts). */
export const VALUE_MAX = 4096;

/** A value cut at {@link VALUE_MAX}. */
export function cutValue(text: string): string {
  return cutText(text, VALUE_MAX);
}

/** `text` cut at `max` characters, with `…` after where it was cut. */
export function cutText(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/**
 * One event being written: `{"t":…,"at":…` is written by {@link EventSink.begin}, then fields as
 * `key(name)` and a value, arrays as `array()` … `close()`, and {@link EventLine.end} closes it.
 */
export interface EventLine {
  /** A field's name (a plain ASCII identifier); its value comes next. */
  key(name: string): this;
  string(text: string): this;
  /** UTF-8 bytes as a string, cut at {@link VALUE_MAX} (invalid sequences become U+FFFD, as Buffer#toString does). */
  text(bytes: Buffer, start: number, end: number): this;
  /** UTF-8 bytes as a string, whole (a statement's SQL). */
  utf8(bytes: Buffer, start: number, end: number): this;
  /** Binary bytes as `base64:…`, cut at {@link VALUE_MAX}. */
  binary(bytes: Buffer, start: number, end: number): this;
  /** Binary bytes as base64, whole (a record kept as it came, see ./wire.ts). */
  base64(bytes: Buffer, start: number, end: number): this;
  number(n: number): this;
  null(): this;
  /** Any JSON value, written as JSON.stringify writes it. */
  json(value: unknown): this;
  array(): this;
  /** Ends the array opened last. */
  close(): this;
  /** Ends the event. False when the sink wants the writer to wait for {@link EventSink.drained}. */
  end(): boolean;
}

/** An event: a type, the time in ms since the epoch, and its fields. */
export type RecordingEvent = { t: string; at: number } & Record<string, unknown>;

/** Where a protocol's recorder writes its events: a {@link RecordingWriter}, or anything that takes events. */
export interface EventSink {
  /** Writes a whole event. False when the sink wants the caller to wait for {@link EventSink.drained}. */
  append(event: RecordingEvent): boolean;
  /** Starts an event written field by field; the one started before must have ended. */
  begin(t: string, at: number): EventLine;
  drained(): Promise<void>;
}

/** Largest of the blocks lines are written into (a longer line gets a block of its own). */
const BLOCK = 16 * 1024;
/** The first block after the lines were taken; each next one is twice the one before, up to {@link BLOCK}. */
const FIRST_BLOCK = 1024;
/** No block: where lines start until the first is written. */
const NO_BLOCK = Buffer.alloc(0);
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;

/** `{"t":"<type>","at":` per event type, encoded once (there are a few types). */
const BEGINNINGS = new Map<string, Buffer>();

/**
 * JSON lines in blocks. A line never spans two blocks (one that does not fit moves to a new block
 * as it grows), so a line left unfinished by an exception is simply dropped by the next
 * {@link LineBlocks.begin}. {@link LineBlocks.take} hands over whole lines without copying them,
 * and with them the block: a recording that is idle holds no block, and the first block after
 * is small (a few events), growing as events come.
 */
export class LineBlocks implements EventLine {
  #done: Buffer[] = [];
  #doneBytes = 0;
  #block = NO_BLOCK;
  /** Where the lines not yet taken begin in the block. */
  #from = 0;
  /** Where the line being written begins. */
  #mark = 0;
  #used = 0;
  /** A value was written at this level: the next one needs a comma. */
  #comma = false;
  /** The time of the last line begun, and its digits (undefined for a time that is not a whole number of ms). */
  #at = Number.NaN;
  #atDigits: Buffer | undefined;
  readonly #onEnd: () => boolean;

  /** `onEnd` runs when a line ends; its answer is {@link EventLine.end}'s. */
  constructor(onEnd: () => boolean = () => true) {
    this.#onEnd = onEnd;
  }

  /** Bytes of whole lines held. */
  get bytes(): number {
    return this.#doneBytes + this.#mark - this.#from;
  }

  /** The whole lines so far, in order, and forgets them (with their block, unless a line is being written in it). */
  take(): Buffer[] {
    if (this.#mark > this.#from) this.#done.push(this.#block.subarray(this.#from, this.#mark));
    this.#from = this.#mark;
    this.#doneBytes = 0;
    if (this.#used === this.#mark) {
      this.#block = NO_BLOCK;
      this.#from = this.#mark = this.#used = 0;
      this.#at = Number.NaN;
      this.#atDigits = undefined;
    }
    const lines = this.#done;
    this.#done = [];
    return lines;
  }

  /** Starts a line (dropping one left unfinished): `{"t":"<t>","at":<at>`. */
  begin(t: string, at: number): EventLine {
    this.#used = this.#mark;
    let start = BEGINNINGS.get(t);
    if (!start) BEGINNINGS.set(t, (start = Buffer.from(`{"t":${JSON.stringify(t)},"at":`)));
    this.#copy(start);
    // Events come many to a millisecond: the time's digits are written once for all of them.
    if (at !== this.#at) {
      this.#at = at;
      this.#atDigits = Number.isSafeInteger(at) && at >= 0 ? Buffer.from(String(at)) : undefined;
    }
    if (this.#atDigits) this.#copy(this.#atDigits);
    else this.#number(at);
    this.#comma = true;
    return this;
  }

  /** A whole line of JSON. */
  add(json: string): boolean {
    this.#used = this.#mark;
    this.#utf16(json);
    this.#ascii('\n');
    this.#mark = this.#used;
    return this.#onEnd();
  }

  key(name: string): this {
    this.#separate();
    this.#room(name.length + 3);
    this.#block[this.#used++] = QUOTE;
    this.#ascii(name);
    this.#block[this.#used++] = QUOTE;
    this.#block[this.#used++] = 0x3a; // ':'
    return this;
  }

  string(text: string): this {
    this.#separate();
    const n = text.length;
    if (n <= VALUE_MAX) {
      // Printable ASCII without a quote or a backslash is its own JSON text: copied as it is.
      this.#room(n + 2);
      const block = this.#block;
      let u = this.#used;
      block[u++] = QUOTE;
      let i = 0;
      for (; i < n; i++) {
        const c = text.charCodeAt(i);
        if (c < 0x20 || c > 0x7e || c === QUOTE || c === BACKSLASH) break;
        block[u++] = c;
      }
      if (i === n) {
        block[u++] = QUOTE;
        this.#used = u;
        this.#comma = true;
        return this;
      }
    }
    this.#utf16(JSON.stringify(text));
    this.#comma = true;
    return this;
  }

  text(bytes: Buffer, start: number, end: number): this {
    if (end - start <= VALUE_MAX && this.#plain(bytes, start, end)) return this;
    // Anything else as Buffer#toString reads it; no more bytes than the cut can keep (a UTF-16 unit is at most 3 bytes).
    return this.string(cutValue(bytes.toString('utf8', start, Math.min(end, start + 3 * VALUE_MAX + 4))));
  }

  utf8(bytes: Buffer, start: number, end: number): this {
    return this.#plain(bytes, start, end) ? this : this.string(bytes.toString('utf8', start, end));
  }

  /** Writes the bytes as a JSON string if they are printable ASCII without a quote or a backslash (their own JSON text); false, having written nothing, if not. */
  #plain(bytes: Buffer, start: number, end: number): boolean {
    this.#separate();
    this.#room(end - start + 2);
    const block = this.#block;
    let u = this.#used;
    block[u++] = QUOTE;
    for (let i = start; i < end; i++) {
      const c = bytes[i]!;
      if (c < 0x20 || c > 0x7e || c === QUOTE || c === BACKSLASH) return false;
      block[u++] = c;
    }
    block[u++] = QUOTE;
    this.#used = u;
    this.#comma = true;
    return true;
  }

  binary(bytes: Buffer, start: number, end: number): this {
    // 3 bytes are 4 base64 characters: no more bytes than the cut can keep.
    return this.string(`base64:${cutValue(bytes.toString('base64', start, Math.min(end, start + (VALUE_MAX / 4) * 3 + 3)))}`);
  }

  base64(bytes: Buffer, start: number, end: number): this {
    const text = bytes.toString('base64', start, end);
    this.#separate();
    this.#room(text.length + 2);
    this.#block[this.#used++] = QUOTE;
    this.#used += this.#block.write(text, this.#used, 'latin1');
    this.#block[this.#used++] = QUOTE;
    this.#comma = true;
    return this;
  }

  number(n: number): this {
    this.#separate();
    this.#number(n);
    this.#comma = true;
    return this;
  }

  /** A number as JSON writes it; the digits of a non-negative integer (a time, a count) without a string between. */
  #number(n: number): void {
    if (!(Number.isSafeInteger(n) && n >= 0)) {
      this.#ascii(Number.isFinite(n) ? String(n) : 'null');
      return;
    }
    let digits = 1;
    for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
    this.#room(digits);
    let u = this.#used + digits;
    this.#used = u;
    for (let x = n; digits-- > 0; x = Math.floor(x / 10)) this.#block[--u] = 0x30 + (x % 10);
  }

  null(): this {
    this.#separate();
    this.#ascii('null');
    this.#comma = true;
    return this;
  }

  json(value: unknown): this {
    this.#separate();
    this.#utf16(jsonText(value));
    this.#comma = true;
    return this;
  }

  array(): this {
    this.#separate();
    this.#ascii('[');
    return this;
  }

  close(): this {
    this.#ascii(']');
    this.#comma = true;
    return this;
  }

  end(): boolean {
    this.#ascii('}\n');
    this.#mark = this.#used;
    this.#comma = false;
    return this.#onEnd();
  }

  #separate(): void {
    if (!this.#comma) return;
    this.#room(1);
    this.#block[this.#used++] = COMMA;
    this.#comma = false;
  }

  /** Bytes already encoded (a few: copied one by one, cheaper than a native copy). */
  #copy(bytes: Uint8Array): void {
    this.#room(bytes.length);
    const block = this.#block;
    let u = this.#used;
    for (let i = 0; i < bytes.length; i++) block[u++] = bytes[i]!;
    this.#used = u;
  }

  /** ASCII text (names, numbers, punctuation). */
  #ascii(s: string): void {
    this.#room(s.length);
    const block = this.#block;
    let u = this.#used;
    for (let i = 0; i < s.length; i++) block[u++] = s.charCodeAt(i);
    this.#used = u;
  }

  /** Any text, as UTF-8 (a UTF-16 unit is at most 3 bytes). */
  #utf16(s: string): void {
    this.#room(s.length * 3);
    this.#used += this.#block.write(s, this.#used);
  }

  /**
   * Makes room for `n` more bytes of the line being written: a new block when the line would not
   * fit. A line longer than a block gets one of twice its length, so that a line of many values
   * (a Bind of 65,535 parameters) is copied a logarithmic number of times, not once per value.
   */
  #room(n: number): void {
    if (this.#used + n <= this.#block.length) return;
    const line = this.#used - this.#mark;
    const size = this.#block === NO_BLOCK ? FIRST_BLOCK : Math.min(BLOCK, this.#block.length * 2);
    const next = Buffer.allocUnsafeSlow(Math.max(size, line + n, line > BLOCK / 2 ? 2 * line : 0));
    this.#block.copy(next, 0, this.#mark, this.#used);
    if (this.#mark > this.#from) {
      this.#done.push(this.#block.subarray(this.#from, this.#mark));
      this.#doneBytes += this.#mark - this.#from;
    }
    this.#block = next;
    this.#from = 0;
    this.#mark = 0;
    this.#used = line;
  }
}
