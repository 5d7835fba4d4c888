/**
 * What a server answers a command with: OK, ERR and EOF packets, a result set's column
 * definitions and its text-protocol rows, and the commands' codes.
 *
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_response_packets.html
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_query_response_text_resultset.html
 * @see https://mariadb.com/kb/en/result-set-packets/
 */
import { Cap } from './handshake.js';
import { Cursor, lenenc, lenencBytes, MAX_PACKET_PAYLOAD } from './packets.js';
import { MySqlProtocolError } from './protocol-error.js';

/** The command byte that starts each client packet of the command phase. */
export const Command = {
  QUIT: 0x01,
  INIT_DB: 0x02,
  QUERY: 0x03,
  FIELD_LIST: 0x04,
  STATISTICS: 0x09,
  PING: 0x0e,
  CHANGE_USER: 0x11,
  STMT_PREPARE: 0x16,
  STMT_EXECUTE: 0x17,
  STMT_SEND_LONG_DATA: 0x18,
  STMT_CLOSE: 0x19,
  STMT_RESET: 0x1a,
  SET_OPTION: 0x1b,
  STMT_FETCH: 0x1c,
  RESET_CONNECTION: 0x1f,
} as const;

/** Server status flags. */
export const Status = { IN_TRANS: 0x0001, AUTOCOMMIT: 0x0002, MORE_RESULTS_EXISTS: 0x0008, NO_BACKSLASH_ESCAPES: 0x0200 } as const;

export const OK_HEADER = 0x00;
export const EOF_HEADER = 0xfe;
export const ERR_HEADER = 0xff;
export const LOCAL_INFILE_HEADER = 0xfb;

/** An OK packet's fields. */
export interface OkPacket {
  /** 64 bits on the wire, as the insert id. */
  affectedRows: bigint;
  /** 64 bits on the wire: a negative id of a signed column arrives as its two's complement. */
  lastInsertId: bigint;
  status: number;
  warnings: number;
  info: string;
}

/** An ERR packet's fields. */
export interface ErrPacket {
  code: number;
  sqlState: string;
  message: string;
}

/**
 * Whether `payload` is an EOF (or, under DEPRECATE_EOF, the OK with header 0xfe that ends a result
 * set) rather than a row: a row can start with 0xfe only as the length of a value of 2^24 bytes or
 * more, so its payload is longer than one packet.
 */
export function isEof(payload: Buffer): boolean {
  return payload[0] === EOF_HEADER && payload.length < MAX_PACKET_PAYLOAD;
}

/** Reads an OK packet (header 0x00 or 0xfe). */
export function parseOk(payload: Buffer, capabilities: number): OkPacket {
  const c = new Cursor(payload, 1);
  const affectedRows = c.lenencBigInt();
  const lastInsertId = c.lenencBigInt();
  const status = c.left >= 2 ? c.u16() : 0;
  const warnings = c.left >= 2 ? c.u16() : 0;
  const info = c.left === 0 ? '' : capabilities & Cap.SESSION_TRACK ? c.lenencString() : c.rest().toString('utf8');
  return { affectedRows, lastInsertId, status, warnings, info };
}

/** Reads an EOF packet's status flags (MySQL 4.1 layout: header, warnings, status). */
export function eofStatus(payload: Buffer): number {
  return payload.length >= 5 ? payload.readUInt16LE(3) : 0;
}

/** A copy of the OK packet `payload` (or, before `DEPRECATE_EOF` was agreed, the EOF packet) with its server status flags set to `status`. */
export function withStatus(payload: Buffer, status: number, capabilities: number): Buffer {
  const out = Buffer.from(payload);
  if (out[0] === EOF_HEADER && (capabilities & Cap.DEPRECATE_EOF) === 0) {
    if (out.length >= 5) out.writeUInt16LE(status, 3);
    return out;
  }
  const c = new Cursor(out, 1);
  c.lenencBigInt();
  c.lenencBigInt();
  if (c.left >= 2) out.writeUInt16LE(status, c.at);
  return out;
}

/** Reads an ERR packet; one sent before protocol 4.1 was agreed has no SQLSTATE (then `HY000`). */
export function parseErr(payload: Buffer): ErrPacket {
  const c = new Cursor(payload, 1);
  const code = c.u16();
  let sqlState = 'HY000';
  if (c.left >= 6 && c.buf[c.at] === 0x23) {
    c.u8();
    sqlState = c.bytes(5).toString('latin1');
  }
  return { code, sqlState, message: c.rest().toString('utf8') };
}

/** An ERR packet. */
export function errPacket(e: ErrPacket): Buffer {
  const head = Buffer.alloc(3);
  head[0] = ERR_HEADER;
  head.writeUInt16LE(e.code, 1);
  return Buffer.concat([head, Buffer.from(`#${e.sqlState.padEnd(5, '0').slice(0, 5)}`, 'latin1'), Buffer.from(e.message, 'utf8')]);
}

/** An OK packet (header 0x00, or 0xfe when it ends a result set under DEPRECATE_EOF). */
export function okPacket(o: Partial<OkPacket> & { header?: number } = {}): Buffer {
  const tail = Buffer.alloc(4);
  tail.writeUInt16LE(o.status ?? Status.AUTOCOMMIT, 0);
  tail.writeUInt16LE(o.warnings ?? 0, 2);
  return Buffer.concat([Buffer.from([o.header ?? OK_HEADER]), lenenc(o.affectedRows ?? 0n), lenenc(o.lastInsertId ?? 0n), tail, Buffer.from(o.info ?? '', 'utf8')]);
}

/** An EOF packet. */
export function eofPacket(status: number, warnings = 0): Buffer {
  const b = Buffer.alloc(5);
  b[0] = EOF_HEADER;
  b.writeUInt16LE(warnings, 1);
  b.writeUInt16LE(status, 3);
  return b;
}

/** A column's definition, as the server describes it (Protocol::ColumnDefinition41). */
export interface ColumnDefinition {
  schema: string;
  /** The table as the query names it (an alias), and the table it comes from; empty for a computed column. */
  table: string;
  orgTable: string;
  /** The column as the result names it (an alias), and the column it comes from. */
  name: string;
  orgName: string;
  charset: number;
  length: number;
  type: number;
  flags: number;
  decimals: number;
  /** MariaDB's extended metadata (its type and format names: `json`, `uuid`, `inet6`, …), when the session agreed {@link MariaCap.EXTENDED_METADATA}. */
  extended?: Buffer;
}

/** Reads a ColumnDefinition41; `extended`: the session agreed MariaDB's extended metadata, which follows the names. @see https://mariadb.com/kb/en/result-set-packets/#column-definition-packet */
export function parseColumnDefinition(payload: Buffer, extended = false): ColumnDefinition {
  const c = new Cursor(payload);
  c.lenencString();
  const schema = c.lenencString();
  const table = c.lenencString();
  const orgTable = c.lenencString();
  const name = c.lenencString();
  const orgName = c.lenencString();
  const info = extended ? c.bytes(c.lenenc()) : undefined;
  c.lenenc();
  const charset = c.u16();
  const length = c.u32();
  const type = c.u8();
  const flags = c.u16();
  const decimals = c.u8();
  return { schema, table, orgTable, name, orgName, charset, length, type, flags, decimals, ...(info && { extended: info }) };
}

/** A ColumnDefinition41. */
export function columnDefinition(d: ColumnDefinition): Buffer {
  const tail = Buffer.alloc(1 + 2 + 4 + 1 + 2 + 1 + 2);
  tail[0] = 0x0c;
  tail.writeUInt16LE(d.charset, 1);
  tail.writeUInt32LE(d.length, 3);
  tail[7] = d.type;
  tail.writeUInt16LE(d.flags, 8);
  tail[10] = d.decimals;
  const names = [lenencBytes('def'), lenencBytes(d.schema), lenencBytes(d.table), lenencBytes(d.orgTable), lenencBytes(d.name), lenencBytes(d.orgName)];
  return Buffer.concat([...names, ...(d.extended ? [lenencBytes(d.extended)] : []), tail]);
}

/** A text-protocol row's values (NULL as null), for `columns` columns. */
export function parseTextRow(payload: Buffer, columns: number): Array<Buffer | null> {
  const c = new Cursor(payload);
  const out: Array<Buffer | null> = [];
  for (let i = 0; i < columns; i++) out.push(c.lenencBytesOrNull());
  return out;
}

/** A text-protocol row. */
export function textRow(values: ReadonlyArray<Buffer | string | null>): Buffer {
  return Buffer.concat(values.map(lenencBytes));
}

/** A result set's first packet: its column count (a length-encoded integer, never 0). */
export function columnCount(payload: Buffer): number {
  const first = payload[0] ?? 0;
  if (first > 0 && first < 0xfb) return first;
  if (first === 0xfc && payload.length >= 3) return payload.readUInt16LE(1);
  throw new MySqlProtocolError(`a result set of an impossible column count (0x${first.toString(16)})`);
}

/** Column types. @see https://dev.mysql.com/doc/dev/mysql-server/latest/field__types_8h.html */
export const ColumnType = {
  DECIMAL: 0,
  TINY: 1,
  SHORT: 2,
  LONG: 3,
  FLOAT: 4,
  DOUBLE: 5,
  NULL: 6,
  TIMESTAMP: 7,
  LONGLONG: 8,
  INT24: 9,
  DATE: 10,
  TIME: 11,
  DATETIME: 12,
  YEAR: 13,
  NEWDATE: 14,
  VARCHAR: 15,
  BIT: 16,
  JSON: 245,
  NEWDECIMAL: 246,
  ENUM: 247,
  SET: 248,
  TINY_BLOB: 249,
  MEDIUM_BLOB: 250,
  LONG_BLOB: 251,
  BLOB: 252,
  VAR_STRING: 253,
  STRING: 254,
  GEOMETRY: 255,
} as const;

/** The numeric column types, which the mysql client (and a table of hoop's) aligns right. */
export const NUMERIC_COLUMN_TYPES = new Set<number>([
  ColumnType.DECIMAL,
  ColumnType.NEWDECIMAL,
  ColumnType.TINY,
  ColumnType.SHORT,
  ColumnType.LONG,
  ColumnType.FLOAT,
  ColumnType.DOUBLE,
  ColumnType.LONGLONG,
  ColumnType.INT24,
  ColumnType.YEAR,
]);

/** A column definition's UNSIGNED flag. */
const UNSIGNED_FLAG = 32;

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/**
 * A binary-protocol row's values as the text protocol would send them (NULL as null): integers and
 * floats in decimal, dates and times as `YYYY-MM-DD hh:mm:ss[.ffffff]`, everything else its bytes.
 *
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_binary_resultset.html
 */
export function parseBinaryRow(payload: Buffer, columns: ReadonlyArray<Pick<ColumnDefinition, 'type' | 'flags'>>): Array<Buffer | null> {
  return binaryRowSlices(payload, columns).map((slice, i) => (slice === null ? null : binaryValueText(slice, columns[i]!)));
}

/** One binary value's encoding (a slice of {@link binaryRowSlices}) as the text protocol would send it. */
export function binaryValueText(slice: Buffer, column: Pick<ColumnDefinition, 'type' | 'flags'>): Buffer {
  const v = binaryValue(new Cursor(slice), column.type, (column.flags & UNSIGNED_FLAG) !== 0);
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
}

/** One binary value, as text. */
function binaryValue(c: Cursor, type: number, unsigned: boolean): string | Buffer {
  switch (type) {
    case ColumnType.TINY: {
      const v = c.u8();
      return String(unsigned || v < 0x80 ? v : v - 0x100);
    }
    case ColumnType.SHORT:
    case ColumnType.YEAR: {
      const v = c.u16();
      return String(unsigned || v < 0x8000 ? v : v - 0x10000);
    }
    case ColumnType.LONG:
    case ColumnType.INT24: {
      const v = c.bytes(4);
      return String(unsigned ? v.readUInt32LE(0) : v.readInt32LE(0));
    }
    case ColumnType.LONGLONG: {
      const v = c.bytes(8);
      return String(unsigned ? v.readBigUInt64LE(0) : v.readBigInt64LE(0));
    }
    case ColumnType.FLOAT:
      return String(c.bytes(4).readFloatLE(0));
    case ColumnType.DOUBLE:
      return String(c.bytes(8).readDoubleLE(0));
    case ColumnType.DATE:
    case ColumnType.DATETIME:
    case ColumnType.TIMESTAMP:
    case ColumnType.NEWDATE: {
      const n = c.u8();
      const b = c.bytes(n);
      const date = n >= 4 ? `${pad(b.readUInt16LE(0), 4)}-${pad(b[2]!)}-${pad(b[3]!)}` : '0000-00-00';
      if (type === ColumnType.DATE || type === ColumnType.NEWDATE) return date;
      const time = n >= 7 ? `${pad(b[4]!)}:${pad(b[5]!)}:${pad(b[6]!)}` : '00:00:00';
      return `${date} ${time}${n >= 11 ? `.${pad(b.readUInt32LE(7), 6)}` : ''}`;
    }
    case ColumnType.TIME: {
      const n = c.u8();
      const b = c.bytes(n);
      if (n === 0) return '00:00:00';
      const hours = b.readUInt32LE(1) * 24 + b[5]!;
      return `${b[0] ? '-' : ''}${pad(hours)}:${pad(b[6]!)}:${pad(b[7]!)}${n >= 12 ? `.${pad(b.readUInt32LE(8), 6)}` : ''}`;
    }
    default:
      return c.lenencBytesOrNull() ?? Buffer.alloc(0);
  }
}

/** Bytes of a binary value of `type` that has a fixed width (0: a length-encoded string; -1: a length byte first). */
function binaryWidth(type: number): number {
  switch (type) {
    case ColumnType.TINY:
      return 1;
    case ColumnType.SHORT:
    case ColumnType.YEAR:
      return 2;
    case ColumnType.LONG:
    case ColumnType.INT24:
    case ColumnType.FLOAT:
      return 4;
    case ColumnType.LONGLONG:
    case ColumnType.DOUBLE:
      return 8;
    case ColumnType.DATE:
    case ColumnType.DATETIME:
    case ColumnType.TIMESTAMP:
    case ColumnType.NEWDATE:
    case ColumnType.TIME:
      return -1;
    default:
      return 0;
  }
}

/** A binary-protocol row's values as their raw encodings (NULL as null), to re-encode some and keep the others. */
export function binaryRowSlices(payload: Buffer, columns: ReadonlyArray<Pick<ColumnDefinition, 'type'>>): Array<Buffer | null> {
  const c = new Cursor(payload, 1);
  const bitmap = c.bytes(Math.floor((columns.length + 7 + 2) / 8));
  return columns.map((col, i) => {
    const bit = i + 2;
    if (bitmap[bit >> 3]! & (1 << (bit & 7))) return null;
    const width = binaryWidth(col.type);
    const start = c.at;
    if (width > 0) c.bytes(width);
    else if (width < 0) c.bytes(c.u8());
    else c.lenencBytesOrNull();
    return payload.subarray(start, c.at);
  });
}

/** A binary-protocol row from raw encodings (see {@link binaryRowSlices}), NULL as null. */
export function binaryRow(slices: ReadonlyArray<Buffer | null>): Buffer {
  const bitmap = Buffer.alloc(Math.floor((slices.length + 7 + 2) / 8));
  slices.forEach((s, i) => {
    if (s === null) bitmap[(i + 2) >> 3]! |= 1 << ((i + 2) & 7);
  });
  return Buffer.concat([Buffer.from([0]), bitmap, ...slices.filter((s): s is Buffer => s !== null)]);
}
