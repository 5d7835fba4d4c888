/**
 * Secrets a client binds to a prepared statement, kept out of recordings as those it types into
 * SQL are (src/policy/sql/redact.ts): in a COM_STMT_EXECUTE or COM_STMT_SEND_LONG_DATA, the value of
 * a parameter the statement takes as a secret (`AES_ENCRYPT(?, ?)`, `SET api_token = ?`), and what
 * the session's detectors find in any string parameter, each written down as its keyed hash. What
 * it cannot read (a statement it did not see prepared, a packet cut short) is recorded with every
 * parameter value redacted: the recording never holds a value it could not judge.
 *
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_stmt_execute.html
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_stmt_send_long_data.html
 */
import type { SentSecrets } from '../../policy/sql/sent-secrets.js';
import { isSecretParam, type MysqlLexing, type RedactOptions, redactDetected, redactionMarker, type SecretParams, secretParameters } from '../../policy/sql/redact.js';
import { Cursor, lenencBytes } from '../wire/packets.js';
import { Command } from '../wire/results.js';

/** MariaDB's statement id for the statement prepared last. */
const LAST_STATEMENT = 0xffffffff;
/** Bytes a value of each fixed-size binary type takes; a type absent here is length-encoded (strings, decimals, JSON, blobs). */
const FIXED: Readonly<Record<number, number>> = { 1: 1, 2: 2, 13: 2, 3: 4, 9: 4, 4: 4, 8: 8, 5: 8, 6: 0 };
/** Types whose value is a byte count then that many bytes (dates, times). */
const COUNTED = new Set([7, 10, 11, 12]);
/** MYSQL_TYPE_DOUBLE. */
const DOUBLE = 5;
/** MYSQL_TYPE_VAR_STRING: what a redacted value is sent as. */
const VAR_STRING = 253;

/** A prepared statement: which parameters (1 first) are secrets, how many it has, and the types its last execute bound. */
interface Prepared {
  secret: SecretParams;
  params: number;
  types?: Buffer;
  /** Parameters whose value came as long data since the last execute: the execute carries none for them. */
  long: Set<number>;
}

/** Follows a session's prepared statements and redacts what their executes bind: one per recording. */
export class ExecuteSecrets {
  readonly #redact: RedactOptions;
  readonly #statements = new Map<number, Prepared>();
  /** The secret parameters of the statement being prepared, until the server says its id. */
  #preparing: SecretParams | undefined;
  #last: number | undefined;

  /** Told when a value is redacted: what the server says after it may repeat it. */
  readonly #sent: SentSecrets | undefined;

  constructor(redact: RedactOptions, sent?: SentSecrets) {
    this.#redact = redact;
    this.#sent = sent;
  }

  /** A client's COM_STMT_PREPARE of `sql`. */
  preparing(sql: string, mode?: MysqlLexing): void {
    this.#preparing = secretParameters(sql, 'mysql', mode);
    this.#last = undefined;
  }

  /** The server's answer to it: statement `id`, with `params` parameters. */
  prepared(id: number, params: number): void {
    this.#statements.set(id, { secret: this.#preparing ?? 'all', params, long: new Set() });
    this.#preparing = undefined;
    this.#last = id;
  }

  /** A client packet as it is recorded: the same bytes, or with the values it binds redacted. */
  client(payload: Buffer): Buffer {
    const code = payload[0];
    if (code === Command.STMT_CLOSE && payload.length >= 5) this.#statements.delete(payload.readUInt32LE(1));
    if (code === Command.STMT_EXECUTE) return this.#execute(payload);
    if (code === Command.STMT_SEND_LONG_DATA) return this.#longData(payload);
    return payload;
  }

  #statement(payload: Buffer): Prepared | undefined {
    if (payload.length < 5) return undefined;
    const id = payload.readUInt32LE(1);
    return this.#statements.get(id === LAST_STATEMENT && this.#last !== undefined ? this.#last : id);
  }

  /** A value of parameter `n` (1 first) of `st` as recorded: its marker when it is a secret (or `whole`), else the detectors' redaction; undefined when it stays. */
  #value(st: Prepared | undefined, n: number, value: Buffer, whole = false): Buffer | undefined {
    if (!st || whole || isSecretParam(st.secret, n)) {
      this.#sent?.taint();
      return Buffer.from(redactionMarker(value.toString('latin1'), this.#redact.key));
    }
    if (!this.#redact.detectors?.length) return undefined;
    const r = redactDetected(value.toString('utf8'), this.#redact);
    if (r.redacted) this.#sent?.taint();
    return r.redacted ? Buffer.from(r.text) : undefined;
  }

  #execute(payload: Buffer): Buffer {
    const st = this.#statement(payload);
    if (st && st.params === 0) return payload;
    const longData = st?.long ?? new Set<number>();
    if (st) st.long = new Set();
    if (!st || (st.secret !== 'all' && st.secret.length === 0 && !this.#redact.detectors?.length)) return st ? payload : this.#unread(payload);
    try {
      const read = bound(payload, st, longData);
      if (!read) return this.#unread(payload);
      if (read.bound) st.types = read.types;
      const { head, types } = read;
      const values: Buffer[] = [];
      let changed = false;
      const newTypes = Buffer.from(types);
      for (const { i, type, raw } of read.values) {
        const replaced = isString(type)
          ? this.#value(st, i + 1, stringValue(raw))
          : isSecretParam(st.secret, i + 1) || this.#numberDetected(raw, type, (types[2 * i + 1]! & 0x80) !== 0)
            ? this.#value(st, i + 1, raw, true)
            : undefined;
        if (replaced) {
          changed = true;
          newTypes[2 * i] = VAR_STRING;
          newTypes[2 * i + 1] = 0;
          values.push(lenencBytes(replaced));
        } else values.push(raw);
      }
      if (!changed) return payload;
      // The types change with a value redacted in place of a number: the packet says so (new_params_bound), as a client may.
      const typed = read.bound ? Buffer.concat([head.subarray(0, head.length - newTypes.length), newTypes]) : Buffer.concat([head.subarray(0, head.length - 1), Buffer.from([1]), newTypes]);
      return Buffer.concat([typed, ...values, read.rest]);
    } catch {
      return this.#unread(payload);
    }
  }

  /** The string values client packet `payload` binds, if it is an execute hoop can read, as {@link client} will read them: for the worker to redact ahead. */
  texts(payload: Buffer): string[] {
    const st = payload[0] === Command.STMT_EXECUTE ? this.#statement(payload) : undefined;
    if (!st || st.params === 0) return [];
    try {
      return (bound(payload, st, st.long)?.values ?? []).flatMap((v) => (isString(v.type) ? [stringValue(v.raw).toString('utf8')] : []));
    } catch {
      return [];
    }
  }

  /** An execute whose values cannot be read: recorded as one marker, and what the server says after it may repeat one. */
  #unread(payload: Buffer): Buffer {
    this.#sent?.taint();
    return everyValueRedacted(payload, this.#redact);
  }

  #longData(payload: Buffer): Buffer {
    if (payload.length < 7) return payload;
    const st = this.#statement(payload);
    const param = payload.readUInt16LE(5);
    st?.long.add(param);
    const data = payload.subarray(7);
    // A chunk is a piece of a value: what a detector finds may span two, so with detectors each chunk is kept as its hash.
    if (this.#redact.detectors?.length) this.#sent?.taint();
    const replaced = this.#redact.detectors?.length ? Buffer.from(redactionMarker(data.toString('latin1'), this.#redact.key)) : this.#value(st, param + 1, data);
    return replaced ? Buffer.concat([payload.subarray(0, 7), replaced]) : payload;
  }

  /** Whether a detector finds something in a number parameter's digits (a card number bound as a BIGINT, or as a DOUBLE: mysql2 binds a JavaScript number so), read as its type says. */
  #numberDetected(raw: Buffer, type: number, unsigned: boolean): boolean {
    if (!this.#redact.detectors?.length || raw.length !== 8) return false;
    const digits = type === DOUBLE ? String(raw.readDoubleLE(0)) : String(unsigned ? raw.readBigUInt64LE(0) : raw.readBigInt64LE(0));
    return redactDetected(digits, this.#redact).redacted;
  }
}

/** Whether a bound value of `type` is a length-encoded string (not a number or date of fixed or counted size). */
const isString = (type: number): boolean => FIXED[type] === undefined && !COUNTED.has(type);
/** A string value's bytes, past its length. */
const stringValue = (raw: Buffer): Buffer => new Cursor(raw).lenencBytesOrNull() ?? Buffer.alloc(0);

/**
 * What execute `payload` of `st` binds: its header (`head`, the types included when it binds new
 * ones), the types it goes by, each value sent in it (parameter index, type, bytes as sent; not
 * one sent as long data, `longData`, nor a NULL) and what follows; undefined when no types are
 * known. Throws on a packet cut short.
 */
function bound(
  payload: Buffer,
  st: Prepared,
  longData: ReadonlySet<number>,
): { head: Buffer; bound: boolean; types: Buffer; values: Array<{ i: number; type: number; raw: Buffer }>; rest: Buffer } | undefined {
  const c = new Cursor(payload, 10);
  const nulls = c.bytes((st.params + 7) >> 3);
  const isBound = c.u8() === 1;
  const types = isBound ? Buffer.from(c.bytes(2 * st.params)) : st.types;
  if (!types) return undefined;
  const head = payload.subarray(0, c.at);
  const values: Array<{ i: number; type: number; raw: Buffer }> = [];
  for (let i = 0; i < st.params; i++) {
    // A value sent as long data is not in the execute.
    if (nulls[i >> 3]! & (1 << (i & 7)) || longData.has(i)) continue;
    const type = types[2 * i]!;
    const start = c.at;
    if (FIXED[type] !== undefined) c.bytes(FIXED[type]);
    else if (COUNTED.has(type)) c.bytes(c.u8());
    else c.bytes(c.lenenc());
    values.push({ i, type, raw: payload.subarray(start, c.at) });
  }
  return { head, bound: isBound, types, values, rest: c.rest() };
}

/** An execute whose values cannot be read: its header kept (the statement, flags), its values as one marker. */
function everyValueRedacted(payload: Buffer, redact: RedactOptions): Buffer {
  if (payload.length <= 10) return payload;
  return Buffer.concat([payload.subarray(0, 10), Buffer.from(redactionMarker(payload.subarray(10).toString('latin1'), redact.key))]);
}
