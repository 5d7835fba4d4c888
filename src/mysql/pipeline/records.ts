/**
 * A MySQL session's records, as they crossed the gateway: each packet's payload as the client
 * sent it and as the server answered (the sequence ids follow from their order), and the
 * decoder readers turn them into the transcript's events with the relay's own state machine
 * (./conversation.ts): `query`, `parse` / `execute`, `columns`, `row`, `complete`, `error`.
 *
 * @see ../../../docs/recording-format.md
 */
import { isUtf8 } from 'node:buffer';
import type { EventSink, RecordingEvent } from '../../recording/event-line.js';
import type { RecordEncoder } from '../../recording/thread.js';
import { MariaCap } from '../wire/handshake.js';
import { Cursor } from '../wire/packets.js';
import { ColumnType, Command, NUMERIC_COLUMN_TYPES, parseBinaryRow, parseColumnDefinition, parseErr, parseOk, parseTextRow, type ColumnDefinition } from '../wire/results.js';
import { Conversation } from './conversation.js';

/** A packet the client sent (its payload). */
export const CLIENT_PACKET = 16;
/** A packet the server sent (its payload). */
export const SERVER_PACKET = 20;
/** The capabilities the session agreed on (u32 LE; then MariaDB's, u32 LE, when it agreed any), before its first packet: they shape what follows. */
export const CAPABILITIES = 24;
/** Rows the server sent that the recording does not keep (u32 LE; the policy's `rowCap`, or `results: none`), before the packet that ends their result. */
export const ROWS_NOT_RECORDED = 28;

/** Values recorded per row are cut at this many bytes. */
const VALUE_MAX = 4096;

/** The decoder of MySQL sessions' records (see RecordEncoderModule in src/recording/thread.ts). */
export function createRecordEncoder(sink: EventSink): RecordEncoder {
  return new MySqlRecordDecoder(sink);
}

/** See the module documentation. */
class MySqlRecordDecoder implements RecordEncoder {
  readonly #sink: EventSink;
  #conversation = new Conversation(0);
  #capabilities = 0;
  /** The session agreed MariaDB's extended metadata: column definitions carry it. */
  #extended = false;
  #defs: ColumnDefinition[] = [];
  #rows = 0;
  /** Rows of the current result not recorded. */
  #unrecorded = 0;
  #columns = 0;
  /** The SQL of a STMT_PREPARE whose answer (its statement id) is due. */
  #preparing: string | undefined;

  constructor(sink: EventSink) {
    this.#sink = sink;
  }

  record(kind: number, at: number, bytes: Buffer, start: number, end: number): void {
    const payload = bytes.subarray(start, end);
    if (kind === CAPABILITIES) {
      this.#capabilities = payload.readUInt32LE(0);
      this.#extended = payload.length >= 8 && (payload.readUInt32LE(4) & MariaCap.EXTENDED_METADATA) !== 0;
      this.#conversation = new Conversation(this.#capabilities);
    } else if (kind === CLIENT_PACKET) this.#client(at, payload);
    else if (kind === SERVER_PACKET) this.#server(at, payload);
    else if (kind === ROWS_NOT_RECORDED && payload.length >= 4) {
      this.#rows += payload.readUInt32LE(0);
      this.#unrecorded += payload.readUInt32LE(0);
    }
  }

  flush(): void {}

  #emit(e: RecordingEvent): void {
    this.#sink.append(e);
  }

  #client(at: number, payload: Buffer): void {
    this.#conversation.command(payload);
    const code = payload[0];
    const text = (): string => payload.toString('utf8', 1);
    if (code === Command.QUERY) this.#emit({ t: 'query', at, sql: text() });
    else if (code === Command.STMT_PREPARE) this.#preparing = text();
    else if (code === Command.STMT_EXECUTE && payload.length >= 5) this.#emit({ t: 'execute', at, statement: String(payload.readUInt32LE(1)) });
    else if (code === Command.INIT_DB) this.#emit({ t: 'query', at, sql: `USE ${text()}` });
  }

  #server(at: number, payload: Buffer): void {
    const p = this.#conversation.server(payload);
    switch (p.kind) {
      case 'err': {
        const e = parseErr(payload);
        this.#defs = [];
        this.#emit({ t: 'error', at, message: `ERROR ${e.code} (${e.sqlState}): ${e.message}` });
        return;
      }
      case 'ok': {
        const ok = parseOk(payload, this.#capabilities);
        this.#emit({ t: 'complete', at, tag: `Query OK, ${ok.affectedRows} row${ok.affectedRows === 1n ? '' : 's'} affected${ok.info ? ` (${ok.info})` : ''}` });
        return;
      }
      case 'column-count':
        this.#defs = [];
        this.#rows = 0;
        this.#columns = p.columns;
        return;
      case 'column':
        if (this.#columns > 0) this.#defs.push(parseColumnDefinition(payload, this.#extended));
        if (p.last && this.#columns > 0) this.#emit({ t: 'columns', at, names: this.#defs.map((d) => d.name), numeric: this.#defs.map((d) => NUMERIC_COLUMN_TYPES.has(d.type)) });
        return;
      case 'row':
        this.#rows++;
        this.#emit({ t: 'row', at, values: rowValues(payload, this.#defs, p.binary) });
        return;
      case 'rows-end':
        this.#emit({ t: 'complete', at, tag: 'SELECT', rows: this.#rows, ...(this.#unrecorded > 0 ? { unrecorded: this.#unrecorded } : {}) });
        this.#unrecorded = 0;
        this.#columns = 0;
        return;
      case 'prepared':
        this.#columns = 0;
        if (this.#preparing !== undefined) this.#emit({ t: 'parse', at, statement: String(p.statement), sql: this.#preparing });
        this.#preparing = undefined;
        return;
      default:
        return;
    }
  }
}

/** The `binary` character set: a string column of it holds bytes, not text. */
const BINARY_CHARSET = 63;
/** The string and blob types (a number of the binary protocol has the binary character set too). */
const STRING_TYPES = new Set<number>([
  ColumnType.VARCHAR,
  ColumnType.VAR_STRING,
  ColumnType.STRING,
  ColumnType.TINY_BLOB,
  ColumnType.BLOB,
  ColumnType.MEDIUM_BLOB,
  ColumnType.LONG_BLOB,
  ColumnType.GEOMETRY,
]);

/** One value as text: bytes (a binary string, or text that is not UTF-8) as `0x` and hex, as `mysql --binary-as-hex` shows them. */
function valueText(v: Buffer, def: ColumnDefinition | undefined): string {
  const cut = v.length > VALUE_MAX ? v.subarray(0, VALUE_MAX) : v;
  const more = v.length > VALUE_MAX ? '…' : '';
  const bytes = (def && def.charset === BINARY_CHARSET && STRING_TYPES.has(def.type)) || !isUtf8(cut);
  return bytes ? `0x${cut.toString('hex')}${more}` : `${cut.toString('utf8')}${more}`;
}

/** A row's values as text (NULL as null), each cut at {@link VALUE_MAX} bytes; a row that does not read as its columns says so. */
function rowValues(payload: Buffer, defs: ColumnDefinition[], binary: boolean): Array<string | null> {
  try {
    const values = binary ? parseBinaryRow(payload, defs) : parseTextRow(payload, defs.length);
    return values.map((v, i) => (v === null ? null : valueText(v, defs[i])));
  } catch {
    return [`(a row of ${new Cursor(payload).left} bytes that does not read as ${defs.length} values)`];
  }
}
