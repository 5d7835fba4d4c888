/**
 * The startup phase of the PostgreSQL v3 protocol: the packets a client sends before any typed
 * message (SSLRequest, GSSENCRequest, CancelRequest, StartupMessage), and the filter that decides
 * which startup parameters hoop forwards upstream.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
import { CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, SSL_REQUEST_CODE, SqlState } from './messages.js';
import { PgProtocolError } from './protocol-error.js';

/**
 * One startup-phase packet.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-STARTUPMESSAGE
 */
export type StartupPacket =
  | { kind: 'ssl-request' }
  | { kind: 'gssenc-request' }
  | { kind: 'cancel'; processId: number; secretKey: number }
  | { kind: 'startup'; minorVersion: number; params: Map<string, string> };

/** The largest startup packet accepted, in bytes, length field included (PostgreSQL's MAX_STARTUP_PACKET_LENGTH). @see https://www.postgresql.org/docs/current/protocol-flow.html */
export const MAX_STARTUP_PACKET = 10_000;

/**
 * Reads one startup packet from the start of `buf`. Returns null while more bytes are needed,
 * else the packet and its size in bytes. A bad length is reported as soon as the 4-byte length
 * field has arrived.
 *
 * @throws PgProtocolError `08P01` for a malformed packet, `0A000` for a protocol other than 3.x,
 *   `28000` when no user is named.
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-STARTUPMESSAGE
 */
export function readStartupPacket(buf: Buffer): { packet: StartupPacket; size: number } | null {
  if (buf.length < 4) return null;
  const size = buf.readInt32BE(0);
  if (size < 8 || size > MAX_STARTUP_PACKET) {
    throw new PgProtocolError(`invalid length of startup packet: ${size} (must be 8 to ${MAX_STARTUP_PACKET} bytes)`);
  }
  if (buf.length < size) return null;
  const code = buf.readUInt32BE(4);
  const exact = (want: number, what: string): void => {
    if (size !== want) throw new PgProtocolError(`invalid length of ${what}: ${size} bytes (must be ${want})`);
  };
  if (code === SSL_REQUEST_CODE) {
    exact(8, 'SSLRequest');
    return { packet: { kind: 'ssl-request' }, size };
  }
  if (code === GSSENC_REQUEST_CODE) {
    exact(8, 'GSSENCRequest');
    return { packet: { kind: 'gssenc-request' }, size };
  }
  if (code === CANCEL_REQUEST_CODE) {
    exact(16, 'CancelRequest');
    return { packet: { kind: 'cancel', processId: buf.readUInt32BE(8), secretKey: buf.readUInt32BE(12) }, size };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== 3) {
    throw new PgProtocolError(`unsupported frontend protocol ${major}.${minor}: hoop supports 3.0`, {
      sqlstate: SqlState.FEATURE_NOT_SUPPORTED,
    });
  }
  return { packet: { kind: 'startup', minorVersion: minor, params: readParams(buf.subarray(8, size)) }, size };
}

/** Name/value NUL-terminated pairs, ended by a lone NUL that must be the packet's last byte. */
function readParams(body: Buffer): Map<string, string> {
  const params = new Map<string, string>();
  let at = 0;
  const cstr = (what: string): string => {
    const end = body.indexOf(0, at);
    if (end < 0) throw new PgProtocolError(`invalid startup packet layout: ${what} is not NUL-terminated`);
    const s = body.toString('utf8', at, end);
    at = end + 1;
    return s;
  };
  for (;;) {
    if (at >= body.length) throw new PgProtocolError('invalid startup packet layout: expected terminator as last byte');
    const name = cstr('a parameter name');
    if (name === '') break;
    const value = cstr(`the value of parameter "${name}"`);
    if (params.has(name)) throw new PgProtocolError(`startup parameter "${name}" is given twice`);
    params.set(name, value);
  }
  if (at !== body.length) throw new PgProtocolError('invalid startup packet layout: expected terminator as last byte');
  if (!params.get('user')) {
    throw new PgProtocolError('no PostgreSQL user name specified in startup packet', {
      sqlstate: SqlState.INVALID_AUTHORIZATION,
    });
  }
  return params;
}

/**
 * Startup parameters hoop forwards to the upstream server (compared case-insensitively, sent
 * with the client's spelling). Everything else is refused, so a client cannot change server
 * settings (`options=-c ...`) or open a replication connection.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-STARTUPMESSAGE
 */
export const FORWARDED_STARTUP_PARAMS: readonly string[] = [
  'application_name',
  'client_encoding',
  'datestyle',
  'timezone',
  'intervalstyle',
  'extra_float_digits',
  'search_path',
];

const forwarded = new Set(FORWARDED_STARTUP_PARAMS);

/**
 * Client encodings whose multibyte characters may contain the byte 0x5C (backslash): with them the
 * server's lexer and hoop's parser (which reads UTF-8) could split a string literal differently.
 * PostgreSQL refuses them as server encodings for the same reason. Spelled without separators.
 * @see https://www.postgresql.org/docs/current/multibyte.html#MULTIBYTE-CHARSET-SUPPORTED
 */
export const BACKSLASH_UNSAFE_ENCODINGS: ReadonlySet<string> = new Set(['SJIS', 'SHIFTJIS', 'MSKANJI', 'WIN932', 'BIG5', 'WIN950', 'GBK', 'WIN936', 'CP936', 'UHC', 'WIN949', 'GB18030', 'JOHAB']);

/**
 * Splits a StartupMessage's parameters: `user` and `database` are consumed (the database
 * defaults to the user name, as libpq and the server do), `_pq_.*` protocol options are
 * returned for NegotiateProtocolVersion, allowed parameters are forwarded.
 *
 * @throws PgProtocolError `0A000` for `replication` or any parameter not allowed.
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-STARTUPMESSAGE
 */
export function filterStartupParams(params: Map<string, string>): {
  forward: Array<[string, string]>;
  user: string;
  database: string;
  protocolOptions: string[];
} {
  const user = params.get('user') ?? '';
  const database = params.get('database') || user;
  const forward: Array<[string, string]> = [];
  const protocolOptions: string[] = [];
  for (const [name, value] of params) {
    if (name === 'user' || name === 'database') continue;
    if (name.startsWith('_pq_.')) {
      protocolOptions.push(name);
      continue;
    }
    const lower = name.toLowerCase();
    if (lower === 'replication') {
      throw new PgProtocolError('replication connections are not supported through hoop', {
        sqlstate: SqlState.FEATURE_NOT_SUPPORTED,
      });
    }
    if (!forwarded.has(lower)) {
      throw new PgProtocolError(`startup parameter "${name}" is not supported through hoop`, {
        sqlstate: SqlState.FEATURE_NOT_SUPPORTED,
        hint: `Allowed startup parameters: user, database, ${FORWARDED_STARTUP_PARAMS.join(', ')}.`,
      });
    }
    if (lower === 'client_encoding' && BACKSLASH_UNSAFE_ENCODINGS.has(value.toUpperCase().replace(/[^A-Z0-9]/g, ''))) {
      throw new PgProtocolError(`client_encoding "${value}" is not supported through hoop`, {
        sqlstate: SqlState.FEATURE_NOT_SUPPORTED,
        hint: 'its multibyte characters can contain a backslash byte, so SQL would read differently at the gateway and at the server; use UTF8',
      });
    }
    forward.push([name, value]);
  }
  return { forward, user, database, protocolOptions };
}
