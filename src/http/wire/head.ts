/**
 * HTTP/1.1 message heads, read strictly: a request's or a response's start line and header
 * fields, and how its body is framed. One reading, and whatever two servers could read two ways is
 * refused (the class request smuggling lives in): a `Transfer-Encoding` beside a `Content-Length`,
 * a `Content-Length` sent twice or as a list, a coding other than `chunked` alone, a field folded
 * over lines (obs-fold), white space before a field's colon, a bare LF or CR, control characters in
 * a value, a `Host` missing or sent twice, versions other than 1.0 and 1.1. A head larger than
 * {@link MAX_HEAD_BYTES} or with more than {@link MAX_FIELDS} fields is refused too.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9112 (HTTP/1.1: §2.2 message parsing, §3 request line, §5 field syntax, §6 body framing)
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-5.5 (field values)
 */

/** How a message's body is framed. */
export type Framing = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'until-close' };

/** What a request's or response's head says, read once. */
interface Head {
  version: '1.0' | '1.1';
  /** The fields in order, names in lower case, values with their leading and trailing white space trimmed. */
  fields: Array<[string, string]>;
  framing: Framing;
  /** Whether the connection ends after this message (`Connection: close`, or HTTP/1.0 without keep-alive). */
  close: boolean;
  /** Bytes of the head, through its blank line. */
  bytes: number;
}

export interface RequestHead extends Head {
  method: string;
  target: string;
  /** `Expect: 100-continue` (no other expectation is taken). */
  expectContinue: boolean;
  /** The protocol asked for with `Connection: upgrade` and `Upgrade` (a WebSocket: `websocket`). */
  upgrade?: string;
}

export interface ResponseHead extends Head {
  status: number;
  reason: string;
}

/** Why a head is refused, and the status a server answers it with. */
export interface HeadRefusal {
  refused: string;
  status: 400 | 413 | 417 | 431 | 501 | 502 | 505;
}

/** Fields that belong to one connection, never forwarded either way (RFC 9110 §7.6.1). */
export const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate', 'proxy-authorization']);

/** Largest head taken (nginx's default for a request's headers is 8 KiB, in four buffers of 8 KiB for long ones). */
export const MAX_HEAD_BYTES = 16 * 1024;
/** Most fields a head may have. */
export const MAX_FIELDS = 100;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A field value: visible ASCII, obs-text, space and tab (RFC 9110 §5.5); never NUL, CR or LF. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP\/(\d)\.(\d)$/;
const STATUS_LINE = /^HTTP\/(\d)\.(\d) (\d{3})(?: ([\t\x20-\x7e\x80-\xff]*))?$/;

/**
 * Reads the request head at the start of `buf`: the head, or undefined while its blank line has not
 * come (and it may still fit), or why it is refused.
 */
export function readRequestHead(buf: Buffer): RequestHead | HeadRefusal | undefined {
  const lines = headLines(buf);
  if (!Array.isArray(lines)) return lines;
  const m = REQUEST_LINE.exec(lines[0]!);
  if (!m) return { refused: 'the request line is not `METHOD target HTTP/1.1`', status: 400 };
  const version = versionOf(m[3]!, m[4]!);
  if (typeof version !== 'string') return version;
  const fields = fieldsOf(lines);
  if (!Array.isArray(fields)) return fields;
  const hosts = values(fields, 'host');
  if (version === '1.1' && hosts.length !== 1) return { refused: hosts.length === 0 ? 'the request has no Host field' : 'the request has more than one Host field', status: 400 };
  const framing = requestFraming(fields, version);
  if ('refused' in framing) return framing;
  const expect = values(fields, 'expect');
  if (expect.some((e) => e.toLowerCase() !== '100-continue')) return { refused: `the expectation ${JSON.stringify(expect.join(', '))} is not one the gateway meets`, status: 417 };
  const connection = tokens(values(fields, 'connection'));
  const upgrade = connection.includes('upgrade') ? values(fields, 'upgrade').join(', ').toLowerCase() || undefined : undefined;
  return {
    method: m[1]!,
    target: m[2]!,
    version,
    fields,
    framing,
    close: closes(connection, version),
    bytes: lines.bytes,
    expectContinue: expect.length > 0,
    ...(upgrade ? { upgrade } : {}),
  };
}

/**
 * Reads the response head at the start of `buf`, to a request of `method`: the head, undefined
 * while incomplete, or why it is refused (an upstream that answers so is not relayed: 502).
 */
export function readResponseHead(buf: Buffer, method: string): ResponseHead | HeadRefusal | undefined {
  const lines = headLines(buf);
  if (!Array.isArray(lines)) return lines === undefined ? undefined : { refused: `the upstream's answer: ${lines.refused}`, status: 502 };
  const m = STATUS_LINE.exec(lines[0]!);
  if (!m) return { refused: "the upstream's status line is not `HTTP/1.1 NNN reason`", status: 502 };
  const version = versionOf(m[1]!, m[2]!);
  if (typeof version !== 'string') return { refused: `the upstream's answer: ${version.refused}`, status: 502 };
  const fields = fieldsOf(lines);
  if (!Array.isArray(fields)) return { refused: `the upstream's answer: ${fields.refused}`, status: 502 };
  const status = Number(m[3]);
  const framing = responseFraming(fields, version, status, method);
  if ('refused' in framing) return { refused: `the upstream's answer: ${framing.refused}`, status: 502 };
  return { status, reason: m[4] ?? '', version, fields, framing, close: closes(tokens(values(fields, 'connection')), version), bytes: lines.bytes };
}

/** The values of field `name` (lower case), in order. */
export function values(fields: ReadonlyArray<readonly [string, string]>, name: string): string[] {
  const out: string[] = [];
  for (const [n, v] of fields) if (n === name) out.push(v);
  return out;
}

/** The head's lines (start line first, no blank line) and its bytes; undefined while incomplete; a refusal. */
function headLines(buf: Buffer): (string[] & { bytes: number }) | HeadRefusal | undefined {
  const end = buf.indexOf('\r\n\r\n');
  const limit = Math.min(end < 0 ? buf.length : end, MAX_HEAD_BYTES + 1);
  // A bare LF or CR anywhere in what is read so far is refused at once (RFC 9112 §2.2 lets a server take a bare LF; two readings are the risk).
  for (let i = 0; i < limit; i++) {
    const c = buf[i]!;
    if (c === 0x0a && buf[i - 1] !== 0x0d) return { refused: 'a line ends in a bare LF', status: 400 };
    if (c === 0x0d && i + 1 < buf.length && buf[i + 1] !== 0x0a) return { refused: 'a bare CR', status: 400 };
  }
  if (end < 0) return buf.length > MAX_HEAD_BYTES ? { refused: `the head is larger than ${MAX_HEAD_BYTES / 1024} KiB`, status: 431 } : undefined;
  if (end + 4 > MAX_HEAD_BYTES) return { refused: `the head is larger than ${MAX_HEAD_BYTES / 1024} KiB`, status: 431 };
  const lines = buf.toString('latin1', 0, end).split('\r\n') as string[] & { bytes: number };
  lines.bytes = end + 4;
  return lines;
}

function versionOf(major: string, minor: string): '1.0' | '1.1' | HeadRefusal {
  if (major === '1' && (minor === '0' || minor === '1')) return `1.${minor}` as '1.0' | '1.1';
  return { refused: `HTTP/${major}.${minor} is not spoken here (HTTP/1.1 is)`, status: 505 };
}

/** The fields of `lines` after the start line, or why they are refused. */
function fieldsOf(lines: readonly string[]): Array<[string, string]> | HeadRefusal {
  if (lines.length - 1 > MAX_FIELDS) return { refused: `the head has more than ${MAX_FIELDS} fields`, status: 431 };
  const fields: Array<[string, string]> = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line[0] === ' ' || line[0] === '\t') return { refused: 'a field is folded over lines (obs-fold)', status: 400 };
    const colon = line.indexOf(':');
    const name = colon < 0 ? '' : line.slice(0, colon);
    if (!TOKEN.test(name)) return { refused: colon < 0 ? 'a field line has no colon' : `${JSON.stringify(name.slice(0, 40))} is not a field name (no white space before the colon)`, status: 400 };
    const value = line.slice(colon + 1).replace(/^[\t ]+|[\t ]+$/g, '');
    if (!FIELD_VALUE.test(value)) return { refused: `the field ${name} holds a control character`, status: 400 };
    fields.push([name.toLowerCase(), value]);
  }
  return fields;
}

/** The comma-separated tokens of `list`'s values, lower case. */
function tokens(list: readonly string[]): string[] {
  return list.flatMap((v) => v.split(',').map((t) => t.trim().toLowerCase())).filter(Boolean);
}

function closes(connection: readonly string[], version: '1.0' | '1.1'): boolean {
  return connection.includes('close') || (version === '1.0' && !connection.includes('keep-alive'));
}

/** A Content-Length's value, or why it is none: digits, sent once. */
function contentLength(fields: ReadonlyArray<readonly [string, string]>): number | undefined | { refused: string } {
  const lengths = values(fields, 'content-length');
  if (lengths.length === 0) return undefined;
  if (lengths.length > 1) return { refused: 'Content-Length is sent more than once' };
  if (!/^\d{1,15}$/.test(lengths[0]!)) return { refused: `Content-Length ${JSON.stringify(lengths[0]!.slice(0, 40))} is not a number of bytes` };
  return Number(lengths[0]);
}

/** Whether `fields` say the body is chunked, or why they cannot be taken: `chunked` alone, once. */
function chunked(fields: ReadonlyArray<readonly [string, string]>, version: '1.0' | '1.1'): boolean | { refused: string; status: 400 | 501 } {
  const codings = tokens(values(fields, 'transfer-encoding'));
  if (values(fields, 'transfer-encoding').length === 0) return false;
  if (version === '1.0') return { refused: 'Transfer-Encoding in an HTTP/1.0 message', status: 400 };
  if (codings.length !== 1 || codings[0] !== 'chunked') return { refused: `Transfer-Encoding ${JSON.stringify(codings.join(', '))}: only chunked, alone, is taken`, status: 501 };
  return true;
}

function requestFraming(fields: ReadonlyArray<readonly [string, string]>, version: '1.0' | '1.1'): Framing | HeadRefusal {
  const isChunked = chunked(fields, version);
  if (typeof isChunked !== 'boolean') return isChunked;
  const length = contentLength(fields);
  if (typeof length === 'object') return { ...length, status: 400 };
  if (isChunked && length !== undefined) return { refused: 'both Transfer-Encoding and Content-Length are sent', status: 400 };
  return isChunked ? { kind: 'chunked' } : length ? { kind: 'length', length } : { kind: 'none' };
}

function responseFraming(fields: ReadonlyArray<readonly [string, string]>, version: '1.0' | '1.1', status: number, method: string): Framing | { refused: string } {
  // RFC 9112 §6.3: no body after HEAD, 1xx, 204 and 304, whatever the fields say (their Content-Length describes another answer).
  if (method === 'HEAD' || (status >= 100 && status < 200) || status === 204 || status === 304) return { kind: 'none' };
  const isChunked = chunked(fields, version);
  if (typeof isChunked !== 'boolean') return isChunked;
  const length = contentLength(fields);
  if (typeof length === 'object') return length;
  if (isChunked && length !== undefined) return { refused: 'both Transfer-Encoding and Content-Length are sent' };
  return isChunked ? { kind: 'chunked' } : length !== undefined ? (length === 0 ? { kind: 'none' } : { kind: 'length', length }) : { kind: 'until-close' };
}

/** Longest chunk-size line taken (the size in hex and its extensions). */
const MAX_CHUNK_LINE = 4096;

/**
 * A chunked body read as it comes (RFC 9112 §7.1): `push` gives the data bytes of what came and
 * whether the body ended (its trailer section read and dropped: a trailer field is never
 * forwarded); what is not a chunked body (a size not in hex, one past 2^48, a chunk not followed by
 * CRLF, a bare LF, a line too long) throws. What follows the body in a chunk is `rest`.
 */
export class ChunkedReader {
  /** Bytes of the chunk being read still to come; -1 while reading a size line, -2 its closing CRLF, -3 the trailer section. */
  #left = -1;
  #line = '';

  push(chunk: Buffer): { data: Buffer[]; ended: boolean; rest?: Buffer } {
    const data: Buffer[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (this.#left > 0) {
        const n = Math.min(this.#left, chunk.length - at);
        data.push(chunk.subarray(at, at + n));
        this.#left -= n;
        at += n;
        if (this.#left === 0) this.#left = -2;
        continue;
      }
      const lf = chunk.indexOf(0x0a, at);
      const end = lf < 0 ? chunk.length : lf + 1;
      this.#line += chunk.toString('latin1', at, end);
      at = end;
      if (this.#line.length > MAX_CHUNK_LINE) throw new Error('a chunk line is too long');
      if (lf < 0) continue;
      if (!this.#line.endsWith('\r\n') || this.#line.indexOf('\r') !== this.#line.length - 2) throw new Error('a chunk line does not end in CRLF');
      const line = this.#line.slice(0, -2);
      this.#line = '';
      if (this.#left === -2) {
        if (line !== '') throw new Error('a chunk is not followed by CRLF');
        this.#left = -1;
      } else if (this.#left === -3) {
        // The trailer section: field lines, then an empty line ends the body.
        if (line === '') return { data, ended: true, ...(at < chunk.length ? { rest: chunk.subarray(at) } : {}) };
      } else {
        const m = /^([0-9A-Fa-f]{1,12})(?:[\t ]*;[\t\x20-\x7e]*)?$/.exec(line);
        if (!m) throw new Error(`${JSON.stringify(line.slice(0, 40))} is not a chunk size`);
        const size = Number.parseInt(m[1]!, 16);
        this.#left = size === 0 ? -3 : size;
      }
    }
    return { data, ended: false };
  }
}
