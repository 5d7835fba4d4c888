/**
 * Encoders for PostgreSQL v3 wire-protocol messages. Each returns a Buffer holding one complete
 * message (type byte, Int32 length that counts itself, body); the startup-phase packets have no
 * type byte.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 * @see https://www.postgresql.org/docs/current/protocol-flow.html
 */
import { Backend, Frontend } from './codes.js';
import { PgProtocolError } from './protocol-error.js';
import { writeCount16 } from './fields.js';

/** The request code of an SSLRequest packet (1234 << 16 | 5679). @see https://www.postgresql.org/docs/current/protocol-message-formats.html */
export const SSL_REQUEST_CODE = 80877103;
/** The request code of a GSSENCRequest packet (1234 << 16 | 5680). @see https://www.postgresql.org/docs/current/protocol-message-formats.html */
export const GSSENC_REQUEST_CODE = 80877104;
/** The request code of a CancelRequest packet (1234 << 16 | 5678). @see https://www.postgresql.org/docs/current/protocol-message-formats.html */
export const CANCEL_REQUEST_CODE = 80877102;
/** Protocol version 3.0 as sent in a StartupMessage (3 << 16). @see https://www.postgresql.org/docs/current/protocol-message-formats.html */
export const PROTOCOL_3_0 = 196608;

/**
 * The SQLSTATE codes hoop reports.
 *
 * @see https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
export const SqlState = {
  PROTOCOL_VIOLATION: '08P01',
  FEATURE_NOT_SUPPORTED: '0A000',
  INVALID_AUTHORIZATION: '28000',
  INVALID_PASSWORD: '28P01',
  CONNECTION_FAILURE: '08006',
  CANNOT_CONNECT_NOW: '57P03',
  INSUFFICIENT_PRIVILEGE: '42501',
  QUERY_CANCELED: '57014',
  ADMIN_SHUTDOWN: '57P01',
  IO_ERROR: '58030',
  SYSTEM_ERROR: '58000',
  TOO_MANY_CONNECTIONS: '53300',
  PROGRAM_LIMIT_EXCEEDED: '54000',
  INVALID_CATALOG_NAME: '3D000',
  SERVER_REJECTED_CONNECTION: '08004',
  UNABLE_TO_CONNECT: '08001',
  INTERNAL_ERROR: 'XX000',
} as const;

/** The severities of an ErrorResponse or NoticeResponse (the non-localized `V` field). */
export type PgSeverity = 'ERROR' | 'FATAL' | 'PANIC' | 'WARNING' | 'NOTICE' | 'DEBUG' | 'INFO' | 'LOG';

/**
 * The fields of an ErrorResponse / NoticeResponse that hoop writes.
 *
 * @see https://www.postgresql.org/docs/current/protocol-error-fields.html
 */
export interface PgErrorFields {
  severity: PgSeverity;
  /** SQLSTATE, five characters. */
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

/** Builds one message: collects body parts, then prefixes type and length. */
class Builder {
  private readonly parts: Buffer[] = [];
  private size = 0;

  int32(n: number): this {
    const b = Buffer.allocUnsafe(4);
    if (n < 0) b.writeInt32BE(n);
    else b.writeUInt32BE(n);
    return this.bytes(b);
  }

  /** An Int16 count (0 to 65,535). */
  int16(n: number): this {
    const b = Buffer.allocUnsafe(2);
    writeCount16(b, n, 0);
    return this.bytes(b);
  }

  byte(c: string | number): this {
    return this.bytes(Buffer.from([typeof c === 'number' ? c : c.charCodeAt(0)]));
  }

  /** A NUL-terminated string; a NUL inside it would end the string early, so it is refused. */
  cstr(s: string): this {
    const b = Buffer.from(s, 'utf8');
    if (b.includes(0)) throw new PgProtocolError('a protocol string may not contain a NUL byte');
    this.bytes(b);
    return this.byte(0);
  }

  bytes(b: Buffer): this {
    this.parts.push(b);
    this.size += b.length;
    return this;
  }

  /** The message with a type byte, or without one when `type` is undefined (startup packets). */
  finish(type?: number): Buffer {
    const head = type === undefined ? 0 : 1;
    const out = Buffer.allocUnsafe(head + 4 + this.size);
    if (type !== undefined) out[0] = type;
    out.writeUInt32BE(4 + this.size, head);
    let at = head + 4;
    for (const p of this.parts) at += p.copy(out, at);
    return out;
  }
}

/** A message of `type` around a body already encoded (a type byte, then the length, which counts itself). */
export function frameMessage(type: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type;
  out.writeUInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function checkInt32(name: string, n: number): number {
  if (!Number.isInteger(n) || n < -0x80000000 || n > 0xffffffff) throw new RangeError(`${name} must be a 32-bit integer`);
  return n >>> 0;
}

function fields(type: typeof Backend.ERROR | typeof Backend.NOTICE, f: PgErrorFields): Buffer {
  const b = new Builder();
  b.byte('S').cstr(f.severity).byte('V').cstr(f.severity).byte('C').cstr(f.code).byte('M').cstr(f.message);
  if (f.detail !== undefined) b.byte('D').cstr(f.detail);
  if (f.hint !== undefined) b.byte('H').cstr(f.hint);
  return b.byte(0).finish(type);
}

/** ErrorResponse ('E'), with both the localized `S` and non-localized `V` severity. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ERRORRESPONSE */
export function errorResponse(f: PgErrorFields): Buffer {
  return fields(Backend.ERROR, f);
}

/** NoticeResponse ('N'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-NOTICERESPONSE */
export function noticeResponse(f: PgErrorFields): Buffer {
  return fields(Backend.NOTICE, f);
}

/** AuthenticationOk ('R', 0). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONOK */
export function authenticationOk(): Buffer {
  return new Builder().int32(0).finish(Backend.AUTHENTICATION);
}

/** AuthenticationCleartextPassword ('R', 3). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONCLEARTEXTPASSWORD */
export function authenticationCleartextPassword(): Buffer {
  return new Builder().int32(3).finish(Backend.AUTHENTICATION);
}

/** AuthenticationMD5Password ('R', 5) with its 4-byte salt. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONMD5PASSWORD */
export function authenticationMD5Password(salt: Buffer): Buffer {
  if (salt.length !== 4) throw new RangeError('an MD5 salt is 4 bytes');
  return new Builder().int32(5).bytes(salt).finish(Backend.AUTHENTICATION);
}

/** AuthenticationSASL ('R', 10) listing the mechanisms, in the server's order of preference. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONSASL */
export function authenticationSASL(mechanisms: string[]): Buffer {
  const b = new Builder().int32(10);
  for (const m of mechanisms) {
    if (m === '') throw new RangeError('a SASL mechanism name may not be empty');
    b.cstr(m);
  }
  return b.byte(0).finish(Backend.AUTHENTICATION);
}

/** AuthenticationSASLContinue ('R', 11). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONSASLCONTINUE */
export function authenticationSASLContinue(data: Buffer): Buffer {
  return new Builder().int32(11).bytes(data).finish(Backend.AUTHENTICATION);
}

/** AuthenticationSASLFinal ('R', 12). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONSASLFINAL */
export function authenticationSASLFinal(data: Buffer): Buffer {
  return new Builder().int32(12).bytes(data).finish(Backend.AUTHENTICATION);
}

/** ParameterStatus ('S'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PARAMETERSTATUS */
export function parameterStatus(name: string, value: string): Buffer {
  return new Builder().cstr(name).cstr(value).finish(Backend.PARAMETER_STATUS);
}

/** BackendKeyData ('K') with a 32-bit key, as in protocol 3.0. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BACKENDKEYDATA */
export function backendKeyData(processId: number, secretKey: number): Buffer {
  return new Builder().int32(checkInt32('processId', processId)).int32(checkInt32('secretKey', secretKey)).finish(Backend.BACKEND_KEY_DATA);
}

/** ReadyForQuery ('Z'): idle, in a transaction block, or in a failed transaction block. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-READYFORQUERY */
export function readyForQuery(status: 'I' | 'T' | 'E'): Buffer {
  return new Builder().byte(status).finish(Backend.READY_FOR_QUERY);
}

/** NegotiateProtocolVersion ('v'): the newest minor version supported and the `_pq_.` options not recognized. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-NEGOTIATEPROTOCOLVERSION */
export function negotiateProtocolVersion(newestMinor: number, unrecognized: string[]): Buffer {
  const b = new Builder().int32(checkInt32('newestMinor', newestMinor)).int32(unrecognized.length);
  for (const o of unrecognized) b.cstr(o);
  return b.finish(Backend.NEGOTIATE_PROTOCOL_VERSION);
}

/** StartupMessage (no type byte): protocol 3.`minor`, then name/value pairs and a terminating NUL. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-STARTUPMESSAGE */
export function startupMessage(params: Iterable<[string, string]>, minor = 0): Buffer {
  if (!Number.isInteger(minor) || minor < 0 || minor > 0xffff) throw new RangeError('minor must be a 16-bit integer');
  const b = new Builder().int16(3).int16(minor);
  for (const [name, value] of params) {
    if (name === '') throw new RangeError('a startup parameter name may not be empty');
    b.cstr(name).cstr(value);
  }
  return b.byte(0).finish();
}

/** SSLRequest (no type byte). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-SSLREQUEST */
export function sslRequest(): Buffer {
  return new Builder().int32(SSL_REQUEST_CODE).finish();
}

/** GSSENCRequest (no type byte). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-GSSENCREQUEST */
export function gssEncRequest(): Buffer {
  return new Builder().int32(GSSENC_REQUEST_CODE).finish();
}

/** CancelRequest (no type byte) with a 32-bit key, as in protocol 3.0. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-CANCELREQUEST */
export function cancelRequest(processId: number, secretKey: number): Buffer {
  return new Builder().int32(CANCEL_REQUEST_CODE).int32(checkInt32('processId', processId)).int32(checkInt32('secretKey', secretKey)).finish();
}

/** PasswordMessage ('p') carrying a cleartext or MD5-hashed password. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PASSWORDMESSAGE */
export function passwordMessage(password: string): Buffer {
  return new Builder().cstr(password).finish(Frontend.PASSWORD);
}

/** SASLInitialResponse ('p'): mechanism name, Int32 length of the data, the data. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-SASLINITIALRESPONSE */
export function saslInitialResponse(mechanism: string, data: Buffer): Buffer {
  return new Builder().cstr(mechanism).int32(data.length).bytes(data).finish(Frontend.PASSWORD);
}

/** SASLResponse ('p'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-SASLRESPONSE */
export function saslResponse(data: Buffer): Buffer {
  return new Builder().bytes(data).finish(Frontend.PASSWORD);
}

/** Terminate ('X'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-TERMINATE */
export function terminate(): Buffer {
  return new Builder().finish(Frontend.TERMINATE);
}

/** Query ('Q'), a simple-protocol query string. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-QUERY */
export function query(sql: string): Buffer {
  return new Builder().cstr(sql).finish(Frontend.QUERY);
}

/** Parse ('P') of `sql` as the unnamed statement, no parameter types. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PARSE */
export function parseUnnamed(sql: string): Buffer {
  return new Builder().cstr('').cstr(sql).int16(0).finish(Frontend.PARSE);
}

/** Describe ('D') of the unnamed statement. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-DESCRIBE */
export function describeUnnamed(): Buffer {
  return new Builder().byte('S').cstr('').finish(Frontend.DESCRIBE);
}

/** Sync ('S'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-SYNC */
export function sync(): Buffer {
  return new Builder().finish(Frontend.SYNC);
}

/** Parse ('P') of `sql` as statement `name`, no parameter types. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PARSE */
export function parseNamed(name: string, sql: string): Buffer {
  return new Builder().cstr(name).cstr(sql).int16(0).finish(Frontend.PARSE);
}

/** Bind ('B') of statement `statement` to portal `portal`, no parameters, results as text. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BIND */
export function bindPlain(portal: string, statement: string): Buffer {
  return bindText(portal, statement, []);
}

/** Bind ('B') of statement `statement` to portal `portal`, parameters and results as text (null: SQL NULL). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BIND */
export function bindText(portal: string, statement: string, params: ReadonlyArray<string | null>): Buffer {
  const b = new Builder().cstr(portal).cstr(statement).int16(0).int16(params.length);
  for (const p of params) {
    if (p === null) b.int32(-1);
    else {
      const value = Buffer.from(p, 'utf8');
      b.int32(value.length).bytes(value);
    }
  }
  return b.int16(0).finish(Frontend.BIND);
}

/** Describe ('D') of the unnamed portal. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-DESCRIBE */
export function describePortalUnnamed(): Buffer {
  return new Builder().byte('P').cstr('').finish(Frontend.DESCRIBE);
}

/** Execute ('E') of portal `portal`, all rows. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-EXECUTE */
export function execute(portal: string): Buffer {
  return new Builder().cstr(portal).int32(0).finish(Frontend.EXECUTE);
}

/** Close ('C') of statement (`S`) or portal (`P`) `name`. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-CLOSE */
export function close(target: 'S' | 'P', name: string): Buffer {
  return new Builder().byte(target).cstr(name).finish(Frontend.CLOSE);
}

/** Flush ('H'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-FLUSH */
export function flush(): Buffer {
  return new Builder().finish(Frontend.FLUSH);
}
