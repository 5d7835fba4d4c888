/**
 * Server-sent events rewritten as they stream: each event's data (its `data:` lines, joined by a
 * line feed as a browser joins them) is held until the event ends, handed to a transform, and sent
 * as the `data:` lines of what the transform made; every other line (`event:`, `id:`, `retry:`,
 * comments) goes on as a second transform makes it (by default, as it came). One event is held at a time, up to {@link MAX_EVENT_BYTES}; a
 * larger one throws: the caller cannot pass what it could not judge. Lines end in CRLF, LF or CR,
 * as the format allows, and are sent as they ended. Where the transform answers a Promise (a long
 * event's data masked off the event loop), the reading stops there and goes on once it settles.
 *
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 */

/** Largest event held to be judged. */
export const MAX_EVENT_BYTES = 1024 * 1024;

/** Why an event is not judged: it is larger than the gateway holds. */
const tooLarge = (): Error => new Error(`an event larger than ${MAX_EVENT_BYTES / 1024} KiB, which the gateway does not hold to judge`);

/** What an event's data becomes (a text of lines), now or once a Promise settles. */
export type EventDataTransform = (data: string) => string | Promise<string>;

/** See the module documentation. */
export class SseStream {
  readonly #transform: EventDataTransform;
  /** The line being read (its bytes so far), and the held event's data lines with what ended each. */
  #line = '';
  #data: string[] = [];
  #ends: string[] = [];
  #held = 0;
  /** A CR ended the last line: an LF right after it belongs to it. */
  #afterCr = false;
  /** The last line was a data line (held): its ending is in {@link #ends}. */
  #lastHeld = false;
  readonly #decoder = new TextDecoder('utf-8');

  readonly #other: (line: string) => string;

  /** `other`: what every other line (`event:`, `id:`, a comment) becomes (default: it goes as it came). */
  constructor(transform: EventDataTransform, other: (line: string) => string = (line) => line) {
    this.#transform = transform;
    this.#other = other;
  }

  /** What to send for `chunk` (a Promise while an event's data is being transformed). @throws Error when an event is larger than {@link MAX_EVENT_BYTES} */
  push(chunk: Buffer): Buffer | Promise<Buffer> {
    let text = this.#decoder.decode(chunk, { stream: true });
    let out = '';
    if (this.#afterCr && text.startsWith('\n')) {
      // The LF of a CRLF split between chunks: it ends the line the CR ended.
      out += this.#endOf('\n');
      text = text.slice(1);
    }
    // (A chunk that decodes to nothing, an empty one or part of a character, leaves the CR's LF still to come.)
    if (text.length > 0) this.#afterCr = false;
    return this.#lines(text, 0, out);
  }

  /** {@link push} of a stream whose transform never answers a Promise. */
  pushNow(chunk: Buffer): Buffer {
    const made = this.push(chunk);
    if (made instanceof Promise) throw new Error('an event stream whose transform waits was read as one that does not');
    return made;
  }

  /** The lines of `text` from `from` on, after `out`: what to send for them, or a Promise of it where an event's transform must be waited for. */
  #lines(text: string, from: number, out: string): Buffer | Promise<Buffer> {
    let at = from;
    for (let i = from; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 0x0a && c !== 0x0d) continue;
      let end = c === 0x0d ? '\r' : '\n';
      if (c === 0x0d && text.charCodeAt(i + 1) === 0x0a) end = '\r\n';
      else if (c === 0x0d && i + 1 === text.length) this.#afterCr = true;
      const line = this.#line + text.slice(at, i);
      this.#line = '';
      i += end.length - 1;
      at = i + 1;
      const made = this.#lineDone(line, end);
      if (typeof made !== 'string') {
        const next = at;
        return made.then((sent) => this.#lines(text, next, out + sent));
      }
      out += made;
    }
    this.#line += text.slice(at);
    if (this.#held + this.#line.length > MAX_EVENT_BYTES) throw tooLarge();
    return Buffer.from(out, 'utf8');
  }

  /** What is left at the stream's end: an event not ended by a blank line is dropped, as a browser drops it. */
  end(): Buffer {
    this.#data = [];
    this.#ends = [];
    const rest = this.#line + this.#decoder.decode();
    this.#line = '';
    return Buffer.from(rest.startsWith('data') || rest === '' ? '' : this.#other(rest), 'utf8');
  }

  /** A whole line, ended by `end`: what to send for it (a Promise while the event it ends is transformed). */
  #lineDone(line: string, end: string): string | Promise<string> {
    if (line === '') {
      this.#lastHeld = false;
      const flushed = this.#flush();
      return typeof flushed === 'string' ? `${flushed}${end}` : flushed.then((sent) => `${sent}${end}`);
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    this.#lastHeld = field === 'data';
    if (field !== 'data') return `${this.#other(line)}${end}`;
    // `data:value` or `data: value` (one space after the colon is not the value's).
    const value = colon < 0 ? '' : line.slice(colon + (line[colon + 1] === ' ' ? 2 : 1));
    this.#data.push(value);
    this.#ends.push(end);
    this.#held += line.length;
    // An event that came whole in a chunk (a decoded one can be large) is bounded as one across chunks is.
    if (this.#held > MAX_EVENT_BYTES) throw tooLarge();
    return '';
  }

  /** The held event's data through the transform, as `data:` lines. */
  #flush(): string | Promise<string> {
    if (this.#data.length === 0) return '';
    const made = this.#transform(this.#data.join('\n'));
    const ends = this.#ends;
    this.#data = [];
    this.#ends = [];
    this.#held = 0;
    const lines = (data: string): string =>
      data
        .split('\n')
        .map((v, i) => `data: ${v}${ends[Math.min(i, ends.length - 1)]}`)
        .join('');
    return typeof made === 'string' ? lines(made) : made.then(lines);
  }

  /** The LF that completes a CRLF whose CR ended the last chunk: it joins that line's ending. */
  #endOf(lf: string): string {
    if (!this.#lastHeld) return lf;
    this.#ends[this.#ends.length - 1] = `\r${lf}`;
    return '';
  }
}
