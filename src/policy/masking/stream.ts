/**
 * Byte-level plumbing for a {@link ResultMasker}: cut the server's byte stream into messages,
 * mask each, and hand the bytes on, holding the stream while a catalog lookup is pending.
 *
 * @see https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS
 */
import { Transform, type TransformCallback } from 'node:stream';
import { MessageReader } from '../../tunnel/postgres/reader.js';
import type { ResultMasker } from './result-masker.js';

/**
 * Masks a server→client byte stream chunk by chunk. {@link write} returns the masked bytes of the
 * messages completed by the chunk (an incomplete message stays buffered in the reader); it is
 * synchronous unless a RowDescription needs a catalog lookup, and the caller must not write the
 * next chunk before a returned Promise settles.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
export class BackendMaskingPipe {
  private readonly reader = new MessageReader({ side: 'backend' });

  constructor(readonly masker: ResultMasker) {}

  /** Bytes of an incomplete message held back. */
  get bufferedBytes(): number {
    return this.reader.bufferedBytes;
  }

  /** @throws PgProtocolError on malformed server bytes */
  write(chunk: Buffer): Buffer | Promise<Buffer> {
    this.reader.push(chunk);
    return this.drain([]);
  }

  private drain(out: Buffer[]): Buffer | Promise<Buffer> {
    for (let msg = this.reader.next(); msg; msg = this.reader.next()) {
      const r = this.masker.backend(msg);
      if (r instanceof Promise) {
        return r.then((b) => {
          out.push(b);
          return this.drain(out);
        });
      }
      out.push(r);
    }
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }
}

/**
 * A Transform stream over a {@link BackendMaskingPipe}: server bytes in, masked bytes out. It
 * takes the next chunk only after the previous one is masked and pushed, so a pending catalog
 * lookup or a slow reader on the output side back-pressures the server side.
 *
 * @see https://nodejs.org/api/stream.html#implementing-a-transform-stream
 */
export function createMaskingTransform(masker: ResultMasker): Transform {
  const pipe = new BackendMaskingPipe(masker);
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      let r: Buffer | Promise<Buffer>;
      try {
        r = pipe.write(chunk);
      } catch (err) {
        cb(err as Error);
        return;
      }
      if (r instanceof Promise) r.then((b) => cb(null, b.length ? b : undefined), (err: Error) => cb(err));
      else cb(null, r.length ? r : undefined);
    },
  });
}
