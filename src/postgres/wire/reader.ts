/**
 * Reading typed PostgreSQL v3 messages (type byte, Int32 length, body) from a byte stream, and
 * parsers for the message bodies hoop needs to understand during authentication.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 * @see https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS
 */
import type { PgErrorFields, PgSeverity } from './messages.js';
import { Backend, Frontend } from './codes.js';
import { PgProtocolError } from './protocol-error.js';
import { ByteRun } from '../../byte-run.js';
import { PG_MAX_AUTH_TOKEN_LENGTH, PQ_LARGE_MESSAGE_LIMIT, PQ_SMALL_MESSAGE_LIMIT } from './fields.js';

/**
 * One typed message. `raw` is the whole message (type, length, body), `body` the part after the
 * length; both are views into the received bytes when the message arrived in one chunk.
 *
 * @see https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS
 */
export interface PgMessage {
  type: number;
  body: Buffer;
  raw: Buffer;
}

const SMALL = PQ_SMALL_MESSAGE_LIMIT;
const LARGE = PQ_LARGE_MESSAGE_LIMIT;
const AUTH_TOKEN = PG_MAX_AUTH_TOKEN_LENGTH;

/**
 * Largest length field (which counts itself) allowed per message type, indexed by the type byte
 * (0: not a message of that side); negative for types whose length must be exactly that value
 * (no body, or a fixed one).
 */
/** The table of `limits` (a message type's largest length, or negative: its exact length). */
function limitTable(limits: ReadonlyArray<readonly [number, number]>): Int32Array {
  const table = new Int32Array(256);
  for (const [type, limit] of limits) table[type] = limit;
  return table;
}

/** Exactly `n` bytes of length: the message has no body, or a fixed one. */
const exactly = (n: number): number => -n;

const frontendLimits = limitTable([
  [Frontend.BIND, LARGE],
  [Frontend.CLOSE, SMALL],
  [Frontend.COPY_DONE, exactly(4)],
  [Frontend.COPY_DATA, LARGE],
  [Frontend.DESCRIBE, SMALL],
  [Frontend.EXECUTE, SMALL],
  [Frontend.FLUSH, exactly(4)],
  [Frontend.FUNCTION_CALL, LARGE],
  [Frontend.COPY_FAIL, SMALL],
  [Frontend.PASSWORD, AUTH_TOKEN],
  [Frontend.PARSE, LARGE],
  [Frontend.QUERY, LARGE],
  [Frontend.SYNC, exactly(4)],
  [Frontend.TERMINATE, exactly(4)],
]);

const B = Backend;
const backendLimits = limitTable([
  ...[
    B.AUTHENTICATION,
    B.BACKEND_KEY_DATA,
    B.PARAMETER_STATUS,
    B.ROW_DESCRIPTION,
    B.DATA_ROW,
    B.COMMAND_COMPLETE,
    B.ERROR,
    B.NOTICE,
    B.NOTIFICATION,
    B.PARAMETER_DESCRIPTION,
    B.FUNCTION_CALL_RESPONSE,
    B.COPY_IN,
    B.COPY_OUT,
    B.COPY_BOTH,
    B.COPY_DATA,
    B.NEGOTIATE_PROTOCOL_VERSION,
  ].map((type) => [type, LARGE] as const),
  ...[B.PARSE_COMPLETE, B.BIND_COMPLETE, B.CLOSE_COMPLETE, B.NO_DATA, B.PORTAL_SUSPENDED, B.EMPTY_QUERY, B.COPY_DONE].map((type) => [type, exactly(4)] as const),
  [B.READY_FOR_QUERY, exactly(5)],
]);

function typeName(type: number): string {
  return type >= 0x20 && type < 0x7f ? `'${String.fromCharCode(type)}'` : `0x${type.toString(16).padStart(2, '0')}`;
}

function unexpectedType(side: 'frontend' | 'backend', type: number): PgProtocolError {
  return new PgProtocolError(`unexpected ${side} message type ${typeName(type)}`);
}

/** What is wrong with a length field `len` for a message of `type` whose limit is `limit` (see {@link limitTable}), if anything. */
function lengthProblem(type: number, len: number, limit: number): PgProtocolError | undefined {
  if (len < 4) return new PgProtocolError(`invalid message length ${len} for ${typeName(type)}`);
  if (limit < 0 ? len !== -limit : len > limit) {
    return new PgProtocolError(limit < 0 ? `invalid message length ${len} for ${typeName(type)} (must be ${-limit})` : `message length ${len} exceeds the ${limit}-byte limit for ${typeName(type)}`);
  }
  return undefined;
}

/**
 * The checks a {@link MessageReader} makes of a header, for code that walks headers without one:
 * throws unless `type` is a message `side` sends and `len` (its length field) is within the
 * type's limit. @throws PgProtocolError
 */
export function checkHeader(side: 'frontend' | 'backend', type: number, len: number): void {
  const limit = (side === 'frontend' ? frontendLimits : backendLimits)[type]!;
  if (limit === 0) throw unexpectedType(side, type);
  const problem = lengthProblem(type, len, limit);
  if (problem) throw problem;
}

/** Options of a {@link MessageReader}. */
export interface MessageReaderOptions {
  /** Whose messages are read: `frontend` (a client's) or `backend` (a server's). */
  side: 'frontend' | 'backend';
}

/**
 * What {@link MessageReader.frame} does with one message, decided when its 5-byte header is in:
 * - `whole`: returned as one {@link PgMessage} (views into the received bytes when it came in one
 *   chunk, else copied once when complete);
 * - `pass`: its bytes go to the output {@link ByteRun} as they arrive, never parsed nor held;
 * - `run`: as `pass`, and so is every message of the same type that directly follows it in the
 *   bytes at hand, without asking again (a result's rows: one decision per received chunk, not
 *   per row); how many messages the run held goes to the `ran` callback of `frame()` once it ends;
 * - `stream`: returned in {@link StreamPart}s as they arrive, for the caller to forward or drop,
 *   so that a message larger than anything the caller may hold still goes through.
 */
export type Framing = 'whole' | 'pass' | 'run' | 'stream';

/**
 * A piece of a message read in `stream` mode: the first part starts with the 5-byte header, the
 * last one ends the message.
 */
export interface StreamPart {
  part: true;
  type: number;
  /** The message's length field (which counts itself but not the type byte). */
  length: number;
  bytes: Buffer;
  first: boolean;
  last: boolean;
}

/**
 * Splits a byte stream into typed messages. Push chunks as they arrive; then either call
 * `next()` until it returns null (every message whole), or `frame()` with a decision per message
 * (see {@link Framing}), which lets a relay pass or stream what it need not hold. A message
 * inside one chunk is returned as views into it (no copy); a whole message that spans chunks is
 * copied once, when complete. Type and length are checked as soon as the 5-byte header is in, so
 * an oversized claim is refused before any of it is buffered. After an error the reader stays
 * failed.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
export class MessageReader {
  private readonly limits: Int32Array;
  private readonly side: 'frontend' | 'backend';
  private chunks: Buffer[] = [];
  private head = 0;
  /** Offset of the first unread byte in `chunks[head]`. */
  private offset = 0;
  private total = 0;
  /** Length of the message whose header has been read, else -1. */
  private pending = -1;
  private pendingType = 0;
  /** How the message whose header has been read is framed; for pass and stream, its bytes still to come. */
  private mode: Framing = 'whole';
  private left = 0;
  /** The length field of the message last begun (kept after `pending` is cleared). */
  private length = 0;
  private streamedFirst = false;
  /** Where, in `chunks[head]`, the bytes of passed messages not yet added to the output begin (-1: none). */
  private passStart = -1;
  /** A large whole message being assembled as its bytes arrive (so its copy is spread over them), and how much is in. */
  private assembly: Buffer | undefined;
  private assembled = 0;
  private failure: PgProtocolError | undefined;
  /** The type of the run of passed messages in progress (-1: none), and how many it holds so far. */
  private runType = -1;
  private runCount = 0;

  constructor(options: MessageReaderOptions) {
    this.side = options.side;
    this.limits = options.side === 'frontend' ? frontendLimits : backendLimits;
  }

  /**
   * Bytes received but not yet returned: after `next()` or `frame()` returns null, the bytes of an
   * incomplete message (of a passed or streamed message, only what has not been handed on).
   */
  get bufferedBytes(): number {
    return this.total;
  }

  /** True between two messages: no byte of a started message is held or still expected. */
  get atBoundary(): boolean {
    return this.total === 0 && this.pending < 0 && this.failure === undefined;
  }

  /** Appends received bytes. */
  push(chunk: Buffer): void {
    if (this.failure || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  /**
   * Removes and returns every byte received but not yet returned by `next()` (an incomplete
   * message's header included), to hand the stream over to another reader or a relay.
   */
  takeBuffered(): Buffer {
    const parts = this.chunks.slice(this.head);
    if (parts.length > 0) parts[0] = parts[0]!.subarray(this.offset);
    this.chunks = [];
    this.head = 0;
    this.offset = 0;
    this.total = 0;
    this.pending = -1;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** The next complete message, or null when more bytes are needed. @throws PgProtocolError */
  next(): PgMessage | null {
    return this.frame(WHOLE, NO_RUN) as PgMessage | null;
  }

  /**
   * The next message to hand to the caller: a whole message, or a part of a streamed one; null
   * when more bytes are needed. `decide` is asked once per message, when its header is in
   * (messages already complete in the buffer are still offered to it, so that a relay passes
   * what it need not parse); the bytes of passed messages are added to `out` on the way. A run
   * (see {@link Framing}) ends at a message of another type or when `frame()` returns, and `ran`
   * is then told its type and how many messages it held.
   *
   * @throws PgProtocolError on an unknown type or a length beyond the type's limit
   */
  frame(decide: (type: number, length: number) => Framing, out: ByteRun, ran?: (type: number, count: number) => void): PgMessage | StreamPart | null {
    if (this.failure) throw this.failure;
    try {
      for (;;) {
        if (this.pending < 0) {
          if (!this.readHeader()) {
            this.flushPass(out);
            return null;
          }
          if (this.pendingType === this.runType) {
            this.runCount++;
            this.mode = 'pass';
          } else {
            if (this.runType >= 0) this.endRun(ran);
            this.mode = decide(this.pendingType, this.pending);
            if (this.mode === 'run') {
              this.mode = 'pass';
              this.runType = this.pendingType;
              this.runCount = 1;
            }
          }
          this.left = 1 + this.pending;
          this.streamedFirst = true;
        }
        if (this.mode === 'pass') {
          // Passed bytes are handed on as one view per received chunk, however many messages it holds.
          if (this.total === 0) return null;
          const chunk = this.chunks[this.head]!;
          const n = Math.min(this.left, chunk.length - this.offset);
          if (this.passStart < 0) this.passStart = this.offset;
          this.offset += n;
          this.total -= n;
          this.left -= n;
          if (this.left === 0) {
            this.pending = -1;
            if (this.runType >= 0) this.skipRun(chunk);
          }
          if (this.offset === chunk.length) {
            this.flushPass(out);
            this.advance();
          }
          continue;
        }
        this.flushPass(out);
        if (this.mode === 'whole') {
          const size = 1 + this.pending;
          if (size > ASSEMBLE_ABOVE && !(this.assembled === 0 && this.offset + size <= this.chunks[this.head]!.length)) {
            // Copied as it arrives: no stall of the event loop for one big copy at the end.
            this.assembly ??= Buffer.allocUnsafeSlow(size);
            while (this.total > 0 && this.assembled < size) {
              const bytes = this.takeUpTo(size - this.assembled);
              bytes.copy(this.assembly, this.assembled);
              this.assembled += bytes.length;
            }
            if (this.assembled < size) return null;
            const raw = this.assembly;
            this.assembly = undefined;
            this.assembled = 0;
            this.pending = -1;
            return { type: this.pendingType, body: raw.subarray(5), raw };
          }
          if (this.total < size) return null;
          const raw = this.take(size);
          this.pending = -1;
          return { type: this.pendingType, body: raw.subarray(5), raw };
        }
        if (this.total === 0) return null;
        const first = this.streamedFirst;
        // The first part holds the whole header (in by now, though maybe across chunks): readers of the part skip it.
        const bytes = first ? this.take(Math.max(5, Math.min(this.left, this.chunks[this.head]!.length - this.offset))) : this.takeUpTo(this.left);
        this.left -= bytes.length;
        const last = this.left === 0;
        if (last) this.pending = -1;
        this.streamedFirst = false;
        return { part: true, type: this.pendingType, length: this.length, bytes, first, last };
      }
    } catch (err) {
      if (err instanceof PgProtocolError) {
        this.failure = err;
        this.chunks = [];
        this.head = 0;
        this.offset = 0;
        this.total = 0;
        this.passStart = -1;
        this.assembly = undefined;
      }
      throw err;
    } finally {
      if (this.runType >= 0) this.endRun(ran);
    }
  }

  /**
   * Passes, within `chunk`, the whole messages of the run's type that come next (the run's hot
   * loop: no decision, no state but the cursor); a header that would fail its checks, or a
   * message cut by the chunk's end, is left to the general path.
   */
  private skipRun(chunk: Buffer): void {
    const type = this.runType;
    const limit = this.limits[type]!;
    let at = this.offset;
    let count = 0;
    while (at + 5 <= chunk.length && chunk[at] === type) {
      const len = chunk.readInt32BE(at + 1);
      if (len < 4 || len > limit || at + 1 + len > chunk.length) break;
      at += 1 + len;
      count++;
    }
    this.total -= at - this.offset;
    this.offset = at;
    this.runCount += count;
  }

  private endRun(ran: ((type: number, count: number) => void) | undefined): void {
    const type = this.runType;
    this.runType = -1;
    ran?.(type, this.runCount);
  }

  /** Adds the passed bytes of the current chunk not yet added to `out`. */
  private flushPass(out: ByteRun): void {
    if (this.passStart < 0) return;
    out.add(this.chunks[this.head]!.subarray(this.passStart, this.offset));
    this.passStart = -1;
  }

  /** Reads and checks the next header; false when it is not all in yet. */
  private readHeader(): boolean {
    if (this.total === 0) return false;
    const type = this.chunks[this.head]![this.offset]!;
    const limit = this.limits[type]!;
    if (limit === 0) throw unexpectedType(this.side, type);
    if (this.total < 5) return false;
    const len = this.peekInt32(1);
    const problem = lengthProblem(type, len, limit);
    if (problem) throw problem;
    this.pending = len;
    this.length = len;
    this.pendingType = type;
    return true;
  }

  /** Reads a big-endian Int32 at `at` bytes past the cursor, across chunk boundaries. */
  private peekInt32(at: number): number {
    const first = this.chunks[this.head]!;
    if (this.offset + at + 4 <= first.length) return first.readInt32BE(this.offset + at);
    let n = 0;
    let i = this.head;
    let o = this.offset + at;
    for (let k = 0; k < 4; k++) {
      while (o >= this.chunks[i]!.length) {
        o -= this.chunks[i]!.length;
        i++;
      }
      n = (n << 8) | this.chunks[i]![o]!;
      o++;
    }
    return n;
  }

  /** Removes and returns at most `max` bytes, as a view of the first chunk (never copies). */
  private takeUpTo(max: number): Buffer {
    const first = this.chunks[this.head]!;
    const n = Math.min(max, first.length - this.offset);
    const out = first.subarray(this.offset, this.offset + n);
    this.offset += n;
    this.total -= n;
    if (this.offset === first.length) this.advance();
    return out;
  }

  /** Removes and returns the next `size` bytes: a view when they lie in one chunk, else one copy. */
  private take(size: number): Buffer {
    const first = this.chunks[this.head]!;
    let out: Buffer;
    if (this.offset + size <= first.length) {
      out = first.subarray(this.offset, this.offset + size);
      this.offset += size;
    } else {
      out = Buffer.allocUnsafe(size);
      let filled = 0;
      while (filled < size) {
        const c = this.chunks[this.head]!;
        const n = Math.min(c.length - this.offset, size - filled);
        c.copy(out, filled, this.offset, this.offset + n);
        filled += n;
        this.offset += n;
        if (this.offset === c.length && filled < size) this.advance();
      }
    }
    if (this.offset === this.chunks[this.head]!.length) this.advance();
    this.total -= size;
    return out;
  }

  private advance(): void {
    this.chunks[this.head] = undefined as unknown as Buffer;
    this.head++;
    this.offset = 0;
    if (this.head === this.chunks.length) {
      this.chunks = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }
}

const WHOLE = (): Framing => 'whole';
/** A whole message larger than this is copied into its buffer as its bytes arrive. */
const ASSEMBLE_ABOVE = 1024 * 1024;
const NO_RUN = new ByteRun();

/** A bounds-checked cursor over a message body. */
class BodyCursor {
  at = 0;
  constructor(
    private readonly body: Buffer,
    private readonly what: string,
  ) {}

  get remaining(): number {
    return this.body.length - this.at;
  }

  private need(n: number): void {
    if (this.remaining < n) throw new PgProtocolError(`${this.what} message is truncated`);
  }

  int32(): number {
    this.need(4);
    const n = this.body.readInt32BE(this.at);
    this.at += 4;
    return n;
  }

  uint32(): number {
    this.need(4);
    const n = this.body.readUInt32BE(this.at);
    this.at += 4;
    return n;
  }

  byte(): number {
    this.need(1);
    return this.body[this.at++]!;
  }

  bytes(n: number): Buffer {
    this.need(n);
    const b = this.body.subarray(this.at, this.at + n);
    this.at += n;
    return b;
  }

  rest(): Buffer {
    return this.bytes(this.remaining);
  }

  cstrBytes(): Buffer {
    const end = this.body.indexOf(0, this.at);
    if (end < 0) throw new PgProtocolError(`${this.what} message has an unterminated string`);
    const b = this.body.subarray(this.at, end);
    this.at = end + 1;
    return b;
  }

  cstr(): string {
    return this.cstrBytes().toString('utf8');
  }

  end(): void {
    if (this.remaining !== 0) throw new PgProtocolError(`${this.what} message has ${this.remaining} unexpected trailing bytes`);
  }
}

/**
 * The body of an Authentication ('R') message: the code, and the MD5 salt (5), SASL mechanisms
 * (10), or SASL / GSS data (8, 11, 12) when the code carries them.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONOK
 */
export function parseAuthentication(body: Buffer): { code: number; salt?: Buffer; mechanisms?: string[]; data?: Buffer } {
  const c = new BodyCursor(body, 'Authentication');
  const code = c.int32();
  switch (code) {
    case 5: {
      const salt = c.bytes(4);
      c.end();
      return { code, salt };
    }
    case 10: {
      const mechanisms: string[] = [];
      for (;;) {
        const m = c.cstr();
        if (m === '') break;
        mechanisms.push(m);
      }
      c.end();
      return { code, mechanisms };
    }
    case 8:
    case 11:
    case 12:
      return { code, data: c.rest() };
    default:
      c.end();
      return { code };
  }
}

const severities = new Set<string>(['ERROR', 'FATAL', 'PANIC', 'WARNING', 'NOTICE', 'DEBUG', 'INFO', 'LOG']);

/**
 * The fields of an ErrorResponse ('E') or NoticeResponse ('N'). `severity` comes from the
 * non-localized `V` field when present, else `S`; `fields` holds every field by its type letter.
 *
 * @see https://www.postgresql.org/docs/current/protocol-error-fields.html
 */
export function parseErrorFields(body: Buffer): PgErrorFields & { fields: Map<string, string> } {
  const c = new BodyCursor(body, 'ErrorResponse');
  const fields = new Map<string, string>();
  for (;;) {
    const t = c.byte();
    if (t === 0) break;
    fields.set(String.fromCharCode(t), c.cstr());
  }
  c.end();
  const v = fields.get('V');
  const s = fields.get('S');
  const severity = (v && severities.has(v) ? v : s && severities.has(s) ? s : 'ERROR') as PgSeverity;
  const out: PgErrorFields & { fields: Map<string, string> } = {
    severity,
    code: fields.get('C') ?? 'XX000',
    message: fields.get('M') ?? '',
    fields,
  };
  const detail = fields.get('D');
  const hint = fields.get('H');
  if (detail !== undefined) out.detail = detail;
  if (hint !== undefined) out.hint = hint;
  return out;
}

/** The name and value of a ParameterStatus ('S') message. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PARAMETERSTATUS */
export function parseParameterStatus(body: Buffer): [string, string] {
  const c = new BodyCursor(body, 'ParameterStatus');
  const name = c.cstr();
  const value = c.cstr();
  c.end();
  return [name, value];
}

/** The process id and 32-bit secret key of a BackendKeyData ('K') message (protocol 3.0). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BACKENDKEYDATA */
export function parseBackendKeyData(body: Buffer): { processId: number; secretKey: number } {
  const c = new BodyCursor(body, 'BackendKeyData');
  const processId = c.uint32();
  const secretKey = c.uint32();
  c.end();
  return { processId, secretKey };
}

/** The transaction status of a ReadyForQuery ('Z') message. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-READYFORQUERY */
export function parseReadyForQuery(body: Buffer): 'I' | 'T' | 'E' {
  const c = new BodyCursor(body, 'ReadyForQuery');
  const s = String.fromCharCode(c.byte());
  c.end();
  if (s !== 'I' && s !== 'T' && s !== 'E') throw new PgProtocolError(`invalid transaction status ${JSON.stringify(s)} in ReadyForQuery`);
  return s;
}

/**
 * The password bytes of a PasswordMessage ('p'), without the terminating NUL (cleartext or
 * `md5...` hash; not decoded, as the server does not decode it either).
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PASSWORDMESSAGE
 */
export function parsePasswordMessage(body: Buffer): Buffer {
  const c = new BodyCursor(body, 'PasswordMessage');
  const password = c.cstrBytes();
  c.end();
  return password;
}

/**
 * The mechanism and initial data of a SASLInitialResponse ('p'); a data length of -1 (no data)
 * gives an empty buffer.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-SASLINITIALRESPONSE
 */
export function parseSaslInitialResponse(body: Buffer): { mechanism: string; data: Buffer } {
  const c = new BodyCursor(body, 'SASLInitialResponse');
  const mechanism = c.cstr();
  const len = c.int32();
  if (len < -1) throw new PgProtocolError(`invalid SASL data length ${len}`);
  const data = len === -1 ? Buffer.alloc(0) : c.bytes(len);
  c.end();
  return { mechanism, data };
}
