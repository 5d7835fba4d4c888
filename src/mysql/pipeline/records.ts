/**
 * A MySQL session's records, as they crossed the gateway: each packet's payload as the client
 * sent it and as the server answered (the sequence ids follow from their order), and the
 * decoder readers turn them into the transcript's events with the relay's own state machine
 * (./conversation.ts): `query`, `parse` / `execute`, `columns`, `row`, `complete`, `error`.
 *
 * @see ../../../docs/recording-format.md
 */
import type { EventSink, RecordingEvent } from '../../recording/event-line.js';
import type { RecordEncoder } from '../../recording/thread.js';
import { Cursor } from '../wire/packets.js';
import { Command, parseColumnDefinition, parseErr, parseOk, parseTextRow } from '../wire/results.js';
import { Conversation } from './conversation.js';

/** A packet the client sent (its payload). */
export const CLIENT_PACKET = 16;
/** A packet the server sent (its payload). */
export const SERVER_PACKET = 20;
/** The capabilities the session agreed on (u32 LE), before its first packet: they shape what follows. */
export const CAPABILITIES = 24;

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
  #names: string[] = [];
  #rows = 0;
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
      this.#conversation = new Conversation(this.#capabilities);
    } else if (kind === CLIENT_PACKET) this.#client(at, payload);
    else if (kind === SERVER_PACKET) this.#server(at, payload);
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
        this.#names = [];
        this.#emit({ t: 'error', at, message: `ERROR ${e.code} (${e.sqlState}): ${e.message}` });
        return;
      }
      case 'ok': {
        const ok = parseOk(payload, this.#capabilities);
        this.#emit({ t: 'complete', at, tag: `Query OK, ${ok.affectedRows} row${ok.affectedRows === 1 ? '' : 's'} affected${ok.info ? ` (${ok.info})` : ''}` });
        return;
      }
      case 'column-count':
        this.#names = [];
        this.#rows = 0;
        this.#columns = p.columns;
        return;
      case 'column':
        if (this.#columns > 0) this.#names.push(parseColumnDefinition(payload).name);
        if (p.last && this.#columns > 0) this.#emit({ t: 'columns', at, names: this.#names });
        return;
      case 'row':
        this.#rows++;
        this.#emit({ t: 'row', at, values: p.binary ? ['(binary row)'] : rowValues(payload, this.#names.length) });
        return;
      case 'rows-end':
        this.#emit({ t: 'complete', at, tag: 'SELECT', rows: this.#rows });
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

/** A text row's values as text (NULL as null), each cut at {@link VALUE_MAX} bytes. */
function rowValues(payload: Buffer, columns: number): Array<string | null> {
  try {
    return parseTextRow(payload, columns).map((v) => (v === null ? null : v.length > VALUE_MAX ? `${v.toString('utf8', 0, VALUE_MAX)}…` : v.toString('utf8')));
  } catch {
    return [`(a row of ${new Cursor(payload).left} bytes that does not read as ${columns} values)`];
  }
}
