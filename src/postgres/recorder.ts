/**
 * The recording stage of a PostgreSQL session: it sees the relay's one read of each direction and
 * writes what happened as events (docs/recording-format.md):
 *
 * - from the client, each message the statement gate judges, as the client sent it: `query`
 *   (simple protocol), `parse` (a prepared statement's SQL), `bind` (the portal, its statement and
 *   the parameters, text as text and binary as base64, each cut at 4 KiB), `execute` (the portal,
 *   with the SQL it runs resolved through its statement); and the gate's `decision` when it refused
 *   one (action, rule, reason);
 * - from the server, what the client received (after masking): `columns` (RowDescription, with
 *   how masking treated each column: its strategy and origin `schema.table.column`), up to
 *   `rowCap` `row`s per result (values as text, NULL as null; binary as base64), `complete` (the
 *   command tag, the rows sent and how many went unrecorded beyond the cap, timing from the
 *   statement to its first row and to its end), `error` and `notice` (SQLSTATE, message, detail,
 *   hint), `notification`, `copy` (COPY out/in begins) and `ready` when the transaction status
 *   changes (`I` idle, `T` in a block, `E` in a failed block).
 *
 * A small result (at most {@link SMALL_ROWS} rows, {@link SMALL_BYTES} of values, nothing else in
 * between) is written as one `result` event when it completes, holding its columns, rows and
 * outcome: the common one-row statement costs one event instead of three. A larger one streams as
 * `columns`, `row`s and `complete`; readers see both the same way (src/recording/read.ts).
 *
 * With `results: none` no row or COPY data is recorded, only statements, shapes and outcomes.
 * Rows beyond the cap pass unread and are only counted, so recording costs nothing per row there.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
import type { EventSink, RecordingEvent } from '../recording/writer.js';
import type { FrontendMessage } from './frontend-messages.js';
import { parseErrorFields } from './reader.js';
import { cstr, parseDataRow, parseRowDescription } from './rows.js';
import type { Refusal } from './statement-gate.js';

const ROW_DESCRIPTION = 0x54; // 'T'
const DATA_ROW = 0x44; // 'D'
const COMMAND_COMPLETE = 0x43; // 'C'
const ERROR = 0x45; // 'E'
const NOTICE = 0x4e; // 'N'
const READY = 0x5a; // 'Z'
const EMPTY_QUERY = 0x49; // 'I'
const PORTAL_SUSPENDED = 0x73; // 's'
const NOTIFICATION = 0x41; // 'A'
const COPY_OUT = 0x48; // 'H'
const COPY_IN = 0x47; // 'G'
const COPY_BOTH = 0x57; // 'W'
const COPY_DATA = 0x64; // 'd'

/** Server messages the recording reads (others pass unread: ParseComplete, BindComplete, NoData, ParameterStatus, ...). */
const RECORDED = new Set([ROW_DESCRIPTION, COMMAND_COMPLETE, ERROR, NOTICE, READY, EMPTY_QUERY, PORTAL_SUSPENDED, NOTIFICATION, COPY_OUT, COPY_IN, COPY_BOTH]);

/** Longest parameter or value text kept in a recording. */
const VALUE_MAX = 4096;
/** A result of at most this many rows and {@link SMALL_BYTES} of values is written as one `result` event. */
const SMALL_ROWS = 16;
const SMALL_BYTES = 8192;

/** The stage as the relay's paths use it. */
export interface RecorderStage {
  /** A message the client sent, before the gate judges it. */
  client(m: FrontendMessage): void;
  /** The gate refused the client's last message (or one it could not read). */
  refused(r: Refusal): void;
  /** Whether a server message of this type must be read whole for the recording (else it passes, counted). */
  wants(type: number): boolean;
  /** A server message that passes unread. */
  passed(type: number): void;
  /** Bytes handed to the client: whole server messages. A Promise when the recording's disk is behind. */
  server(bytes: Buffer): Promise<void> | undefined;
  /** The session is over: writes the part of a result it still holds. */
  end(): void;
}

export interface PostgresRecorderOptions {
  sink: EventSink;
  /** `masked`: rows as the client received them; `none`: no rows. */
  results: 'masked' | 'none';
  /** Rows (and COPY data messages) recorded per result. */
  rowCap: number;
  /** Per column of the RowDescription just handed on: how masking treats it (see ResultMasker.lastMaskedColumns). */
  maskedColumns?: () => Array<{ strategy: string; origin?: string } | null>;
  now?: () => number;
}

function cut(text: string): string {
  return text.length > VALUE_MAX ? `${text.slice(0, VALUE_MAX)}…` : text;
}

function value(bytes: Buffer, binary: boolean): string {
  return binary ? `base64:${cut(bytes.toString('base64'))}` : cut(bytes.toString('utf8'));
}

/** ErrorResponse / NoticeResponse as an event's fields. @see https://www.postgresql.org/docs/current/protocol-error-fields.html */
function noticeFields(body: Buffer): Record<string, string> {
  const { severity, code, message, detail, hint } = parseErrorFields(body);
  return { code, severity, message, ...(detail !== undefined ? { detail } : {}), ...(hint !== undefined ? { hint } : {}) };
}

/** Bind parameters: text as text, binary as base64. */
function bindParams(body: Buffer): Array<string | null> | undefined {
  try {
    let at = body.indexOf(0) + 1;
    at = body.indexOf(0, at) + 1;
    const nFormats = body.readInt16BE(at);
    const formats: number[] = [];
    for (let i = 0; i < nFormats; i++) formats.push(body.readInt16BE(at + 2 + 2 * i));
    at += 2 + 2 * nFormats;
    const n = body.readInt16BE(at);
    at += 2;
    const params: Array<string | null> = [];
    for (let i = 0; i < n; i++) {
      const len = body.readInt32BE(at);
      at += 4;
      if (len < 0) params.push(null);
      else {
        const format = nFormats === 1 ? formats[0] : formats[i] ?? 0;
        params.push(value(body.subarray(at, at + len), format === 1));
        at += len;
      }
    }
    return params;
  } catch {
    return undefined;
  }
}

/** See the module documentation. */
export class PostgresRecorder implements RecorderStage {
  readonly #sink: EventSink;
  readonly #rows: boolean;
  readonly #cap: number;
  readonly #now: () => number;
  readonly #maskedColumns: PostgresRecorderOptions['maskedColumns'];
  /** Portal -> its statement's name. */
  readonly #portals = new Map<string, string>();
  /** The result being received: its rows and the formats of its columns. */
  #sent = 0;
  #recorded = 0;
  #binary: boolean[] = [];
  #started: number | undefined;
  #firstRow: number | undefined;
  /** The result being received while it is small: its columns and rows, written with its outcome. */
  #held: { names: string[]; masked?: Array<{ strategy: string; origin?: string } | null>; rows: Array<Array<string | null>>; bytes: number } | undefined;
  #waiting: Promise<void> | undefined;
  /** The transaction status of the last ReadyForQuery (`I` before the first). */
  #status = 'I';

  constructor(o: PostgresRecorderOptions) {
    this.#sink = o.sink;
    this.#rows = o.results !== 'none';
    this.#cap = o.rowCap;
    this.#now = o.now ?? Date.now;
    this.#maskedColumns = o.maskedColumns;
  }

  /** Stamps `event` (a fresh object) with the time and hands it to the sink, after the result held so far. */
  #emit(event: Record<string, unknown> & { t: string }): void {
    if (this.#held) this.#release();
    this.#write(event);
  }

  #write(event: Record<string, unknown> & { t: string }): void {
    event.at = this.#now();
    if (!this.#sink.append(event as RecordingEvent) && !this.#waiting) {
      this.#waiting = this.#sink.drained().then(() => {
        this.#waiting = undefined;
      });
    }
  }

  client(m: FrontendMessage): void {
    switch (m.kind) {
      case 'query':
        this.#started = this.#now();
        this.#emit({ t: 'query', sql: m.long ? `(${m.msg.body.length} bytes, not recorded)` : m.sql });
        return;
      case 'parse':
        this.#emit({ t: 'parse', statement: m.name, sql: m.long ? `(${m.msg.body.length} bytes, not recorded)` : m.sql });
        return;
      case 'bind': {
        this.#portals.set(m.portal, m.statement);
        const params = m.msg ? bindParams(m.msg.body) : undefined;
        this.#emit({ t: 'bind', portal: m.portal, statement: m.statement, ...(params ? { params } : { params: 'not recorded (streamed)' }) });
        return;
      }
      case 'execute': {
        this.#started = this.#now();
        const statement = this.#portals.get(m.portal);
        // The statement's SQL is in its `parse` event; readers resolve it (see TranscriptRenderer).
        this.#emit({ t: 'execute', portal: m.portal, ...(statement !== undefined ? { statement } : {}), ...(m.maxRows ? { maxRows: m.maxRows } : {}) });
        return;
      }
      case 'function-call':
        this.#emit({ t: 'function-call' });
        return;
      default:
        return;
    }
  }

  refused(r: Refusal): void {
    this.#emit({ t: 'decision', action: r.action, rule: r.rule, reason: r.reason, message: r.message });
  }

  wants(type: number): boolean {
    if (type === DATA_ROW || type === COPY_DATA) return this.#rows && this.#recorded < this.#cap;
    return RECORDED.has(type);
  }

  passed(type: number): void {
    if (type === DATA_ROW) {
      this.#firstRow ??= this.#now();
      this.#sent++;
    }
  }

  server(bytes: Buffer): Promise<void> | undefined {
    let at = 0;
    while (at + 5 <= bytes.length) {
      const type = bytes[at]!;
      const length = bytes.readUInt32BE(at + 1);
      this.#message(type, bytes.subarray(at + 5, at + 1 + length));
      at += 1 + length;
    }
    return this.#waiting;
  }

  #message(type: number, body: Buffer): void {
    switch (type) {
      case ROW_DESCRIPTION: {
        const fields = parseRowDescription(body);
        this.#binary = fields.map((f) => f.format === 1);
        const masked = this.#maskedColumns?.();
        if (this.#held) this.#release();
        this.#held = { names: fields.map((f) => f.name), ...(masked?.some((m) => m !== null) ? { masked } : {}), rows: [], bytes: 0 };
        return;
      }
      case DATA_ROW: {
        this.#firstRow ??= this.#now();
        this.#sent++;
        if (!this.#rows || this.#recorded >= this.#cap) return;
        this.#recorded++;
        const values = parseDataRow(body).map((v, i) => (v === null ? null : value(v, this.#binary[i] === true)));
        const held = this.#held;
        if (held && held.rows.length < SMALL_ROWS && held.bytes + body.length <= SMALL_BYTES) {
          held.rows.push(values);
          held.bytes += body.length;
        } else this.#emit({ t: 'row', values });
        return;
      }
      case COPY_DATA:
        this.#sent++;
        if (this.#rows && this.#recorded < this.#cap) {
          this.#recorded++;
          this.#emit({ t: 'copy-data', data: cut(body.toString('utf8')) });
        }
        return;
      case COMMAND_COMPLETE:
      case EMPTY_QUERY:
      case PORTAL_SUSPENDED: {
        const held = this.#held;
        this.#held = undefined;
        const outcome: Record<string, unknown> & { t: string } = held ? { t: 'result', names: held.names } : { t: 'complete' };
        if (held?.masked) outcome.masked = held.masked;
        if (held) outcome.values = held.rows;
        outcome.tag = type === COMMAND_COMPLETE ? cstr(body, 0)[0] : type === EMPTY_QUERY ? '(empty query)' : '(portal suspended)';
        outcome.rows = this.#sent;
        if (this.#sent > this.#recorded) outcome.unrecorded = this.#sent - this.#recorded;
        if (this.#started !== undefined) {
          outcome.ms = this.#now() - this.#started;
          if (this.#firstRow !== undefined) outcome.firstRowMs = this.#firstRow - this.#started;
        }
        this.#write(outcome);
        this.#endResult();
        return;
      }
      case ERROR:
        this.#emit({ t: 'error', ...noticeFields(body) });
        this.#endResult();
        return;
      case NOTICE:
        this.#emit({ t: 'notice', ...noticeFields(body) });
        return;
      case NOTIFICATION: {
        const [channel, at] = cstr(body, 4);
        const [payload] = cstr(body, at);
        this.#emit({ t: 'notification', channel, payload: cut(payload) });
        return;
      }
      case COPY_OUT:
      case COPY_IN:
      case COPY_BOTH:
        this.#emit({ t: 'copy', direction: type === COPY_OUT ? 'out' : type === COPY_IN ? 'in' : 'both' });
        return;
      case READY: {
        // Only a change of transaction status is news (idle -> in a block -> failed); most are idle again.
        const status = String.fromCharCode(body[0] ?? 0x49);
        if (status !== this.#status) this.#emit({ t: 'ready', status });
        this.#status = status;
        return;
      }
      default:
        return;
    }
  }

  end(): void {
    if (this.#held) this.#release();
  }

  /** Writes the result held so far as `columns` and `row`s: it is no longer small, or something else comes first. */
  #release(): void {
    const held = this.#held!;
    this.#held = undefined;
    this.#write({ t: 'columns', names: held.names, ...(held.masked ? { masked: held.masked } : {}) });
    for (const values of held.rows) this.#write({ t: 'row', values });
  }

  #endResult(): void {
    this.#sent = 0;
    this.#recorded = 0;
    this.#started = undefined;
    this.#firstRow = undefined;
  }
}
