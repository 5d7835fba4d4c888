/**
 * The frontend half of a PostgreSQL relay: every chunk a client sends is cut into messages and
 * validated (type, length caps) before it is forwarded. A chunk that holds only whole messages is
 * forwarded as it came, without copying.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
import type { ChunkHandler } from '../pump.js';
import type { MessageReader, PgMessage } from './reader.js';

/** A chunk handler that validates frontend messages with `reader` and forwards them. */
export function validateFrontend(reader: MessageReader, onMessage?: (msg: PgMessage) => void): ChunkHandler {
  return (chunk) => {
    const wasEmpty = reader.bufferedBytes === 0;
    reader.push(chunk);
    const out: Buffer[] = [];
    for (let msg = reader.next(); msg; msg = reader.next()) {
      onMessage?.(msg);
      out.push(msg.raw);
    }
    return wasEmpty && reader.bufferedBytes === 0 ? chunk : out;
  };
}

/** Drains the whole messages `reader` already holds (bytes that arrived with the handshake). */
export function drainMessages(reader: MessageReader, onMessage?: (msg: PgMessage) => void): Buffer[] {
  const out: Buffer[] = [];
  for (let msg = reader.next(); msg; msg = reader.next()) {
    onMessage?.(msg);
    out.push(msg.raw);
  }
  return out;
}
