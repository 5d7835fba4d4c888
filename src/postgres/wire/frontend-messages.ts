/**
 * The frontend (client -> server) messages a relay looks into, decoded once per message so that
 * every stage (statement gate, masking, recording) reads the same fields: Query, Parse, Bind,
 * Describe, Execute, Close, Sync. Bind can also be decoded as it streams in
 * ({@link BindDecoder}), for Bind messages too large to hold (parameters of hundreds of MB).
 *
 * Strings are decoded as UTF-8; `utf8` says whether every string of the message was valid
 * UTF-8 (the statement gate refuses messages that are not).
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
import { isUtf8 } from 'node:buffer';
import { PgProtocolError } from './protocol-error.js';
import type { PgMessage } from './reader.js';
import { readCount16, readInt16, readValueLength } from './fields.js';
import { Frontend } from './codes.js';

/** A frontend message, decoded. `msg` is the message as received (absent for a streamed Bind). */
export type FrontendMessage = SqlMessage | BindMessage | OtherMessage;

/**
 * A Query or Parse. Its SQL is decoded here unless it is longer than {@link LONG_SQL} bytes:
 * then `sql` is empty, `long` says where it starts in the body, and the relay has it checked and
 * analysed off the event loop (`utf8` is only known after that). `own`: the gateway's own
 * statement, whose answers no client sees (the write guard's count).
 */
export type SqlMessage =
  | { kind: 'query'; msg: PgMessage; sql: string; utf8: boolean; long?: { from: number }; own?: true }
  | { kind: 'parse'; msg: PgMessage; name: string; sql: string; utf8: boolean; long?: { from: number }; own?: true };

/** The other frontend messages the relay reads. */
export type OtherMessage =
  | { kind: 'describe' | 'close'; msg: PgMessage; target: 'S' | 'P'; name: string; utf8: boolean }
  | { kind: 'execute'; msg: PgMessage; portal: string /** Rows to return at most; 0 or less: all (PostgreSQL reads a signed Int32). */; maxRows: number; utf8: boolean }
  | { kind: 'sync' | 'flush' | 'terminate' | 'function-call' | 'copy-data' | 'copy-done' | 'copy-fail' | 'other'; msg: PgMessage };

/** A decoded Bind. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BIND */
export interface BindMessage {
  kind: 'bind';
  msg?: PgMessage;
  portal: string;
  statement: string;
  /** Result-column format codes: none (all text), one (for all), or one per column. */
  resultFormats: number[];
  utf8: boolean;
}

/** SQL longer than this (bytes) is not decoded on the relay's thread (see {@link SqlMessage}). */
export const LONG_SQL = 64 * 1024;
/** A Bind longer than this is decoded as it streams instead of being held whole. */
export const BIND_HELD_MAX = 1024 * 1024;

const { QUERY: Q, PARSE: P, BIND: B, DESCRIBE: D, EXECUTE: E, CLOSE: C, SYNC: S, FLUSH: H, TERMINATE: X, FUNCTION_CALL: F, COPY_DATA: d, COPY_DONE: c, COPY_FAIL: f } = Frontend;

/** A C string of `body` at `at`: its text, whether it is UTF-8, and the offset after its NUL. */
function cstr(body: Buffer, at: number, what: string): [string, boolean, number] {
  const end = body.indexOf(0, at);
  if (end < 0) throw new PgProtocolError(`${what} message has an unterminated string`);
  const bytes = body.subarray(at, end);
  return [bytes.toString('utf8'), bytes.length === 0 || isUtf8(bytes), end + 1];
}

function need(body: Buffer, at: number, n: number, what: string): void {
  if (at + n > body.length) throw new PgProtocolError(`${what} message is truncated`);
}

/**
 * Decodes the frontend message `msg` (its type and length already checked by the reader).
 *
 * @throws PgProtocolError for a malformed Query, Parse, Bind, Describe, Execute or Close body
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
export function decodeFrontend(msg: PgMessage): FrontendMessage {
  const b = msg.body;
  switch (msg.type) {
    case Q: {
      if (b.length > LONG_SQL) return { kind: 'query', msg, sql: '', utf8: true, long: { from: 0 } };
      const [sql, utf8] = cstr(b, 0, 'Query');
      return { kind: 'query', msg, sql, utf8 };
    }
    case P: {
      const [name, u1, at] = cstr(b, 0, 'Parse');
      if (b.length - at > LONG_SQL) return { kind: 'parse', msg, name, sql: '', utf8: u1, long: { from: at } };
      const [sql, u2] = cstr(b, at, 'Parse');
      return { kind: 'parse', msg, name, sql, utf8: u1 && u2 };
    }
    case B:
      return decodeBind(msg);
    case D:
    case C: {
      const what = msg.type === D ? 'Describe' : 'Close';
      need(b, 0, 2, what);
      const target = b[0] === S ? 'S' : b[0] === P ? 'P' : undefined;
      if (target === undefined) throw new PgProtocolError(`${what} message must name a statement ('S') or a portal ('P')`);
      const [name, utf8] = cstr(b, 1, what);
      return { kind: msg.type === D ? 'describe' : 'close', msg, target, name, utf8 };
    }
    case E: {
      const [portal, utf8, at] = cstr(b, 0, 'Execute');
      need(b, at, 4, 'Execute');
      return { kind: 'execute', msg, portal, maxRows: b.readInt32BE(at), utf8 };
    }
    case S:
      return { kind: 'sync', msg };
    case H:
      return { kind: 'flush', msg };
    case X:
      return { kind: 'terminate', msg };
    case F:
      return { kind: 'function-call', msg };
    case d:
      return { kind: 'copy-data', msg };
    case c:
      return { kind: 'copy-done', msg };
    case f:
      return { kind: 'copy-fail', msg };
    default:
      return { kind: 'other', msg };
  }
}

/**
 * Where each parameter of a Bind's body lies (null for NULL) and its format (0 text, 1 binary),
 * or undefined when the body is not a well-formed Bind (the server will refuse it).
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BIND
 */
export function bindParameterSpans(body: Buffer): Array<{ format: number; start: number; end: number } | null> | undefined {
  let at = body.indexOf(0, body.indexOf(0) + 1) + 1;
  if (at < 2 || at + 2 > body.length) return undefined;
  const nFormats = readCount16(body, at);
  const formatsAt = at + 2;
  at = formatsAt + 2 * nFormats;
  if (at + 2 > body.length) return undefined;
  const n = readCount16(body, at);
  at += 2;
  const spans: Array<{ format: number; start: number; end: number } | null> = [];
  for (let i = 0; i < n; i++) {
    if (at + 4 > body.length) return undefined;
    const len = body.readInt32BE(at);
    at += 4;
    if (len < -1) return undefined;
    if (len === -1) {
      spans.push(null);
      continue;
    }
    if (at + len > body.length) return undefined;
    const format = nFormats === 1 ? readInt16(body, formatsAt) : i < nFormats ? readInt16(body, formatsAt + 2 * i) : 0;
    spans.push({ format, start: at, end: at + len });
    at += len;
  }
  return spans;
}

/** A whole Bind message. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BIND */
function decodeBind(msg: PgMessage): BindMessage {
  const b = msg.body;
  const [portal, u1, a1] = cstr(b, 0, 'Bind');
  const [statement, u2, a2] = cstr(b, a1, 'Bind');
  let at = a2;
  need(b, at, 2, 'Bind');
  at += 2 + 2 * readCount16(b, at);
  need(b, at, 2, 'Bind');
  const nParams = readCount16(b, at);
  at += 2;
  for (let i = 0; i < nParams; i++) {
    need(b, at, 4, 'Bind');
    at += 4 + Math.max(0, readValueLength(b, at, 'Bind message'));
  }
  need(b, at, 2, 'Bind');
  const nResults = readCount16(b, at);
  at += 2;
  need(b, at, 2 * nResults, 'Bind');
  const resultFormats: number[] = [];
  for (let i = 0; i < nResults; i++) resultFormats.push(readInt16(b, at + 2 * i));
  at += 2 * nResults;
  if (at !== b.length) throw new PgProtocolError('Bind message has unexpected trailing bytes');
  return { kind: 'bind', msg, portal, statement, resultFormats, utf8: u1 && u2 };
}

/** Longest portal or statement name a streamed Bind may have before its parameters (PostgreSQL's are at most 63 bytes). */
const MAX_BIND_NAMES = 64 * 1024;

/**
 * Decodes a Bind body as it arrives, holding only its names and format codes: push the body's
 * bytes in order; {@link names} is known once both names are in, {@link finish} after the last
 * byte. Parameter values are skipped, never held.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BIND
 */
export class BindDecoder {
  /** Bytes of the names (until both are complete), then of the current fixed-size field. */
  #held: Buffer[] = [];
  #heldLength = 0;
  /** The Bind without its parameters, once both names are in. */
  #head: BindMessage | undefined;
  /** What is being read after the names. */
  #step: 'param-formats-count' | 'param-formats' | 'params-count' | 'param-length' | 'param-value' | 'result-formats-count' | 'result-formats' | 'done' = 'param-formats-count';
  /** Format codes of the current list still to read, or bytes of the current value still to skip. */
  #count = 0;
  /** Parameters still to read. */
  #params = 0;
  #resultFormats: number[] = [];

  /** The Bind as far as it is known once both names are in (its parameters not yet): what the gate judges. */
  get head(): BindMessage | undefined {
    return this.#head;
  }

  /** Feeds the next bytes of the body. @throws PgProtocolError on a malformed body */
  push(bytes: Buffer): void {
    let at = 0;
    if (!this.#head) {
      this.#hold(bytes);
      const all = this.#held.length === 1 ? this.#held[0]! : Buffer.concat(this.#held);
      const first = all.indexOf(0);
      const second = first < 0 ? -1 : all.indexOf(0, first + 1);
      if (second < 0) {
        if (all.length > MAX_BIND_NAMES) throw new PgProtocolError('Bind message has an unterminated string');
        this.#held = [all];
        return;
      }
      const [portal, u1] = cstr(all, 0, 'Bind');
      const [statement, u2] = cstr(all, first + 1, 'Bind');
      this.#head = { kind: 'bind', portal, statement, resultFormats: [], utf8: u1 && u2 };
      this.#held = [];
      this.#heldLength = 0;
      bytes = all;
      at = second + 1;
    }
    while (at < bytes.length) {
      if (this.#step === 'done') throw new PgProtocolError('Bind message has unexpected trailing bytes');
      if (this.#step === 'param-value') {
        const n = Math.min(this.#count, bytes.length - at);
        this.#count -= n;
        at += n;
        if (this.#count === 0) this.#paramDone();
        continue;
      }
      const size = this.#step === 'param-length' ? 4 : 2;
      const take = Math.min(size - this.#heldLength, bytes.length - at);
      this.#hold(bytes.subarray(at, at + take));
      at += take;
      if (this.#heldLength < size) continue;
      const field = this.#held.length === 1 ? this.#held[0]! : Buffer.concat(this.#held);
      this.#held = [];
      this.#heldLength = 0;
      this.#field(field);
    }
  }

  /** The decoded Bind, after its last byte. @throws PgProtocolError when the body ended early */
  finish(msg?: PgMessage): BindMessage {
    if (!this.#head) throw new PgProtocolError('Bind message has an unterminated string');
    if (this.#step !== 'done' || this.#heldLength > 0) throw new PgProtocolError('Bind message is truncated');
    const { portal, statement, utf8 } = this.#head;
    return { kind: 'bind', ...(msg ? { msg } : {}), portal, statement, resultFormats: this.#resultFormats, utf8 };
  }

  #hold(b: Buffer): void {
    if (b.length === 0) return;
    this.#held.push(b);
    this.#heldLength += b.length;
  }

  /** One whole fixed-size field: an Int16 count or format code, or an Int32 parameter length. */
  #field(field: Buffer): void {
    switch (this.#step) {
      case 'param-formats-count': {
        const n = readCount16(field, 0);
        this.#count = n;
        this.#step = n > 0 ? 'param-formats' : 'params-count';
        return;
      }
      case 'param-formats':
        if (--this.#count === 0) this.#step = 'params-count';
        return;
      case 'params-count': {
        const n = readCount16(field, 0);
        this.#params = n;
        this.#step = n > 0 ? 'param-length' : 'result-formats-count';
        return;
      }
      case 'param-length': {
        const n = readValueLength(field, 0, 'Bind message');
        if (n > 0) {
          this.#step = 'param-value';
          this.#count = n;
        } else this.#paramDone();
        return;
      }
      case 'result-formats-count': {
        const n = readCount16(field, 0);
        this.#count = n;
        this.#step = n > 0 ? 'result-formats' : 'done';
        return;
      }
      case 'result-formats':
        this.#resultFormats.push(readInt16(field, 0));
        if (--this.#count === 0) this.#step = 'done';
        return;
      default:
        return;
    }
  }

  /** After one parameter: the next parameter's length, or the result formats. */
  #paramDone(): void {
    this.#params--;
    this.#step = this.#params > 0 ? 'param-length' : 'result-formats-count';
  }
}

/**
 * A Describe ('D') of statement (`S`) or portal (`P`) `name`, made by hoop itself, as the paths
 * forward it.
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-DESCRIBE
 */
export function describeMessage(target: 'S' | 'P', name: string): FrontendMessage {
  const n = Buffer.from(name, 'utf8');
  const raw = Buffer.allocUnsafe(7 + n.length);
  raw[0] = Frontend.DESCRIBE;
  raw.writeUInt32BE(raw.length - 1, 1);
  raw[5] = target.charCodeAt(0);
  n.copy(raw, 6);
  raw[raw.length - 1] = 0;
  return { kind: 'describe', msg: { type: raw[0], body: raw.subarray(5), raw }, target, name, utf8: true };
}
