/**
 * The recording of a PostgreSQL session, in two halves (docs/recording-format.md):
 *
 * - {@link PostgresRecordingStage}, a stage on the relay's one read of each direction, copies the
 *   messages a recording needs, whole and as they came, to the session's
 *   {@link RecordingStream} (src/recording/thread.ts): what the client sent that the statement gate
 *   judges, the gate's refusals, and what the client received (after masking) up to `rowCap`
 *   rows per result (rows beyond it pass unread and are only counted). It also tells the
 *   session's index what it needs (its `report`: statements run, SQL, columns masked).
 * - {@link PostgresRawTap}, for a relay that reads no message (a `hoop connect` without checks of
 *   its own): the bytes of the messages a record keeps, either direction, copied as they pass. The
 *   reader of the record frames and decodes them and runs the same stage then
 *   (./encoder.ts), so the record is the same and the relay frames none of them.
 *
 * Readers turn the records into events (./encoder.ts).
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
import { realClock } from '../../../clock.js';
import type { RecordingStream } from '../../../recording/thread.js';
import type { SessionReport } from '../../../session/engine.js';
import type { ClientTap } from '../../wire/client.js';
import { BIND_HELD_MAX, type FrontendMessage, LONG_SQL } from '../../wire/frontend-messages.js';
import { checkHeader, MessageReader } from '../../wire/reader.js';
import { frameMessage } from '../../wire/messages.js';
import { Backend, Frontend, TransactionStatus } from '../../wire/codes.js';
import { BIND_STREAMED, CLIENT, CLIENT_LONG, MASKED, PASSED, PASSED_COUNT, RAW_CLIENT, RAW_SERVER, SERVER } from './records.js';
import type { Refusal, Stage } from '../stages.js';
import { type RedactOptions, redactSql, withRedacted } from '../../../policy/sql/redact.js';
import { redactAhead } from '../../../policy/sql/redact-ahead.js';
import { AHEAD_CHARS } from '../../../policy/masking/rules.js';
import { BindSecrets } from './bind-secrets.js';
import { SentSecrets } from '../../../policy/sql/sent-secrets.js';

const { ROW_DESCRIPTION, DATA_ROW, COMMAND_COMPLETE, ERROR, NOTICE, READY_FOR_QUERY: READY, EMPTY_QUERY, PORTAL_SUSPENDED, NOTIFICATION, COPY_OUT, COPY_IN, COPY_BOTH, COPY_DATA } = Backend;
const { QUERY, PARSE, BIND, EXECUTE, FUNCTION_CALL } = Frontend;

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

/** What a stage writes its records to: a session's recording, or the decoder itself as a reader runs it. */
export type RecordSink = Pick<RecordingStream, 'record' | 'event' | 'behind'>;

export interface PostgresRecordingStageOptions {
  stream: RecordSink;
  /** `masked`: rows as the client received them; `none`: no rows. */
  results: 'masked' | 'none';
  /** Rows (and COPY data messages) recorded per result. */
  rowCap: number;
  /** Per column of the RowDescription just handed on: how masking treats it (see ResultMasker.lastMaskedColumns). */
  maskedColumns?: () => Array<{ strategy: string; origin?: string } | null> | undefined;
  /** Told what the session's index keeps: statements run, SQL as recorded, columns masked. */
  report?: Pick<SessionReport, 'ran' | 'sql' | 'masked'>;
  /** How secrets in the client's SQL are written down (src/policy/sql/redact.ts): the key of their hashes, the session's detectors. */
  redact?: RedactOptions;
  /** Whether a long Bind's values are redacted in a worker thread, {@link PostgresRecordingStage.frontend} answering a Promise meanwhile (the gateway's relay waits on it; a record made from bytes afterwards cannot). */
  ahead?: boolean;
  now?: () => number;
}

/** A Query (`name` undefined) or Parse message `raw` holding `sql`, with `text` in its place (its length field set to match). */
function withSql(raw: Buffer, name: string | undefined, sql: string, text: string): Buffer {
  const before = name === undefined ? 0 : Buffer.byteLength(name) + 1;
  const after = raw.subarray(5 + before + Buffer.byteLength(sql));
  const body = Buffer.concat([raw.subarray(5, 5 + before), Buffer.from(text), after]);
  const head = Buffer.alloc(5);
  head[0] = raw[0]!;
  head.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

/**
 * The ErrorResponse or NoticeResponse at `start` of `bytes` as it is recorded once the client sent a secret (see
 * SentSecrets): the fields that may quote a value as markers; undefined when none changed.
 */
function fieldsAsRecorded(bytes: Buffer, start: number, end: number, sent: SentSecrets): Buffer | undefined {
  const parts: Buffer[] = [];
  let changed = false;
  for (let i = start + 5; i < end && bytes[i] !== 0; ) {
    const z = bytes.indexOf(0, i + 1);
    if (z < 0 || z >= end) return undefined;
    const text = bytes.toString('utf8', i + 1, z);
    const shown = sent.field(String.fromCharCode(bytes[i]!), text);
    changed ||= shown !== text;
    parts.push(bytes.subarray(i, i + 1), Buffer.from(shown), Buffer.alloc(1));
    i = z + 1;
  }
  return changed ? frameMessage(bytes[start]!, Buffer.concat([...parts, Buffer.alloc(1)])) : undefined;
}

/** A name per recording stage, for the worker to take each session's long texts in turn with others'. */
let recorders = 0;

/** The stage on the data path: see the module documentation. */
export class PostgresRecordingStage implements Stage {
  readonly #stream: RecordSink;
  readonly #now: () => number;
  readonly #maskedColumns: PostgresRecordingStageOptions['maskedColumns'];
  readonly #report: Pick<SessionReport, 'ran' | 'sql'> | undefined;
  readonly #redact: PostgresRecordingStageOptions['redact'];
  readonly #binds: BindSecrets;
  readonly #kept: KeptServerMessages;
  /** Rows passed unread since the last record. */
  readonly #passed: PassedRows;
  /** The transaction status of the last ReadyForQuery (`I` before the first). */
  #status: number = TransactionStatus.IDLE;
  /** Whether the client sent a secret: what the server says after it is recorded redacted. */
  readonly #sent: SentSecrets;
  /** Whose long texts these are, for the worker's turns. */
  readonly #owner = `pg-record-${++recorders}`;
  readonly #ahead: boolean;

  constructor(o: PostgresRecordingStageOptions) {
    this.#stream = o.stream;
    this.#kept = new KeptServerMessages(o.results === 'none' ? 0 : o.rowCap);
    this.#now = o.now ?? realClock.now;
    this.#maskedColumns = o.maskedColumns;
    this.#report = o.report;
    this.#redact = o.redact;
    this.#ahead = o.ahead === true;
    this.#sent = new SentSecrets(o.redact?.key);
    this.#binds = new BindSecrets(o.redact ?? {}, this.#sent);
    this.#passed = new PassedRows(o.stream);
  }

  /** Copies a record, after the count of rows passed before it. */
  #record(kind: number, at: number, bytes: Buffer, start: number, end: number): void {
    this.#passed.flush();
    this.#stream.record(kind, at, bytes, start, end);
  }

  /** A message the client sent, before any stage judges it. */
  frontend(m: FrontendMessage): undefined | Promise<undefined> {
    const at = this.#now();
    switch (m.kind) {
      case 'query':
      case 'parse':
        if (m.kind === 'query') this.#report?.ran();
        else this.#binds.parsed(m.name, m.long ? undefined : m.sql);
        if (m.kind === 'query' && !m.long) this.#binds.query(m.sql);
        if (m.long) {
          // Not read: it may hold a secret the server repeats.
          this.#sent.taint();
          const name = m.kind === 'parse' ? m.name : '';
          const long = Buffer.alloc(5 + Buffer.byteLength(name) + 1);
          long[0] = m.msg.type;
          long.writeUInt32LE(m.msg.body.length, 1);
          long.write(name, 5);
          this.#record(CLIENT_LONG, at, long, 0, long.length);
        } else {
          // Secrets in it (a password, what the detectors find) are written down as their keyed hashes, never as typed.
          const { text, redacted } = redactSql(m.sql, 'postgres', this.#redact ?? {});
          if (redacted) this.#sent.taint();
          this.#report?.sql(text);
          const raw = redacted ? withSql(m.msg.raw, m.kind === 'parse' ? m.name : undefined, m.sql, text) : m.msg.raw;
          this.#record(CLIENT, at, raw, 0, raw.length);
        }
        return;
      case 'bind': {
        const msg = m.msg;
        if (msg) {
          const record = (): undefined => {
            const raw = this.#binds.bind(msg.raw, m.statement);
            this.#record(CLIENT, at, raw, 0, raw.length);
            return undefined;
          };
          // A long Bind's values are read by the detectors in the worker first: the path takes no more of the client's meanwhile.
          const texts = this.#ahead && msg.raw.length >= AHEAD_CHARS ? this.#binds.texts(msg.raw, m.statement) : [];
          return texts.length === 0 ? record() : redactAhead(texts, this.#redact ?? {}, undefined, this.#owner).then((r) => withRedacted(r, record));
        }
        const names = Buffer.from(`${m.portal}\0${m.statement}\0`);
        this.#sent.taint();
        this.#record(BIND_STREAMED, at, names, 0, names.length);
        return;
      }
      case 'execute':
        this.#report?.ran();
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

  /** The gate refused the client's last message (or one it could not read). */
  refused(r: Refusal): void {
    // A whole event, after what the thread holds (as the session's own events are).
    this.#passed.flush();
    this.#stream.event({ t: 'decision', at: this.#now(), action: r.action, rule: r.rule, reason: r.reason, message: r.message });
  }

  /** Whether a server message of this type must be read whole for the recording (else it passes, counted). */
  wants(type: number): boolean {
    return this.#kept.wants(type);
  }

  /** Server messages of one type that passed unread, `count` of them in a row. */
  unread(type: number, count: number): void {
    if (type === DATA_ROW) this.#passed.add(this.#now(), count);
  }

  /** Bytes handed to the client: whole server messages, handed on as they are. */
  backend(bytes: Buffer): Buffer {
    const at = this.#now();
    let i = 0;
    while (i + 5 <= bytes.length) {
      const type = bytes[i]!;
      const end = i + 1 + bytes.readUInt32BE(i + 1);
      if (type === COPY_IN) this.#sent.taint();
      if (this.#copies(type, bytes, i)) {
        // Only a message recorded is rewritten (rows, the most of them, never are).
        const words = this.#sent.tainted ? serverWords(type, bytes, i, end, this.#sent) : undefined;
        if (words) this.#record(SERVER, at, words, 0, words.length);
        else this.#record(SERVER, at, bytes, i, end);
      } else if (type === DATA_ROW) this.#passed.add(at);
      i = end;
    }
    return bytes;
  }

  /** A Promise while the recording is behind. */
  get behind(): Promise<void> | undefined {
    return this.#stream.behind;
  }

  /** Whether the server message of `type` at `start` goes to the recording (and what it changes). */
  #copies(type: number, bytes: Buffer, start: number): boolean {
    if (!this.#kept.keeps(type)) return false;
    if (type === ROW_DESCRIPTION) {
      const masked = this.#maskedColumns?.();
      // What the replay marks masked (the index hears of it from the masker, as it plans a result: with or without a RowDescription the client gets).
      if (masked) {
        const json = Buffer.from(JSON.stringify(masked));
        this.#record(MASKED, 0, json, 0, json.length);
      }
    } else if (type === READY) {
      // Only a change of transaction status is news (idle -> in a block -> failed); most are idle again.
      const status = bytes[start + 5] ?? TransactionStatus.IDLE;
      const changed = status !== this.#status;
      this.#status = status;
      return changed;
    }
    return true;
  }

  /** The session is over. */
  end(): void {
    this.#passed.flush();
  }
}

/**
 * The server message of `type` at `start` of `bytes` as it is recorded once the client sent a secret: an error's or a
 * notice's fields that may quote a value, a notification's payload, as markers; undefined when it stays as it is.
 */
function serverWords(type: number, bytes: Buffer, start: number, end: number, sent: SentSecrets): Buffer | undefined {
  if (type === ERROR || type === NOTICE) return fieldsAsRecorded(bytes, start, end, sent);
  if (type !== NOTIFICATION) return undefined;
  const channelEnd = bytes.indexOf(0, start + 9);
  if (channelEnd < 0 || channelEnd >= end) return undefined;
  const payload = bytes.toString('utf8', channelEnd + 1, Math.max(channelEnd + 1, end - 1));
  if (payload === '') return undefined;
  return frameMessage(type, Buffer.concat([bytes.subarray(start + 5, channelEnd + 1), Buffer.from(sent.text(payload)), Buffer.alloc(1)]));
}

/**
 * `stage` as what hears hoop's own small client ({@link ClientTap}: `hoop exec`'s record of its
 * session): what the client sent, and each server message, read whole when the stage wants it,
 * else counted as passed.
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
export function recorderTap(stage: PostgresRecordingStage): ClientTap {
  return {
    sent: (m) => stage.frontend(m),
    received: (m) => {
      if (!stage.wants(m.type)) {
        stage.unread(m.type, 1);
        return undefined;
      }
      stage.backend(m.raw);
      return stage.behind;
    },
  };
}

/**
 * The record of a relay that reads none of the messages (a `hoop connect` without checks of its
 * own): it walks the message headers of each chunk of either direction as it passes and copies
 * the bytes of the messages a record keeps, as they come, for {@link RawFraming} to read when
 * the record is read, so that the relay frames nothing. From the client: Query, Parse, Bind,
 * Execute and FunctionCall (not CopyData, Sync, Describe, ...). From the server: what a
 * {@link PostgresRecordingStage} reads, with rows (and COPY data) up to `rowCap` per result; the
 * rows beyond it are counted, as the stage counts them. The record is the one that stage would
 * make of both directions.
 */
export class PostgresRawTap {
  readonly #stream: RecordingStream;
  readonly #now: () => number;
  readonly #client: ClientBytes;
  readonly #server: KeptBytes;
  readonly #kept: KeptServerMessages;
  readonly #passed: PassedRows;
  /** The time of the chunk being walked. */
  #at = 0;

  /** `rowCap`: rows (and COPY data messages) recorded per result; 0 for none. `redact`: as the stage's. */
  constructor(o: { stream: RecordingStream; rowCap: number; now?: () => number; redact?: PostgresRecordingStageOptions['redact'] }) {
    this.#stream = o.stream;
    this.#now = o.now ?? realClock.now;
    this.#kept = new KeptServerMessages(o.rowCap);
    this.#passed = new PassedRows(o.stream);
    const sent = new SentSecrets(o.redact?.key);
    this.#client = new ClientBytes(o.stream, o.redact ?? {}, sent);
    // Once the client sent a secret, what the server says is gathered whole and recorded redacted, as the stage records it.
    const words = (type: number): ((msg: Buffer) => Buffer) | undefined =>
      sent.tainted && (type === ERROR || type === NOTICE || type === NOTIFICATION) ? (msg) => serverWords(type, msg, 0, msg.length, sent) ?? msg : undefined;
    this.#server = new KeptBytes(o.stream, RAW_SERVER, (type, length) => this.#keepsServer(type, length, sent), words);
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

  /** The stage's choice (see {@link PostgresRecordingStage.backend}), made from the header; the thread's stage makes the rest of it. */
  #keepsServer(type: number, length: number, sent: SentSecrets): boolean {
    checkHeader('backend', type, length);
    if (type === COPY_IN) sent.taint();
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

/** A message's header (its type byte and length field), which may come cut between two chunks. */
class Header {
  /** A header cut between two chunks, as gathered (whole ones are read where they lie, not copied). */
  readonly #cut = Buffer.alloc(5);
  #have = 0;
  /** The chunk and offset of the last whole header; undefined when it was gathered into {@link #cut}. */
  #chunk: Buffer | undefined;
  #at = 0;
  type = 0;
  length = 0;

  /** Whether a whole header starts at `i` of `chunk` (none is being gathered); then `type` and `length` are its. */
  wholeAt(chunk: Buffer, i: number): boolean {
    if (this.#have !== 0 || i + 5 > chunk.length) return false;
    this.#chunk = chunk;
    this.#at = i;
    this.type = chunk[i]!;
    this.length = (chunk[i + 1]! << 24) | (chunk[i + 2]! << 16) | (chunk[i + 3]! << 8) | chunk[i + 4]!;
    return true;
  }

  /** Gathers what of a cut header `chunk` holds from `i`; how many bytes it took. */
  gather(chunk: Buffer, i: number): number {
    const n = Math.min(5 - this.#have, chunk.length - i);
    chunk.copy(this.#cut, this.#have, i, i + n);
    this.#have += n;
    return n;
  }

  /** Whether the header gathered is whole (then `type` and `length` are its, and the next one starts afresh). */
  gathered(): boolean {
    if (this.#have < 5) return false;
    this.#have = 0;
    this.#chunk = undefined;
    this.type = this.#cut[0]!;
    this.length = this.#cut.readInt32BE(1);
    return true;
  }

  /** The header's five bytes where they lie (a view of its chunk, or of what was gathered): copy what is kept. */
  get bytes(): Buffer {
    return this.#chunk ? this.#chunk.subarray(this.#at, this.#at + 5) : this.#cut;
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
  /** For a kept message of a type it names: how it is recorded, once gathered whole (an error that may echo a secret). */
  readonly #rewrites: ((type: number) => ((msg: Buffer) => Buffer) | undefined) | undefined;
  /** Bytes of the current message still to come after its header, and whether they are copied. */
  #left = 0;
  #copying = false;
  /** The current message gathered whole, to be recorded as `rewrite` makes it. */
  #whole: { rewrite: (msg: Buffer) => Buffer; parts: Buffer[] } | undefined;
  readonly #head = new Header();

  constructor(stream: Pick<RecordingStream, 'record'>, kind: number, keeps: (type: number, length: number) => boolean, rewrites?: (type: number) => ((msg: Buffer) => Buffer) | undefined) {
    this.#stream = stream;
    this.#kind = kind;
    this.#keeps = keeps;
    this.#rewrites = rewrites;
  }

  walk(chunk: Buffer, at: number): void {
    /** Where the kept bytes gathered in this chunk start (-1: none). */
    let from = -1;
    let i = 0;
    while (i < chunk.length) {
      if (this.#left > 0) {
        const n = Math.min(this.#left, chunk.length - i);
        if (this.#whole) this.#whole.parts.push(Buffer.from(chunk.subarray(i, i + n)));
        else if (this.#copying && from < 0) from = i;
        i += n;
        this.#left -= n;
      } else if (this.#head.wholeAt(chunk, i)) {
        this.#begin(this.#head.type, this.#head.length);
        if (!this.#copying || this.#whole) from = this.#keep(chunk, at, from, i);
        else if (from < 0) from = i;
        i += 5;
      } else {
        // A header cut between two chunks: gathered, and copied on its own.
        from = this.#keep(chunk, at, from, i);
        i += this.#head.gather(chunk, i);
        if (!this.#head.gathered()) break;
        this.#begin(this.#head.type, this.#head.length);
        if (this.#copying && !this.#whole) this.#stream.record(this.#kind, at, this.#head.bytes, 0, 5);
      }
      if (this.#whole && this.#left === 0) this.#recordWhole(at);
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
    const rewrite = this.#copying ? this.#rewrites?.(type) : undefined;
    this.#whole = rewrite ? { rewrite, parts: [Buffer.from(this.#head.bytes)] } : undefined;
  }

  #recordWhole(at: number): void {
    const msg = this.#whole!.rewrite(Buffer.concat(this.#whole!.parts));
    this.#whole = undefined;
    this.#stream.record(this.#kind, at, msg, 0, msg.length);
  }
}

/**
 * The client's bytes as a {@link KeptBytes} keeps them, but for its secrets: a Query or Parse is
 * gathered whole and recorded with its secrets redacted (as the stage records it), or, past
 * {@link LONG_SQL} bytes of body, as a `CLIENT_LONG` record of its length and name alone; a Bind is
 * gathered whole and recorded with its secret parameters redacted (./bind-secrets.ts), or, past
 * {@link BIND_HELD_MAX}, by its names alone (as the stage records one it streamed); a FunctionCall by
 * its function alone (its arguments, as the stage keeps none); an Execute as it passes.
 */
class ClientBytes {
  readonly #stream: Pick<RecordingStream, 'record'>;
  readonly #redact: NonNullable<PostgresRecordingStageOptions['redact']>;
  readonly #binds: BindSecrets;
  readonly #head = new Header();
  /** The current message: its type, its body's length, the bytes of it still to come, and what is done with them. */
  #type = 0;
  #length = 0;
  #left = 0;
  #mode: 'skip' | 'stream' | 'gather' | 'long' | 'function' = 'skip';
  /** What a gathered message holds so far (its header first); a long one's body's first bytes, for its name. */
  #gathered: Buffer[] = [];
  #gatheredBytes = 0;

  readonly #sent: SentSecrets;

  constructor(stream: Pick<RecordingStream, 'record'>, redact: NonNullable<PostgresRecordingStageOptions['redact']>, sent: SentSecrets) {
    this.#stream = stream;
    this.#redact = redact;
    this.#sent = sent;
    this.#binds = new BindSecrets(redact, sent);
  }

  walk(chunk: Buffer, at: number): void {
    /** Where the streamed bytes gathered in this chunk start (-1: none). */
    let from = -1;
    let i = 0;
    const flush = (end: number): void => {
      if (from >= 0 && end > from) this.#stream.record(RAW_CLIENT, at, chunk, from, end);
      from = -1;
    };
    while (i < chunk.length) {
      if (this.#left > 0) {
        const n = Math.min(this.#left, chunk.length - i);
        if (this.#mode === 'stream' && from < 0) from = i;
        else if (this.#mode === 'gather' || ((this.#mode === 'long' || this.#mode === 'function') && this.#gatheredBytes < NAME_PREFIX)) this.#gather(chunk.subarray(i, i + n));
        i += n;
        this.#left -= n;
        if (this.#left === 0) this.#end(at);
        continue;
      }
      if (this.#head.wholeAt(chunk, i)) {
        // A whole header: a streamed message's joins the run of kept bytes (one record for a run of them, as KeptBytes makes).
        this.#begin();
        if (this.#mode !== 'stream') flush(i);
        else if (from < 0) from = i;
        i += 5;
      } else {
        // A header cut between two chunks: gathered, and a streamed message's copied on its own.
        flush(i);
        i += this.#head.gather(chunk, i);
        if (!this.#head.gathered()) break;
        this.#begin();
        if (this.#mode === 'stream') this.#stream.record(RAW_CLIENT, at, this.#head.bytes, 0, 5);
      }
      if (this.#left === 0) this.#end(at);
    }
    flush(i);
  }

  #gather(bytes: Buffer): void {
    this.#gathered.push(Buffer.from(bytes));
    this.#gatheredBytes += bytes.length;
  }

  #begin(): void {
    this.#type = this.#head.type;
    this.#length = Math.max(0, this.#head.length - 4);
    this.#left = this.#length;
    this.#gathered = [];
    this.#gatheredBytes = 0;
    if (this.#type === QUERY || this.#type === PARSE || this.#type === BIND) {
      this.#mode = this.#length > (this.#type === BIND ? BIND_HELD_MAX : LONG_SQL) ? 'long' : 'gather';
      if (this.#mode === 'gather') this.#gather(this.#head.bytes);
    } else if (this.#type === FUNCTION_CALL) this.#mode = 'function';
    else this.#mode = CLIENT_KEPT[this.#type] === 1 ? 'stream' : 'skip';
  }

  /** The current message ended: a gathered one recorded, redacted; a long one said by its length and name. */
  #end(at: number): void {
    if (this.#mode === 'gather' && this.#type === BIND) {
      const raw = Buffer.concat(this.#gathered);
      const body = raw.subarray(5);
      const out = this.#binds.bind(raw, body.toString('utf8', body.indexOf(0) + 1, Math.max(0, body.indexOf(0, body.indexOf(0) + 1))));
      this.#stream.record(RAW_CLIENT, at, out, 0, out.length);
    } else if (this.#mode === 'gather') {
      const raw = Buffer.concat(this.#gathered);
      const body = raw.subarray(5);
      const nameEnd = this.#type === PARSE ? body.indexOf(0) : -1;
      const sqlStart = nameEnd + 1;
      const sqlEnd = body.indexOf(0, sqlStart);
      const sql = sqlEnd < 0 ? undefined : body.toString('utf8', sqlStart, sqlEnd);
      if (this.#type === PARSE) this.#binds.parsed(body.toString('utf8', 0, Math.max(0, nameEnd)), sql);
      else if (sql !== undefined) this.#binds.query(sql);
      const redacted = sql === undefined ? undefined : redactSql(sql, 'postgres', this.#redact);
      if (redacted?.redacted) this.#sent.taint();
      const out = redacted?.redacted ? withSql(raw, this.#type === PARSE ? body.toString('utf8', 0, nameEnd) : undefined, sql!, redacted.text) : raw;
      this.#stream.record(RAW_CLIENT, at, out, 0, out.length);
    } else if (this.#mode === 'function') {
      // Its function alone, as a call of no arguments: what it was called with stays out, as the stage keeps it.
      const oid = Buffer.concat(this.#gathered).subarray(0, 4);
      const call = Buffer.alloc(5 + 4 + 2 + 2 + 2);
      call[0] = FUNCTION_CALL;
      call.writeUInt32BE(call.length - 1, 1);
      oid.copy(call, 5);
      this.#stream.record(RAW_CLIENT, at, call, 0, call.length);
    } else if (this.#mode === 'long' && this.#type === BIND) {
      this.#sent.taint();
      const prefix = Buffer.concat(this.#gathered);
      const portalEnd = prefix.indexOf(0);
      const statementEnd = prefix.indexOf(0, portalEnd + 1);
      const names = portalEnd < 0 || statementEnd < 0 ? Buffer.from('\0\0') : prefix.subarray(0, statementEnd + 1);
      this.#stream.record(BIND_STREAMED, at, names, 0, names.length);
    } else if (this.#mode === 'long') {
      this.#sent.taint();
      const prefix = Buffer.concat(this.#gathered);
      const name = this.#type === PARSE ? prefix.subarray(0, Math.max(0, prefix.indexOf(0))) : Buffer.alloc(0);
      if (this.#type === PARSE) this.#binds.parsed(name.toString('utf8'), undefined);
      const long = Buffer.alloc(5 + name.length + 1);
      long[0] = this.#type;
      long.writeUInt32LE(this.#length, 1);
      name.copy(long, 5);
      this.#stream.record(CLIENT_LONG, at, long, 0, long.length);
    }
    this.#mode = 'skip';
    this.#gathered = [];
  }
}

/** How much of a long Parse's body is kept for its statement's name (PostgreSQL's names are at most 63 bytes). */
const NAME_PREFIX = 256;

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
