/**
 * Received chunks and a cursor over them, and the base of the tunnel's frame decoders
 * (hoop-tunnel/1's and hoop-mux/1's): bytes are handed out as views of the chunks they arrived
 * in, copied only when a piece spans chunks.
 *
 * @see https://github.com/brianc/node-postgres/blob/master/packages/pg-protocol/src/parser.ts (cursor over a growing buffer)
 */

import type { HoopError } from '../errors.js';

const EMPTY = Buffer.alloc(0);

/** A queue of received chunks read from the front. */
export class ChunkQueue {
  #chunks: Buffer[] = [];
  #offset = 0;
  #available = 0;

  /** Bytes not read yet. */
  get available(): number {
    return this.#available;
  }

  /** Bytes left in the first chunk: what {@link take} can return without a copy. */
  get contiguous(): number {
    return this.#chunks.length === 0 ? 0 : this.#chunks[0]!.length - this.#offset;
  }

  /** Adds received bytes. The queue keeps a reference to `chunk`: do not modify it afterwards. */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#available += chunk.length;
  }

  /** The next `n` bytes (at most {@link available}): a view when they lie in one chunk, else a copy. */
  take(n: number): Buffer {
    if (n === 0) return EMPTY;
    const first = this.#chunks[0]!;
    if (first.length - this.#offset >= n) {
      const view = first.subarray(this.#offset, this.#offset + n);
      this.#skip(n);
      return view;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.#chunks[0]!;
      const count = Math.min(chunk.length - this.#offset, n - filled);
      chunk.copy(out, filled, this.#offset, this.#offset + count);
      filled += count;
      this.#skip(count);
    }
    return out;
  }

  /** The next `n` bytes (at most {@link available}) without taking them: a view when they lie in one chunk, else a copy. */
  peek(n: number): Buffer {
    const first = this.#chunks[0];
    if (first && first.length - this.#offset >= n) return first.subarray(this.#offset, this.#offset + n);
    const out = Buffer.allocUnsafe(n);
    for (let i = 0, from = this.#offset, filled = 0; filled < n; i++, from = 0) {
      const chunk = this.#chunks[i]!;
      filled += chunk.copy(out, filled, from, Math.min(chunk.length, from + n - filled));
    }
    return out;
  }

  /** Drops everything. */
  clear(): void {
    this.#chunks = [];
    this.#offset = 0;
    this.#available = 0;
  }

  #skip(n: number): void {
    this.#available -= n;
    this.#offset += n;
    if (this.#offset === this.#chunks[0]!.length) {
      this.#chunks.shift();
      this.#offset = 0;
    }
  }
}

/**
 * What the tunnel's frame decoders share: the received chunks, how much of the current frame's
 * payload is still to come, byte-stream payloads handed out as they arrive, and a violation that
 * sticks (after one, every call throws it again).
 */
export abstract class FrameDecoder {
  protected readonly queue = new ChunkQueue();
  /** Payload bytes of the current frame still to come; -1 between frames. */
  protected remaining = -1;
  #error: HoopError | null = null;

  /** True when no partial frame is pending (a clean place for the stream to end). */
  get idle(): boolean {
    return this.queue.available === 0 && this.remaining < 0;
  }

  /** Adds received bytes. The decoder keeps a reference to `chunk`: do not modify it afterwards. */
  push(chunk: Buffer): void {
    this.queue.push(chunk);
  }

  /** Throws the violation that stopped this decoder, if there was one. */
  protected check(): void {
    if (this.#error) throw this.#error;
  }

  /** Stops the decoder with `err` (returned, to be thrown). */
  protected fail(err: HoopError): HoopError {
    this.#error = err;
    this.queue.clear();
    return err;
  }

  /** The next piece of a byte-stream payload (a view of one chunk), or null until more bytes arrive. */
  protected piece(): Buffer | null {
    if (this.queue.available === 0) return null;
    const payload = this.queue.take(Math.min(this.queue.contiguous, this.remaining));
    this.remaining -= payload.length;
    if (this.remaining === 0) this.remaining = -1;
    return payload;
  }
}
