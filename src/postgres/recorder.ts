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
import { cutValue, type EventLine, type EventSink, type RecordingEvent } from '../recording/event-line.js';
import type { RecordingNotes } from '../tunnel/engine.js';
import type { FrontendMessage } from './frontend-messages.js';
import { PgProtocolError } from './protocol-error.js';
import { parseErrorFields } from './reader.js';
import { cstr, need, parseRowDescription } from './rows.js';
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
  maskedColumns?: () => Array<{ strategy: string; origin?: string } | null> | undefined;
  /** Told what the session's index keeps. */
  notes?: RecordingNotes;
  now?: () => number;
}

/** A small result as it came: its RowDescription and DataRows (checked), and how masking treated its columns. */
interface HeldResult {
  desc: Buffer;
  masked: Array<{ strategy: string; origin?: string } | null> | undefined;
  rows: Buffer[];
  bytes: number;
}

/** ErrorResponse / NoticeResponse as an event's fields. @see https://www.postgresql.org/docs/current/protocol-error-fields.html */
function noticeFields(body: Buffer): Record<string, string> {
  const { severity, code, message, detail, hint } = parseErrorFields(body);
  return { code, severity, message, ...(detail !== undefined ? { detail } : {}), ...(hint !== undefined ? { hint } : {}) };
}

/** Throws unless `body` is a whole DataRow, so that it can be written later without a check. */
function checkDataRow(body: Buffer): void {
  need(body, 0, 2);
  let at = 2;
  for (let i = body.readInt16BE(0); i > 0; i--) {
    need(body, at, 4);
    at += 4 + Math.max(0, body.readInt32BE(at));
  }
  if (at !== body.length) throw new PgProtocolError('DataRow does not match its length');
}

/** A DataRow's values as an array: text as text, binary as base64, NULL as null. */
function writeValues(line: EventLine, body: Buffer, binary: readonly boolean[]): void {
  line.array();
  let at = 2;
  for (let i = 0, n = body.readInt16BE(0); i < n; i++) {
    const len = body.readInt32BE(at);
    at += 4;
    if (len < 0) line.null();
    else {
      if (binary[i] === true) line.binary(body, at, at + len);
      else line.text(body, at, at + len);
      at += len;
    }
  }
  line.close();
}

/** A checked RowDescription's column names as an array. */
function writeNames(line: EventLine, desc: Buffer): void {
  line.array();
  let at = 2;
  for (let i = 0, n = desc.readInt16BE(0); i < n; i++) {
    const end = desc.indexOf(0, at);
    line.text(desc, at, end);
    at = end + 19;
  }
  line.close();
}

/** A held result's `names` and, when masking changed some, how (`masked`). */
function writeColumns(line: EventLine, held: HeldResult): EventLine {
  writeNames(line.key('names'), held.desc);
  if (held.masked) line.key('masked').json(held.masked);
  return line;
}

/** Bind parameters (docs: `params`): text as text, binary as base64, NULL as null; a Bind the server will refuse is noted as unreadable. */
function writeBindParams(line: EventLine, body: Buffer): void {
  // Checked first: a line is written in one go.
  let at = body.indexOf(0, body.indexOf(0) + 1) + 1;
  const formatsAt = at + 2;
  const nFormats = at > 1 && at + 2 <= body.length ? body.readInt16BE(at) : -1;
  at = formatsAt + 2 * nFormats;
  const paramsAt = at + 2;
  let ok = nFormats >= 0 && paramsAt <= body.length;
  const n = ok ? body.readInt16BE(at) : 0;
  at = paramsAt;
  for (let i = 0; ok && i < n; i++) {
    ok = at + 4 <= body.length;
    if (ok) at += 4 + Math.max(0, body.readInt32BE(at));
    ok &&= at <= body.length;
  }
  if (!ok || n < 0) {
    line.string('unreadable');
    return;
  }
  line.array();
  at = paramsAt;
  for (let i = 0; i < n; i++) {
    const len = body.readInt32BE(at);
    at += 4;
    if (len < 0) {
      line.null();
      continue;
    }
    const format = nFormats === 1 ? body.readInt16BE(formatsAt) : i < nFormats ? body.readInt16BE(formatsAt + 2 * i) : 0;
    if (format === 1) line.binary(body, at, at + len);
    else line.text(body, at, at + len);
    at += len;
  }
  line.close();
}

/** See the module documentation. */
export class PostgresRecorder implements RecorderStage {
  readonly #sink: EventSink;
  readonly #rows: boolean;
  readonly #cap: number;
  readonly #now: () => number;
  readonly #maskedColumns: PostgresRecorderOptions['maskedColumns'];
  readonly #notes: RecordingNotes | undefined;
  /** Portal -> its statement's name. */
  readonly #portals = new Map<string, string>();
  /** The result being received: rows sent and recorded, whether each column is binary. */
  #sent = 0;
  #recorded = 0;
  readonly #binary: boolean[] = [];
  #started: number | undefined;
  #firstRow: number | undefined;
  /** The result being received while it is small: its RowDescription and DataRows as they came, written with its outcome. */
  #held: HeldResult | undefined;
  #waiting: Promise<void> | undefined;
  /** The transaction status of the last ReadyForQuery (`I` before the first). */
  #status = 'I';

  constructor(o: PostgresRecorderOptions) {
    this.#sink = o.sink;
    this.#rows = o.results !== 'none';
    this.#cap = o.rowCap;
    this.#now = o.now ?? Date.now;
    this.#maskedColumns = o.maskedColumns;
    this.#notes = o.notes;
  }

  /** Starts an event, after the result held so far. */
  #begin(t: string): EventLine {
    if (this.#held) this.#release();
    return this.#sink.begin(t, this.#now());
  }

  /** Writes a whole event (a rare one), after the result held so far. */
  #emit(event: Record<string, unknown> & { t: string }): void {
    if (this.#held) this.#release();
    event.at = this.#now();
    this.#ended(this.#sink.append(event as RecordingEvent));
  }

  /** An event was written: when the sink is behind, the relay waits for it. */
  #ended(ok: boolean): void {
    if (ok || this.#waiting) return;
    this.#waiting = this.#sink.drained().then(() => {
      this.#waiting = undefined;
    });
  }

  client(m: FrontendMessage): void {
    switch (m.kind) {
      case 'query':
        this.#started = this.#now();
        this.#notes?.statement();
        if (!m.long) this.#notes?.sql(m.sql);
        this.#ended(
          this.#begin('query')
            .key('sql')
            .string(m.long ? `(${m.msg.body.length} bytes, not recorded)` : m.sql)
            .end(),
        );
        return;
      case 'parse':
        if (!m.long) this.#notes?.sql(m.sql);
        this.#ended(
          this.#begin('parse')
            .key('statement')
            .string(m.name)
            .key('sql')
            .string(m.long ? `(${m.msg.body.length} bytes, not recorded)` : m.sql)
            .end(),
        );
        return;
      case 'bind': {
        this.#portals.set(m.portal, m.statement);
        const line = this.#begin('bind').key('portal').string(m.portal).key('statement').string(m.statement).key('params');
        if (m.msg) writeBindParams(line, m.msg.body);
        else line.string('not recorded (streamed)');
        this.#ended(line.end());
        return;
      }
      case 'execute': {
        this.#started = this.#now();
        this.#notes?.statement();
        // The statement's SQL is in its `parse` event; readers resolve it (see TranscriptRenderer).
        const statement = this.#portals.get(m.portal);
        const line = this.#begin('execute').key('portal').string(m.portal);
        if (statement !== undefined) line.key('statement').string(statement);
        if (m.maxRows) line.key('maxRows').number(m.maxRows);
        this.#ended(line.end());
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
    this.#notes?.refused();
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
      this.#message(type, bytes, at + 5, at + 1 + length);
      at += 1 + length;
    }
    return this.#waiting;
  }

  /** The message of `type` whose body is `bytes` from `start` to `end`. */
  #message(type: number, bytes: Buffer, start: number, end: number): void {
    if (type === READY) {
      // Only a change of transaction status is news (idle -> in a block -> failed); most are idle again.
      const status = String.fromCharCode(bytes[start] ?? 0x49);
      if (status !== this.#status) this.#emit({ t: 'ready', status });
      this.#status = status;
      return;
    }
    if (type === COMMAND_COMPLETE || type === EMPTY_QUERY || type === PORTAL_SUSPENDED) {
      this.#complete(type, bytes, start, end);
      return;
    }
    const body = bytes.subarray(start, end);
    switch (type) {
      case ROW_DESCRIPTION: {
        if (this.#held) this.#release();
        this.#describe(body);
        const masked = this.#maskedColumns?.();
        if (masked && this.#notes) {
          const fields = parseRowDescription(body);
          masked.forEach((m, i) => m && this.#notes!.masked(m.origin ?? fields[i]?.name ?? '?', m.strategy));
        }
        this.#held = { desc: body, masked, rows: [], bytes: 0 };
        return;
      }
      case DATA_ROW: {
        this.#firstRow ??= this.#now();
        this.#sent++;
        if (!this.#rows || this.#recorded >= this.#cap) return;
        this.#recorded++;
        checkDataRow(body);
        const held = this.#held;
        if (held && held.rows.length < SMALL_ROWS && held.bytes + body.length <= SMALL_BYTES) {
          held.rows.push(body);
          held.bytes += body.length;
          return;
        }
        const line = this.#begin('row').key('values');
        writeValues(line, body, this.#binary);
        this.#ended(line.end());
        return;
      }
      case COPY_DATA:
        this.#sent++;
        if (this.#rows && this.#recorded < this.#cap) {
          this.#recorded++;
          this.#ended(this.#begin('copy-data').key('data').text(body, 0, body.length).end());
        }
        return;
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
        this.#emit({ t: 'notification', channel, payload: cutValue(payload) });
        return;
      }
      case COPY_OUT:
      case COPY_IN:
      case COPY_BOTH:
        this.#emit({ t: 'copy', direction: type === COPY_OUT ? 'out' : type === COPY_IN ? 'in' : 'both' });
        return;
      default:
        return;
    }
  }

  /** Checks a RowDescription and notes which of its columns are binary. */
  #describe(desc: Buffer): void {
    need(desc, 0, 2);
    const n = desc.readInt16BE(0);
    this.#binary.length = 0;
    let at = 2;
    for (let i = 0; i < n; i++) {
      const end = desc.indexOf(0, at);
      if (end < 0) throw new PgProtocolError('unterminated string in a message');
      need(desc, end + 1, 18);
      this.#binary.push(desc.readInt16BE(end + 17) === 1);
      at = end + 19;
    }
    if (at !== desc.length) throw new PgProtocolError('RowDescription has trailing bytes');
  }

  /** A result's outcome: with its columns and rows when it was small enough to hold (`result`), else `complete`. */
  #complete(type: number, bytes: Buffer, start: number, end: number): void {
    const held = this.#held;
    this.#held = undefined;
    const line = this.#sink.begin(held ? 'result' : 'complete', this.#now());
    if (held) {
      writeColumns(line, held).key('values').array();
      for (const row of held.rows) writeValues(line, row, this.#binary);
      line.close();
    }
    line.key('tag');
    if (type === COMMAND_COMPLETE) line.text(bytes, start, Math.max(start, Math.min(end, bytes.indexOf(0, start))));
    else line.string(type === EMPTY_QUERY ? '(empty query)' : '(portal suspended)');
    line.key('rows').number(this.#sent);
    if (this.#sent > this.#recorded) line.key('unrecorded').number(this.#sent - this.#recorded);
    if (this.#started !== undefined) {
      line.key('ms').number(this.#now() - this.#started);
      if (this.#firstRow !== undefined) line.key('firstRowMs').number(this.#firstRow - this.#started);
    }
    this.#ended(line.end());
    this.#endResult();
  }

  end(): void {
    if (this.#held) this.#release();
  }

  /** Writes the result held so far as `columns` and `row`s: it is no longer small, or something else comes first. */
  #release(): void {
    const held = this.#held!;
    this.#held = undefined;
    this.#ended(writeColumns(this.#sink.begin('columns', this.#now()), held).end());
    for (const row of held.rows) {
      const line = this.#sink.begin('row', this.#now()).key('values');
      writeValues(line, row, this.#binary);
      this.#ended(line.end());
    }
  }

  #endResult(): void {
    this.#sent = 0;
    this.#recorded = 0;
    this.#started = undefined;
    this.#firstRow = undefined;
  }
}
