/**
 * The recording of a PostgreSQL session, in two halves (docs/recording-format.md):
 *
 * - {@link PostgresRecordingStage}, a stage on the relay's one read of each direction, copies the
 *   messages a recording needs, whole and as they came, to the session's
 *   {@link RecordingStream} (src/recording/thread.ts): what the client sent that the statement gate
 *   judges, the gate's refusals, and what the client received (after masking) up to `rowCap`
 *   rows per result (rows beyond it pass unread and are only counted). It also tells the
 *   session's index what it needs ({@link RecordingNotes}).
 * - {@link PostgresRawTap}, for a relay that reads no message (a `hoop connect` without checks of
 *   its own): the bytes of the messages a record keeps, either direction, copied as they pass. The
 *   recording thread frames and decodes them and runs the same stage there
 *   ({@link ThreadFraming}), so the record is the same and the relay frames none of them.
 * - {@link PostgresRecorder}, on the recording thread, turns those records into events:
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
import { cutValue, type EventLine, type EventSink } from '../recording/event-line.js';
import type { RecordingStream } from '../recording/thread.js';
import type { RecordingNotes } from '../tunnel/engine.js';
import { ByteRun } from '../tunnel/byte-run.js';
import { BIND_HELD_MAX, BindDecoder, bindParameterSpans, decodeFrontend, type FrontendMessage } from './frontend-messages.js';
import { PgProtocolError } from './protocol-error.js';
import { checkHeader, type Framing, MessageReader, parseErrorFields } from './reader.js';
import { cstr, need, parseRowDescription } from './rows.js';
import { readCount16, readInt16, readValueLength } from './wire/fields.js';
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
const QUERY = 0x51; // 'Q'
const PARSE = 0x50; // 'P'
const BIND = 0x42; // 'B'
const EXECUTE = 0x45; // 'E' (from the client)
const FUNCTION_CALL = 0x46; // 'F'

/**
 * Per server message type (one lookup on the data path): {@link READS} for the messages the
 * recording reads (others pass unread: ParseComplete, BindComplete, NoData, ParameterStatus, ...),
 * with {@link ENDS} for those that end a result.
 */
const SERVER_KIND = new Uint8Array(256);
const READS = 1;
const ENDS = 2;
for (const t of [ROW_DESCRIPTION, NOTICE, READY, NOTIFICATION, COPY_OUT, COPY_IN, COPY_BOTH]) SERVER_KIND[t] = READS;
for (const t of [COMMAND_COMPLETE, EMPTY_QUERY, PORTAL_SUSPENDED, ERROR]) SERVER_KIND[t] = READS | ENDS;

/**
 * The records the stage hands the recording thread (src/recording/thread.ts); each has the time
 * it was seen. A client message: the message as it came (`CLIENT`), or for a Query or Parse too
 * long to keep, its type, length and statement name (`CLIENT_LONG`), or for a Bind streamed
 * through, its portal and statement (`BIND_STREAMED`). (A refusal is a whole `decision` event.) Server
 * messages as the client received them (`SERVER`); how masking treated the columns of the next
 * RowDescription, as JSON (`MASKED`); rows that passed unread (`PASSED`: their count; the time of
 * the first).
 */
const CLIENT = 16;
const CLIENT_LONG = 17;
const BIND_STREAMED = 18;
const SERVER = 20;
const MASKED = 21;
const PASSED = 22;
const PASSED_COUNT = Buffer.alloc(4);
/** A {@link PostgresRawTap}'s records: the bytes of the client's (the server's) messages a record keeps, as they came (whole or in pieces). */
const RAW_CLIENT = 25;
const RAW_SERVER = 26;

/** A result of at most this many rows and {@link SMALL_BYTES} of values is written as one `result` event. */
/** Most rows (and COPY data messages) per result a CLI's own record keeps (fewer when the gateway says so): enough to show what came back, not a second copy of the data. */
export const CLIENT_RECORD_ROW_CAP = 100;

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
  /** Server messages of one type that passed unread, `count` of them in a row. */
  passed(type: number, count: number): void;
  /** Bytes handed to the client: whole server messages. A Promise while the recording is behind. */
  server(bytes: Buffer): Promise<void> | undefined;
  /** The session is over. */
  end(): void;
}

/** What a stage writes its records to: a session's recording, or the encoder itself on the recording thread. */
type RecordSink = Pick<RecordingStream, 'record' | 'event' | 'behind'>;

export interface PostgresRecordingStageOptions {
  stream: RecordSink;
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

/** The stage on the data path: see the module documentation. */
export class PostgresRecordingStage implements RecorderStage {
  readonly #stream: RecordSink;
  readonly #now: () => number;
  readonly #maskedColumns: PostgresRecordingStageOptions['maskedColumns'];
  readonly #notes: RecordingNotes | undefined;
  readonly #kept: KeptServerMessages;
  /** Rows passed unread since the last record. */
  readonly #passed: PassedRows;
  /** The transaction status of the last ReadyForQuery (`I` before the first). */
  #status = 0x49;

  constructor(o: PostgresRecordingStageOptions) {
    this.#stream = o.stream;
    this.#kept = new KeptServerMessages(o.results === 'none' ? 0 : o.rowCap);
    this.#now = o.now ?? Date.now;
    this.#maskedColumns = o.maskedColumns;
    this.#notes = o.notes;
    this.#passed = new PassedRows(o.stream);
  }

  /** Copies a record, after the count of rows passed before it. */
  #record(kind: number, at: number, bytes: Buffer, start: number, end: number): void {
    this.#passed.flush();
    this.#stream.record(kind, at, bytes, start, end);
  }

  client(m: FrontendMessage): void {
    const at = this.#now();
    switch (m.kind) {
      case 'query':
      case 'parse':
        if (m.kind === 'query') this.#notes?.statement();
        if (m.long) {
          const name = m.kind === 'parse' ? m.name : '';
          const long = Buffer.alloc(5 + Buffer.byteLength(name) + 1);
          long[0] = m.msg.type;
          long.writeUInt32LE(m.msg.body.length, 1);
          long.write(name, 5);
          this.#record(CLIENT_LONG, at, long, 0, long.length);
        } else {
          this.#notes?.sql(m.sql);
          this.#record(CLIENT, at, m.msg.raw, 0, m.msg.raw.length);
        }
        return;
      case 'bind': {
        if (m.msg) {
          this.#record(CLIENT, at, m.msg.raw, 0, m.msg.raw.length);
          return;
        }
        const names = Buffer.from(`${m.portal}\0${m.statement}\0`);
        this.#record(BIND_STREAMED, at, names, 0, names.length);
        return;
      }
      case 'execute':
        this.#notes?.statement();
        this.#record(CLIENT, at, m.msg.raw, 0, m.msg.raw.length);
        return;
      case 'function-call':
        // Only that it was called: its arguments may be large.
        this.#record(CLIENT, at, m.msg.raw, 0, 5);
        return;
      default:
        return;
    }
  }

  refused(r: Refusal): void {
    this.#notes?.refused();
    // A whole event, after what the thread holds (as the session's own events are).
    this.#passed.flush();
    this.#stream.event({ t: 'decision', at: this.#now(), action: r.action, rule: r.rule, reason: r.reason, message: r.message });
  }

  wants(type: number): boolean {
    return this.#kept.wants(type);
  }

  passed(type: number, count: number): void {
    if (type === DATA_ROW) this.#passed.add(this.#now(), count);
  }

  server(bytes: Buffer): Promise<void> | undefined {
    const at = this.#now();
    let i = 0;
    while (i + 5 <= bytes.length) {
      const type = bytes[i]!;
      const end = i + 1 + bytes.readUInt32BE(i + 1);
      if (this.#copies(type, bytes, i, end)) this.#record(SERVER, at, bytes, i, end);
      else if (type === DATA_ROW) this.#passed.add(at);
      i = end;
    }
    return this.#stream.behind;
  }

  /** Whether the server message of `type` at `start` goes to the recording (and what it changes). */
  #copies(type: number, bytes: Buffer, start: number, end: number): boolean {
    if (!this.#kept.keeps(type)) return false;
    if (type === ROW_DESCRIPTION) {
      const masked = this.#maskedColumns?.();
      if (masked) {
        const fields = parseRowDescription(bytes.subarray(start + 5, end));
        if (this.#notes) masked.forEach((m, i) => m && this.#notes!.masked(m.origin ?? fields[i]?.name ?? '?', m.strategy));
        const json = Buffer.from(JSON.stringify(masked));
        this.#record(MASKED, 0, json, 0, json.length);
      }
    } else if (type === READY) {
      // Only a change of transaction status is news (idle -> in a block -> failed); most are idle again.
      const status = bytes[start + 5] ?? 0x49;
      const changed = status !== this.#status;
      this.#status = status;
      return changed;
    }
    return true;
  }

  end(): void {
    this.#passed.flush();
  }
}

/**
 * The record of a relay that reads none of the messages (a `hoop connect` without checks of its
 * own): it walks the message headers of each chunk of either direction as it passes and copies
 * the bytes of the messages a record keeps, as they come, for {@link ThreadFraming} to read on the
 * recording thread, so that the relay frames nothing. From the client: Query, Parse, Bind,
 * Execute and FunctionCall (not CopyData, Sync, Describe, ...). From the server: what a
 * {@link PostgresRecordingStage} reads, with rows (and COPY data) up to `rowCap` per result; the
 * rows beyond it are counted, as the stage counts them. The record is the one that stage would
 * make of both directions.
 */
export class PostgresRawTap {
  readonly #stream: RecordingStream;
  readonly #now: () => number;
  readonly #client: KeptBytes;
  readonly #server: KeptBytes;
  readonly #kept: KeptServerMessages;
  readonly #passed: PassedRows;
  /** The time of the chunk being walked. */
  #at = 0;

  /** `rowCap`: rows (and COPY data messages) recorded per result; 0 for none. */
  constructor(o: { stream: RecordingStream; rowCap: number; now?: () => number }) {
    this.#stream = o.stream;
    this.#now = o.now ?? Date.now;
    this.#kept = new KeptServerMessages(o.rowCap);
    this.#passed = new PassedRows(o.stream);
    this.#client = new KeptBytes(o.stream, RAW_CLIENT, (type) => CLIENT_KEPT[type] === 1);
    this.#server = new KeptBytes(o.stream, RAW_SERVER, (type, length) => this.#keepsServer(type, length));
  }

  /**
   * Bytes the client sent. A Promise while the recording is behind. (A length the relay's reader
   * refuses ends the session there: what follows is not read.)
   */
  client(chunk: Buffer): Promise<void> | undefined {
    this.#client.walk(chunk, this.#now());
    return this.#stream.behind;
  }

  /**
   * Bytes the server sent, handed on to the client as they came. A Promise while the recording is
   * behind. @throws PgProtocolError on a header a {@link MessageReader} would refuse (the relay
   * reads nothing else of them, so the session ends there)
   */
  server(chunk: Buffer): Promise<void> | undefined {
    this.#at = this.#now();
    this.#server.walk(chunk, this.#at);
    return this.#stream.behind;
  }

  /** The session is over. */
  end(): void {
    this.#passed.flush();
  }

  /** The stage's choice (see {@link PostgresRecordingStage.server}), made from the header; the thread's stage makes the rest of it. */
  #keepsServer(type: number, length: number): boolean {
    checkHeader('backend', type, length);
    if (this.#kept.keeps(type)) {
      this.#passed.flush();
      return true;
    }
    if (type === DATA_ROW) this.#passed.add(this.#at);
    return false;
  }
}

/**
 * Which server messages a record keeps: those a recording reads, and of a result's rows (and COPY
 * data messages) the first `cap`. Told each message in order, as it counts the rows of each result.
 */
class KeptServerMessages {
  readonly #cap: number;
  /** Rows (and COPY data) of the current result kept. */
  #recorded = 0;

  constructor(cap: number) {
    this.#cap = cap;
  }

  /** Whether a message of `type` would be kept now (asked before it is read). */
  wants(type: number): boolean {
    if (type === DATA_ROW || type === COPY_DATA) return this.#recorded < this.#cap;
    return (SERVER_KIND[type]! & READS) !== 0;
  }

  /** Whether the message of `type` that comes now is kept (a row kept counts against the cap; the end of a result starts the count again). */
  keeps(type: number): boolean {
    if (type === DATA_ROW || type === COPY_DATA) {
      if (this.#recorded >= this.#cap) return false;
      this.#recorded++;
      return true;
    }
    const kind = SERVER_KIND[type]!;
    if (kind & ENDS) this.#recorded = 0;
    return (kind & READS) !== 0;
  }
}

/**
 * Walks the message headers of one direction's bytes as they pass and copies the bytes of the
 * messages `keeps` picks (told each message's type and length field) as records of `kind`: a run
 * of kept messages within a chunk is one record.
 */
class KeptBytes {
  readonly #stream: Pick<RecordingStream, 'record'>;
  readonly #kind: number;
  readonly #keeps: (type: number, length: number) => boolean;
  /** Bytes of the current message still to come after its header, and whether they are copied. */
  #left = 0;
  #copying = false;
  /** A header cut between two chunks: its bytes so far. */
  readonly #head = Buffer.alloc(5);
  #headBytes = 0;

  constructor(stream: Pick<RecordingStream, 'record'>, kind: number, keeps: (type: number, length: number) => boolean) {
    this.#stream = stream;
    this.#kind = kind;
    this.#keeps = keeps;
  }

  walk(chunk: Buffer, at: number): void {
    /** Where the kept bytes gathered in this chunk start (-1: none). */
    let from = -1;
    let i = 0;
    while (i < chunk.length) {
      if (this.#left > 0) {
        const n = Math.min(this.#left, chunk.length - i);
        if (this.#copying && from < 0) from = i;
        i += n;
        this.#left -= n;
      } else if (this.#headBytes === 0 && i + 5 <= chunk.length) {
        this.#begin(chunk[i]!, chunk.readInt32BE(i + 1));
        if (!this.#copying) from = this.#keep(chunk, at, from, i);
        else if (from < 0) from = i;
        i += 5;
      } else {
        // A header cut between two chunks: gathered, and copied on its own.
        from = this.#keep(chunk, at, from, i);
        const n = Math.min(5 - this.#headBytes, chunk.length - i);
        chunk.copy(this.#head, this.#headBytes, i, i + n);
        this.#headBytes += n;
        i += n;
        if (this.#headBytes < 5) break;
        this.#headBytes = 0;
        this.#begin(this.#head[0]!, this.#head.readInt32BE(1));
        if (this.#copying) this.#stream.record(this.#kind, at, this.#head, 0, 5);
      }
    }
    this.#keep(chunk, at, from, i);
  }

  /** Copies the kept bytes gathered from `from` up to `end`; returns -1 (none gathered). */
  #keep(chunk: Buffer, at: number, from: number, end: number): number {
    if (from >= 0 && end > from) this.#stream.record(this.#kind, at, chunk, from, end);
    return -1;
  }

  #begin(type: number, length: number): void {
    this.#copying = this.#keeps(type, length);
    this.#left = Math.max(0, length - 4);
  }
}

/** DataRows passed unread since the last record, and when the first came: one `PASSED` record before the next. */
class PassedRows {
  readonly #stream: Pick<RecordingStream, 'record'>;
  #count = 0;
  #at = 0;

  constructor(stream: Pick<RecordingStream, 'record'>) {
    this.#stream = stream;
  }

  add(at: number, count = 1): void {
    if (this.#count === 0) this.#at = at;
    this.#count += count;
  }

  flush(): void {
    if (this.#count === 0) return;
    PASSED_COUNT.writeUInt32LE(this.#count); // copied by record() at once: one buffer serves every writer
    this.#count = 0;
    this.#stream.record(PASSED, this.#at, PASSED_COUNT, 0, 4);
  }
}

/** The client messages a record keeps. */
const CLIENT_KEPT = new Uint8Array(256);
for (const t of [QUERY, PARSE, BIND, EXECUTE, FUNCTION_CALL]) CLIENT_KEPT[t] = 1;

/**
 * On the recording thread: a {@link PostgresRawTap}'s bytes framed as the relay would frame them
 * (a client's Bind over {@link BIND_HELD_MAX} read as it streams, for its names alone) and fed to a
 * {@link PostgresRecordingStage} whose records go straight to the encoder. Client bytes that do not
 * frame were refused by the gateway's reader, which ended the session there; the server's were
 * checked by the tap's walk (see {@link checkHeader}). Nothing after bytes that do not frame is read.
 */
class ThreadFraming {
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
      this.stage.server(bytes);
      return;
    }
    this.#serverReader.push(bytes);
    try {
      for (let m = this.#serverReader.next(); m; m = this.#serverReader.next()) this.stage.server(m.raw);
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
          this.stage.client(decodeFrontend(f));
          continue;
        }
        if (f.first) this.#bind = new BindDecoder();
        const bind = this.#bind!;
        // Only its names are recorded: read until they are in.
        if (!bind.head) {
          bind.push(f.first ? f.bytes.subarray(5) : f.bytes);
          if (bind.head) this.stage.client(bind.head);
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

/** A held result's `names` and, when masking changed some, how (`masked`). */
function writeColumns(line: EventLine, held: HeldResult): EventLine {
  writeNames(line.key('names'), held.desc);
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
 * The encoder on the recording thread: see the module documentation.
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
  #framing: ThreadFraming | undefined;

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

  #threadFraming(): ThreadFraming {
    if (!this.#framing) {
      const sink: RecordSink = { record: (k, t, b, s, e) => this.record(k, t, b, s, e), event: (event) => this.#emit(event), behind: undefined };
      this.#framing = new ThreadFraming(sink);
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
        this.#emit({ t: 'ready', status: String.fromCharCode(body[0] ?? 0x49) });
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
