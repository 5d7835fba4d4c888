/**
 * Where PostgreSQL messages begin in a byte stream that is relayed as it comes: the gateway
 * forwards the server's bytes in whatever chunks the socket delivers, and when it must end a
 * session in the middle of a result it may only add its own ErrorResponse after a whole
 * message. This tracker reads only the 5-byte headers (type, then an Int32 length that counts
 * itself) and skips the bodies, so it costs a few operations per message and never copies.
 *
 * @see https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS
 */

/** Follows message boundaries over successive chunks of one direction of a PostgreSQL stream. */
export class MessageBoundary {
  readonly #length = Buffer.alloc(4);
  /** Header bytes of the current message seen so far (0..4; 0 with no body left is a boundary). */
  #header = 0;
  /** Body bytes of the current message still to come. */
  #remaining = 0;
  #broken = false;

  /** True between two messages. */
  get atBoundary(): boolean {
    return !this.#broken && this.#header === 0 && this.#remaining === 0;
  }

  /** True once a length below 4 was seen: the stream is not PostgreSQL messages and has no boundaries any more. */
  get broken(): boolean {
    return this.#broken;
  }

  /**
   * Advances over `chunk`. Without `stopAtBoundary`, consumes all of it and returns its length.
   * With it, stops at the first boundary at or after the start of the chunk and returns its
   * offset (0 when already between messages, `chunk.length` when the chunk ends one), or -1
   * when the chunk holds no boundary (it was all consumed).
   */
  advance(chunk: Uint8Array, stopAtBoundary = false): number {
    const length = chunk.length;
    let i = 0;
    while (i < length) {
      if (stopAtBoundary && this.atBoundary) return i;
      if (this.#broken) return stopAtBoundary ? -1 : length;
      if (this.#remaining > 0) {
        const n = Math.min(this.#remaining, length - i);
        this.#remaining -= n;
        i += n;
        continue;
      }
      if (this.#header === 0) {
        this.#header = 1;
        i++;
        continue;
      }
      this.#length[this.#header - 1] = chunk[i]!;
      this.#header++;
      i++;
      if (this.#header === 5) {
        this.#header = 0;
        const declared = this.#length.readInt32BE(0);
        if (declared < 4) this.#broken = true;
        else this.#remaining = declared - 4;
      }
    }
    if (!stopAtBoundary) return length;
    return this.atBoundary ? length : -1;
  }
}
