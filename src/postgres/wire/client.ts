/**
 * hoop's one small PostgreSQL frontend. Its answers are read by one loop that hands each result
 * (columns, a row with its values as text, a command tag, a notice, the error that stopped the
 * statements) to a handler as it arrives, up to the ReadyForQuery that ends them. Reading waits
 * for the handler, so a slow consumer (a pipe to `head`, a slow disk) holds the rows back in the
 * stream's flow control instead of in memory. Two uses:
 *
 * - {@link PgClient}: `hoop exec`'s and `hoop mcp`'s session over a tunnel to the gateway (which
 *   signs in to the database itself, so the tunnel's startup needs no password): statements are
 *   sent as one simple Query and their results handed to a {@link ResultHandler};
 * - {@link roundTrip}: one batch on a connection hoop signed in to itself (the gateway's catalog
 *   lookups for masking, `hoop demo`'s setup and scripted session), its answers collected, under
 *   a deadline.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SIMPLE-QUERY
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 */
import { ErrorCode, HoopError } from '../../errors.js';
import type { Socket } from 'node:net';
import { finished, type Duplex } from 'node:stream';
import { Backend } from './codes.js';
import type { FrontendMessage } from './frontend-messages.js';
import { bindText, describePortalUnnamed, execute, parseUnnamed, query, startupMessage, sync, terminate, type PgErrorFields } from './messages.js';
import { PgProtocolError } from './protocol-error.js';
import { MessageReader, parseAuthentication, parseErrorFields, type PgMessage } from './reader.js';
import { cstr, parseDataRow, parseRowDescription, type RowDescriptionField } from './rows.js';

/** An ErrorResponse or NoticeResponse, as its fields say. @see https://www.postgresql.org/docs/current/protocol-error-fields.html */
export type ServerMessage = ReturnType<typeof parseErrorFields>;

/** One server message of a statement's answer, decoded. */
type ResultMessage =
  | { kind: 'columns'; fields: RowDescriptionField[] }
  | { kind: 'row'; values: Array<string | null> }
  | { kind: 'complete'; tag: string }
  | { kind: 'notice'; fields: ServerMessage }
  | { kind: 'error'; fields: ServerMessage }
  | { kind: 'copy' }
  | { kind: 'ready' };

const { ROW_DESCRIPTION, DATA_ROW, COMMAND_COMPLETE, NOTICE, ERROR, COPY_IN, COPY_OUT, COPY_BOTH, READY_FOR_QUERY: READY, AUTHENTICATION } = Backend;

/**
 * `m` as a {@link ResultMessage}; undefined for what an answer may carry besides (ParameterStatus,
 * NotificationResponse, EmptyQueryResponse, ParseComplete, ...).
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
function resultMessage(m: PgMessage): ResultMessage | undefined {
  switch (m.type) {
    case ROW_DESCRIPTION:
      return { kind: 'columns', fields: parseRowDescription(m.body) };
    case DATA_ROW:
      return { kind: 'row', values: parseDataRow(m.body).map((v) => (v === null ? null : v.toString('utf8'))) };
    case COMMAND_COMPLETE:
      return { kind: 'complete', tag: cstr(m.body, 0)[0] };
    case NOTICE:
      return { kind: 'notice', fields: parseErrorFields(m.body) };
    case ERROR:
      return { kind: 'error', fields: parseErrorFields(m.body) };
    case COPY_IN:
    case COPY_OUT:
    case COPY_BOTH:
      return { kind: 'copy' };
    case READY:
      return { kind: 'ready' };
    default:
      return undefined;
  }
}

const nothing = (): void => undefined;

/**
 * The server's messages on a stream, read only as fast as they are asked for, with the stream's
 * own async iterator's outcomes: its end ends them, an error (or a close before the end) rejects.
 * Unlike that iterator it can let go of the stream, handing back what it read but did not hand
 * out, so one connection can serve round trip after round trip.
 */
class ServerMessages {
  readonly #stream: Duplex;
  readonly #reader = new MessageReader({ side: 'backend' });
  /** undefined while the stream runs; null once it ended; else the error that stopped it. */
  #outcome: Error | null | undefined;
  #wake: () => void = nothing;
  readonly #unwatch: () => void;

  constructor(stream: Duplex, leftover: Buffer) {
    this.#stream = stream;
    this.#reader.push(leftover);
    stream.on('readable', this.#woken);
    this.#unwatch = finished(stream, { writable: false }, (err) => {
      this.#outcome = err ?? null;
      this.#woken();
    });
  }

  readonly #woken = (): void => {
    const wake = this.#wake;
    this.#wake = nothing;
    wake();
  };

  /** The next message; undefined once the stream has ended. @throws PgProtocolError, or the stream's error */
  async next(): Promise<PgMessage | undefined> {
    for (;;) {
      const m = this.#reader.next();
      if (m) return m;
      const chunk = this.#stream.destroyed ? null : (this.#stream.read() as Buffer | null);
      if (chunk !== null) this.#reader.push(chunk);
      else if (this.#outcome !== undefined) {
        // As the iterator does once the stream is over: nothing more is written to it either.
        this.#stream.destroy();
        if (this.#outcome) throw this.#outcome;
        return undefined;
      } else await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  /** Lets go of the stream (it stays paused) and returns the bytes read but not handed out. */
  release(): Buffer {
    this.#stream.off('readable', this.#woken);
    this.#unwatch();
    return this.#reader.takeBuffered();
  }
}

/**
 * What hears a signed-in session's traffic (the CLI's own record of it): the messages the client
 * sends, and every server message before the handler sees it.
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
export interface ClientTap {
  sent(m: FrontendMessage): void;
  /** A returned Promise holds the reading back. */
  received(m: PgMessage): Promise<void> | undefined;
}

/**
 * The one loop: hands each result on `messages` to `each` (a returned Promise holds the reading
 * back), every message to `tap` first. Resolves true at the ReadyForQuery that ends the answer,
 * false when the stream ended before it.
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SIMPLE-QUERY
 */
async function answer(messages: ServerMessages, each: (r: ResultMessage) => void | Promise<void>, tap?: ClientTap): Promise<boolean> {
  for (;;) {
    const m = await messages.next();
    if (!m) return false;
    const heard = tap?.received(m);
    if (heard) await heard;
    const r = resultMessage(m);
    if (r?.kind === 'ready') return true;
    if (r) {
      const handled = each(r);
      if (handled) await handled;
    }
  }
}

/**
 * What a statement's results are handed to, in order. A returned Promise holds the reading back.
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
export interface ResultHandler {
  columns(fields: RowDescriptionField[]): void | Promise<void>;
  /** A row, its values as text (NULL as null). */
  row(values: Array<string | null>): void | Promise<void>;
  /** A statement ended with this command tag (`SELECT 3`, `UPDATE 1`, ...). */
  complete(tag: string): void | Promise<void>;
  notice(fields: PgErrorFields): void;
}

/**
 * A signed-in session on a tunnel: statements run one Query at a time.
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SIMPLE-QUERY
 */
export class PgClient {
  readonly #stream: Duplex;
  readonly #messages: ServerMessages;
  /** Set once signed in: what hears what is sent and received from then on. */
  #tap: ClientTap | undefined;

  private constructor(stream: Duplex) {
    this.#stream = stream;
    this.#messages = new ServerMessages(stream, Buffer.alloc(0));
  }

  /**
   * Sends the StartupMessage and reads up to the first ReadyForQuery; rejects with the server's
   * error if it refuses. With `tap`, every statement and what came back is heard after that.
   * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
   */
  static async start(stream: Duplex, params: Array<[string, string]>, tap?: ClientTap): Promise<PgClient> {
    const c = new PgClient(stream);
    stream.write(startupMessage(params));
    for (;;) {
      const m = await c.#messages.next();
      if (!m) throw new PgProtocolError('the gateway closed the session while signing in');
      if (m.type === ERROR) throw new QueryError(parseErrorFields(m.body));
      if (m.type === AUTHENTICATION && parseAuthentication(m.body).code !== 0) throw new PgProtocolError('the gateway asked for a password on a tunnel');
      if (m.type === READY) {
        c.#tap = tap;
        return c;
      }
    }
  }

  /**
   * Runs `sql` (one or more statements) and hands every result to `handler`; resolves when the
   * server is ready again, with the error that stopped the statements if one did (the server runs
   * none after it).
   */
  async run(sql: string, handler: ResultHandler): Promise<PgErrorFields | undefined> {
    const sent = query(sql);
    this.#stream.write(sent);
    this.#tap?.sent({ kind: 'query', msg: { type: sent[0]!, body: sent.subarray(5), raw: sent }, sql, utf8: true });
    return this.#answered(handler);
  }

  /**
   * Runs one statement `sql` with `params` bound as text ($1, $2, …: never spliced into the text),
   * as {@link run} does; not heard by the tap.
   * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
   */
  async runBound(sql: string, params: ReadonlyArray<string | null>, handler: ResultHandler): Promise<PgErrorFields | undefined> {
    if (this.#tap) throw new PgProtocolError('a bound statement is not recorded by the client');
    this.#stream.write(Buffer.concat([parseUnnamed(sql), bindText('', '', params), describePortalUnnamed(), execute(''), sync()]));
    return this.#answered(handler);
  }

  /** Hands the answer's results to `handler` up to ReadyForQuery: the error that stopped the statements, if one did. */
  async #answered(handler: ResultHandler): Promise<PgErrorFields | undefined> {
    let failure: PgErrorFields | undefined;
    const ready = await answer(
      this.#messages,
      (r) => {
        if (r.kind === 'columns') return handler.columns(r.fields);
        if (r.kind === 'row') return handler.row(r.values);
        if (r.kind === 'complete') return handler.complete(r.tag);
        if (r.kind === 'notice') return handler.notice(r.fields);
        if (r.kind === 'error') failure = r.fields;
        // A COPY needs a data stream this client does not have: end it as psql's -c does without one.
        else if (r.kind === 'copy') throw new PgProtocolError('COPY is not supported by hoop exec: use psql through hoop connect or hoop run');
      },
      this.#tap,
    );
    // The gateway ends a session with a FATAL error, then closes: that error is the answer.
    if (ready || failure) return failure;
    throw new PgProtocolError('the gateway closed the session before the statements ended');
  }

  /** Ends the session (Terminate) and the stream. */
  close(): void {
    if (this.#stream.writable) this.#stream.end(terminate());
  }
}

/**
 * The server refused the session (its ErrorResponse).
 * @see https://www.postgresql.org/docs/current/protocol-error-fields.html
 */
export class QueryError extends HoopError {
  /** The server's fields: its SQLSTATE (`code`), message, detail. */
  readonly fields: PgErrorFields;

  constructor(fields: PgErrorFields) {
    super(ErrorCode.UPSTREAM_UNAVAILABLE, fields.message);
    this.fields = fields;
  }
}

/**
 * What the server answered one batch.
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
export interface RoundTrip {
  /** The columns of the last RowDescription (of the last statement that returns rows). */
  fields: RowDescriptionField[];
  /** Every DataRow, as text (null for SQL NULL), of every statement in order. */
  rows: Array<Array<string | null>>;
  /** The CommandComplete tags (`SELECT 3`, `DROP TABLE`), in order. */
  commands: string[];
  /** The ErrorResponse that ended the batch, if one did. */
  error?: ServerMessage;
  notices: ServerMessage[];
}

/**
 * A connection a round trip runs on: an authenticated socket and the bytes already read past its
 * last ReadyForQuery.
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
 */
export interface RoundTripConnection {
  socket: Socket;
  leftover: Buffer;
}

/**
 * Sends `messages` (a batch that ends in a Sync or a Query) and resolves the answers up to the
 * ReadyForQuery that ends them. Rejects when the connection closes or breaks the protocol first,
 * or after `timeoutMs` (then the socket is destroyed). One round trip at a time per connection.
 * `tap` hears every server message first (a ParameterStatus, which results do not carry).
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 */
export function roundTrip(connection: RoundTripConnection, messages: Buffer, timeoutMs: number, tap?: Pick<ClientTap, 'received'>): Promise<RoundTrip> {
  const { socket } = connection;
  if (socket.destroyed || socket.writableEnded) return Promise.reject(new Error('the connection is closed'));
  const answers = new ServerMessages(socket, connection.leftover);
  connection.leftover = Buffer.alloc(0);
  const result: RoundTrip = { fields: [], rows: [], commands: [], notices: [] };
  return new Promise((resolve, reject) => {
    let settled = false;
    const done = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('close', onClose);
      socket.off('error', onClose);
      connection.leftover = answers.release();
      if (err) reject(err);
      else resolve(result);
    };
    // A close or a socket error ends the round trip before the loop hears of it.
    const onClose = (): void => done(new Error('the connection closed'));
    const timer = setTimeout(() => {
      socket.destroy();
      done(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('close', onClose);
    socket.once('error', onClose);
    socket.write(messages);
    answer(
      answers,
      (r) => {
        if (r.kind === 'columns') result.fields = r.fields;
        else if (r.kind === 'row') result.rows.push(r.values);
        else if (r.kind === 'complete') result.commands.push(r.tag);
        else if (r.kind === 'error') result.error = r.fields;
        else if (r.kind === 'notice') result.notices.push(r.fields);
      },
      tap as ClientTap | undefined,
    ).then(
      (ready) => done(ready ? undefined : new Error('the connection closed')),
      (err: unknown) => {
        socket.destroy();
        done(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
