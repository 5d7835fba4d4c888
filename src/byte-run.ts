/**
 * Collecting the bytes a relay hands on, without copying them.
 *
 * @see https://nodejs.org/api/buffer.html#buffers-and-typedarrays
 */

/**
 * Bytes to hand on, gathered without copies where possible: views that follow each other in the
 * same received chunk are kept as one range, so a chunk whose messages all pass unchanged goes on
 * as itself, and a long run of small messages as one write.
 */
export class ByteRun {
  readonly #parts: Buffer[] = [];
  /** The one Buffer the current range was added as, while nothing was merged into it. */
  #single: Buffer | undefined;
  #buf: ArrayBufferLike | undefined;
  #start = 0;
  #end = 0;
  #size = 0;

  /** Bytes gathered so far. */
  get size(): number {
    return this.#size;
  }

  add(b: Buffer): void {
    if (b.length === 0) return;
    this.#size += b.length;
    if (b.buffer === this.#buf && b.byteOffset === this.#end) {
      this.#end += b.length;
      this.#single = undefined;
      return;
    }
    this.#flush();
    this.#single = b;
    this.#buf = b.buffer;
    this.#start = b.byteOffset;
    this.#end = b.byteOffset + b.length;
  }

  /** Everything gathered, in order (no copy), and empties the run. */
  take(): Buffer[] {
    this.#flush();
    this.#size = 0;
    return this.#parts.length === 0 ? [] : this.#parts.splice(0);
  }

  #flush(): void {
    if (this.#buf !== undefined && this.#end > this.#start) this.#parts.push(this.#single ?? Buffer.from(this.#buf, this.#start, this.#end - this.#start));
    this.#buf = undefined;
    this.#single = undefined;
  }
}
