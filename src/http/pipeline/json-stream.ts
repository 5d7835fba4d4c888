/**
 * JSON bodies rewritten as they stream: each scalar value (a string, number, `true`, `false`,
 * `null`) is handed, with its path, to a transform that may put another value in its place; every
 * other byte (structure, white space, the values it keeps) goes on as it came, in the chunk it came
 * in, so a large response is never held whole. Only one scalar is held at a time, up to
 * {@link MAX_SCALAR_BYTES}; a larger one, or what is not JSON, throws: the caller cannot pass what
 * it could not judge. A body holds one value, or (as its caller says) one per line (NDJSON), or any
 * number one after another; a second value where one was expected, or two on one line, throws.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8259 (JSON)
 * @see https://github.com/ndjson/ndjson-spec
 */
import { JsonNumber } from '../../json-number.js';

/** A value's path: object keys, and array indices as numbers. */
export type JsonPath = ReadonlyArray<string | number>;

/** A scalar as read: a number a double cannot hold exactly as a {@link JsonNumber}. */
export type ScalarValue = string | number | JsonNumber | boolean | null;

/** Told of a scalar read whole before its transform; a Promise holds the body's reading until it settles (undefined: go on at once). */
export type ScalarPrepare = (value: ScalarValue) => Promise<void> | undefined;

/** What stands in a scalar's place (`undefined`: it stays as it came); `path` is read then, never kept (it changes as the body is read). A number a double cannot hold exactly comes as a {@link JsonNumber}, as written. */
export type ScalarTransform = (path: JsonPath, value: string | number | JsonNumber | boolean | null) => string | number | boolean | null | undefined;

/** How many values a body holds at its top: one (JSON), one per line (NDJSON: a line break between each), or any (concatenated JSON). */
export type TopValues = 'one' | 'lines' | 'any';

/** Largest scalar held to be judged (a string of a megabyte is a file, not a field). */
export const MAX_SCALAR_BYTES = 1024 * 1024;

/** Why a scalar is not judged: it is longer than the gateway holds. */
const tooLong = (): Error => new Error(`a JSON value longer than ${MAX_SCALAR_BYTES / 1024} KiB, which the gateway does not hold to judge`);

type Frame = { kind: 'object'; key: string | undefined; expect: 'key' | 'colon' | 'value' | 'comma' } | { kind: 'array'; index: number; expect: 'value' | 'comma' };

/** Each byte's class: 1 white space, 2 a number's or a literal's, 0 any other. */
const CLASS = new Uint8Array(256);
for (const c of ' \t\n\r') CLASS[c.charCodeAt(0)] = 1;
for (const c of '-+0123456789.eEabcdefghijklmnopqrstuvwxyz') CLASS[c.charCodeAt(0)] = 2;

/** See the module documentation. */
export class JsonStream {
  readonly #transform: ScalarTransform;
  readonly #keyTransform: ((name: string) => string | undefined) | undefined;
  readonly #stack: Frame[] = [];
  /** A scalar is being read (a string, else a number or a literal; a key or a value). */
  #inScalar = false;
  #string = false;
  #key = false;
  #escaped = false;
  /** The string being read has an escape (it is read by JSON.parse, not as its bytes). */
  #escapes = false;
  /** Where the scalar began in the chunk being read (-1: in an earlier one), and its bytes from earlier chunks. */
  #start = -1;
  #held: Buffer[] = [];
  #heldBytes = 0;
  /** The path of the value being read, kept as the stack changes (the transform reads it, never keeps it). */
  readonly #path: Array<string | number> = [];
  readonly #top: TopValues;
  /** Values ended at the top so far. */
  #topDone = 0;
  /** A value ended at the top since the last line break (NDJSON: the next must begin on another line). */
  #sameLine = false;

  /** Told of each scalar read whole (a key too) before the transform: a Promise holds the reading until it settles (a long text masked off the event loop first). */
  readonly #prepare: ScalarPrepare | undefined;

  /** `key`: what stands in an object key's place (undefined: it stays); the path keeps the key as it came. `top`: how many values the body holds at its top. `prepare`: see {@link ScalarPrepare}. */
  constructor(transform: ScalarTransform, key?: (name: string) => string | undefined, top: TopValues = 'any', prepare?: ScalarPrepare) {
    this.#transform = transform;
    this.#keyTransform = key;
    this.#top = top;
    this.#prepare = prepare;
  }

  /** The bytes to send for `chunk`: what it kept as it came, and what the transform put in place of its values (a Promise while `prepare` is waited for). @throws Error when it is not JSON */
  push(chunk: Buffer): Buffer | Promise<Buffer> {
    return this.#read(chunk, 0, 0, []);
  }

  /** {@link push} of a stream made without `prepare`, whose reading never waits. */
  pushNow(chunk: Buffer): Buffer {
    const made = this.#read(chunk, 0, 0, []);
    if (made instanceof Promise) throw new Error('a JSON stream with a preparation was read as one without');
    return made;
  }

  /** Reads `chunk` from `from`, the bytes before `run0` already in `out`; stops where a value's preparation must be waited for, and goes on from there once it settled. */
  #read(chunk: Buffer, from: number, run0: number, out: Buffer[]): Buffer | Promise<Buffer> {
    /** Where the run of bytes that go on as they came began (a scalar kept is part of it). */
    let run = run0;
    /** A value's preparation the reading waits for. */
    let wait: Promise<void> | undefined;
    /** The scalar that ended at `end` (exclusive): kept in the run, or its replacement sent in its place. */
    const ended = (end: number): void => {
      const began = this.#start;
      const earlier = this.#held;
      const value = this.#readScalar(chunk, end);
      const judged = (): void => {
        const made = this.#judgeScalar(value);
        // Kept: what it held from earlier chunks goes first, as it came, and its bytes here stay in the run.
        if (made === undefined) {
          if (began < 0) out.push(...earlier);
          return;
        }
        if (began >= 0) out.push(chunk.subarray(run, began));
        out.push(made);
        run = end;
      };
      const prepared = this.#prepare?.(value);
      if (prepared) wait = prepared.then(judged);
      else judged();
    };
    for (let i = from; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (this.#inScalar) {
        if (this.#string) {
          // A string's bytes in a tight loop, to its closing quote or the chunk's end.
          let escaped = this.#escaped;
          let escapes = this.#escapes;
          let j = i;
          for (; j < chunk.length; j++) {
            const b = chunk[j]!;
            if (escaped) escaped = false;
            else if (b === 0x5c) escaped = escapes = true;
            else if (b === 0x22) break;
            else if (b < 0x20) throw new Error('a control character in a JSON string');
          }
          this.#escaped = escaped;
          this.#escapes = escapes;
          i = j;
          if (j < chunk.length) {
            ended(j + 1);
            if (wait) return wait.then(() => this.#read(chunk, j + 1, run, out));
          }
          continue;
        }
        if (CLASS[c] === 2) continue;
        ended(i);
      }
      const k = CLASS[c];
      if (k === 1) {
        if (c === 0x0a) this.#sameLine = false;
        continue;
      }
      if (c === 0x22 || k === 2) {
        this.#key = this.#startScalar(c === 0x22);
        this.#inScalar = true;
        this.#string = c === 0x22;
        this.#escapes = false;
        this.#start = i;
        continue;
      }
      this.#structure(c);
    }
    if (this.#inScalar) {
      // What came of the scalar so far is held until it ends: the run before it goes now.
      const from = Math.max(this.#start, run);
      out.push(chunk.subarray(run, Math.max(this.#start, run)));
      this.#held.push(chunk.subarray(from));
      this.#heldBytes += chunk.length - from;
      this.#start = -1;
      if (this.#heldBytes > MAX_SCALAR_BYTES) throw tooLong();
    } else out.push(chunk.subarray(run));
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  /** What is left at the body's end (a number or literal it ended in). @throws Error when the body ends inside a value */
  end(): Buffer {
    let out: Buffer = Buffer.alloc(0);
    if (this.#inScalar && !this.#string) {
      const held = Buffer.concat(this.#held);
      this.#held = [];
      this.#start = 0;
      out = this.#judgeScalar(this.#readScalar(held, held.length)) ?? held;
    }
    if (this.#inScalar || this.#stack.length > 0) throw new Error('the JSON body ends inside a value');
    return out;
  }

  /** A scalar begins where the frame expects one; answers whether it is an object's key. */
  #startScalar(string: boolean): boolean {
    const top = this.#stack.at(-1);
    if (top?.kind === 'object' && top.expect === 'key') {
      if (!string) throw new Error("an object's key is not a string");
      return true;
    }
    this.#expectValue();
    return false;
  }

  /** A value begins: the frame must expect one (at the top, as many as the body may hold). */
  #expectValue(): void {
    const top = this.#stack.at(-1);
    if (top && top.expect !== 'value') throw new Error(`a value where the JSON expects ${top.expect === 'comma' ? 'a comma or the end' : `a ${top.expect}`}`);
    if (top || this.#topDone === 0) return;
    if (this.#top === 'one') throw new Error("a second value after the JSON body's one");
    if (this.#top === 'lines' && this.#sameLine) throw new Error('two values on one line of an NDJSON body');
  }

  /** The scalar read whole, its last bytes in `chunk` before `end`. */
  #readScalar(chunk: Buffer, end: number): ScalarValue {
    this.#inScalar = false;
    // Read where it lies when it lies in one chunk (most do): no copy.
    const whole = this.#start >= 0;
    const bytes = whole ? chunk : Buffer.concat([...this.#held, chunk.subarray(0, end)]);
    const from = whole ? this.#start : 0;
    const to = whole ? end : bytes.length;
    // One that came whole in a chunk (a decoded one can be large) is bounded as one held across chunks is.
    if (to - from > MAX_SCALAR_BYTES) throw tooLong();
    this.#held = [];
    this.#heldBytes = 0;
    return scalarValue(bytes, from, to, this.#string, this.#escapes);
  }

  /** The scalar read: a key noted, a value judged; answers what stands in its place (undefined: it stays). */
  #judgeScalar(value: ScalarValue): Buffer | undefined {
    const top = this.#stack.at(-1);
    let made: Buffer | undefined;
    if (this.#key) {
      const frame = top as Extract<Frame, { kind: 'object' }>;
      frame.key = value as string;
      frame.expect = 'colon';
      this.#path[this.#stack.length - 1] = frame.key;
      const replaced = this.#keyTransform?.(frame.key);
      if (replaced !== undefined) made = Buffer.from(JSON.stringify(replaced), 'utf8');
    } else {
      const replaced = this.#transform(this.#path, value);
      this.#valueDone();
      if (replaced !== undefined) made = Buffer.from(JSON.stringify(replaced), 'utf8');
    }
    return made;
  }

  /** A value ended: its frame expects a comma or its end. */
  #valueDone(): void {
    const top = this.#stack.at(-1);
    if (top) top.expect = 'comma';
    else {
      this.#topDone++;
      this.#sameLine = true;
    }
  }

  /** Structure: `{`, `}`, `[`, `]`, `:`, `,`. */
  #structure(c: number): void {
    const top = this.#stack.at(-1);
    if (c === 0x7b || c === 0x5b) {
      this.#expectValue();
      this.#stack.push(c === 0x7b ? { kind: 'object', key: undefined, expect: 'key' } : { kind: 'array', index: 0, expect: 'value' });
      this.#path.push(c === 0x7b ? '' : 0);
      return;
    }
    if (c === 0x7d || c === 0x5d) {
      const kind = c === 0x7d ? 'object' : 'array';
      // An empty one ends where it expects its first key or value; else after a value.
      const empty = top?.kind === 'object' ? top.expect === 'key' && top.key === undefined : top?.kind === 'array' && top.expect === 'value' && top.index === 0;
      if (top?.kind !== kind || !(top.expect === 'comma' || empty)) throw new Error(`a ${String.fromCharCode(c)} where the JSON does not end an ${kind}`);
      this.#stack.pop();
      this.#path.pop();
      this.#valueDone();
      return;
    }
    if (c === 0x3a && top?.kind === 'object' && top.expect === 'colon') {
      top.expect = 'value';
      return;
    }
    if (c === 0x2c && top?.expect === 'comma') {
      if (top.kind === 'object') top.expect = 'key';
      else {
        top.index++;
        top.expect = 'value';
        this.#path[this.#stack.length - 1] = top.index;
      }
      return;
    }
    throw new Error(`${JSON.stringify(String.fromCharCode(c))} where the JSON does not take it`);
  }
}

/** A JSON number (RFC 8259 §6). */
const NUMBER = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?$/;

/** The value of the scalar in `bytes` from `from` to `to` (a string with `escapes` or not): a string without escapes and the common literals and numbers read directly, the rest by JSON.parse. @throws Error when it is not one */
function scalarValue(bytes: Buffer, from: number, to: number, string: boolean, escapes: boolean): ScalarValue {
  if (string) {
    if (!escapes) return bytes.toString('utf8', from + 1, to - 1);
  } else {
    const text = bytes.toString('latin1', from, to);
    if (text === 'true') return true;
    if (text === 'false') return false;
    if (text === 'null') return null;
    // A number a double holds exactly as its reader would read it; a longer one as written (its digits are what a detector reads).
    if (NUMBER.test(text)) return text.replace(/^-|\.0*$/g, '').replace(/e.*$/i, '').length <= 15 ? Number(text) : new JsonNumber(text);
    throw new Error(`${JSON.stringify(text.slice(0, 40))} is not a JSON value`);
  }
  const text = bytes.toString('utf8', from, to);
  try {
    return JSON.parse(text) as string;
  } catch {
    throw new Error(`${JSON.stringify(text.slice(0, 40))} is not a JSON value`);
  }
}
