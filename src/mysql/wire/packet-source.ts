/**
 * The packets arriving on a stream, handed out one at a time in order, for the connection phase
 * of either side: what reads a greeting, a sign-in or an answer before a relay or TLS takes the
 * stream over ({@link PacketSource.detach}).
 */
import type { Duplex } from 'node:stream';
import { packet, PacketReader, type MySqlPacket } from './packets.js';
import { MySqlProtocolError } from './protocol-error.js';

/** See the module documentation. */
export class PacketSource {
  readonly #reader: PacketReader;
  #ready: MySqlPacket[] = [];
  #waiting: { resolve: (p: MySqlPacket) => void; reject: (e: Error) => void } | undefined;
  #error: Error | undefined;
  readonly #stream: Duplex;
  readonly #onData = (chunk: Buffer): void => {
    try {
      this.#ready.push(...this.#reader.push(chunk));
    } catch (err) {
      this.#fail(err as Error);
      return;
    }
    this.#wake();
  };
  readonly #onEnd = (): void => this.#fail(new MySqlProtocolError('the connection closed'));
  readonly #onError = (err: Error): void => this.#fail(err);

  /** `maxPayload` bounds one packet (see {@link PacketReader}). */
  constructor(stream: Duplex, maxPayload?: number) {
    this.#stream = stream;
    this.#reader = new PacketReader(maxPayload);
    stream.on('data', this.#onData);
    stream.on('end', this.#onEnd);
    stream.on('close', this.#onEnd);
    stream.on('error', this.#onError);
  }

  /** The next packet; rejects when the stream fails or ends first. */
  next(): Promise<MySqlPacket> {
    const p = this.#ready.shift();
    if (p) return Promise.resolve(p);
    if (this.#error) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
    });
  }

  /**
   * Stops reading and puts back what was read past the packets taken (a client's TLS hello sent
   * right behind its SSLRequest, a first command behind its sign-in): the stream, then paused,
   * holds it for what reads it next (TLS, a pipe).
   */
  detach(): void {
    this.#stream.off('data', this.#onData);
    this.#stream.off('end', this.#onEnd);
    this.#stream.off('close', this.#onEnd);
    this.#stream.off('error', this.#onError);
    const unread = Buffer.concat([...this.#ready.splice(0).map((p) => packet(p.seq, p.payload)), this.#reader.rest()]);
    if (unread.length === 0) return;
    this.#stream.pause();
    this.#stream.unshift(unread);
  }

  #wake(): void {
    const w = this.#waiting;
    const p = w && this.#ready.shift();
    if (w && p) {
      this.#waiting = undefined;
      w.resolve(p);
    }
  }

  #fail(err: Error): void {
    this.#error ??= err;
    const w = this.#waiting;
    this.#waiting = undefined;
    w?.reject(this.#error);
  }
}
