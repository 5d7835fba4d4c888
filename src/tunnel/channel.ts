/**
 * A hoop-tunnel/1 channel: a byte-stream Duplex over the upgraded socket, plus CONTROL messages.
 *
 * Bytes written become DATA frames (split at {@link MAX_DATA_PAYLOAD}); DATA payloads received
 * are pushed to the readable side; CONTROL frames are sent with {@link TunnelChannel.sendControl}
 * and arrive as `'control'` events. Back-pressure holds end to end: a write's callback waits for
 * the socket's `'drain'` when the socket's buffer is full, and the socket is paused while the
 * readable side is full. This is on the per-message path of database protocols, so there are
 * no timers and no per-byte work, and each frame (or batch of frames) is one socket write.
 *
 * @see docs/internals.md (§1.2)
 * @see https://nodejs.org/api/stream.html#implementing-a-duplex-stream
 */
import type { Duplex } from 'node:stream';
import { ErrorCode, HoopError } from '../errors.js';
import { FRAME_HEADER_LENGTH, FrameReader, FrameType, MAX_DATA_PAYLOAD, encodeControl, encodeFrame, encodeFrameHeader, type ControlMessage } from './frames.js';
import { TunnelStream, type TunnelPeer } from './stream.js';

export type { TunnelPeer } from './stream.js';

/** Options of a {@link TunnelChannel}. @see https://nodejs.org/api/stream.html#new-streamduplexoptions */
export interface TunnelChannelOptions {
  /** Who is at the other end (default `'gateway'`): errors on the CLI side are HoopError(GATEWAY_UNREACHABLE). */
  peer?: TunnelPeer;
  /** Readable-side buffer before the socket is paused (default 64 KiB). */
  readableHighWaterMark?: number;
  /** Writable-side buffer before `write()` returns false (default 64 KiB). */
  writableHighWaterMark?: number;
}

/**
 * Below this many bytes a batch of frames is copied into one buffer (small copies come from
 * Buffer's pool); above, header and payload are written corked, without copying, so bulk
 * transfers (COPY, big rows) allocate nothing per chunk.
 */
const COPY_LIMIT = 4 * 1024;
const DEFAULT_HIGH_WATER_MARK = 64 * 1024;

type Callback = (err?: Error | null) => void;

/** The socket operations a channel needs; `net.Socket` and `tls.TLSSocket` have them all. */
type TunnelSocket = Duplex & { setNoDelay?: (noDelay?: boolean) => unknown };

/**
 * A {@link TunnelStream} over an upgraded hoop-tunnel/1 socket (see there for `'control'` and
 * `'peer-gone'`; a `'control'` event overtakes at most one high-water mark of DATA bytes).
 * Reading starts on the next turn of the event loop: attach `'error'` and `'control'` listeners
 * synchronously after construction (or right after `await openTunnel()`).
 *
 * Ending the writable side ends the socket (half-close); the socket's end ends the readable
 * side; a socket error, an abrupt close or an invalid frame destroys the channel with an error
 * (HoopError(PROTOCOL_VIOLATION) for frames; HoopError(GATEWAY_UNREACHABLE) for a lost gateway).
 * @see docs/internals.md (§1.2)
 */
export class TunnelChannel extends TunnelStream {
  /** The upgraded socket (a `net.Socket` or `tls.TLSSocket` in practice). Do not read or write it directly. */
  readonly socket: TunnelSocket;
  readonly #reader = new FrameReader();
  readonly #controls = new WeakSet<Buffer>();
  #drainCallback: Callback | null = null;
  #paused = false;
  #socketEnded = false;

  /**
   * Wraps `socket`, whose HTTP exchange is over; `head` holds bytes already read past the
   * HTTP head (the first frames, if the peer sent them early).
   */
  constructor(socket: Duplex, head?: Buffer, options: TunnelChannelOptions = {}) {
    super(options.peer ?? 'gateway', {
      readableHighWaterMark: options.readableHighWaterMark ?? DEFAULT_HIGH_WATER_MARK,
      writableHighWaterMark: options.writableHighWaterMark ?? DEFAULT_HIGH_WATER_MARK,
      decodeStrings: true,
    });
    this.socket = socket as TunnelSocket;
    // Each direction ends on its own; without this a socket answers the peer's FIN with its own.
    socket.allowHalfOpen = true;
    this.socket.setNoDelay?.(true);
    if (head && head.length > 0) this.#reader.push(head);
    socket.on('drain', this.#onDrain);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    // The caller attaches its listeners after construction (often after an `await`): decode
    // `head` and start reading once the current microtasks have run. 'control' messages that
    // still find no listener are queued until one is added.
    setImmediate(this.#start);
  }

  /** @see docs/internals.md (§1.2) */
  sendControl(message: ControlMessage): boolean {
    const frame = encodeControl(message);
    if (this.destroyed || this.writableEnded) return false;
    this.#controls.add(frame);
    return this.write(frame);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: Callback): void {
    if (this.#controls.has(chunk)) {
      this.#controls.delete(chunk);
      this.#send(chunk, callback);
    } else if (chunk.length === 0) {
      callback();
    } else {
      this.countSent(chunk.length);
      if (chunk.length <= COPY_LIMIT) this.#send(encodeFrame(FrameType.DATA, chunk), callback);
      else {
        const parts: Buffer[] = [];
        this.#frameData(chunk, parts);
        this.#sendCorked(parts, callback);
      }
    }
  }

  override _writev(chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>, callback: Callback): void {
    const parts: Buffer[] = [];
    let total = 0;
    for (const { chunk } of chunks) {
      if (this.#controls.has(chunk)) {
        this.#controls.delete(chunk);
        parts.push(chunk);
        total += chunk.length;
      } else if (chunk.length > 0) {
        this.countSent(chunk.length);
        total += this.#frameData(chunk, parts);
      }
    }
    if (parts.length === 0) callback();
    else if (total <= COPY_LIMIT) this.#send(parts.length === 1 ? parts[0]! : Buffer.concat(parts, total), callback);
    else this.#sendCorked(parts, callback);
  }

  override _final(callback: Callback): void {
    const socket = this.socket;
    if (socket.destroyed || socket.writableEnded) {
      callback();
      return;
    }
    socket.end((err?: Error | null) => callback(err ? this.wrapError(err) : null));
  }

  override _read(): void {
    if (this.#paused) {
      this.#paused = false;
      this.socket.resume();
    }
  }

  override _destroy(err: Error | null, callback: Callback): void {
    const pending = this.#drainCallback;
    this.#drainCallback = null;
    this.socket.destroy();
    pending?.(err ?? this.closedError());
    callback(err);
  }

  /** Appends header/payload pairs for `chunk` to `parts`, split at the DATA limit; returns the bytes added. */
  #frameData(chunk: Buffer, parts: Buffer[]): number {
    const length = chunk.length;
    if (length <= 1024) {
      parts.push(encodeFrame(FrameType.DATA, chunk));
      return FRAME_HEADER_LENGTH + length;
    }
    for (let offset = 0; offset < length; offset += MAX_DATA_PAYLOAD) {
      const piece = length - offset > MAX_DATA_PAYLOAD ? chunk.subarray(offset, offset + MAX_DATA_PAYLOAD) : offset === 0 ? chunk : chunk.subarray(offset);
      parts.push(encodeFrameHeader(FrameType.DATA, piece.length), piece);
    }
    return length + FRAME_HEADER_LENGTH * Math.ceil(length / MAX_DATA_PAYLOAD);
  }

  #send(buffer: Buffer, callback: Callback): void {
    const socket = this.socket;
    if (socket.destroyed || socket.writableEnded) {
      callback(this.closedError());
      return;
    }
    if (socket.write(buffer)) callback();
    else this.#drainCallback = callback;
  }

  #sendCorked(parts: Buffer[], callback: Callback): void {
    const socket = this.socket;
    if (socket.destroyed || socket.writableEnded) {
      callback(this.closedError());
      return;
    }
    let ok = true;
    socket.cork();
    for (const part of parts) ok = socket.write(part);
    socket.uncork();
    if (ok) callback();
    else this.#drainCallback = callback;
  }

  #decode(): void {
    const reader = this.#reader;
    try {
      for (let frame = reader.next(); frame !== null; frame = reader.next()) {
        if (frame.type === FrameType.DATA) {
          if (frame.payload.length > 0 && !this.push(frame.payload)) this.#paused = true;
        } else {
          this.emitControl(frame.control);
        }
        if (this.destroyed) return;
      }
    } catch (err) {
      this.destroy(err as Error);
    }
  }

  readonly #start = (): void => {
    if (this.destroyed) return;
    this.#decode();
    if (this.destroyed) return;
    const socket = this.socket;
    socket.on('data', this.#onData);
    if (this.#paused) socket.pause();
    else socket.resume();
  };

  readonly #onData = (chunk: Buffer): void => {
    this.#reader.push(chunk);
    this.#decode();
    if (this.#paused && !this.destroyed) this.socket.pause();
  };

  readonly #onDrain = (): void => {
    const callback = this.#drainCallback;
    if (callback) {
      this.#drainCallback = null;
      callback();
    }
  };

  readonly #onEnd = (): void => {
    this.#socketEnded = true;
    this.peerGone();
    if (this.destroyed) return;
    if (!this.#reader.idle) {
      this.destroy(
        new HoopError(ErrorCode.PROTOCOL_VIOLATION, `the ${this.peer} ended the tunnel in the middle of a frame`, {
          hint: 'the connection was cut or the peer does not speak hoop-tunnel/1 correctly',
        }),
      );
      return;
    }
    this.push(null);
  };

  readonly #onError = (err: Error): void => {
    if (!this.destroyed) this.destroy(this.wrapError(err));
  };

  readonly #onClose = (): void => {
    this.peerGone();
    if (this.destroyed) return;
    if (!this.#socketEnded) {
      this.destroy(this.wrapError(Object.assign(new Error('connection closed before the tunnel ended'), { code: 'ERR_STREAM_PREMATURE_CLOSE' })));
      return;
    }
    const pending = this.#drainCallback;
    this.#drainCallback = null;
    pending?.(this.closedError());
  };
}
