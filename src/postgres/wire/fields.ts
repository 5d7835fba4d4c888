/**
 * The integer fields of the PostgreSQL v3 protocol, read and written with the width and sign the
 * server gives them. Every reader of a message body in hoop goes through these, so that a count
 * is never read as a signed number in one place and unsigned in another.
 *
 * - **Counts** (Int16: parameters, parameter types, format codes, columns, fields): PostgreSQL reads
 *   every Int16 with `pq_getmsgint(msg, 2)`, which returns it *unsigned*, so a Bind may carry up to
 *   65,535 parameters (libpq and the drivers write them so). Read as signed, 32,768 and above
 *   would turn negative.
 * - **Signed Int16 values**: format codes, attribute numbers and type lengths (`int16` in the
 *   server: `typlen` -1 is varlena, a system column's `attnum` is negative), and a binary COPY
 *   tuple's field count (-1 ends the data).
 * - **Value lengths** (Int32 before a parameter, a column, a function argument): -1 is NULL, any
 *   other negative number is a protocol violation.
 * - **Message lengths** (Int32, counting themselves): at least 4 and at most the server's limit for
 *   the message type.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-types.html
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 * @see https://github.com/postgres/postgres/blob/REL_17_STABLE/src/backend/libpq/pqformat.c (pq_getmsgint)
 */
import { PgProtocolError } from './protocol-error.js';

/** The largest Int16 count: 65,535 (PostgreSQL reads Int16 counts unsigned). */
export const MAX_COUNT16 = 0xffff;

/** PostgreSQL's `PQ_LARGE_MESSAGE_LIMIT` (`MaxAllocSize - 1`): the longest message, its length field included. */
export const PQ_LARGE_MESSAGE_LIMIT = 0x3fffffff - 1;
/** PostgreSQL's `PQ_SMALL_MESSAGE_LIMIT`: the longest message of the types that carry no data. */
export const PQ_SMALL_MESSAGE_LIMIT = 10_000;
/** PostgreSQL's `PG_MAX_AUTH_TOKEN_LENGTH`: the longest PasswordMessage or SASL message. */
export const PG_MAX_AUTH_TOKEN_LENGTH = 65_535;

/** The value length that stands for NULL. */
export const NULL_LENGTH = -1;

/** An Int16 count at `at` (0 to 65,535). The caller has checked that two bytes are there. */
export function readCount16(body: Buffer, at: number): number {
  return (body[at]! << 8) | body[at + 1]!;
}

/** A signed Int16 at `at` (format code, attribute number, type length). */
export function readInt16(body: Buffer, at: number): number {
  return body.readInt16BE(at);
}

/**
 * A value's Int32 length at `at`: -1 for NULL, else the number of bytes that follow.
 * @throws PgProtocolError for any other negative length, naming `what` holds it
 */
export function readValueLength(body: Buffer, at: number, what: string): number {
  const len = body.readInt32BE(at);
  if (len < NULL_LENGTH) throw new PgProtocolError(`${what} has a value of length ${len}`);
  return len;
}

/** Writes the Int16 count `n` at `at`. @throws RangeError when `n` is not 0 to 65,535 */
export function writeCount16(out: Buffer, n: number, at: number): void {
  if (!Number.isInteger(n) || n < 0 || n > MAX_COUNT16) throw new RangeError(`an Int16 count must be 0 to ${MAX_COUNT16}, not ${n}`);
  out[at] = n >>> 8;
  out[at + 1] = n & 0xff;
}
