/**
 * The recording of a PostgreSQL session, its second half (the first is ./stage.ts, on the data path,
 * docs/recording-format.md):
 *
 * - {@link PostgresRecorder}, run by whoever reads the recording (src/recording/read.ts), turns those records into events:
 *
 * - from the client: `query` (simple protocol), `parse` (a prepared statement's SQL), `bind` (the
 *   portal, its statement and the parameters, text as text and binary as base64, each cut at
 *   4 KiB), `execute` (the portal and its statement, whose SQL is in its `parse`; with the
 *   `params` of its Bind when that came right before it, as drivers send them: one event, not
 *   two); and the gate's `decision` when it refused one (action, rule, reason);
 * - from the server: `columns` (RowDescription, with how masking treated each column: its
 *   strategy and origin `schema.table.column`), `row`s (values as text, NULL as null; binary as
 *   base64), `complete` (the command tag, the rows sent and how many went unrecorded beyond the
 *   cap, timing from the statement to its first row and to its end), `error` and `notice`
 *   (SQLSTATE, message, detail, hint), `notification`, `copy` (COPY out/in begins) and `ready` when
 *   the transaction status changes (`I` idle, `T` in a block, `E` in a failed block).
 *
 * A small result (at most {@link SMALL_ROWS} rows, {@link SMALL_BYTES} of values, nothing else in
 * between) is written as one `result` event when it completes, holding its columns, rows and
 * outcome: the common one-row statement costs one event instead of three. A larger one streams as
 * `columns`, `row`s and `complete`; readers see both the same way (src/recording/read.ts).
 *
 * With `results: none` no row or COPY data is recorded, only statements, shapes and outcomes.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
import { cutValue, type EventLine, type EventSink } from '../../../recording/event-line.js';
import type { RecordEncoder } from '../../../recording/thread.js';
import { ByteRun } from '../../../byte-run.js';
import { BIND_HELD_MAX, BindDecoder, bindParameterSpans, decodeFrontend } from '../../wire/frontend-messages.js';
import { PgProtocolError } from '../../wire/protocol-error.js';
import { checkHeader, type Framing, MessageReader, parseErrorFields } from '../../wire/reader.js';
import { cstr, need } from '../../wire/rows.js';
import { readCount16, readInt16, readValueLength } from '../../wire/fields.js';
import { Backend, Frontend, TransactionStatus } from '../../wire/codes.js';
import { BIND_STREAMED, CLIENT, CLIENT_LONG, MASKED, PASSED, RAW_CLIENT, RAW_SERVER, SERVER, SMALL_BYTES, SMALL_ROWS } from './records.js';
import { PostgresRecordingStage, type RecordSink } from './stage.js';

const { ROW_DESCRIPTION, DATA_ROW, COMMAND_COMPLETE, ERROR, NOTICE, READY_FOR_QUERY: READY, EMPTY_QUERY, PORTAL_SUSPENDED, NOTIFICATION, COPY_OUT, COPY_IN, COPY_BOTH, COPY_DATA } = Backend;
const { QUERY, PARSE, BIND, EXECUTE, FUNCTION_CALL } = Frontend;

/**
 * For a reader: a {@link PostgresRawTap}'s bytes framed as the relay would frame them
 * (a client's Bind over {@link BIND_HELD_MAX} read as it streams, for its names alone) and fed to a
 * {@link PostgresRecordingStage} whose records go straight to the encoder. Client bytes that do not
 * frame were refused by the gateway's reader, which ended the session there; the server's were
 * checked by the tap's walk (see {@link checkHeader}). Nothing after bytes that do not frame is read.
 */
class RawFraming {
  /** Records every row it is given: the tap copied only those within the cap. */
  readonly stage: PostgresRecordingStage;
  readonly #reader = new MessageReader({ side: 'frontend' });
  readonly #serverReader = new MessageReader({ side: 'backend' });
  /** Never used: the tap copies only messages that are read whole (or streamed). */
  readonly #passed = new ByteRun();
  #at = 0;
  #bind: BindDecoder | undefined;
  #broken = false;

  constructor(sink: RecordSink) {
    this.stage = new PostgresRecordingStage({ stream: sink, rowCap: Infinity, results: 'masked', now: () => this.#at });
  }

  server(at: number, bytes: Buffer): void {
    if (this.#broken) return;
    this.#at = at;
    // Mostly whole messages, as one record: read where they are.
    if (this.#serverReader.atBoundary && wholeMessages(bytes)) {
      this.stage.backend(bytes);
      return;
    }
    this.#serverReader.push(bytes);
    try {
      for (let m = this.#serverReader.next(); m; m = this.#serverReader.next()) this.stage.backend(m.raw);
    } catch (err) {
      if (!(err instanceof PgProtocolError)) throw err;
      this.#broken = true;
    }
  }

  client(at: number, bytes: Buffer): void {
    if (this.#broken) return;
    this.#at = at;
    this.#reader.push(bytes);
    try {
      for (let f = this.#reader.frame(framing, this.#passed); f; f = this.#reader.frame(framing, this.#passed)) {
        if (!('part' in f)) {
          this.stage.frontend(decodeFrontend(f));
          continue;
        }
        if (f.first) this.#bind = new BindDecoder();
        const bind = this.#bind!;
        // Only its names are recorded: read until they are in.
        if (!bind.head) {
          bind.push(f.first ? f.bytes.subarray(5) : f.bytes);
          if (bind.head) this.stage.frontend(bind.head);
        }
        if (f.last) this.#bind = undefined;
      }
    } catch (err) {
      if (!(err instanceof PgProtocolError)) throw err;
      this.#broken = true;
    }
  }
}

/** Whether `bytes` are whole messages, one after another (their headers checked before). */
function wholeMessages(bytes: Buffer): boolean {
  let i = 0;
  while (i + 5 <= bytes.length) {
    const length = bytes.readInt32BE(i + 1);
    if (length < 4) return false;
    i += 1 + length;
  }
  return i === bytes.length;
}

/** How the relay frames the client messages a record keeps. */
const framing = (type: number, length: number): Framing => (type === BIND && length > BIND_HELD_MAX ? 'stream' : 'whole');

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
  for (let i = readCount16(body, 0); i > 0; i--) {
    need(body, at, 4);
    at += 4 + Math.max(0, readValueLength(body, at, 'DataRow'));
  }
  if (at !== body.length) throw new PgProtocolError('DataRow does not match its length');
}

/** A DataRow's values as an array: text as text, binary as base64, NULL as null. */
function writeValues(line: EventLine, body: Buffer, binary: readonly boolean[]): void {
  line.array();
  let at = 2;
  for (let i = 0, n = readCount16(body, 0); i < n; i++) {
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
  for (let i = 0, n = readCount16(desc, 0); i < n; i++) {
    const end = desc.indexOf(0, at);
    line.text(desc, at, end);
    at = end + 19;
  }
  line.close();
}

/** A RowDescription's type OIDs (docs: `types`), which a transcript aligns numbers by, as psql does. */
function writeTypes(line: EventLine, desc: Buffer): void {
  line.array();
  let at = 2;
  for (let i = 0, n = readCount16(desc, 0); i < n; i++) {
    const end = desc.indexOf(0, at);
    line.number(desc.readUInt32BE(end + 7));
    at = end + 19;
  }
  line.close();
}

/** A held result's `names` and `types` and, when masking changed some, how (`masked`). */
function writeColumns(line: EventLine, held: HeldResult): EventLine {
  writeNames(line.key('names'), held.desc);
  writeTypes(line.key('types'), held.desc);
  if (held.masked) line.key('masked').json(held.masked);
  return line;
}

/** Bind parameters (docs: `params`): text as text, binary as base64, NULL as null; a Bind the server will refuse is noted as unreadable. */
function writeBindParams(line: EventLine, body: Buffer): void {
  // Checked first: a line is written in one go.
  const spans = bindParameterSpans(body);
  if (!spans) {
    line.string('unreadable');
    return;
  }
  line.array();
  for (const p of spans) {
    if (!p) line.null();
    else if (p.format === 1) line.binary(body, p.start, p.end);
    else line.text(body, p.start, p.end);
  }
  line.close();
}

/**
 * The decoder of a recording's records: see the module documentation.
 */
export class PostgresRecorder {
  readonly #sink: EventSink;
  /** Portal -> its statement's name. */
  get #portals(): Map<string, string> {
    return (this.#portalsMade ??= new Map());
  }
  #portalsMade: Map<string, string> | undefined;
  /** The time of the record being read. */
  #at = 0;
  /** The result being received: rows sent and recorded, whether each column is binary. */
  #sent = 0;
  #recorded = 0;
  readonly #binary: boolean[] = [];
  #started: number | undefined;
  #firstRow: number | undefined;
  /** How masking treats the columns of the next RowDescription. */
  #masked: HeldResult['masked'];
  /** The result being received while it is small: its RowDescription and DataRows as they came, written with its outcome. */
  #held: HeldResult | undefined;
  /** A Bind not written yet: with its Execute if that comes next (one `execute` event with `params`), else on its own. */
  #bind: { body: Buffer; at: number; portal: string; statement: string } | undefined;

  /** The stage run here for a {@link PostgresRawTap}'s records, made at the first. */
  #framing: RawFraming | undefined;

  constructor(sink: EventSink) {
    this.#sink = sink;
  }

  /** Reads one record of the stage (see {@link PostgresRecordingStage}) or of a {@link PostgresRawTap}. */
  record(kind: number, at: number, bytes: Buffer, start: number, end: number): void {
    this.#at = at;
    switch (kind) {
      case RAW_CLIENT:
        this.#threadFraming().client(at, bytes.subarray(start, end));
        return;
      case RAW_SERVER:
        this.#threadFraming().server(at, bytes.subarray(start, end));
        return;
      case CLIENT:
        this.#client(bytes[start]!, bytes.subarray(start + 5, end));
        return;
      case CLIENT_LONG: {
        const what = `(${bytes.readUInt32LE(start + 1)} bytes, not recorded)`;
        if (bytes[start] === QUERY) {
          this.#started = this.#at;
          this.#begin('query').key('sql').string(what).end();
        } else
          this.#begin('parse')
            .key('statement')
            .text(bytes, start + 5, end - 1)
            .key('sql')
            .string(what)
            .end();
        return;
      }
      case BIND_STREAMED: {
        const [portal, next] = cstr(bytes, start);
        const [statement] = cstr(bytes, next);
        this.#portals.set(portal, statement);
        this.#begin('bind').key('portal').string(portal).key('statement').string(statement).key('params').string('not recorded (streamed)').end();
        return;
      }
      case SERVER:
        this.#message(bytes[start]!, bytes, start + 5, end);
        return;
      case MASKED:
        this.#masked = JSON.parse(bytes.toString('utf8', start, end)) as HeldResult['masked'];
        return;
      case PASSED:
        this.#firstRow ??= at;
        this.#sent += bytes.readUInt32LE(start);
        return;
      default:
        return;
    }
  }

  #threadFraming(): RawFraming {
    if (!this.#framing) {
      const sink: RecordSink = { record: (k, t, b, s, e) => this.record(k, t, b, s, e), event: (event) => this.#emit(event), behind: undefined };
      this.#framing = new RawFraming(sink);
    }
    return this.#framing;
  }

  /** Writes what it holds (before an event that is not the stage's: the session's end). */
  flush(): void {
    this.#framing?.stage.end();
    this.#writeHeld();
  }

  /** Starts an event, after what is held so far. */
  #begin(t: string): EventLine {
    this.#writeHeld();
    return this.#sink.begin(t, this.#at);
  }

  /** Writes a whole event (a rare one), after what is held so far. */
  #emit(event: Record<string, unknown> & { t: string }): void {
    this.#writeHeld();
    this.#sink.append({ ...event, at: this.#at });
  }

  /** Writes the result or the Bind held so far (never both: each is written before the other is held). */
  #writeHeld(): void {
    if (this.#held) this.#release();
    const bind = this.#bind;
    if (!bind) return;
    this.#bind = undefined;
    const line = this.#sink.begin('bind', bind.at).key('portal').string(bind.portal).key('statement').string(bind.statement).key('params');
    writeBindParams(line, bind.body);
    line.end();
  }

  /** A client message: a Query, Parse, Bind, Execute or FunctionCall (checked by the relay's reader). */
  #client(type: number, body: Buffer): void {
    switch (type) {
      case QUERY:
        this.#started = this.#at;
        this.#begin('query')
          .key('sql')
          .utf8(body, 0, Math.max(0, body.indexOf(0)))
          .end();
        return;
      case PARSE: {
        const name = body.indexOf(0);
        this.#begin('parse')
          .key('statement')
          .utf8(body, 0, name)
          .key('sql')
          .utf8(body, name + 1, Math.max(name + 1, body.indexOf(0, name + 1)))
          .end();
        return;
      }
      case BIND: {
        const [portal, at] = cstr(body, 0);
        const [statement] = cstr(body, at);
        this.#portals.set(portal, statement);
        this.#writeHeld();
        this.#bind = { body, at: this.#at, portal, statement };
        return;
      }
      case EXECUTE: {
        const [portal, at] = cstr(body, 0);
        // A Bind and the Execute of its portal right after it (as drivers send them) are one event.
        const bind = this.#bind?.portal === portal ? this.#bind : undefined;
        if (bind) this.#bind = undefined;
        this.#started = this.#at;
        // The statement's SQL is in its `parse` event; readers resolve it (see TranscriptRenderer).
        const statement = this.#portals.get(portal);
        const line = this.#begin('execute').key('portal').string(portal);
        if (statement !== undefined) line.key('statement').string(statement);
        const maxRows = at + 4 <= body.length ? body.readInt32BE(at) : 0;
        if (maxRows) line.key('maxRows').number(maxRows);
        if (bind) writeBindParams(line.key('params'), bind.body);
        line.end();
        return;
      }
      case FUNCTION_CALL:
        this.#emit({ t: 'function-call' });
        return;
      default:
        return;
    }
  }

  /** The server message of `type` whose body is `bytes` from `start` to `end`. */
  #message(type: number, bytes: Buffer, start: number, end: number): void {
    if (type === COMMAND_COMPLETE || type === EMPTY_QUERY || type === PORTAL_SUSPENDED) {
      this.#complete(type, bytes, start, end);
      return;
    }
    const body = bytes.subarray(start, end);
    switch (type) {
      case ROW_DESCRIPTION: {
        this.#writeHeld();
        this.#describe(body);
        this.#held = { desc: body, masked: this.#masked, rows: [], bytes: 0 };
        this.#masked = undefined;
        return;
      }
      case DATA_ROW: {
        this.#firstRow ??= this.#at;
        this.#sent++;
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
        line.end();
        return;
      }
      case COPY_DATA:
        this.#sent++;
        this.#recorded++;
        this.#begin('copy-data').key('data').text(body, 0, body.length).end();
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
      case READY:
        // The stage sends only changes of transaction status.
        this.#emit({ t: 'ready', status: String.fromCharCode(body[0] ?? TransactionStatus.IDLE) });
        return;
      default:
        return;
    }
  }

  /** Checks a RowDescription and notes which of its columns are binary. */
  #describe(desc: Buffer): void {
    need(desc, 0, 2);
    const n = readCount16(desc, 0);
    this.#binary.length = 0;
    let at = 2;
    for (let i = 0; i < n; i++) {
      const end = desc.indexOf(0, at);
      if (end < 0) throw new PgProtocolError('unterminated string in a message');
      need(desc, end + 1, 18);
      this.#binary.push(readInt16(desc, end + 17) === 1);
      at = end + 19;
    }
    if (at !== desc.length) throw new PgProtocolError('RowDescription has trailing bytes');
  }

  /** A result's outcome: with its columns and rows when it was small enough to hold (`result`), else `complete`. */
  #complete(type: number, bytes: Buffer, start: number, end: number): void {
    const held = this.#held;
    this.#held = undefined;
    this.#writeHeld(); // a Bind without its Execute
    const line = this.#sink.begin(held ? 'result' : 'complete', this.#at);
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
      line.key('ms').number(this.#at - this.#started);
      if (this.#firstRow !== undefined) line.key('firstRowMs').number(this.#firstRow - this.#started);
    }
    line.end();
    this.#endResult();
  }

  /** Writes the result held so far as `columns` and `row`s: it is no longer small, or something else comes first. */
  #release(): void {
    const held = this.#held!;
    this.#held = undefined;
    writeColumns(this.#sink.begin('columns', this.#at), held).end();
    for (const row of held.rows) {
      const line = this.#sink.begin('row', this.#at).key('values');
      writeValues(line, row, this.#binary);
      line.end();
    }
  }

  #endResult(): void {
    this.#sent = 0;
    this.#recorded = 0;
    this.#started = undefined;
    this.#firstRow = undefined;
  }
}

/** The decoder of PostgreSQL sessions' records, for readers (see RecordEncoderModule in src/recording/thread.ts). */
export function createRecordEncoder(sink: EventSink): RecordEncoder {
  return new PostgresRecorder(sink);
}
