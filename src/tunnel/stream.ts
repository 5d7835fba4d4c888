/**
 * What an engine and the CLI see of a tunnel, whichever carries it: a byte-stream Duplex plus
 * CONTROL messages. A {@link TunnelChannel} is a whole connection (hoop-tunnel/1); a `MuxStream`
 * is one session among several on a shared connection (hoop-mux/1).
 *
 * @see docs/internals.md (§1.2)
 * @see https://nodejs.org/api/stream.html#implementing-a-duplex-stream
 */
import { Duplex, type DuplexOptions } from 'node:stream';
import { ErrorCode, HoopError, describeError } from '../errors.js';
import type { ControlMessage } from './frames.js';

/** Who is at the other end of a tunnel; only changes error messages and codes. @see docs/internals.md (§1.2) */
export type TunnelPeer = 'gateway' | 'client';

const MAX_PENDING_CONTROLS = 256;

/**
 * A tunnel's byte stream. Write bytes, read bytes; `sendControl()` and the `'control'` event
 * (listener `(message: ControlMessage) => void`) carry CONTROL messages. A `'control'` event is
 * emitted as soon as its frame is decoded, so it may overtake DATA bytes still in the readable
 * buffer; messages that arrive before any `'control'` listener exists are kept (up to 256) and
 * emitted when one is added. `'peer-gone'` is emitted once when the transport learns that the
 * peer ended its side or left, even while the readable side still holds bytes nobody read.
 * @see docs/internals.md (§1.2)
 */
export abstract class TunnelStream extends Duplex {
  protected readonly peer: TunnelPeer;
  #pendingControls: ControlMessage[] = [];
  #peerGone = false;
  #bytesSent = 0;

  constructor(peer: TunnelPeer, options: DuplexOptions) {
    super(options);
    this.peer = peer;
    this.on('newListener', (event: string | symbol) => {
      if (event === 'control' && this.#pendingControls.length > 0) process.nextTick(this.#flushControls);
    });
  }

  /** Bytes of the stream taken for sending to the peer so far (CONTROL messages not counted): what the gateway sent a session's client. */
  get bytesSent(): number {
    return this.#bytesSent;
  }

  /** Counts `n` bytes of the stream taken for sending (each implementation's `_write`). */
  protected countSent(n: number): void {
    this.#bytesSent += n;
  }

  /**
   * Sends a CONTROL message, after the bytes written before it. Returns false when the writable
   * side is full (as `write()` does) or already ended or destroyed (the message is then dropped).
   * Throws HoopError(INTERNAL) when `message` has no string `type` or its JSON exceeds 64 KiB.
   */
  abstract sendControl(message: ControlMessage): boolean;

  /** Hands a received CONTROL message to the `'control'` listeners, or keeps it until one is added. */
  protected emitControl(message: ControlMessage): void {
    if (this.#pendingControls.length === 0 && this.listenerCount('control') > 0) {
      this.emit('control', message);
      return;
    }
    if (this.#pendingControls.length >= MAX_PENDING_CONTROLS) {
      throw new HoopError(ErrorCode.PROTOCOL_VIOLATION, `the ${this.peer} sent more than ${MAX_PENDING_CONTROLS} control messages that nothing handled`);
    }
    this.#pendingControls.push(message);
  }

  /** Whether the peer ended its side or left (`'peer-gone'` was emitted). */
  get peerHasGone(): boolean {
    return this.#peerGone;
  }

  /** Says (once) that the peer ended its side or left. */
  protected peerGone(): void {
    if (this.#peerGone) return;
    this.#peerGone = true;
    this.emit('peer-gone');
  }

  readonly #flushControls = (): void => {
    while (this.#pendingControls.length > 0 && this.listenerCount('control') > 0 && !this.destroyed) {
      this.emit('control', this.#pendingControls.shift()!);
    }
  };

  /** The error of a write or wait on a tunnel that is closed. */
  protected closedError(): Error {
    return this.wrapError(Object.assign(new Error('the tunnel connection is closed'), { code: 'ERR_STREAM_DESTROYED' }));
  }

  /** A transport error as the caller should see it: HoopError(GATEWAY_UNREACHABLE) on the CLI side. */
  protected wrapError(err: Error): Error {
    if (err instanceof HoopError) return err;
    const message = `lost the connection to the ${this.peer}: ${describeError(err)}`;
    if (this.peer === 'gateway') {
      return new HoopError(ErrorCode.GATEWAY_UNREACHABLE, message, {
        hint: 'check the network and the gateway, then run the command again to reconnect',
        cause: err,
      });
    }
    return Object.assign(new Error(message, { cause: err }), { code: (err as NodeJS.ErrnoException).code });
  }
}
