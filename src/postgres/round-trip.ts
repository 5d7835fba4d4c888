/**
 * One round trip on an authenticated PostgreSQL connection hoop opened itself (the gateway's
 * catalog lookups, `hoop demo`'s setup and scripted session): send a batch of messages that ends
 * in a Sync or a Query, read every answer up to its ReadyForQuery. Values are read as text.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SIMPLE-QUERY
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 */
import type { Socket } from 'node:net';
import { MessageReader } from './wire/reader.js';
import { resultMessage, type ServerMessage } from './wire/results.js';
import type { RowDescriptionField } from './wire/rows.js';

export type { ServerMessage };

/** What the server answered one batch. */
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

/** A connection a round trip runs on: an authenticated socket and the bytes already read past its first ReadyForQuery. */
export interface RoundTripConnection {
  socket: Socket;
  leftover: Buffer;
}

/**
 * Sends `messages` and resolves the answers up to the ReadyForQuery that ends them. Rejects when
 * the connection closes or breaks the protocol first, or after `timeoutMs` (then the socket is
 * destroyed). One round trip at a time per connection.
 */
export function roundTrip(connection: RoundTripConnection, messages: Buffer, timeoutMs: number): Promise<RoundTrip> {
  const { socket } = connection;
  if (socket.destroyed || socket.writableEnded) return Promise.reject(new Error('the connection is closed'));
  return new Promise((resolve, reject) => {
    const reader = new MessageReader({ side: 'backend' });
    const result: RoundTrip = { fields: [], rows: [], commands: [], notices: [] };
    const done = (err?: Error): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onClose);
      if (err) reject(err);
      else resolve(result);
    };
    const onClose = (): void => done(new Error('the connection closed'));
    const timer = setTimeout(() => {
      socket.destroy();
      done(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const onData = (chunk: Buffer): void => {
      try {
        reader.push(chunk);
        for (let m = reader.next(); m; m = reader.next()) {
          const r = resultMessage(m);
          if (r?.kind === 'columns') result.fields = r.fields;
          else if (r?.kind === 'row') result.rows.push(r.values);
          else if (r?.kind === 'complete') result.commands.push(r.tag);
          else if (r?.kind === 'error') result.error = r.fields;
          else if (r?.kind === 'notice') result.notices.push(r.fields);
          else if (r?.kind === 'ready') return done();
        }
      } catch (err) {
        socket.destroy();
        done(err instanceof Error ? err : new Error(String(err)));
      }
    };
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.once('error', onClose);
    socket.resume();
    if (connection.leftover.length > 0) {
      const left = connection.leftover;
      connection.leftover = Buffer.alloc(0);
      onData(left);
    }
    socket.write(messages);
  });
}
