/**
 * hoop-mux/1: the sessions of one client carried over one connection to the gateway, as ssh
 * carries its channels. Each session is a {@link MuxStream} (a {@link TunnelStream}, as an
 * engine expects) with its own id, its own authentication (the OPEN frame carries the headers of
 * a hoop-tunnel/1 Upgrade, bearer token included) and its own flow control: a receiver grants
 * credit (WINDOW) as its consumer reads, so one slow session never holds up the others or makes
 * either end buffer without bound. Everything the streams write in one turn of the event loop
 * goes out in one socket write, which is where a relay on this path spends its time.
 *
 * A frame that breaks the protocol ends the whole connection (all its streams), as a bad frame
 * ends a hoop-tunnel/1 tunnel; the gateway keeps serving every other connection.
 *
 * @see docs/internals.md (§1.2)
 * @see https://www.rfc-editor.org/rfc/rfc4254#section-5 (SSH connection protocol: channels and windows)
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { ErrorCode, HoopError } from '../errors.js';
import { encodeControl, FRAME_HEADER_LENGTH, type ControlMessage } from './frames.js';
import { MAX_MUX_DATA, MuxFrameType, MuxReader, muxHeader, muxJsonFrame, muxViolation, muxWindowFrame, type MuxFrame } from './mux-frames.js';
import { TunnelStream, type TunnelPeer } from './stream.js';

/** The protocol token of the `Upgrade` header of a multiplexed tunnel. @see docs/internals.md (§1.2) */
export const MUX_PROTOCOL = 'hoop-mux/1';

/**
 * Bytes a stream may receive before its consumer has read them (the initial and steady window):
 * what the gateway lets a client have in flight on one stream, and the window of a client that
 * announces none.
 */
export const STREAM_WINDOW = 256 * 1024;

/**
 * The window `hoop connect` announces for what the gateway sends it (results, COPY out): larger,
 * since a result is what flows, and what the CLI buffers for a slow local client is its own. The
 * gateway buffers none of it: its writes wait for its socket, whatever the window.
 */
export const CLIENT_STREAM_WINDOW = 1024 * 1024;

/** The largest window a client may announce. */
export const MAX_STREAM_WINDOW = 16 * 1024 * 1024;

/** Streams one connection may have open at once. */
export const MAX_STREAMS = 1024;

/** Output gathered in one turn up to this size is copied into one buffer; above, it is written corked. */
const COALESCE_LIMIT = 64 * 1024;

/** Output waiting for the socket beyond which writers wait for it to drain. */
const OUTPUT_LIMIT = 1024 * 1024;

type Callback = (err?: Error | null) => void;

const ignore = (): void => undefined;

/** The error of a connection that closed under its streams. */
const closed = (message: string): Error => Object.assign(new Error(message), { code: 'ECONNRESET' });

/** What a client asks for in an OPEN frame: a connection, with the headers of a hoop-tunnel/1 Upgrade. */
export interface MuxOpenRequest {
  connection: string;
  /** Header names in lower case, values as strings (`authorization`, `hoop-session-id`, ...). */
  headers: Record<string, string>;
  /** The client's window: DATA bytes the gateway may send on the stream before credit (default {@link STREAM_WINDOW}). */
  window?: number;
}

/** A gateway's refusal of a stream (as a hoop-tunnel/1 HTTP refusal: status and JSON body). */
export class MuxRefusal extends HoopError {
  readonly status: number;
  readonly body: unknown;

  constructor(status: number, body: unknown) {
    super(ErrorCode.GATEWAY_PROTOCOL, `the gateway refused the session (HTTP ${status})`);
    this.status = status;
    this.body = body;
  }
}

/**
 * One session on a {@link MuxConnection}: bytes and CONTROL messages, as a {@link TunnelStream}.
 * On the gateway a stream arrives unanswered: {@link MuxStream.accept} or {@link MuxStream.refuse} it.
 */
export class MuxStream extends TunnelStream {
  readonly id: number;
  readonly #mux: MuxConnection;
  readonly #controls = new WeakSet<Buffer>();
  /** The peer's window, and the DATA bytes it still lets this side send. */
  readonly #peerWindow: number;
  #sendWindow: number;
  /** A write waiting for credit: what is left of it and its callback. */
  #blocked: { parts: Buffer[]; callback: Callback } | null = null;
  /** This side's window; total DATA bytes the peer may have sent, and has sent. */
  readonly #window: number;
  #allowed: number;
  #received = 0;
  #endSent = false;
  #endReceived = false;
  #answered = false;
  /** The client side: settles when the gateway accepts or refuses. */
  #onAnswer: ((err: MuxRefusal | Error | null, headers?: Record<string, string>) => void) | null = null;

  /** @internal Made by {@link MuxConnection}. */
  constructor(mux: MuxConnection, id: number, peer: TunnelPeer, windows: { send: number; receive: number }) {
    super(peer, { readableHighWaterMark: 64 * 1024, writableHighWaterMark: 64 * 1024, decodeStrings: true });
    this.#mux = mux;
    this.id = id;
    this.#peerWindow = this.#sendWindow = windows.send;
    this.#window = this.#allowed = windows.receive;
    // A stream can fail before its user listens (the connection drops while the gateway checks
    // the session's token): its error then only ends it, as 'close' says too; it never takes
    // the process down. Listeners added later get errors as usual.
    this.on('error', ignore);
  }

  /** Gateway: accepts the session, sending the headers a hoop-tunnel/1 `101` would carry. */
  accept(headers: Record<string, string>): this {
    if (this.#answered) throw new HoopError(ErrorCode.INTERNAL, `stream ${this.id} was already answered`);
    this.#answered = true;
    if (!this.destroyed) this.#mux.send(muxJsonFrame(MuxFrameType.ACCEPT, this.id, headers));
    return this;
  }

  /** Gateway: refuses the session with an HTTP status and JSON body, and closes the stream. */
  refuse(status: number, body: unknown): void {
    if (this.#answered) throw new HoopError(ErrorCode.INTERNAL, `stream ${this.id} was already answered`);
    this.#answered = true;
    if (this.destroyed) return;
    this.#mux.send(muxJsonFrame(MuxFrameType.REFUSE, this.id, { status, body }));
    this.#endSent = true;
    this.#endReceived = true;
    this.#mux.forget(this);
    this.destroy();
  }

  /** @see docs/internals.md (§1.2) */
  sendControl(message: ControlMessage): boolean {
    // One JSON encoder for both tunnels: a hoop-tunnel/1 CONTROL frame's payload is the same JSON.
    const payload = encodeControl(message).subarray(FRAME_HEADER_LENGTH);
    if (this.destroyed || this.writableEnded) return false;
    const frame = Buffer.concat([muxHeader(MuxFrameType.CONTROL, this.id, payload.length), payload]);
    this.#controls.add(frame);
    return this.write(frame);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: Callback): void {
    this.#sendParts([chunk], callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>, callback: Callback): void {
    this.#sendParts(
      chunks.map((c) => c.chunk),
      callback,
    );
  }

  override _final(callback: Callback): void {
    if (!this.#mux.usable) {
      callback();
      return;
    }
    this.#endSent = true;
    this.#mux.send(muxHeader(MuxFrameType.END, this.id, 0));
    this.#settleIfDone();
    callback();
  }

  override _read(): void {
    this.#credit();
  }

  override _destroy(err: Error | null, callback: Callback): void {
    const blocked = this.#blocked;
    this.#blocked = null;
    if (!(this.#endSent && this.#endReceived) && this.#mux.usable) {
      this.#mux.send(muxJsonFrame(MuxFrameType.RESET, this.id, err ? { message: err.message } : {}));
    }
    this.#mux.forget(this);
    this.#answer(err ?? this.closedError());
    blocked?.callback(err ?? this.closedError());
    callback(err);
  }

  /** @internal The client side waits for the gateway's answer. */
  awaitAnswer(handler: (err: MuxRefusal | Error | null, headers?: Record<string, string>) => void): void {
    this.#onAnswer = handler;
  }

  /** @internal A frame for this stream. Throws HoopError(PROTOCOL_VIOLATION) for one the peer may not send. */
  receive(frame: MuxFrame): void {
    switch (frame.type) {
      case MuxFrameType.DATA: {
        const n = frame.payload.length;
        if (this.#endReceived) throw muxViolation(`DATA on stream ${this.id} after its END`);
        if (this.#received + n > this.#allowed) throw muxViolation(`stream ${this.id} sent past its window`);
        this.#received += n;
        if (this.push(frame.payload)) this.#credit();
        return;
      }
      case MuxFrameType.CONTROL: {
        const message = frame.value!;
        if (typeof message.type !== 'string') throw muxViolation('a CONTROL message needs a string "type"');
        this.emitControl(message as ControlMessage);
        return;
      }
      case MuxFrameType.WINDOW:
        this.#sendWindow += frame.value!.credit as number;
        if (this.#sendWindow > this.#peerWindow) throw muxViolation(`stream ${this.id} was granted more than its window`);
        this.#unblock();
        return;
      case MuxFrameType.END:
        if (this.#endReceived) throw muxViolation(`a second END on stream ${this.id}`);
        this.#endReceived = true;
        this.peerGone();
        this.push(null);
        this.#settleIfDone();
        return;
      case MuxFrameType.RESET: {
        this.peerGone();
        this.#endReceived = true;
        this.#endSent = true;
        const message = typeof frame.value!.message === 'string' ? `: ${frame.value!.message.slice(0, 200)}` : '';
        this.destroy(this.wrapError(Object.assign(new Error(`the ${this.peer} closed the session${message}`), { code: 'ECONNRESET' })));
        return;
      }
      case MuxFrameType.ACCEPT:
      case MuxFrameType.REFUSE: {
        if (this.peer !== 'gateway' || this.#answered) throw muxViolation(`an unexpected answer on stream ${this.id}`);
        this.#answered = true;
        if (frame.type === MuxFrameType.ACCEPT) {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(frame.value!)) if (typeof v === 'string') headers[k.toLowerCase()] = v;
          this.#answer(null, headers);
        } else {
          const status = typeof frame.value!.status === 'number' ? frame.value!.status : 0;
          this.#endReceived = true;
          this.#endSent = true;
          this.#answer(new MuxRefusal(status, frame.value!.body));
          this.destroy();
        }
        return;
      }
      default:
        throw muxViolation(`frame type ${frame.type} on stream ${this.id}`);
    }
  }

  /** @internal The connection is gone: the stream ends, with `err` when the peer or the network ended it. */
  abort(err: Error | undefined): void {
    this.peerGone();
    this.#endSent = true;
    this.#endReceived = true;
    if (!this.destroyed) this.destroy(err ? this.wrapError(err) : undefined);
  }

  #answer(err: MuxRefusal | Error | null, headers?: Record<string, string>): void {
    const handler = this.#onAnswer;
    this.#onAnswer = null;
    handler?.(err, headers);
  }

  /** Grants the peer credit for what the consumer has read, once a quarter of the window is free again. */
  #credit(): void {
    if (this.#endReceived || this.destroyed) return;
    const consumed = this.#received - this.readableLength;
    const grant = consumed + this.#window - this.#allowed;
    if (grant >= this.#window / 4) {
      this.#allowed += grant;
      this.#mux.send(muxWindowFrame(this.id, grant));
    }
  }

  #sendParts(chunks: Buffer[], callback: Callback): void {
    if (!this.#mux.usable) {
      callback(this.closedError());
      return;
    }
    const data: Buffer[] = [];
    for (const chunk of chunks) {
      if (this.#controls.has(chunk)) {
        // A control message keeps its place after the bytes written before it: queued behind them it
        // stays marked, so that #unblock sends it as the CONTROL frame it is, never as stream bytes.
        if (data.length > 0 || this.#blocked) data.push(chunk);
        else {
          this.#controls.delete(chunk);
          this.#mux.send(chunk);
        }
      } else if (chunk.length > 0) {
        this.countSent(chunk.length);
        data.push(chunk);
      }
    }
    if (data.length === 0) {
      this.#mux.whenWritable(callback);
      return;
    }
    this.#blocked = { parts: data, callback };
    this.#unblock();
  }

  /** Sends what the window allows of the blocked write; its callback runs once all of it is sent. */
  #unblock(): void {
    const blocked = this.#blocked;
    if (!blocked || this.destroyed) return;
    const parts = blocked.parts;
    while (parts.length > 0) {
      const part = parts[0]!;
      if (this.#controls.has(part)) {
        this.#controls.delete(part);
        this.#mux.send(part);
        parts.shift();
        continue;
      }
      if (this.#sendWindow === 0) return;
      const n = Math.min(part.length, this.#sendWindow, MAX_MUX_DATA);
      this.#mux.send(muxHeader(MuxFrameType.DATA, this.id, n), n === part.length ? part : part.subarray(0, n));
      this.#sendWindow -= n;
      if (n === part.length) parts.shift();
      else parts[0] = part.subarray(n);
    }
    this.#blocked = null;
    this.#mux.whenWritable(blocked.callback);
  }

  #settleIfDone(): void {
    if (this.#endSent && this.#endReceived) this.#mux.forget(this);
  }
}

/** Options of a {@link MuxConnection}. */
export interface MuxConnectionOptions {
  /** Who is at the other end: `'gateway'` on the CLI (which opens streams), `'client'` on the gateway (which answers them). */
  peer: TunnelPeer;
  /** Gateway: a client opened a stream; answer it with `stream.accept()` or `stream.refuse()`. */
  onOpen?: (stream: MuxStream, request: MuxOpenRequest) => void;
  /** Client: the window its streams announce (default {@link CLIENT_STREAM_WINDOW}). */
  window?: number;
}

/**
 * A hoop-mux/1 connection over an upgraded socket. Emits `'close'` (with the error that ended
 * it, if any) once, after all its streams are ended. Reading starts on the next turn of the event loop.
 */
export class MuxConnection extends EventEmitter {
  readonly socket: Duplex;
  readonly #peer: TunnelPeer;
  readonly #onOpen: MuxConnectionOptions['onOpen'];
  readonly #window: number;
  readonly #reader = new MuxReader();
  readonly #streams = new Map<number, MuxStream>();
  #lastId = 0;
  #out: Buffer[] = [];
  #outBytes = 0;
  #flushing = false;
  #congested = false;
  #waiting: Callback[] = [];
  #closed = false;

  constructor(socket: Duplex, head: Buffer | undefined, options: MuxConnectionOptions) {
    super();
    this.socket = socket;
    this.#peer = options.peer;
    this.#onOpen = options.onOpen;
    this.#window = options.window ?? CLIENT_STREAM_WINDOW;
    socket.allowHalfOpen = true;
    (socket as Duplex & { setNoDelay?: (b: boolean) => void }).setNoDelay?.(true);
    if (head && head.length > 0) this.#reader.push(head);
    socket.on('drain', this.#onDrain);
    socket.on('error', (err: Error) => this.#end(err, err));
    socket.on('end', () => {
      const err = this.#reader.idle ? undefined : muxViolation('the connection ended in the middle of a frame');
      this.#end(err, err ?? closed('the peer closed the tunnel connection'));
    });
    socket.on('close', () => {
      const err = closed('the tunnel connection closed');
      this.#end(err, err);
    });
    setImmediate(() => {
      if (this.#closed) return;
      this.#decode();
      socket.on('data', this.#onData);
    });
  }

  /** Streams open now. */
  get size(): number {
    return this.#streams.size;
  }

  /** @internal True while frames can still be written. */
  get usable(): boolean {
    return !this.#closed && !this.socket.destroyed && !this.socket.writableEnded;
  }

  /**
   * Client: opens a stream for `request` and resolves with it and the gateway's headers once
   * the gateway accepts; rejects with a {@link MuxRefusal}, or the connection's error.
   */
  open(request: MuxOpenRequest): Promise<{ stream: MuxStream; headers: Record<string, string> }> {
    if (!this.usable || this.#lastId >= 0xffffffff) return Promise.reject(Object.assign(new Error('the connection to the gateway is closed'), { code: 'ECONNRESET' }));
    const stream = new MuxStream(this, ++this.#lastId, this.#peer, { send: STREAM_WINDOW, receive: this.#window });
    this.#streams.set(stream.id, stream);
    this.send(muxJsonFrame(MuxFrameType.OPEN, stream.id, { ...request, window: this.#window }));
    return new Promise((resolve, reject) => {
      stream.awaitAnswer((err, headers) => (err ? reject(err) : resolve({ stream, headers: headers! })));
    });
  }

  /** Closes the connection: what was written goes out, then every stream ends (without an error: this side chose to). */
  close(): void {
    this.#end(undefined, undefined);
  }

  /**
   * Ends the connection once: `err` is why (emitted with `'close'`), `streamError` what its open
   * streams end with (none when this side closes).
   */
  #end(err: Error | undefined, streamError: Error | undefined): void {
    if (this.#closed) return;
    // Frames already written go out first (a session's last messages, then its END).
    if (!err) this.#flush();
    this.#closed = true;
    for (const stream of [...this.#streams.values()]) stream.abort(streamError);
    this.#streams.clear();
    if (err instanceof HoopError) this.socket.destroy();
    else this.socket.end();
    setTimeout(() => this.socket.destroy(), 5_000).unref();
    const waiting = this.#waiting.splice(0);
    for (const callback of waiting) callback(err ?? closed('the tunnel connection closed'));
    this.emit('close', err);
  }

  /** @internal Queues frames; everything queued in one turn of the event loop goes out in one write. */
  send(a: Buffer, b?: Buffer): void {
    if (this.#closed) return;
    this.#out.push(a);
    this.#outBytes += a.length;
    if (b) {
      this.#out.push(b);
      this.#outBytes += b.length;
    }
    if (!this.#flushing) {
      this.#flushing = true;
      setImmediate(this.#flush);
    }
  }

  /** @internal Calls `callback` now, or once the socket has room again. */
  whenWritable(callback: Callback): void {
    if (!this.#congested && this.#outBytes < OUTPUT_LIMIT) callback();
    else this.#waiting.push(callback);
  }

  /** @internal A stream that is done no longer takes frames. */
  forget(stream: MuxStream): void {
    if (this.#streams.get(stream.id) === stream) this.#streams.delete(stream.id);
  }

  readonly #flush = (): void => {
    this.#flushing = false;
    const parts = this.#out;
    const bytes = this.#outBytes;
    this.#out = [];
    this.#outBytes = 0;
    const socket = this.socket;
    if (parts.length === 0 || socket.destroyed || socket.writableEnded) return;
    let ok = true;
    if (parts.length === 1) ok = socket.write(parts[0]!);
    else if (bytes <= COALESCE_LIMIT) ok = socket.write(Buffer.concat(parts, bytes));
    else {
      socket.cork();
      for (const part of parts) ok = socket.write(part);
      socket.uncork();
    }
    if (!ok) this.#congested = true;
    else this.#release();
  };

  readonly #onDrain = (): void => {
    this.#congested = false;
    this.#release();
  };

  #release(): void {
    if (this.#congested || this.#outBytes >= OUTPUT_LIMIT) return;
    const waiting = this.#waiting;
    if (waiting.length === 0) return;
    this.#waiting = [];
    for (const callback of waiting) callback();
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#reader.push(chunk);
    this.#decode();
  };

  #decode(): void {
    try {
      for (let frame = this.#reader.next(); frame !== null && !this.#closed; frame = this.#reader.next()) this.#dispatch(frame);
    } catch (err) {
      const violation = err instanceof HoopError ? err : muxViolation(String(err));
      this.#end(violation, violation);
    }
  }

  #dispatch(frame: MuxFrame): void {
    const id = frame.stream;
    if (frame.type === MuxFrameType.OPEN) {
      if (this.#peer !== 'client') throw muxViolation('the gateway may not open a stream');
      if (id <= this.#lastId) throw muxViolation(`stream ${id} opened out of order (after ${this.#lastId})`);
      this.#lastId = id;
      const request = openRequest(frame.value!);
      const stream = new MuxStream(this, id, this.#peer, { send: request.window ?? STREAM_WINDOW, receive: STREAM_WINDOW });
      this.#streams.set(id, stream);
      if (this.#streams.size > MAX_STREAMS) {
        stream.refuse(503, {
          error: { code: ErrorCode.GATEWAY_UNREACHABLE, message: `hoop: one connection may carry at most ${MAX_STREAMS} sessions`, hint: 'close some sessions, or open another connection' },
        });
        return;
      }
      this.#onOpen?.(stream, request);
      return;
    }
    const stream = this.#streams.get(id);
    if (stream) {
      stream.receive(frame);
      return;
    }
    // Frames the peer sent before it learned that this side closed the stream are dropped.
    if (id === 0 || id > this.#lastId) throw muxViolation(`a frame for stream ${id}, which was never opened`);
  }
}

/** Validates an OPEN frame's JSON: a connection name, string headers (lower-cased), and the client's window if it gives one. */
function openRequest(value: Record<string, unknown>): MuxOpenRequest {
  const { connection, headers, window } = value;
  if (typeof connection !== 'string' || connection === '') throw muxViolation('OPEN needs a "connection" name');
  if (window !== undefined && !(Number.isInteger(window) && (window as number) >= 1 && (window as number) <= MAX_STREAM_WINDOW)) {
    throw muxViolation(`OPEN's "window" must be a whole number of bytes from 1 to ${MAX_STREAM_WINDOW}`);
  }
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) throw muxViolation('OPEN needs a "headers" object');
  // No prototype: a header named __proto__ is a header like any other.
  const out = Object.create(null) as Record<string, string>;
  for (const [name, v] of Object.entries(headers)) {
    if (typeof v !== 'string') throw muxViolation(`OPEN header "${name.slice(0, 64)}" is not a string`);
    out[name.toLowerCase()] = v;
  }
  return { connection, headers: out, ...(window !== undefined ? { window: window as number } : {}) };
}
