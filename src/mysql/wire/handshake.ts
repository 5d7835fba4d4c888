/**
 * The connection phase's messages: the server's greeting (HandshakeV10), the client's SSLRequest
 * and HandshakeResponse41, and the capability flags both sides agree on.
 *
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html
 * @see https://mariadb.com/kb/en/connection/
 */
import { Cursor, lenenc, lenencBytes, nulString } from './packets.js';
import { MySqlProtocolError } from './protocol-error.js';

/** Capability flags. @see https://dev.mysql.com/doc/dev/mysql-server/latest/group__group__cs__capabilities__flags.html */
export const Cap = {
  LONG_PASSWORD: 1,
  FOUND_ROWS: 2,
  LONG_FLAG: 4,
  CONNECT_WITH_DB: 8,
  NO_SCHEMA: 16,
  COMPRESS: 32,
  LOCAL_FILES: 128,
  IGNORE_SPACE: 256,
  PROTOCOL_41: 512,
  INTERACTIVE: 1024,
  SSL: 2048,
  TRANSACTIONS: 8192,
  SECURE_CONNECTION: 32768,
  MULTI_STATEMENTS: 1 << 16,
  MULTI_RESULTS: 1 << 17,
  PS_MULTI_RESULTS: 1 << 18,
  PLUGIN_AUTH: 1 << 19,
  CONNECT_ATTRS: 1 << 20,
  PLUGIN_AUTH_LENENC_CLIENT_DATA: 1 << 21,
  SESSION_TRACK: 1 << 23,
  DEPRECATE_EOF: 1 << 24,
  OPTIONAL_RESULTSET_METADATA: 1 << 25,
  ZSTD_COMPRESSION: 1 << 26,
  QUERY_ATTRIBUTES: 1 << 27,
} as const;

/** MariaDB's extended capabilities (the upper 32 bits), those hoop reads. @see https://mariadb.com/kb/en/connection/#capabilities */
export const MariaCap = {
  /** Column definitions carry the column's type name (`json`, `uuid`, `inet6`) and format. */
  EXTENDED_METADATA: 1 << 3,
} as const;

/** What a session's two sides agreed: the capability flags, and MariaDB's extended ones. */
export interface AgreedCapabilities {
  lower: number;
  mariadb: number;
}

/** The server's greeting. */
export interface Greeting {
  protocolVersion: number;
  serverVersion: string;
  connectionId: number;
  /** The 20-byte nonce the client scrambles its password with. */
  nonce: Buffer;
  /** The lower 32 capability bits. */
  capabilities: number;
  /** MariaDB's extended capabilities (the greeting's last 4 reserved bytes, when the server is not MySQL). */
  mariadbCapabilities: number;
  charset: number;
  status: number;
  authPlugin: string;
}

/** Reads a HandshakeV10; an ERR packet in its place (too many connections, a blocked host) is the caller's. */
export function parseGreeting(payload: Buffer): Greeting {
  const c = new Cursor(payload);
  const protocolVersion = c.u8();
  if (protocolVersion !== 10) throw new MySqlProtocolError(`a greeting of protocol version ${protocolVersion} (only 10 is spoken)`);
  const serverVersion = c.nulString();
  const connectionId = c.u32();
  const part1 = c.bytes(8);
  c.u8();
  let capabilities = c.u16();
  const charset = c.u8();
  const status = c.u16();
  capabilities |= c.u16() << 16;
  capabilities >>>= 0;
  const dataLength = c.u8();
  c.bytes(6);
  const mariadbCapabilities = c.u32();
  let part2: Buffer = Buffer.alloc(0);
  if (capabilities & Cap.SECURE_CONNECTION) {
    part2 = c.bytes(Math.max(13, dataLength - 8));
    if (part2[part2.length - 1] === 0) part2 = part2.subarray(0, part2.length - 1);
  }
  const authPlugin = capabilities & Cap.PLUGIN_AUTH && c.left > 0 ? c.nulString() : 'mysql_native_password';
  return {
    protocolVersion,
    serverVersion,
    connectionId,
    nonce: Buffer.concat([part1, part2]),
    capabilities,
    mariadbCapabilities: capabilities & 1 ? 0 : mariadbCapabilities,
    charset,
    status,
    authPlugin,
  };
}

/** A HandshakeV10 for `g` (the gateway's greeting to a client on its local side). */
export function greeting(g: Greeting): Buffer {
  if (g.nonce.length !== 20) throw new Error('a greeting nonce is 20 bytes');
  const head = Buffer.alloc(4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 6 + 4);
  let at = 0;
  at = head.writeUInt32LE(g.connectionId, at);
  g.nonce.copy(head, at, 0, 8);
  at += 9;
  at = head.writeUInt16LE(g.capabilities & 0xffff, at);
  at = head.writeUInt8(g.charset, at);
  at = head.writeUInt16LE(g.status, at);
  at = head.writeUInt16LE(g.capabilities >>> 16, at);
  at = head.writeUInt8(21, at);
  at += 6;
  head.writeUInt32LE(g.mariadbCapabilities >>> 0, at);
  return Buffer.concat([Buffer.from([10]), nulString(g.serverVersion), head, g.nonce.subarray(8), Buffer.from([0]), nulString(g.authPlugin)]);
}

/** The client's answer to the greeting (after TLS, when it asked for TLS). */
export interface HandshakeResponse {
  capabilities: number;
  maxPacketSize: number;
  charset: number;
  mariadbCapabilities: number;
  user: string;
  authResponse: Buffer;
  database?: string;
  authPlugin?: string;
  /** Connection attributes (`_client_name`, `program_name`, …), in order. */
  attributes: Array<[string, string]>;
}

/** The fixed first 32 bytes both an SSLRequest and a HandshakeResponse41 start with. */
function fixedPart(capabilities: number, maxPacketSize: number, charset: number, mariadbCapabilities: number): Buffer {
  const b = Buffer.alloc(32);
  b.writeUInt32LE(capabilities >>> 0, 0);
  b.writeUInt32LE(maxPacketSize, 4);
  b[8] = charset;
  b.writeUInt32LE(mariadbCapabilities >>> 0, 28);
  return b;
}

/** An SSLRequest: the response's fixed part alone, with {@link Cap.SSL} set. */
export function sslRequest(capabilities: number, maxPacketSize: number, charset: number, mariadbCapabilities = 0): Buffer {
  return fixedPart(capabilities | Cap.SSL, maxPacketSize, charset, mariadbCapabilities);
}

/** Whether a client's first packet is an SSLRequest (exactly the fixed part, with {@link Cap.SSL}). */
export function isSslRequest(payload: Buffer): boolean {
  return payload.length === 32 && (payload.readUInt32LE(0) & Cap.SSL) !== 0;
}

/** Writes a HandshakeResponse41. */
export function handshakeResponse(r: HandshakeResponse): Buffer {
  const caps = r.capabilities;
  const parts = [fixedPart(caps, r.maxPacketSize, r.charset, r.mariadbCapabilities), nulString(r.user)];
  if (caps & Cap.PLUGIN_AUTH_LENENC_CLIENT_DATA) parts.push(lenencBytes(r.authResponse));
  else parts.push(Buffer.from([r.authResponse.length]), r.authResponse);
  if (caps & Cap.CONNECT_WITH_DB) parts.push(nulString(r.database ?? ''));
  if (caps & Cap.PLUGIN_AUTH) parts.push(nulString(r.authPlugin ?? ''));
  if (caps & Cap.CONNECT_ATTRS) {
    const kv = Buffer.concat(r.attributes.flatMap(([k, v]) => [lenencBytes(k), lenencBytes(v)]));
    parts.push(lenenc(kv.length), kv);
  }
  return Buffer.concat(parts);
}

/** Reads a HandshakeResponse41; a client that does not speak protocol 4.1 is refused. */
export function parseHandshakeResponse(payload: Buffer): HandshakeResponse {
  const c = new Cursor(payload);
  const capabilities = c.u32();
  if (!(capabilities & Cap.PROTOCOL_41)) throw new MySqlProtocolError('a client that does not speak protocol 4.1');
  const maxPacketSize = c.u32();
  const charset = c.u8();
  c.bytes(19);
  const mariadbCapabilities = c.u32();
  const user = c.nulString();
  let authResponse: Buffer;
  if (capabilities & Cap.PLUGIN_AUTH_LENENC_CLIENT_DATA) authResponse = c.bytes(c.lenenc());
  else if (capabilities & Cap.SECURE_CONNECTION) authResponse = c.bytes(c.u8());
  else authResponse = Buffer.from(c.nulString(), 'utf8');
  const database = capabilities & Cap.CONNECT_WITH_DB && c.left > 0 ? c.nulString() : undefined;
  const authPlugin = capabilities & Cap.PLUGIN_AUTH && c.left > 0 ? c.nulString() : undefined;
  const attributes: Array<[string, string]> = [];
  if (capabilities & Cap.CONNECT_ATTRS && c.left > 0) {
    const end = c.lenenc() + c.at;
    if (end > payload.length) throw new MySqlProtocolError('connection attributes longer than the packet');
    while (c.at < end) attributes.push([c.lenencString(), c.lenencString()]);
  }
  return { capabilities, maxPacketSize, charset, mariadbCapabilities, user, authResponse, ...(database !== undefined && { database }), ...(authPlugin !== undefined && { authPlugin }), attributes };
}

/** hoop's own sign-in attribute, in which `hoop connect`'s local port tells the gateway which connection id it greeted its client with. */
export const GREETED_ATTRIBUTE = '_hoop_greeted_id';
