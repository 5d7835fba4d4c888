/**
 * The row-carrying messages of the PostgreSQL protocol, read and written: RowDescription ('T')
 * and DataRow ('D'), and the C strings and bounds checks their parsing needs.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
import { Backend } from './codes.js';
import { PgProtocolError } from './protocol-error.js';
import { readCount16, readInt16, readValueLength, writeCount16 } from './fields.js';

/** The NUL-terminated string at `at` of a message body (UTF-8) and the offset after it. @throws PgProtocolError when unterminated */
export function cstr(body: Buffer, at: number): [string, number] {
  const end = body.indexOf(0, at);
  if (end < 0) throw new PgProtocolError('unterminated string in a message');
  return [body.toString('utf8', at, end), end + 1];
}

/** Throws unless `body` holds `n` more bytes at `at`. @throws PgProtocolError */
export function need(body: Buffer, at: number, n: number): void {
  if (at + n > body.length) throw new PgProtocolError('message is truncated');
}

/** Parsed RowDescription fields. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ROWDESCRIPTION */
export interface RowDescriptionField {
  name: string;
  tableOid: number;
  attnum: number;
  typeOid: number;
  typlen: number;
  typmod: number;
  format: number;
}

/**
 * The fields of a RowDescription ('T') body.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ROWDESCRIPTION
 */
export function parseRowDescription(body: Buffer): RowDescriptionField[] {
  need(body, 0, 2);
  const n = readCount16(body, 0);
  let at = 2;
  const out: RowDescriptionField[] = [];
  for (let i = 0; i < n; i++) {
    const [name, next] = cstr(body, at);
    at = next;
    need(body, at, 18);
    out.push({
      name,
      tableOid: body.readUInt32BE(at),
      attnum: readInt16(body, at + 4),
      typeOid: body.readUInt32BE(at + 6),
      typlen: readInt16(body, at + 10),
      typmod: body.readInt32BE(at + 12),
      format: readInt16(body, at + 16),
    });
    at += 18;
  }
  if (at !== body.length) throw new PgProtocolError('RowDescription has trailing bytes');
  return out;
}

/**
 * The fields of a DataRow ('D') body, null for SQL NULL (views into `body`).
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-DATAROW
 */
export function parseDataRow(body: Buffer): Array<Buffer | null> {
  need(body, 0, 2);
  const n = readCount16(body, 0);
  let at = 2;
  const out: Array<Buffer | null> = [];
  for (let i = 0; i < n; i++) {
    need(body, at, 4);
    const len = readValueLength(body, at, 'DataRow');
    at += 4;
    if (len === -1) {
      out.push(null);
      continue;
    }
    need(body, at, len);
    out.push(body.subarray(at, at + len));
    at += len;
  }
  if (at !== body.length) throw new PgProtocolError('DataRow has trailing bytes');
  return out;
}

/**
 * A whole DataRow ('D') message with these fields.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-DATAROW
 */
export function dataRow(fields: Array<Buffer | null>): Buffer {
  let size = 2;
  for (const f of fields) size += 4 + (f ? f.length : 0);
  const out = Buffer.allocUnsafe(5 + size);
  out[0] = Backend.DATA_ROW;
  out.writeUInt32BE(4 + size, 1);
  writeCount16(out, fields.length, 5);
  let at = 7;
  for (const f of fields) {
    out.writeInt32BE(f ? f.length : -1, at);
    at += 4;
    if (f) at += f.copy(out, at);
  }
  return out;
}

/**
 * The value of a FunctionCallResponse ('V') body: an Int32 length (-1: NULL), then that many bytes.
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-FUNCTIONCALLRESPONSE
 */
export function parseFunctionResult(body: Buffer): Buffer | null {
  need(body, 0, 4);
  const len = readValueLength(body, 0, 'FunctionCallResponse');
  if (len === -1) {
    if (body.length !== 4) throw new PgProtocolError('FunctionCallResponse has trailing bytes');
    return null;
  }
  need(body, 4, len);
  if (4 + len !== body.length) throw new PgProtocolError('FunctionCallResponse has trailing bytes');
  return body.subarray(4);
}

/** A FunctionCallResponse ('V') body holding `value`. */
export function functionResultBody(value: Buffer | null): Buffer {
  const out = Buffer.allocUnsafe(4 + (value?.length ?? 0));
  out.writeInt32BE(value ? value.length : -1, 0);
  value?.copy(out, 4);
  return out;
}

/**
 * A CommandComplete ('C') body's verb and the rows it reports (`DELETE 60`, `INSERT 0 5`,
 * `SELECT 3`, `MERGE 3`, `COPY 10`); 0 rows when its tag has no number (`CREATE TABLE`).
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COMMANDCOMPLETE
 */
export function commandTag(body: Buffer): { verb: string; rows: number } {
  const end = body.indexOf(0);
  const words = body.toString('latin1', 0, end < 0 ? body.length : end).split(' ');
  const last = Number(words[words.length - 1]);
  return { verb: words[0] ?? '', rows: words.length > 1 && Number.isSafeInteger(last) ? last : 0 };
}
