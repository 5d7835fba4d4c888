/**
 * The startup phase of the PostgreSQL v3 protocol: the packets a client sends before any typed
 * message (SSLRequest, GSSENCRequest, CancelRequest, StartupMessage), and the filter that decides
 * which startup parameters hoop forwards upstream.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
import { CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, SSL_REQUEST_CODE, SqlState } from '../wire/messages.js';
import { lexingSafeSetting } from '../../policy/sql/lexing.js';
import { limitProblem, type LimitedSetting, type SessionLimits } from '../../policy/limits.js';
import { PgProtocolError } from '../wire/protocol-error.js';

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
    // PostgreSQL only logs this and closes (a Terminate sent before any startup lands here too).
    throw new PgProtocolError(`invalid length of startup packet: ${size} (must be 8 to ${MAX_STARTUP_PACKET} bytes)`, { unanswered: true });
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
 * Settings a client may give at startup (StartupMessage parameters, or `-c name=value` in
 * `options`) unless the gateway's configuration lists others (`postgres.startupSettings`): what
 * drivers send to shape their session, and the timeouts (within the access's limits). Never
 * `user` / `database` (the gateway's to choose), `replication`, `role`,
 * `session_authorization` or `default_transaction_read_only`, whatever the list says.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-STARTUPMESSAGE
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNECT-OPTIONS
 */
export const DEFAULT_STARTUP_SETTINGS: readonly string[] = [
  'application_name',
  'client_encoding',
  'datestyle',
  'timezone',
  'intervalstyle',
  'extra_float_digits',
  'statement_timeout',
  'lock_timeout',
  'idle_in_transaction_session_timeout',
  'client_min_messages',
  'bytea_output',
  'default_transaction_isolation',
  'standard_conforming_strings',
];

/** Settings no client sets at startup, whatever the gateway's list says. */
const NEVER_AT_STARTUP = new Set(['replication', 'role', 'session_authorization', 'default_transaction_read_only', 'transaction_read_only']);

/** What the gateway lets a client set at startup. */
export interface StartupPolicy {
  /** Settings a client may give (lower-case); default {@link DEFAULT_STARTUP_SETTINGS}. */
  settings?: ReadonlySet<string>;
  /** Server timeouts of the access: a larger value is refused; the limit is set when the client gives none. */
  limits?: SessionLimits;
  /**
   * The databases the session may name (the connection's); a `database` not among them is refused
   * (3D000) as a server refuses one it does not have, naming what is allowed. A client that names
   * none gets the first.
   */
  databases?: readonly string[];
}

/**
 * The user and database a StartupMessage names (the database defaults to the user name, as libpq
 * and the server do); `replication` is refused at once.
 *
 * @throws PgProtocolError `0A000` for `replication`
 */
export function startupIdentity(params: ReadonlyMap<string, string>): { user: string; database: string } {
  for (const name of params.keys()) {
    if (name.toLowerCase() === 'replication') {
      throw new PgProtocolError('replication connections are not supported through hoop', { sqlstate: SqlState.FEATURE_NOT_SUPPORTED });
    }
  }
  const user = params.get('user') ?? '';
  return { user, database: params.get('database') || user };
}

/**
 * The settings of a libpq `options` value: whitespace-separated words (a backslash escapes the
 * next character) of the form `-c name=value`, `-cname=value` or `--name=value`; a name's dashes
 * read as underscores, as the server reads them.
 *
 * @throws PgProtocolError `0A000` for any other command-line switch
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNECT-OPTIONS
 */
export function parseStartupOptions(options: string): Array<[string, string]> {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < options.length; i++) {
    const c = options[i]!;
    if (c === '\\' && i + 1 < options.length) {
      word += options[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  const out: Array<[string, string]> = [];
  for (let i = 0; i < words.length; i++) {
    let setting: string | undefined;
    const w = words[i]!;
    if (w === '-c') setting = words[++i];
    else if (w.startsWith('--')) setting = w.slice(2);
    else if (w.startsWith('-c')) setting = w.slice(2);
    const eq = setting?.indexOf('=') ?? -1;
    if (setting === undefined || eq <= 0) {
      throw new PgProtocolError(`startup option "${w}" is not supported through hoop`, {
        sqlstate: SqlState.FEATURE_NOT_SUPPORTED,
        hint: 'options may only set run-time settings, as -c name=value',
      });
    }
    out.push([setting.slice(0, eq).replace(/-/g, '_'), setting.slice(eq + 1)]);
  }
  return out;
}

/**
 * Splits a StartupMessage's parameters as the gateway forwards them: `user` and `database` are
 * consumed, `_pq_.*` protocol options are returned for NegotiateProtocolVersion, `options` is
 * read as `-c name=value` settings, and every setting must be one the policy allows, with a
 * safe value: a client encoding that is ASCII-safe, `standard_conforming_strings` on, a timeout
 * within the access's limit. A timeout the client does not give is set to the limit.
 *
 * @throws PgProtocolError `0A000` naming the parameter and why, for anything refused
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-STARTUPMESSAGE
 */
export function filterStartupParams(
  params: ReadonlyMap<string, string>,
  policy: StartupPolicy = {},
): {
  forward: Array<[string, string]>;
  user: string;
  database: string;
  protocolOptions: string[];
} {
  const { user, database } = startupIdentity(params);
  const asked = params.get('database');
  if (policy.databases && asked && !policy.databases.includes(asked)) {
    const list = policy.databases.map((d) => `"${d}"`).join(', ');
    throw new PgProtocolError(`database "${asked}" is not available through hoop: this connection serves ${list}`, {
      sqlstate: SqlState.INVALID_CATALOG_NAME,
      hint: `connect with dbname=${policy.databases[0]}`,
    });
  }
  const allowed = policy.settings ?? DEFAULT_SETTINGS;
  const limits = policy.limits ?? {};
  const forward: Array<[string, string]> = [];
  const protocolOptions: string[] = [];
  const given = new Set<string>();
  const refuse = (what: string, why: string, hint?: string): never => {
    throw new PgProtocolError(`startup parameter ${what} is not allowed through hoop: ${why}`, { sqlstate: SqlState.FEATURE_NOT_SUPPORTED, ...(hint ? { hint } : {}) });
  };
  const add = (name: string, value: string, what: string): void => {
    const lower = name.toLowerCase();
    if (NEVER_AT_STARTUP.has(lower) || !allowed.has(lower)) {
      refuse(
        what,
        NEVER_AT_STARTUP.has(lower) ? 'the gateway decides it' : "it is not on the gateway's list of startup settings",
        `Allowed: user, database, options (-c), ${[...allowed].filter((n) => !NEVER_AT_STARTUP.has(n)).join(', ')}; the gateway operator can change the list (postgres.startupSettings).`,
      );
    }
    if (!lexingSafeSetting(lower, value)) {
      refuse(
        what,
        lower === 'client_encoding'
          ? `client_encoding "${value}" is not one whose characters never hold a backslash or quote byte, so SQL could read differently at the gateway and at the server`
          : 'standard_conforming_strings must stay on, so that the gateway and the server read SQL alike',
        lower === 'client_encoding' ? 'use UTF8' : undefined,
      );
    }
    const over = limitProblem(limits, lower, value.trim().toLowerCase());
    if (over !== undefined) refuse(what, over);
    given.add(lower);
    forward.push([name, value]);
  };
  for (const [name, value] of params) {
    if (name === 'user' || name === 'database') continue;
    if (name.startsWith('_pq_.')) {
      protocolOptions.push(name);
      continue;
    }
    if (name.toLowerCase() === 'options') {
      for (const [n, v] of parseStartupOptions(value)) add(n, v, `"options" (-c ${n})`);
      continue;
    }
    add(name, value, `"${name}"`);
  }
  for (const [name, ms] of Object.entries(limits) as Array<[LimitedSetting, number | undefined]>) {
    if (ms !== undefined && !given.has(name)) forward.push([name, `${ms}ms`]);
  }
  return { forward, user, database, protocolOptions };
}

const DEFAULT_SETTINGS: ReadonlySet<string> = new Set(DEFAULT_STARTUP_SETTINGS);
