/**
 * Writing a MySQL session's records (./records.ts): {@link MysqlPacketRecorder} writes each
 * packet as it crossed, a result's rows up to a cap and the count of the rest, for the gateway's
 * relay (which reads every packet already) and for {@link MysqlRecordTap}, the CLI's record of a
 * session its local port relays as bytes: it reads both directions into packets and writes each
 * client command only once the answer before it has ended, so the record reads in turn however the
 * client pipelines.
 */
import { realClock } from '../../clock.js';
import type { RecordingStream } from '../../recording/thread.js';
import { type AgreedCapabilities, MariaCap } from '../wire/handshake.js';
import { Cursor, lenencBytes, PacketReader } from '../wire/packets.js';
import { Conversation, type ServerPacket } from './conversation.js';
import { CAPABILITIES, CLIENT_PACKET, ROWS_NOT_RECORDED, SERVER_PACKET } from './records.js';
import { type MysqlLexing, type Redacted, type RedactOptions, redactSql, withRedacted } from '../../policy/sql/redact.js';
import { redactAhead } from '../../policy/sql/redact-ahead.js';
import { AHEAD_CHARS } from '../../policy/masking/rules.js';
import { Command, columnDefinition, errPacket, parseColumnDefinition, parseErr } from '../wire/results.js';
import { ExecuteSecrets } from './execute-secrets.js';
import { SentSecrets } from '../../policy/sql/sent-secrets.js';

/** A column name that is a plain identifier (or none): no expression's text (no literal) can be in it. */
const IDENTIFIER = /^(?:[A-Za-z_][A-Za-z0-9_$]*)?$/;
/** `SHOW WARNINGS` or `SHOW ERRORS` (after comments): MariaDB's notices, read as rows (`mariadb --show-warnings` sends it after each statement). */
const SHOWS_WARNINGS = /^(?:\s|\/\*[\s\S]*?\*\/|(?:--\s|#)[^\n]*\n)*show\s+(?:warnings|errors)\b/i;

/** A name per recorder, for {@link redactAhead} to take each session's long texts in turn with others'. */
let recorders = 0;

/** See the module documentation. */
export class MysqlPacketRecorder {
  readonly #stream: Pick<RecordingStream, 'record'>;
  readonly #rowCap: number;
  /** Rows of the current result recorded, and not recorded (over the cap). */
  #rowsKept = 0;
  #rowsNotRecorded = 0;
  readonly #redact: RedactOptions;
  readonly #executes: ExecuteSecrets;
  #redactMode: [MysqlLexing, RedactOptions] | undefined;
  /** Column definitions carry MariaDB's extended metadata. */
  readonly #extended: boolean;
  /** Whether the client sent a secret (typed or bound): what the server says after it is recorded redacted. */
  readonly #sent: SentSecrets;
  /** The server answers a SHOW WARNINGS: its rows are notices (Level, Code, Message). */
  #warnings = false;
  /** What the worker redacted of the client packet {@link client} records next. */
  #ahead: { payload: Buffer; redacted: Map<string, Redacted> } | undefined;
  /** Whose long texts these are, for the worker's turns. */
  readonly #owner = `mysql-record-${++recorders}`;

  /**
   * Records the session's agreed `capabilities` (and MariaDB's, when any) first; `rowCap`: rows kept
   * per result (0: none); `redact`: the key of redactions' hashes and the detectors (the gateway's).
   */
  constructor(stream: Pick<RecordingStream, 'record'>, rowCap: number, capabilities: number, mariadbCapabilities = 0, redact: RedactOptions = {}) {
    this.#stream = stream;
    this.#rowCap = rowCap;
    this.#redact = redact;
    this.#sent = new SentSecrets(redact.key);
    this.#executes = new ExecuteSecrets(redact, this.#sent);
    this.#extended = (mariadbCapabilities & MariaCap.EXTENDED_METADATA) !== 0;
    const caps = Buffer.alloc(mariadbCapabilities ? 8 : 4);
    caps.writeUInt32LE(capabilities >>> 0);
    if (mariadbCapabilities) caps.writeUInt32LE(mariadbCapabilities >>> 0, 4);
    stream.record(CAPABILITIES, realClock.now(), caps, 0, caps.length);
  }

  /**
   * A packet the client sent, a query's or a prepare's SQL with its secrets redacted
   * (src/policy/sql/redact.ts) as the session's sql_mode has the server lex it (`mysqlMode`, when the judge read it), an
   * execute's with the secrets it binds (./execute-secrets.ts); the SQL as recorded.
   */
  client(payload: Buffer, mysqlMode?: MysqlLexing): string | undefined {
    const ahead = this.#ahead?.payload === payload ? this.#ahead.redacted : undefined;
    this.#ahead = undefined;
    return ahead ? withRedacted(ahead, () => this.#client(payload, mysqlMode)) : this.#client(payload, mysqlMode);
  }

  /**
   * What client packet `payload` waits for before {@link client} records it, when it is long (a
   * statement's SQL, or the values an execute binds, redacted in the worker: on the loop the
   * detectors would hold every session for seconds); undefined when it may be recorded now.
   */
  ahead(payload: Buffer, mysqlMode?: MysqlLexing): Promise<void> | undefined {
    if (payload.length < AHEAD_CHARS || this.#ahead?.payload === payload) return undefined;
    const code = payload[0];
    const o = this.#redactFor(mysqlMode);
    const sql = code === Command.QUERY || code === Command.STMT_PREPARE;
    const texts = sql ? [payload.toString('utf8', 1)] : o.detectors?.length ? this.#executes.texts(payload) : [];
    if (texts.length === 0) return undefined;
    return redactAhead(texts, o, sql ? 'mysql' : undefined, this.#owner).then((redacted) => void (this.#ahead = { payload, redacted }));
  }

  #client(payload: Buffer, mysqlMode?: MysqlLexing): string | undefined {
    const code = payload[0];
    if (code === Command.STMT_PREPARE) this.#executes.preparing(payload.toString('utf8', 1), mysqlMode);
    const original = code === Command.QUERY || code === Command.STMT_PREPARE ? payload.toString('utf8', 1) : undefined;
    const sql = original === undefined ? undefined : redactSql(original, 'mysql', this.#redactFor(mysqlMode));
    if (sql?.redacted) this.#sent.taint();
    // Read only once a secret was sent: before, every answer is recorded as it came.
    if (code === Command.QUERY || code === Command.STMT_PREPARE || code === Command.STMT_EXECUTE) this.#warnings = this.#sent.tainted && original !== undefined && SHOWS_WARNINGS.test(original);
    const recorded = sql?.redacted ? Buffer.concat([payload.subarray(0, 1), Buffer.from(sql.text)]) : this.#executes.client(payload);
    this.#stream.record(CLIENT_PACKET, realClock.now(), recorded, 0, recorded.length);
    return sql?.text;
  }

  /** The redaction's options for the session's reading (the judge's object, the same until a SET changes it): made once per reading, not per query. */
  #redactFor(mysqlMode: MysqlLexing | undefined): RedactOptions {
    if (mysqlMode === undefined) return this.#redact;
    if (this.#redactMode?.[0] !== mysqlMode) this.#redactMode = [mysqlMode, { ...this.#redact, mysqlMode }];
    return this.#redactMode[1];
  }

  /** A packet of the server's (read as `kind`), as the client got it: a row past the cap is counted, the count recorded before the packet that ends its result. */
  server(kind: ServerPacket, payload: Buffer): void {
    if (kind.kind === 'prepared') this.#executes.prepared(kind.statement, kind.params);
    if (kind.kind === 'row') {
      if (this.#rowsKept >= this.#rowCap) {
        this.#rowsNotRecorded++;
        return;
      }
      this.#rowsKept++;
    } else {
      this.#rowsKept = 0;
      if (this.#rowsNotRecorded > 0) {
        const count = Buffer.alloc(4);
        count.writeUInt32LE(this.#rowsNotRecorded);
        this.#stream.record(ROWS_NOT_RECORDED, realClock.now(), count, 0, 4);
        this.#rowsNotRecorded = 0;
      }
    }
    const recorded = !this.#sent.tainted
      ? payload
      : kind.kind === 'err'
        ? this.#errorAsRecorded(payload)
        : kind.kind === 'column'
          ? this.#columnAsRecorded(payload)
          : kind.kind === 'row' && this.#warnings
            ? this.#warningAsRecorded(payload)
            : payload;
    this.#stream.record(SERVER_PACKET, realClock.now(), recorded, 0, recorded.length);
  }

  /** A column definition once the client sent a secret: a name that is not a plain identifier as a marker (MariaDB names a column by its expression's text: `PASSWORD('…')`, cut at 256 characters). */
  #columnAsRecorded(payload: Buffer): Buffer {
    const def = parseColumnDefinition(payload, this.#extended);
    const shown = (n: string): string => (IDENTIFIER.test(n) ? n : this.#sent.text(n));
    const name = shown(def.name);
    const orgName = shown(def.orgName);
    return name === def.name && orgName === def.orgName ? payload : columnDefinition({ ...def, name, orgName });
  }

  /** A row of SHOW WARNINGS once the client sent a secret: its message as a marker, as an error's (a duplicate entry's value). */
  #warningAsRecorded(payload: Buffer): Buffer {
    try {
      const c = new Cursor(payload, 0);
      const level = c.lenencBytesOrNull();
      const code = c.lenencBytesOrNull();
      const message = c.lenencBytesOrNull();
      return Buffer.concat([lenencBytes(level), lenencBytes(code), lenencBytes(message === null ? null : this.#sent.text(message.toString('utf8'))), c.rest()]);
    } catch {
      return Buffer.from(lenencBytes(this.#sent.text(payload.toString('utf8'))));
    }
  }

  /** An error once the client sent a secret: its message as a marker (MariaDB repeats a value in any spelling: `Duplicate entry '…'`, cut, decoded from hex). */
  #errorAsRecorded(payload: Buffer): Buffer {
    const err = parseErr(payload);
    return errPacket({ ...err, message: this.#sent.text(err.message) });
  }
}

/** See the module documentation. */
export class MysqlRecordTap {
  readonly #recorder: MysqlPacketRecorder;
  readonly #conversation: Conversation;
  readonly #fromClient = new PacketReader();
  readonly #fromServer = new PacketReader();
  /** Client commands not yet recorded: the answer before them has not ended. */
  readonly #queued: Buffer[] = [];
  readonly #onBroken: (err: Error) => void;
  #broken = false;

  /** `redact`: what the session's detectors find in the client's SQL is written down redacted, as the gateway writes it. */
  constructor(stream: Pick<RecordingStream, 'record'>, rowCap: number, capabilities: AgreedCapabilities, onBroken: (err: Error) => void, redact: RedactOptions = {}) {
    this.#recorder = new MysqlPacketRecorder(stream, rowCap, capabilities.lower, capabilities.mariadb, redact);
    this.#conversation = new Conversation(capabilities.lower);
    this.#onBroken = onBroken;
  }

  /** Bytes the client sent. */
  clientBytes(chunk: Buffer): void {
    this.#safely(() => {
      for (const p of this.#fromClient.push(chunk)) this.#queued.push(p.payload);
      this.#drain();
    });
  }

  /** Bytes the gateway sent the client. */
  serverBytes(chunk: Buffer): void {
    this.#safely(() => {
      for (const p of this.#fromServer.push(chunk)) {
        this.#recorder.server(this.#conversation.server(p.payload), p.payload);
        this.#drain();
      }
    });
  }

  #drain(): void {
    while (!this.#conversation.answering && this.#queued.length > 0) {
      const payload = this.#queued.shift()!;
      this.#recorder.client(payload);
      this.#conversation.command(payload);
    }
  }

  /** What cannot be read stops the record (the session goes on; the gateway records it). */
  #safely(step: () => void): void {
    if (this.#broken) return;
    try {
      step();
    } catch (err) {
      this.#broken = true;
      this.#onBroken(err instanceof Error ? err : new Error(String(err)));
    }
  }
}
