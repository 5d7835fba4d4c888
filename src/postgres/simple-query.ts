/**
 * A minimal PostgreSQL frontend for one-shot statements (`hoop exec`): over a tunnel to the
 * gateway (which signs in to the database itself, so the tunnel's startup needs no password) it
 * sends the statements as one simple Query and hands each result to a handler as it arrives.
 * Reading waits for the handler, so a slow consumer (a pipe to `head`, a slow disk) holds the
 * rows back in the tunnel's flow control instead of in memory.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SIMPLE-QUERY
 */
import type { Duplex } from 'node:stream';
import { query, startupMessage, terminate, type PgErrorFields } from './wire/messages.js';
import { PgProtocolError } from './wire/protocol-error.js';
import { MessageReader, parseAuthentication, parseErrorFields, type PgMessage } from './wire/reader.js';
import { resultMessage } from './wire/results.js';
import type { RowDescriptionField } from './wire/rows.js';
import type { RecorderStage } from './stages.js';
import { Backend } from './wire/codes.js';

/** What a statement's results are handed to, in order. A returned Promise holds the reading back. */
export interface ResultHandler {
  columns(fields: RowDescriptionField[]): void | Promise<void>;
  /** A row, its values as text (NULL as null). */
  row(values: Array<string | null>): void | Promise<void>;
  /** A statement ended with this command tag (`SELECT 3`, `UPDATE 1`, ...). */
  complete(tag: string): void | Promise<void>;
  notice(fields: PgErrorFields): void;
}

const { ERROR, READY_FOR_QUERY: READY, AUTHENTICATION } = Backend;

/** The backend's messages on `stream`, one at a time, read only as fast as they are asked for. */
async function* messagesOf(stream: Duplex): AsyncGenerator<PgMessage> {
  const reader = new MessageReader({ side: 'backend' });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    reader.push(chunk);
    for (let m = reader.next(); m; m = reader.next()) yield m;
  }
}

/** A signed-in session on a tunnel: statements run one Query at a time. */
export class SimpleQuerySession {
  readonly #stream: Duplex;
  readonly #messages: AsyncGenerator<PgMessage>;
  /** Set once signed in: the CLI's own record of what is sent and received from then on. */
  #recorder: RecorderStage | undefined;

  private constructor(stream: Duplex) {
    this.#stream = stream;
    this.#messages = messagesOf(stream);
  }

  /**
   * Sends the StartupMessage and reads up to the first ReadyForQuery; rejects with the server's
   * error if it refuses. With `recorder`, every statement and what came back is recorded after that.
   */
  static async start(stream: Duplex, params: Array<[string, string]>, recorder?: RecorderStage): Promise<SimpleQuerySession> {
    const s = new SimpleQuerySession(stream);
    stream.write(startupMessage(params));
    for (;;) {
      const m = await s.#next();
      if (!m) throw new PgProtocolError('the gateway closed the session while signing in');
      if (m.type === ERROR) throw new QueryError(parseErrorFields(m.body));
      if (m.type === AUTHENTICATION && parseAuthentication(m.body).code !== 0) throw new PgProtocolError('the gateway asked for a password on a tunnel');
      if (m.type === READY) {
        s.#recorder = recorder;
        return s;
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
    const recorder = this.#recorder;
    recorder?.client({ kind: 'query', msg: { type: sent[0]!, body: sent.subarray(5), raw: sent }, sql, utf8: true });
    let failure: PgErrorFields | undefined;
    for (;;) {
      const m = await this.#next();
      if (!m) {
        // The gateway ends a session with a FATAL error, then closes: that error is the answer.
        if (failure) return failure;
        throw new PgProtocolError('the gateway closed the session before the statements ended');
      }
      if (recorder) {
        if (recorder.wants(m.type)) await recorder.server(m.raw);
        else recorder.passed(m.type, 1);
      }
      const r = resultMessage(m);
      if (r?.kind === 'columns') await handler.columns(r.fields);
      else if (r?.kind === 'row') await handler.row(r.values);
      else if (r?.kind === 'complete') await handler.complete(r.tag);
      else if (r?.kind === 'notice') handler.notice(r.fields);
      else if (r?.kind === 'error') failure = r.fields;
      // A COPY needs a data stream this client does not have: end it as psql's -c does without one.
      else if (r?.kind === 'copy') throw new PgProtocolError('COPY is not supported by hoop exec: use psql through hoop connect or hoop run');
      else if (r?.kind === 'ready') return failure;
    }
  }

  /** Ends the session (Terminate) and the stream. */
  close(): void {
    if (this.#stream.writable) this.#stream.end(terminate());
  }

  /** The next message, undefined at the end of the stream. */
  async #next(): Promise<PgMessage | undefined> {
    const { value, done } = await this.#messages.next();
    return done ? undefined : value;
  }
}

/** The server refused the session (its ErrorResponse). */
export class QueryError extends Error {
  readonly fields: PgErrorFields;

  constructor(fields: PgErrorFields) {
    super(fields.message);
    this.fields = fields;
  }
}
