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
    return this.drain(new Run());
  }

  private drain(out: Run): Buffer | Promise<Buffer> {
    for (;;) {
      // A COPY with nothing to mask: runs of whole CopyData messages go on as they are.
      if (this.masker.copyPassingThrough) out.add(this.reader.takeRun(COPY_DATA));
      const msg = this.reader.next();
      if (!msg) break;
      const r = this.masker.backend(msg);
      if (r instanceof Promise) {
        return r.then((b) => {
          out.add(b);
          return this.drain(out);
        });
      }
      out.add(r);
    }
    return out.bytes();
  }
}

const COPY_DATA = 0x64; // 'd'
/**
 * The bytes to hand on, gathered without copies where possible: unchanged messages are views
 * into the same received chunk, so a run of them that follow each other in memory is kept as
 * one range and handed on as one view (a chunk with nothing to mask is passed on as itself).
 */
class Run {
  readonly #parts: Buffer[] = [];
  #buf: ArrayBufferLike | undefined;
  #start = 0;
  #end = 0;

  add(b: Buffer): void {
    if (b.length === 0) return;
    if (b.buffer === this.#buf && b.byteOffset === this.#end) {
      this.#end += b.length;
      return;
    }
    this.#flush();
    this.#buf = b.buffer;
    this.#start = b.byteOffset;
    this.#end = b.byteOffset + b.length;
  }

  bytes(): Buffer {
    this.#flush();
    return this.#parts.length === 1 ? this.#parts[0]! : Buffer.concat(this.#parts);
  }

  #flush(): void {
    if (this.#buf !== undefined && this.#end > this.#start) this.#parts.push(Buffer.from(this.#buf, this.#start, this.#end - this.#start));
    this.#buf = undefined;
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
